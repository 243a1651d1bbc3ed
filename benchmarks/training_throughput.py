"""Training throughput of stage ``scl``: frames/s and samples/s of one optimiser step.

One command (CPU default, or a GPU with bf16 autocast):

    python -m benchmarks.training_throughput
    python -m benchmarks.training_throughput --device cuda --bf16

What one step is: the real training code path, ``SclSltTrainer.training_step`` with
``SclSltTrainingArguments(stage="scl")`` — ``compute_loss`` (selective contrastive loss through the
text branch + translation cross-entropy, normalised by the batch's label-token count as the
training loop passes it), backward through the accelerator, then what the Trainer's loop does
after it: gradient clipping (``max_grad_norm`` 1.0), the Trainer's AdamW step, ``zero_grad``. The
model and optimiser go through ``accelerator.prepare`` as in ``Trainer.train`` (that is where
``--bf16`` autocast is applied). Random frames, random 24-token targets, all distinct (no false
negatives); clips of ``--frames`` (112, the PHOENIX-2014T median) frames.

Models (``--models``): ``small`` and ``paper`` of :mod:`benchmarks.workloads`.

Measured per model: parameters (base / total after LoRA / trainable), and for each batch size of
the sweep the median (and minimum) step time over ``--repeats`` steps after one warm-up step (the
paper model on a CPU: one warm-up step before its first batch size only), frames/s, samples/s and
peak memory. In the same run, at batch size 2, a batch whose frame counts are
[112, 40] against one of [112, 112], alternating step by step: the ResNet runs on real frames
only, so the ratio of step times should approach (112 + 40) / (112 + 112) = 0.68 where the CNN
dominates the step.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` since a reset before each measurement;
on the CPU the ``ru_maxrss`` of the process so far. Each model runs in a fresh subprocess, and
batch sizes are swept in increasing order, so the CPU figure is the peak up to and including that
batch size (model, optimiser state and imports included).

``--memory-knobs`` measures something else, side by side (variants alternating): the video encoder's
forward + backward, and its forward under ``no_grad``, on one batch of clips [``--frames``,
``--short-frames``] at ``--knob-image-size`` (ResNet-18 backbone, the tiny preset's text side,
frozen BatchNorm) for the ``SclSltConfig`` memory knobs: one backbone call (the default), chunks of
``--knob-chunk-size`` frames, chunks with checkpointing, and out-of-place ReLUs. Per variant: step
time, the peak memory above the memory in use at the start of the call (CPU: ``VmHWM`` reset through
``/proc/self/clear_refs`` minus ``VmRSS``, after ``malloc_trim``; GPU: ``max_memory_allocated``) and the
activations autograd keeps for backward (saved-tensor hooks, parameters excluded). Records go to
``results/memory_knobs_<device>.jsonl``.

Every measurement is printed as one JSON object and appended to
``benchmarks/results/training_throughput_<device>.jsonl`` together with machine information
(platform, CPU model, torch version, threads, load average at the time of the measurement).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import (
    emit,
    load_average,
    machine_info,
    parse_int_list,
    peak_memory,
    reset_peak_memory,
    run_module,
    start_memory_window,
    synchronize,
    time_interleaved,
    window_peak,
)
from benchmarks.workloads import (
    MODEL_SPECS,
    build_trainer,
    build_training_model,
    make_batch,
    model_benchmark_parser,
    output_path,
    parse_model_benchmark_args,
)
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from modeling_scl_slt.configuration_scl_slt import RESNET18

# Batch sizes swept by default: (model, device type) → sizes. Paper on a CPU: a 112-frame
# 224² clip through ResNet-18 is ~200 GFLOPs forward, ~3× that with backward.
DEFAULT_BATCH_SIZES: dict[tuple[str, str], list[int]] = {
    ("small", "cpu"): [1, 2, 4, 8, 16],
    ("small", "cuda"): [1, 2, 4, 8, 16, 32],
    ("paper", "cpu"): [1, 2],
    ("paper", "cuda"): [1, 2, 4, 8, 16],
}
DEFAULT_REPEATS: dict[tuple[str, str], int] = {
    ("small", "cpu"): 5,
    ("small", "cuda"): 10,
    ("paper", "cpu"): 2,
    ("paper", "cuda"): 10,
}


# --- the training step ------------------------------------------------------------------------
def training_step(trainer: Any, batch: dict[str, torch.Tensor]) -> None:
    """One optimiser step exactly as ``Trainer.train`` runs it (no accumulation, no scheduler)."""
    model = trainer.model_wrapped
    num_items = (batch["labels"] != -100).sum()
    trainer.training_step(model, batch, num_items)
    trainer.accelerator.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
    trainer.optimizer.step()
    model.zero_grad()


def step_record(
    name: str, frame_counts: Sequence[int], seconds: list[float], device: torch.device
) -> dict[str, Any]:
    """The measurement record of one batch shape."""
    median = statistics.median(seconds)
    return {
        "benchmark": "training_throughput",
        "measure": "train_step",
        "model": name,
        "batch_size": len(frame_counts),
        "frame_counts": list(frame_counts),
        "step_s_median": round(median, 4),
        "step_s_min": round(min(seconds), 4),
        "step_s_all": [round(value, 4) for value in seconds],
        "frames_per_s": round(sum(frame_counts) / median, 1),
        "samples_per_s": round(len(frame_counts) / median, 3),
        **peak_memory(device),
    }


def measure_batch_size(
    trainer: Any,
    config: SclSltConfig,
    batch_size: int,
    args: argparse.Namespace,
    device: torch.device,
    warmup: int,
) -> dict[str, list[float]]:
    """Step times of full clips at ``batch_size``; at batch size 2 also of [frames, short] (interleaved).

    ``warmup`` untimed rounds of every shape come first.
    """
    spec = MODEL_SPECS[args.worker]
    shapes = {"full": [args.frames] * batch_size}
    if batch_size == 2:
        shapes["padded"] = [args.frames, args.short_frames]
    batches = {
        key: make_batch(counts, spec.image_size, args.target_length, config, device)
        for key, counts in shapes.items()
    }
    calls = {key: (lambda batch=batch: training_step(trainer, batch)) for key, batch in batches.items()}
    reset_peak_memory(device)
    return time_interleaved(calls, device, repeats_for(args), warmup)


def padding_record(name: str, args: argparse.Namespace, times: dict[str, list[float]]) -> dict[str, Any]:
    """Measured vs expected step-time ratio of [frames, short] against [frames, frames]."""
    padded, full = statistics.median(times["padded"]), statistics.median(times["full"])
    expected = (args.frames + args.short_frames) / (2 * args.frames)
    ratio_of_minima = min(times["padded"]) / min(times["full"])
    return {
        "benchmark": "training_throughput",
        "measure": "padding_cost",
        "model": name,
        "frame_counts": [[args.frames, args.frames], [args.frames, args.short_frames]],
        "step_s_median": [round(full, 4), round(padded, 4)],
        "ratio_measured": round(padded / full, 3),
        "ratio_of_minima": round(ratio_of_minima, 3),
        "ratio_expected_if_free": round(expected, 3),
        "ratio_per_repeat": [round(p / f, 3) for p, f in zip(times["padded"], times["full"], strict=True)],
    }


def warmup_for(args: argparse.Namespace, sweep_index: int) -> int:
    """Untimed steps before a batch size: 1, except the paper model on a CPU after its first size.

    A paper step on a CPU takes tens of seconds; the one-off costs (optimiser state, allocator,
    kernel selection) are paid by the first batch size's warm-up.
    """
    if args.warmup is not None:
        return args.warmup
    slow = args.worker == "paper" and args.device == "cpu"
    return 0 if slow and sweep_index > 0 else 1


def repeats_for(args: argparse.Namespace) -> int:
    """``--repeats`` or the default for this model and device."""
    return args.repeats or DEFAULT_REPEATS[(args.worker, torch.device(args.device).type)]


def batch_sizes_for(args: argparse.Namespace) -> list[int]:
    """The sweep (increasing), always including 2 for the padding comparison."""
    given = args.small_batch_sizes if args.worker == "small" else args.paper_batch_sizes
    default = DEFAULT_BATCH_SIZES[(args.worker, torch.device(args.device).type)]
    sizes = parse_int_list(given) if given else default
    return sorted({*sizes, 2})


def run_worker(args: argparse.Namespace, output: Path | None) -> None:
    """Build one model and measure its training steps over the batch-size sweep."""
    name, device = args.worker, torch.device(args.device)
    machine = machine_info(device)
    model, config, params = build_training_model(name)
    spec = MODEL_SPECS[name]
    context = {
        "model": name,
        "description": spec.description,
        "image_size": spec.image_size,
        "lora": spec.lora,
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "target_length": args.target_length,
        "repeats": repeats_for(args),
        **params,
    }
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_trainer(model, args, output_dir)
        model_record = {"benchmark": "training_throughput", "measure": "model", **context}
        emit({**model_record, **peak_memory(device)}, output, machine)
        for index, batch_size in enumerate(batch_sizes_for(args)):
            warmup = warmup_for(args, index)
            times = measure_batch_size(trainer, config, batch_size, args, device, warmup)
            record = step_record(name, [args.frames] * batch_size, times["full"], device)
            emit({**record, **context, "warmup": warmup}, output, machine)
            if "padded" in times:
                emit({**padding_record(name, args, times), **context, "warmup": warmup}, output, machine)
            gc.collect()


# --- memory knobs (--memory-knobs): backbone chunks, checkpointing, in-place ReLUs ---------------
# Variant → SclSltConfig fields, and "gradient_checkpointing" for transformers' switch. Every variant
# freezes BatchNorm (chunks and checkpointing need it in training), so all compute the same numbers.
KNOB_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},  # one backbone call, in-place ReLUs (the default)
    "chunked": {"backbone_chunk_size": "CHUNK"},
    "chunked+checkpointing": {"backbone_chunk_size": "CHUNK", "gradient_checkpointing": True},
    "out-of-place ReLU": {"backbone_inplace_relu": False},
}


def resolved_knobs(name: str, chunk_size: int) -> dict[str, Any]:
    """The settings of variant ``name``."""
    return {key: chunk_size if value == "CHUNK" else value for key, value in KNOB_VARIANTS[name].items()}


def knob_model(knobs: dict[str, Any], device: torch.device) -> SclSltForSignTranslation:
    """ResNet-18 frame backbone with the tiny preset's text side (the backbone dominates the step)."""
    torch.manual_seed(0)
    fields = {key: value for key, value in knobs.items() if key != "gradient_checkpointing"}
    config = SclSltConfig.from_preset("tiny", backbone_config=RESNET18, freeze_batch_norm=True, **fields)
    model = SclSltForSignTranslation(config).to(device)
    if knobs.get("gradient_checkpointing"):
        # What the Trainer's gradient_checkpointing calls (activation_checkpointing_enable from 5.24 on).
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    return model


