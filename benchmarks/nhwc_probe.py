"""The reproduction of torch's CPU channels_last (NHWC) convolution-backward defect, as a measurement.

``python -m benchmarks.nhwc_probe THREADS`` prints one JSON object: the worst case over convolutions
of a ResNet's shapes, each run 10 times (a wrong kernel differs from run to run). For every case the
output, the weight gradient and the input gradient of the float32 NCHW path and of the float32 NHWC
path are compared normwise with a float64 NCHW reference. ``ratio`` is the NHWC error divided by its
allowance, 100 × the NCHW error measured here (at least 1e-4): a ratio above 1 is a wrong kernel
(errors of tens of percent); a crash of the process is the other outcome. A ratio of at most 1
does not make a CPU safe: the defect is intermittent (``benchmarks/RESULTS.md`` §11), which is why
training refuses a channels_last backbone on every CPU. It imports nothing but torch.
"""

from __future__ import annotations

import copy
import json
import sys

import torch
from torch import nn

# (in channels, out channels, kernel, stride, height = width): the stem, 3×3 blocks and 1×1 stride-2
# shortcuts of a ResNet.
CASES = (
    (4, 8, 1, 2, 8),
    (16, 32, 1, 2, 16),
    (32, 64, 1, 2, 8),
    (8, 8, 3, 1, 16),
    (16, 32, 3, 2, 16),
    (3, 16, 7, 2, 32),
)
REPEATS = 10
RELATIVE_ALLOWANCE = 100.0
ABSOLUTE_ALLOWANCE = 1e-4


def convolve(
    conv: nn.Conv2d, x: torch.Tensor, upstream: torch.Tensor, layout: str, dtype: torch.dtype
) -> list[torch.Tensor]:
    """``[output, weight gradient, input gradient]`` of ``conv`` on ``x`` (B, C, H, W), in float64."""
    conv = copy.deepcopy(conv).to(dtype)
    x = x.to(dtype)
    if layout == "nhwc":
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x = x.detach().requires_grad_(True)
    output = conv(x)
    output.backward(upstream.to(dtype))
    assert conv.weight.grad is not None and x.grad is not None
    return [t.detach().double() for t in (output, conv.weight.grad, x.grad)]


def normwise_error(found: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """The largest normwise relative error over the tensors."""
    return max(
        float((f - r).norm() / r.norm().clamp_min(1e-30)) for f, r in zip(found, reference, strict=True)
    )


def probe(threads: int) -> dict[str, object]:
    """The worst case, ``{"nchw", "nhwc", "ratio", "case"}``, or the first that is unsound."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    worst: dict[str, object] = {"ratio": -1.0}
    for in_channels, out_channels, kernel, stride, size in CASES:
        for _ in range(REPEATS):
            conv = nn.Conv2d(
                in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
            )
            x = torch.randn(4, in_channels, size, size)
            with torch.no_grad():
                upstream = torch.randn_like(conv(x))
            reference = convolve(conv, x, upstream, "nchw", torch.float64)
            nchw = normwise_error(convolve(conv, x, upstream, "nchw", torch.float32), reference)
            nhwc = normwise_error(convolve(conv, x, upstream, "nhwc", torch.float32), reference)
            ratio = nhwc / max(RELATIVE_ALLOWANCE * nchw, ABSOLUTE_ALLOWANCE)
            if ratio > float(worst["ratio"]):  # type: ignore[arg-type]
                case = [in_channels, out_channels, kernel, stride, size]
                worst = {"nchw": nchw, "nhwc": nhwc, "ratio": ratio, "case": case}
            if ratio > 1:  # one wrong case settles it
                return worst
    return worst


if __name__ == "__main__":
    print(json.dumps(probe(int(sys.argv[1]))))
