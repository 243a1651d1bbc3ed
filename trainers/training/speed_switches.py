"""Training-side speed switches that change no results: cuDNN autotuning and a compiled backbone.

The model-side ones live in the model config (``SclSltConfig.backbone_channels_last``,
``backbone_inplace_relu``, ``backbone_chunk_size``); the optimizer is the Trainer's own ``optim``.
These two stay out of the model because they belong to one training process, not to a saved model:
a compiled backbone must not travel to the Hub, and cuDNN's flag is global to the process.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.resnet.modeling_resnet import ResNetModel

from .arguments import SclSltTrainingArguments


def apply_speed_switches(model: nn.Module, args: SclSltTrainingArguments) -> None:
    """Turn on what ``args.cudnn_benchmark`` and ``args.backbone_compile`` ask for (nothing when off)."""
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if args.backbone_compile:
        compile_backbones(model)


def compile_backbones(model: nn.Module, **compile_kwargs: Any) -> int:
    """Compile every transformers ``ResNetModel`` inside ``model`` in place; returns how many.

    That is the frame backbone, and peft's trainable copy of it under LoRA (whichever copy runs is
    compiled; compiling is lazy, on the first call). ``nn.Module.compile`` keeps the module and its
    parameters where they are, so the state dict, ``save_pretrained`` and the saved code are those
    of the plain model. ``compile_kwargs`` go to ``torch.compile`` (``backend``, ``mode``, ``dynamic``).
    """
    backbones = [module for module in model.modules() if isinstance(module, ResNetModel)]
    for backbone in backbones:
        backbone.compile(**compile_kwargs)
    return len(backbones)
