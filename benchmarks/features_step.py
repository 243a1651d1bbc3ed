"""One training step on stored frame features against one on pixels, side by side, with memory.

    python benchmarks/features_step.py --preset paper --batch-size 1 --frames 116

The same model (by default the paper's shape: ResNet-18 at 224², mBART-large-50 with the paper's
LoRA) takes two kinds of step, alternating call by call in one process:

* ``pixels``: ``pixel_values`` (B, T, 3, 224, 224) through the ResNet, which trains (the paper);
* ``features``: ``frame_features`` (B, T, 512) float16, as a features corpus stores them; the
  ResNet is frozen and never runs (``video.features`` in the recipe).

A step is forward, translation cross-entropy + a symmetric in-batch contrastive loss through the
text branch, backward and an AdamW update of what trains in that variant (two optimizers over one
model). Time: the median over the repeats, after one warm-up round. Memory: the rise of the
process's peak RSS during one step over its RSS just before it (``VmHWM`` reset through
``/proc/self/clear_refs``, Linux), on the CPU; ``max_memory_allocated`` above the start on CUDA.
Prints one JSON object per measurement and appends them to ``--output``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from trainers.training.lora import apply_lora, paper_lora_config

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="paper", choices=["tiny", "small", "gfslt", "paper"])
    parser.add_argument("--no-lora", action="store_true", help="full fine-tuning instead of the paper's LoRA")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--frames", type=int, default=116, help="frames per clip (PHOENIX-2014T mean: 116)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--target-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--output", type=Path, help="JSONL file to append to (default: results/features_step_DEVICE.jsonl)"
    )
    return parser.parse_args(argv)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --- memory -----------------------------------------------------------------------------------
def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def start_window(device: torch.device) -> int:
    """Reset the peak; the memory in use now (bytes)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # RSS then tracks live memory
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    return status_bytes("VmRSS")


def window_peak(device: torch.device, start: int) -> int:
    """The peak since :func:`start_window` above its start (bytes)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) - start
    return status_bytes("VmHWM") - start


# --- the step ---------------------------------------------------------------------------------
def make_batch(
    args: argparse.Namespace, config: SclSltConfig, device: torch.device
) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch_size, args.frames)
    labels = torch.randint(
        4, config.text_config.vocab_size - 1, (args.batch_size, args.target_length), generator=generator
    )
    labels[:, -1] = config.eos_token_id
    return {
        "pixel_values": torch.randn(*shape, 3, args.image_size, args.image_size, generator=generator).to(
            device
        ),
        "frame_features": torch.randn(*shape, config.frame_feature_size, generator=generator)
        .half()
        .to(device),
        "attention_mask": torch.ones(shape, dtype=torch.long, device=device),
        "labels": labels.to(device),
        "text_input_ids": labels.clone().to(device),
        "text_attention_mask": torch.ones_like(labels).to(device),
    }


def training_step(model: Any, optimizer: torch.optim.Optimizer, inputs: dict[str, torch.Tensor]) -> None:
    out = model(**inputs)
    targets = torch.arange(out.similarity_per_video.shape[0], device=out.logits.device)
    contrastive = F.cross_entropy(out.similarity_per_video / 0.07, targets)
    contrastive = (contrastive + F.cross_entropy(out.similarity_per_text / 0.07, targets)) / 2
    (out.loss + contrastive).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def trainable_counts(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, int]:
    """Parameters each variant's optimizer updates."""
    return {
        name: sum(p.numel() for group in optimizer.param_groups for p in group["params"])
        for name, optimizer in optimizers.items()
    }


def backbone_parameters(model: Any) -> list[torch.nn.Parameter]:
    return [p for name, p in model.named_parameters() if ".backbone." in f".{name}" and p.requires_grad]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = SclSltConfig.from_preset(args.preset)
    model: Any = SclSltForSignTranslation(config)
    if not args.no_lora:
        model = apply_lora(model, paper_lora_config())  # the ResNet trains fully (modules_to_save)
    model = model.to(device).train()
    backbone = backbone_parameters(model)
    backbone_ids = {id(p) for p in backbone}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizers = {
        "pixels": torch.optim.AdamW(trainable, lr=1e-5),
        "features": torch.optim.AdamW([p for p in trainable if id(p) not in backbone_ids], lr=1e-5),
    }
    batch = make_batch(args, config, device)
    shared = {k: v for k, v in batch.items() if k not in ("pixel_values", "frame_features")}
    inputs = {
        "pixels": {**shared, "pixel_values": batch["pixel_values"]},
        "features": {**shared, "frame_features": batch["frame_features"]},
    }

    def step(variant: str) -> None:
        for parameter in backbone:  # frozen on features: no gradient, no update
            parameter.requires_grad_(variant == "pixels")
        training_step(model, optimizers[variant], inputs[variant])

    context = {
        "benchmark": "features_step",
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpu": cpu_model(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "preset": args.preset,
        "lora": not args.no_lora,
        "batch_size": args.batch_size,
        "frames": args.frames,
        "image_size": args.image_size,
        "target_length": args.target_length,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "trainable_m": {name: round(count / 1e6, 2) for name, count in trainable_counts(optimizers).items()},
        "trainable": trainable_counts(optimizers),
    }
    records = [{"context": context}]
    print(json.dumps(records[0]), flush=True)
    times: dict[str, list[float]] = {"pixels": [], "features": []}
    peaks: dict[str, list[int]] = {"pixels": [], "features": []}
    for round_index in range(args.repeats + 1):  # round 0 warms up (optimizer state, allocator)
        for variant in ("pixels", "features"):
            start = start_window(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            began = time.perf_counter()
            step(variant)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - began
            peak = window_peak(device, start)
            if round_index:
                times[variant].append(seconds)
                peaks[variant].append(peak)
    for variant in ("pixels", "features"):
        record = {
            "measure": "train_step",
            "variant": variant,
            "seconds_median": round(statistics.median(times[variant]), 4),
            "seconds": [round(t, 4) for t in times[variant]],
            "frames_per_s": round(args.batch_size * args.frames / statistics.median(times[variant]), 1),
            "step_peak_gib": round(max(peaks[variant]) / 2**30, 3),
            "peak_kind": "cuda max_memory_allocated above start"
            if device.type == "cuda"
            else "VmHWM above VmRSS at start",
        }
        records.append(record)
        print(json.dumps(record), flush=True)
    ratio = {
        "measure": "ratio",
        "features_over_pixels_time": round(
            statistics.median(times["features"]) / statistics.median(times["pixels"]), 4
        ),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
    }
    records.append(ratio)
    print(json.dumps(ratio), flush=True)
    output = args.output or RESULTS / f"features_step_{device.type}.jsonl"
    with output.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return records


if __name__ == "__main__":
    main()
