"""Training-side speed switches that change no results, and the guard that keeps broken kernels out.

cuDNN autotuning and a compiled backbone belong to one training process, not to a saved model: a
compiled backbone must not travel to the Hub, and cuDNN's flag is global to the process. The
model-side switches live in the model config (``SclSltConfig.backbone_channels_last``,
``backbone_inplace_relu``, ``backbone_chunk_size``); the optimizer is the Trainer's own ``optim``.

A channels_last (NHWC) backbone runs other convolution kernels than the default NCHW layout. On a CPU
their backward computes wrong gradients, or crashes, on some processors and only some of the time,
so no probe can certify a CPU: training a channels_last backbone on a CPU is refused. Inference
(forward only) and CUDA training keep it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers.models.resnet.modeling_resnet import ResNetModel

from .arguments import SclSltTrainingArguments


class UnsoundKernelError(ValueError):
    """A speed switch asks for kernels that compute wrong results (or crash) on this machine."""


def apply_speed_switches(model: nn.Module, args: SclSltTrainingArguments) -> None:
    """Turn on what ``args.cudnn_benchmark`` and ``args.backbone_compile`` ask for (nothing when off),
    and refuse a channels_last backbone on a CPU with :class:`UnsoundKernelError`, one line."""
    if args.device.type == "cpu" and has_channels_last_convolutions(model):
        raise UnsoundKernelError(
            f"model.backbone_channels_last: training a channels_last (NHWC) backbone on a CPU is refused: "
            f"torch {torch.__version__}'s NHWC convolution backward gives wrong gradients on some CPUs, "
            "intermittently; set model.backbone_channels_last to false, or auto (channels_last on a GPU only)"
        )
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if args.backbone_compile:
        compile_backbones(model)


def has_channels_last_convolutions(model: nn.Module) -> bool:
    """Whether a convolution of ``model`` with a spatial kernel holds its weight in channels_last
    (a 1×1 kernel's weight is contiguous in both layouts and tells nothing)."""
    return any(
        module.weight.shape[-2:] != (1, 1)
        and module.weight.is_contiguous(memory_format=torch.channels_last)
        and not module.weight.is_contiguous()
        for module in model.modules()
        if isinstance(module, nn.Conv2d)
    )


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