def knob_call(model: SclSltForSignTranslation, batch: dict[str, torch.Tensor], train: bool) -> None:
    """Video encoder forward (+ backward of a scalar of its output when ``train``)."""
    model.train(train)
    if not train:
        with torch.no_grad():
            model.video_encoder(batch["pixel_values"], batch["attention_mask"])
        return
    model.zero_grad(set_to_none=True)
    out = model.video_encoder(batch["pixel_values"], batch["attention_mask"])
    out.last_hidden_state.float().square().mean().backward()


def kept_for_backward_mib(model: SclSltForSignTranslation, batch: dict[str, torch.Tensor]) -> float:
    """MiB of tensors (parameters excluded) that autograd keeps from forward for backward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model.video_encoder(batch["pixel_values"], batch["attention_mask"])
    del out
    return sum(kept.values()) / 2**20


def time_knob_variants(
    models: dict[str, SclSltForSignTranslation],
    batch: dict[str, torch.Tensor],
    train: bool,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> dict[str, tuple[list[float], list[int]]]:
    """Seconds and peak bytes (above the start) of each variant's call, the variants alternating."""
    measured: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in models}
    for round_index in range(warmup + repeats):
        for name, model in models.items():
            start = start_memory_window(device)
            began = time.perf_counter()
            knob_call(model, batch, train)
            synchronize(device)
            elapsed = time.perf_counter() - began
            if round_index >= warmup:
                measured[name][0].append(elapsed)
                measured[name][1].append(window_peak(device) - start)
    return measured


