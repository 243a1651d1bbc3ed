"""One training step on stored frame features against one on pixels, side by side, with memory.

    python -m benchmarks.features_step --preset paper --batch-size 1 --frames 116

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
Prints one JSON object per measurement and appends them to ``--output`` (``benchmarks.harness``).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.harness import RESULTS_DIR, emit, machine_info, start_memory_window, time_call, window_peak
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from trainers.training.lora import apply_lora, paper_lora_config


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

    output = args.output or RESULTS_DIR / f"features_step_{device.type}.jsonl"
    machine = machine_info(device)
    setup = {
        "measure": "setup",
        "preset": args.preset,
        "lora": not args.no_lora,
        "batch_size": args.batch_size,
        "frames": args.frames,
        "image_size": args.image_size,
        "target_length": args.target_length,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "trainable": trainable_counts(optimizers),
    }
    records = [setup]
    times: dict[str, list[float]] = {"pixels": [], "features": []}
    peaks: dict[str, list[int]] = {"pixels": [], "features": []}
    for round_index in range(args.repeats + 1):  # round 0 warms up (optimizer state, allocator)
        for variant in ("pixels", "features"):
            start = start_memory_window(device)
            seconds = time_call(lambda variant=variant: step(variant), device)
            peak = window_peak(device) - start
            if round_index:
                times[variant].append(seconds)
                peaks[variant].append(peak)
    for variant in ("pixels", "features"):
        median = statistics.median(times[variant])
        records.append(
            {
                "measure": "train_step",
                "variant": variant,
                "seconds_median": round(median, 4),
                "seconds": [round(t, 4) for t in times[variant]],
                "frames_per_s": round(args.batch_size * args.frames / median, 1),
                "step_peak_gib": round(max(peaks[variant]) / 2**30, 3),
            }
        )
    ratio = statistics.median(times["features"]) / statistics.median(times["pixels"])
    records.append({"measure": "ratio", "features_over_pixels_time": round(ratio, 4)})
    for record in records:
        emit(record, output, machine)
    return records


if __name__ == "__main__":
    main()
