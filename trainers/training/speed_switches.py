"""Training-side speed switches that change no results, and the guard that keeps broken kernels out.

cuDNN autotuning and a compiled backbone belong to one training process, not to a saved model: a
compiled backbone must not travel to the Hub, and cuDNN's flag is global to the process. The
model-side switches live in the model config (``SclSltConfig.backbone_channels_last``,
``backbone_inplace_relu``, ``backbone_chunk_size``); the optimizer is the Trainer's own ``optim``.

A channels_last (NHWC) backbone runs other convolution kernels than the default NCHW layout. On a CPU
those kernels depend on the processor, and on some they compute wrong gradients or crash. Training a
channels_last backbone on a CPU is therefore allowed only where :mod:`.nhwc_probe`, run once per
process in a child process (a crash there cannot take the run down), finds them sound.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers.models.resnet.modeling_resnet import ResNetModel

from .arguments import SclSltTrainingArguments

PROBE_SCRIPT = Path(__file__).with_name("nhwc_probe.py")
PROBE_TIMEOUT_S = 600


class UnsoundKernelError(ValueError):
    """A speed switch asks for kernels that compute wrong results (or crash) on this machine."""


def apply_speed_switches(model: nn.Module, args: SclSltTrainingArguments) -> None:
    """Turn on what ``args.cudnn_benchmark`` and ``args.backbone_compile`` ask for (nothing when off),
    and refuse a channels_last backbone on a CPU whose NHWC convolution backward is unsound."""
    if args.device.type == "cpu" and has_channels_last_convolutions(model):
        check_cpu_nhwc_backward()
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


def check_cpu_nhwc_backward() -> None:
    """Raise :class:`UnsoundKernelError`, one line, where this CPU's NHWC convolution backward is
    unsound at this process's torch thread count."""
    sound, finding = cpu_nhwc_backward_probe(torch.get_num_threads())
    if not sound:
        raise UnsoundKernelError(
            f"model.backbone_channels_last: this CPU's channels_last (NHWC) convolution backward is "
            f"unsound with torch {torch.__version__} ({finding}); set model.backbone_channels_last to "
            "false, or auto (channels_last on a GPU only)"
        )


@functools.cache
def cpu_nhwc_backward_probe(threads: int) -> tuple[bool, str]:
    """``(sound, finding)`` of :mod:`.nhwc_probe` run with ``threads`` torch threads in a child process.

    A crash, a timeout or an NHWC error above the probe's allowance is unsound; ``finding`` says
    which, in words. Cached: the probe runs once per process and thread count.
    """
    command = [sys.executable, str(PROBE_SCRIPT), str(threads)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return False, f"the probe did not finish in {PROBE_TIMEOUT_S} s"
    return probe_verdict(done.returncode, done.stdout)


def probe_verdict(returncode: int, stdout: str) -> tuple[bool, str]:
    """``(sound, finding)`` from the probe's exit status and output."""
    if returncode != 0:
        how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        return False, f"a probe convolution crashed the process ({how})"
    worst = json.loads(stdout.strip().splitlines()[-1])
    in_channels, out_channels, kernel, stride, size = worst["case"]
    finding = (
        f"a {kernel}×{kernel} stride-{stride} Conv2d({in_channels}, {out_channels}) on {size}×{size} "
        f"frames is {worst['nhwc']:.2%} off against float64, NCHW {worst['nchw']:.1e}"
    )
    return worst["ratio"] <= 1.0, finding


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