def run_memory_knobs(args: argparse.Namespace, output: Path | None) -> None:
    """Step time and peak memory of each knob variant, training and inference, on [frames, short]."""
    device = torch.device(args.device)
    machine = machine_info(device)
    frame_counts = [args.frames, args.short_frames]
    knobs = {name: resolved_knobs(name, args.knob_chunk_size) for name in KNOB_VARIANTS}
    models = {name: knob_model(fields, device) for name, fields in knobs.items()}
    batch = make_batch(frame_counts, args.knob_image_size, 8, models["plain"].config, device)
    warmup = 1 if args.warmup is None else args.warmup
    for train in (True, False):
        measured = time_knob_variants(models, batch, train, device, warmup, args.repeats or 3)
        for name, (seconds, peaks) in measured.items():
            kept = kept_for_backward_mib(models[name], batch) if train else None
            record = {
                "benchmark": "training_throughput",
                "measure": "memory_knobs",
                "mode": "forward+backward" if train else "forward (no_grad)",
                "variant": name,
                "knobs": knobs[name],
                "frame_counts": frame_counts,
                "image_size": args.knob_image_size,
                "step_s_median": round(statistics.median(seconds), 4),
                "step_s_all": [round(value, 4) for value in seconds],
                "peak_mib_above_start_max": round(max(peaks) / 2**20, 1),
                "peak_kind": "cuda max_memory_allocated" if device.type == "cuda" else "VmHWM - VmRSS",
                "kept_for_backward_mib": None if kept is None else round(kept, 1),
                "threads": torch.get_num_threads(),
            }
            emit(record, output, machine)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = model_benchmark_parser("training_throughput", __doc__, "steps", ("1,2,4,8,16", "1,2"))
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per batch size (default 1)")
    parser.add_argument("--short-frames", type=int, default=40, help="second clip of the padding check")
    parser.add_argument("--target-length", type=int, default=24, help="target tokens per sample")
    parser.add_argument(
        "--memory-knobs",
        action="store_true",
        help="instead: backbone chunks, checkpointing, in-place ReLUs side by side on [frames, short-frames]",
    )
    parser.add_argument("--knob-image-size", type=int, default=112, help="frame side of --memory-knobs")
    parser.add_argument("--knob-chunk-size", type=int, default=16, help="frames per chunk of --memory-knobs")
    return parse_model_benchmark_args(parser, argv, MODEL_SPECS)


def main(argv: Sequence[str] | None = None) -> None:
    """Run every model in its own subprocess (or in this process with ``--in-process``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.memory_knobs:
        run_memory_knobs(args, output_path(args, "memory_knobs"))
        return
    output = output_path(args, "training_throughput")
    if args.worker:
        run_worker(args, output)
    elif args.in_process:
        for model in args.models.split(","):
            run_worker(parse_args([*argv, "--worker", model]), output)
    else:
        print(f"# load average before: {load_average()}", file=sys.stderr)
        for model in args.models.split(","):  # a fresh process per model: its own peak memory
            run_module(__spec__.name, [*argv, "--worker", model])
        print(f"# load average after: {load_average()}; results appended to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
