"""Speed switches side by side: the training step of stage ``scl`` as the baseline runs it, ours, and
ours with each switch flipped.

    python -m benchmarks.speed_switches --threads 1 --switch-model resnet18 --switch-image-size 112 \
        --switch-frame-counts 48,16 --large-batch-model paper --large-batch-size 16 \
        --large-batch-frame-counts 8,4 --repeats 4 --large-batch-repeats 2     # as on the CPU box
    python -m benchmarks.speed_switches --device cuda --switch-model paper --switch-batch-size 8 \
        --large-batch-size 16 --repeats 10                                     # full shapes on a GPU

One step is the step of :mod:`benchmarks.training_throughput` (``SclSltTrainer.training_step``,
clipping, the AdamW step) on a batch of :mod:`benchmarks.workloads`. One run compares, step by step
in turn, on one batch of clips of different lengths:

* **plain**: the step as the GFSLT-VLP baseline's code runs it: every frame of the padded batch
  through the CNN (padding included), NCHW, transformers' out-of-place ReLUs, no chunking, torch's
  plain AdamW (``adamw_torch``: a loop over the parameters on a CPU, foreach kernels on CUDA), fp32;
* **ours**: the defaults of this project on the device: real frames only, in-place ReLUs, fused AdamW
  (``optimizer: auto``), fp32 on a CPU; on CUDA what the recipe's ``auto`` gives there (bf16 autocast,
  channels_last, cudnn.benchmark);
* one variant per switch, **ours with that one switch flipped**, so that each row reads as the switch
  on against off (``ours``).

The model is one shared instance: a variant sets its switches before its step (the memory format of
the backbone, the ReLUs' ``inplace``, the padded-frame path, the chunk size, BatchNorm freezing,
cuDNN's flag, the compiled backbone, autocast) and steps its own AdamW, created while its switches
were on. Every variant's step updates the same weights: the timings compare, the values drift.

Each part runs in a fresh subprocess (its own peak memory): ``switches`` (every variant at the
``--switch-frame-counts`` batch) and ``large batch`` (plain and ours at ``--large-batch-size``
clips). Odd rounds run the variants in reverse order. Per variant: the median and minimum step time,
real frames per second, the speed-up over plain and the time relative to ours (each the median over
rounds of the ratio within one round), the same for the process's CPU time (on a shared CPU box the
steadier measure: it counts only while the process runs), and the peak memory of one step above the
memory in use at its start (CPU: the peak RSS, ``VmHWM`` reset through ``/proc/self/clear_refs``,
minus the RSS at the start, after ``malloc_trim``; CUDA: ``max_memory_allocated`` minus
``memory_allocated``), with the process's ``ru_maxrss`` at the end. The records are written as one
JSON document (default ``results/training_throughput_switches_<device>.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.harness import (
    RESULTS_DIR,
    emit,
    load_average,
    machine_info,
    peak_memory,
    run_module,
    start_memory_window,
    synchronize,
    window_peak,
)
from benchmarks.workloads import (
    MODEL_SPECS,
    build_trainer,
    build_training_model,
    count_parameters,
    make_batch,
)
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from modeling_scl_slt.configuration_scl_slt import RESNET18
from trainers.training.speed_switches import compile_backbones

# The models of --switch-model: the sweep's two, and one whose step is almost all CNN.
SWITCH_MODELS: dict[str, str] = {
    **{name: spec.description for name, spec in MODEL_SPECS.items()},
    "resnet18": "ResNet-18 backbone with the tiny preset's text side (as --memory-knobs): the CNN "
    "dominates the step",
}


def build_switch_model(name: str) -> tuple[nn.Module, SclSltConfig, dict[str, Any]]:
    """The model of ``--switch-model`` (random weights), its config and its parameter counts."""
    if name != "resnet18":
        return build_training_model(name)
    torch.manual_seed(0)
    config = SclSltConfig.from_preset("tiny", backbone_config=RESNET18)
    model = SclSltForSignTranslation(config)
    total, trainable = count_parameters(model)
    params = {"params_total_m": round(total / 1e6, 2), "params_trainable_m": round(trainable / 1e6, 2)}
    return model, config, params


@dataclass(frozen=True)
class Variant:
    """The switches of one step. The defaults are ``ours`` on a CPU."""

    padded_cnn: bool = False  # every frame of the padded batch through the CNN (the baseline's way)
    inplace_relu: bool = True
    channels_last: bool = False
    optimizer: str = "adamw_torch_fused"  # or adamw_torch, or foreach (torch AdamW with foreach=True)
    chunk_size: int | None = None
    freeze_batch_norm: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    bf16: bool = False


PLAIN = Variant(padded_cnn=True, inplace_relu=False, optimizer="adamw_torch")


def ours(device_type: str) -> Variant:
    """The project's defaults on ``device_type`` (the recipe's ``auto`` values)."""
    if device_type == "cuda":
        return Variant(channels_last=True, cudnn_benchmark=True, bf16=True)
    return Variant()


def variants_for(device_type: str, chunk_size: int) -> dict[str, Variant]:
    """plain, ours, and ours with each switch flipped (``on``/``off`` relative to ours)."""
    base = ours(device_type)
    flips: dict[str, Variant] = {
        "channels_last " + ("off" if base.channels_last else "on"): replace(
            base, channels_last=not base.channels_last
        ),
        "AdamW adamw_torch (not fused)": replace(base, optimizer="adamw_torch"),
        "AdamW foreach (not fused)": replace(base, optimizer="foreach"),
        "out-of-place ReLU": replace(base, inplace_relu=False),
        "padded frames through the CNN": replace(base, padded_cnn=True),
        "frozen BatchNorm": replace(base, freeze_batch_norm=True),
        f"frozen BatchNorm + chunks of {chunk_size}": replace(
            base, freeze_batch_norm=True, chunk_size=chunk_size
        ),
    }
    if device_type == "cuda":
        flips["bf16 off (fp32)"] = replace(base, bf16=False)
        flips["cudnn.benchmark off"] = replace(base, cudnn_benchmark=False)
        flips["backbone compiled"] = replace(base, compile=True)
    return {"plain": PLAIN, "ours": base, **flips}


# Variants that a CPU run leaves out unless asked for by name (--switch-variants).
CPU_OPTIONAL: dict[str, Callable[[Variant], Variant]] = {
    "backbone compiled": lambda base: replace(base, compile=True),  # minutes of compiling on a CPU
    "bf16 on": lambda base: replace(base, bf16=True),  # ~14x slower on a CPU (RESULTS §1)
}


def selected_variants(
    device_type: str, chunk_size: int, names: str | None, skipped: str | None = None
) -> dict[str, Variant]:
    """The variants of ``--switch-variants`` (comma-separated names), or all of the device's, less
    those of ``--skip-variants``."""
    available = variants_for(device_type, chunk_size)
    if device_type != "cuda":
        available.update({name: make(ours(device_type)) for name, make in CPU_OPTIONAL.items()})
    chosen = (
        [name for name in available if name not in CPU_OPTIONAL]
        if names is None
        else [name.strip() for name in names.split(",") if name.strip()]
    )
    left_out = [name.strip() for name in (skipped or "").split(",") if name.strip()]
    for option, given in (("--switch-variants", chosen), ("--skip-variants", left_out)):
        unknown = [name for name in given if name not in available]
        if unknown:
            raise SystemExit(f"{option}: unknown {unknown}; choose from {sorted(available)}")
    return {name: available[name] for name in chosen if name not in left_out}


# --- applying a variant to the shared model ---------------------------------------------------
def base_model(model: nn.Module) -> Any:
    """The SclSltForSignTranslation inside a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def padded_frame_features(self: Any, pixel_values: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """The baseline's way: every frame of the padded batch through the CNN, then padding zeroed.

    ``pixel_values`` (B, T, 3, H, W), ``frame_mask`` (B, T) → (B, T, C).
    """
    batch, frames = frame_mask.shape
    pooled = self.backbone_features(pixel_values.flatten(0, 1))  # (B * T, C): padding too
    return pooled.view(batch, frames, -1) * frame_mask.unsqueeze(-1).to(pooled.dtype)


class SwitchBoard:
    """Sets a :class:`Variant`'s switches on the shared model before its step."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.scl = base_model(model)
        self.encoder = self.scl.video_encoder
        self.backbones = [m for m in model.modules() if type(m).__name__ == "ResNetModel"]
        self.compiled: dict[int, Any] = {}  # id(backbone) → its compiled call, once compiled

    def apply(self, variant: Variant) -> None:
        config = self.scl.config
        if config.backbone_channels_last != variant.channels_last:
            config.backbone_channels_last = variant.channels_last
            self.encoder.apply_backbone_memory_format()
        for backbone in self.backbones:
            for module in backbone.modules():
                if isinstance(module, nn.ReLU):
                    module.inplace = variant.inplace_relu
        if variant.padded_cnn:
            self.encoder.frame_features = types.MethodType(padded_frame_features, self.encoder)
        else:
            self.encoder.__dict__.pop("frame_features", None)
        config.backbone_chunk_size = variant.chunk_size
        config.freeze_batch_norm = variant.freeze_batch_norm  # read by model.train() in each step
        if torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = variant.cudnn_benchmark
        self._set_compiled(variant.compile)

    def _set_compiled(self, compiled: bool) -> None:
        # nn.Module.compile() stores the compiled call in _compiled_call_impl; the plain variants
        # clear it (and get it back) so that one model serves both.
        if compiled and not self.compiled:
            compile_backbones(self.model)
            self.compiled = {id(b): b._compiled_call_impl for b in self.backbones}
        for backbone in self.backbones:
            backbone._compiled_call_impl = self.compiled.get(id(backbone)) if compiled else None


def make_optimizer(trainer: Any, name: str) -> torch.optim.Optimizer:
    """The Trainer's AdamW (``optim`` = ``name``), or torch's foreach AdamW on the same groups."""
    trainer.optimizer = None
    trainer.args.optim = "adamw_torch" if name == "foreach" else name
    optimizer = trainer.create_optimizer()
    if name == "foreach":
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in optimizer.param_groups]
        defaults = {key: optimizer.defaults[key] for key in ("lr", "betas", "eps")}
        optimizer = torch.optim.AdamW(groups, **defaults, foreach=True)
    trainer.optimizer = None
    return trainer.accelerator.prepare_optimizer(optimizer)


def variant_step(
    trainer: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], variant: Variant
) -> None:
    """One optimiser step as ``Trainer.train`` runs it, with the variant's autocast."""
    model = trainer.model_wrapped
    device_type = batch["pixel_values"].device.type
    autocast = (
        (lambda *args, **kwargs: torch.autocast(device_type, dtype=torch.bfloat16))
        if variant.bf16
        else (lambda *args, **kwargs: contextlib.nullcontext())
    )
    # What accelerate's bf16 does around forward; the Trainer enters it around compute_loss.
    trainer.autocast_smart_context_manager = autocast
    trainer.training_step(model, batch, (batch["labels"] != -100).sum())
    trainer.accelerator.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
    optimizer.step()
    model.zero_grad(set_to_none=True)


# --- one part: every variant, interleaved -----------------------------------------------------
@dataclass
class Measured:
    """One variant's steps after the warm-up; entry ``r`` of each list is round ``r``."""

    seconds: list[float]  # wall clock
    cpu_seconds: list[float]  # this process's CPU time (user + system, all its threads)
    peak_bytes: list[int]  # peak memory above the memory in use at the step's start
    error: str | None = None  # why the variant stopped (out of GPU memory); its lists stay partial


def time_variants(
    board: SwitchBoard,
    trainer: Any,
    optimizers: dict[str, torch.optim.Optimizer],
    variants: dict[str, Variant],
    batch: dict[str, torch.Tensor],
    warmup: int,
    repeats: int,
) -> dict[str, Measured]:
    """Wall and CPU seconds and peak bytes of each variant's step, the variants alternating.

    Odd rounds run the variants in reverse order: a load that drifts during the run then weighs on
    every variant alike over each pair of rounds (a fixed order favours the variants that run last
    while the load falls). CPU time counts only while this process runs, so other jobs on a shared
    box change it far less than the wall clock (with one intra-op thread it is the compute time).
    A variant that runs out of GPU memory is recorded with the error and left out of later rounds.
    """
    device = batch["pixel_values"].device
    measured = {name: Measured([], [], []) for name in variants}
    for round_index in range(warmup + repeats):
        order = list(variants.items()) if round_index % 2 == 0 else list(reversed(variants.items()))
        for name, variant in order:
            if measured[name].error is not None:
                continue
            board.apply(variant)
            start = start_memory_window(device)
            began, cpu_began = time.perf_counter(), time.process_time()
            try:
                variant_step(trainer, optimizers[name], batch, variant)
            except torch.OutOfMemoryError as error:
                measured[name].error = f"out of memory in round {round_index}: {str(error).splitlines()[0]}"
                trainer.model_wrapped.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
                print(f"# round {round_index} {name}: {measured[name].error}", file=sys.stderr, flush=True)
                continue
            synchronize(device)
            elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
            if round_index >= warmup:
                measured[name].seconds.append(elapsed)
                measured[name].cpu_seconds.append(cpu)
                measured[name].peak_bytes.append(window_peak(device) - start)
            print(
                f"# round {round_index} {name}: {elapsed:.3f} s (cpu {cpu:.3f} s)",
                file=sys.stderr,
                flush=True,
            )
    return measured


@dataclass(frozen=True)
class PartSettings:
    """What one part measures: a model, a frame side, one batch's frame counts and the variants."""

    model: str
    image_size: int
    frame_counts: list[int]
    variant_names: str | None  # None: every variant of the device
    repeats: int
    skipped_names: str | None = None  # variants left out


def paired_median(measured: dict[str, Measured], numerator: str, denominator: str, kind: str) -> float | None:
    """Median over rounds of ``numerator``'s time over ``denominator``'s in the same round.

    ``kind`` is ``"seconds"`` (wall) or ``"cpu_seconds"``; None when a variant is absent or failed.
    """
    if numerator not in measured or denominator not in measured:
        return None
    if measured[numerator].error is not None or measured[denominator].error is not None:
        return None
    pairs = zip(getattr(measured[numerator], kind), getattr(measured[denominator], kind), strict=True)
    return round(statistics.median(top / bottom for top, bottom in pairs), 3)


def part_settings(args: argparse.Namespace, part: str) -> PartSettings:
    """The settings of ``part`` from the options; a pattern of frame counts repeats to the batch size."""
    if part == "large batch":
        pattern = parse_counts(args.large_batch_frame_counts)
        counts = [pattern[index % len(pattern)] for index in range(args.large_batch_size)]
        image_size = args.large_batch_image_size or args.switch_image_size
        repeats = args.large_batch_repeats or args.repeats or 3
        return PartSettings(args.large_batch_model, image_size, counts, "plain,ours", repeats)
    pattern = parse_counts(args.switch_frame_counts)
    size = args.switch_batch_size or len(pattern)
    counts = [pattern[index % len(pattern)] for index in range(size)]
    repeats = args.repeats or 3
    return PartSettings(
        args.switch_model, args.switch_image_size, counts, args.switch_variants, repeats, args.skip_variants
    )


def parse_counts(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value.strip()]


def run_part(args: argparse.Namespace, part: str, output: Path) -> None:
    """Build the part's model once and time its variants on its batch; records go to ``output``."""
    device = torch.device(args.device)
    machine = machine_info(device)
    settings = part_settings(args, part)
    counts = settings.frame_counts
    variants = selected_variants(device.type, args.chunk_size, settings.variant_names, settings.skipped_names)
    model, config, params = build_switch_model(settings.model)
    model.to(device)
    board = SwitchBoard(model)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_trainer(model, argparse.Namespace(device=args.device, bf16=False), output_dir)
        optimizers = {}
        for name, variant in variants.items():
            board.apply(variant)  # the optimiser's state takes the parameters' memory format
            optimizers[name] = make_optimizer(trainer, variant.optimizer)
        batch = make_batch(counts, settings.image_size, args.target_length, config, device)
        warmup = 1 if args.warmup is None else args.warmup
        measured = time_variants(board, trainer, optimizers, variants, batch, warmup, settings.repeats)
    context = {
        "benchmark": "training_throughput",
        "measure": "switches",
        "part": part,
        "model": settings.model,
        "description": SWITCH_MODELS[settings.model],
        "image_size": settings.image_size,
        "frame_counts": counts,
        "real_frames": sum(counts),
        "target_length": args.target_length,
        "warmup": warmup,
        "repeats": settings.repeats,
        "threads": torch.get_num_threads(),
        **params,
    }
    for name, steps in measured.items():
        variant = variants[name]
        if steps.error is not None:
            failed = {**context, "variant": name, "switches": asdict(variant), "error": steps.error}
            emit(failed, output, machine)
            continue
        median = statistics.median(steps.seconds)
        record = {
            **context,
            "variant": name,
            "switches": asdict(variant),
            "cnn_frames": len(counts) * max(counts) if variant.padded_cnn else sum(counts),
            "step_s_median": round(median, 4),
            "step_s_min": round(min(steps.seconds), 4),
            "step_s_all": [round(value, 4) for value in steps.seconds],
            "cpu_s_median": round(statistics.median(steps.cpu_seconds), 4),
            "cpu_s_all": [round(value, 4) for value in steps.cpu_seconds],
            "real_frames_per_s": round(sum(counts) / median, 2),
            # Medians over rounds of the ratio within a round: robust to the load changing between rounds.
            "speedup_vs_plain": paired_median(measured, "plain", name, "seconds"),
            "time_vs_ours": paired_median(measured, name, "ours", "seconds"),
            "cpu_speedup_vs_plain": paired_median(measured, "plain", name, "cpu_seconds"),
            "cpu_time_vs_ours": paired_median(measured, name, "ours", "cpu_seconds"),
            "step_peak_mib_above_start_max": round(max(steps.peak_bytes) / 2**20, 1),
            "step_peak_kind": "cuda max_memory_allocated - memory_allocated"
            if device.type == "cuda"
            else "VmHWM (reset per step) - VmRSS at the step's start",
        }
        emit(record, output, machine)
    emit({**context, "measure": "switches_process_peak", **peak_memory(device)}, output, machine)


# --- the parent: parts in fresh processes, one JSON document ------------------------------------------
PARTS = ("switches", "large batch")


def run_switches(args: argparse.Namespace, argv: Sequence[str], output: Path) -> None:
    """Run each part (``--switch-parts``) in a fresh subprocess, then write every record to ``output``."""
    parts = [part.strip() for part in args.switch_parts.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"--switch-parts: unknown {unknown}; choose from {list(PARTS)}")
    began = time.perf_counter()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        records_file = Path(scratch) / "records.jsonl"
        for part in parts:
            if args.in_process:
                run_part(args, part, records_file)
            else:
                run_module(__spec__.name, [*argv, "--switch-part", part, "--output", str(records_file)])
        records = [json.loads(line) for line in records_file.read_text(encoding="utf-8").splitlines()]
    document = {
        "benchmark": "training_throughput --switches",
        "command": "python -m benchmarks.speed_switches " + " ".join(argv),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "wall_s": round(time.perf_counter() - began, 1),
        "records": records,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"# {len(records)} records written to {output}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds (default 1)")
    parser.add_argument("--target-length", type=int, default=24, help="target tokens per sample")
    parser.add_argument("--chunk-size", type=int, default=16, help="frames per chunk of the chunked variant")
    parser.add_argument(
        "--switch-model", default="paper", choices=sorted(SWITCH_MODELS), help="model of the 'switches' part"
    )
    parser.add_argument(
        "--large-batch-model", default="paper", choices=sorted(SWITCH_MODELS), help="model of 'large batch'"
    )
    parser.add_argument(
        "--large-batch-image-size", type=int, default=None, help="default: --switch-image-size"
    )
    parser.add_argument("--switch-image-size", type=int, default=224, help="frame side")
    parser.add_argument(
        "--switch-frame-counts", default="112,40", help="frames per clip, repeated to --switch-batch-size"
    )
    parser.add_argument("--switch-batch-size", type=int, default=None, help="default: the counts given")
    parser.add_argument(
        "--switch-variants", default=None, help="comma-separated variant names (default: all of the device's)"
    )
    parser.add_argument(
        "--skip-variants", default=None, help="comma-separated variant names the 'switches' part leaves out"
    )
    parser.add_argument(
        "--switch-parts", default=",".join(PARTS), help=f"comma-separated: {', '.join(PARTS)}"
    )
    parser.add_argument("--large-batch-size", type=int, default=16, help="clips of the 'large batch' part")
    parser.add_argument(
        "--large-batch-frame-counts", default="112,40", help="frames per clip of the 'large batch' part"
    )
    parser.add_argument("--large-batch-repeats", type=int, default=None, help="default: --repeats")
    parser.add_argument(
        "--output", default=None, help="JSON document (default results/…switches_<device>.json)"
    )
    parser.add_argument("--in-process", action="store_true", help="no subprocesses (tests)")
    parser.add_argument("--switch-part", default=None, help=argparse.SUPPRESS)  # a subprocess's part
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is available")
    return args


def strip_output(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--output FILE`` / ``--output=FILE`` (a subprocess gets its own)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            kept.append(arg)
    return kept


def main(argv: Sequence[str] | None = None) -> None:
    """Run the parts, each in a fresh process (in this one with ``--in-process``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.switch_part:  # one part, in its own process
        run_part(args, args.switch_part, Path(args.output))
        return
    default = RESULTS_DIR / f"training_throughput_switches_{args.device}.json"
    run_switches(args, strip_output(argv), Path(args.output) if args.output else default)


if __name__ == "__main__":
    main()
