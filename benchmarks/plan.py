"""The activation estimate of ``scl-slt plan`` against measured peaks, per stage and knob setting.

    python -m benchmarks.plan                  # CPU, reduced shapes (results/plan_cpu.json)
    python -m benchmarks.plan --device cuda    # a GPU (results/plan_cuda.json)

What is compared, for each case, stage (reference, scl, translate) and setting (plain fp32, the
backbone in checkpointed chunks, mBART gradient checkpointing, bf16 autocast, all of them):

* **estimate**: ``trainers.application.memory_estimate.estimate_step_memory`` on a meta-device model,
  the number ``scl-slt plan`` prints as *activations* (the peak of the tensor storages one training
  step creates, followed through torch's dispatcher on meta tensors: no data, no compute);
* **measured**: the same step (``stage_loss`` on a batch of random frames and token ids, forward
  and backward, autocast through ``torch.autocast``) run for real, on a model with the same config
  and seed whose gradients were allocated by a warm-up step. On the CPU the peak is read from the
  allocator: the running sum of every allocation and free that ``torch.profiler`` records with
  ``profile_memory=True`` (bytes of the CPU allocator, workspaces included). On a GPU it is
  ``torch.cuda.max_memory_allocated`` above the memory allocated before the step. Neither reads the
  dispatcher or the meta device: the measurement is independent of the estimate's method.

On the CPU the estimate emulates CPU autocast's op lists (``autocast_policy="cpu"``), on a GPU the
CUDA lists (what the plan uses for a GPU). The ratio estimate / measured is the check; the bar is
25 % (``tests/test_plan.py`` checks it at tiny shapes).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import RESULTS_DIR, machine_info, start_memory_window, synchronize, window_peak
from modeling_scl_slt import SclSltConfig
from trainers.application.memory_estimate import (
    MemoryKnobs,
    StepShape,
    build_stage_model,
    estimate_step_memory,
    set_knobs,
    stage_loss,
    step_batch,
)
from trainers.application.plan_inputs import quiet_libraries
from trainers.application.recipe_config import LoraSection
from trainers.training.stages import STAGES, get_stage

LABEL_SMOOTHING = 0.2


@dataclass(frozen=True)
class Case:
    """A model and a batch: ``preset`` with ``vocab_size`` tokens (LoRA as in the paper config when
    ``lora``), ``shape`` per step, backbone chunks of ``chunk_size`` frames in the chunked settings."""

    preset: str
    vocab_size: int
    shape: StepShape
    lora: bool = False
    chunk_size: int = 8


CASES = {
    # the demo's model, 128 frames in 16 chunks: the estimate extrapolates from 3 and 6 chunks
    "small": Case("small", 1000, StepShape(4, 32, 64, 24)),
    # the paper's shape at 3 layers (ResNet-18, d_model 1024), with the paper's LoRA
    "gfslt-lora": Case("gfslt", 3000, StepShape(2, 16, 112, 16), lora=True),
    # the paper model (ResNet-18 + mBART-large-50 shape, full vocabulary) with its LoRA, 4 clips of the
    # PHOENIX-2014T median length at 224²: a GPU's case (benchmarks.gpu_check)
    "paper-lora": Case("paper", 250054, StepShape(4, 112, 224, 24), lora=True, chunk_size=32),
    # tests/test_plan.py: seconds
    "tiny-test": Case("small", 100, StepShape(2, 16, 64, 8)),
}


def settings(case: Case) -> dict[str, MemoryKnobs]:
    """The knob settings compared, by name."""
    checkpointing = {
        "backbone_chunk_size": case.chunk_size,
        "gradient_checkpointing": True,
        "freeze_batch_norm": True,
    }
    return {
        "plain": MemoryKnobs(),
        "backbone chunks + gradient checkpointing": MemoryKnobs(**checkpointing),
        "bf16 autocast": MemoryKnobs(autocast="bf16"),
        "all knobs": MemoryKnobs(**checkpointing, autocast="bf16"),
    }


def chosen_settings(case: Case, names: str | None) -> list[str]:
    """The setting names of ``--settings`` (comma-separated), or all of them."""
    available = list(settings(case))
    if names is None:
        return available
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; choose from {available}")
    return chosen


def case_config(case: Case) -> SclSltConfig:
    vocab = case.vocab_size
    with quiet_libraries():
        return SclSltConfig.from_preset(
            case.preset, text_config={"vocab_size": vocab, "decoder_start_token_id": vocab - 1}
        )


def case_model(case: Case, stage: str, device: str) -> torch.nn.Module:
    """The stage's model on ``device`` (weights seeded: the same model for every setting)."""
    torch.manual_seed(0)
    with quiet_libraries():
        return build_stage_model(case_config(case), get_stage(stage), LoraSection(enabled=case.lora), device)


def estimate(case: Case, stage: str, knobs: MemoryKnobs, policy: str) -> int:
    """The plan's activation estimate of one step (bytes)."""
    model = set_knobs(case_model(case, stage, "meta"), knobs)
    with quiet_libraries():
        memory = estimate_step_memory(
            model, get_stage(stage), case.shape, knobs.autocast_dtype, policy, LABEL_SMOOTHING
        )
    return memory.activations


def real_step(model: torch.nn.Module, case: Case, stage: str, knobs: MemoryKnobs, device: str) -> None:
    """One training step on real tensors (the batch made inside it, as in the estimate)."""
    autocast = torch.autocast(device, dtype=knobs.autocast_dtype) if knobs.autocast else None
    batch = step_batch(case.shape, case.vocab_size, device)
    loss = stage_loss(model, batch, get_stage(stage), LABEL_SMOOTHING, autocast)
    del batch
    loss.backward()


def measure(model: torch.nn.Module, case: Case, stage: str, knobs: MemoryKnobs, device: str) -> int:
    """Measured activation peak of one step (bytes) above the weights and allocated gradients."""
    set_knobs(model, knobs)
    with quiet_libraries():
        real_step(model, case, stage, knobs, device)  # allocates the gradients
    for parameter in model.parameters():
        if parameter.grad is not None:
            parameter.grad.zero_()
    with quiet_libraries():
        if device == "cpu":
            return profiled_peak(lambda: real_step(model, case, stage, knobs, device))
        cuda = torch.device(device)
        synchronize(cuda)
        start = start_memory_window(cuda)
        real_step(model, case, stage, knobs, device)
        synchronize(cuda)
        return window_peak(cuda) - start


def profiled_peak(step: Any) -> int:
    """The peak of the CPU allocator's bytes during ``step()`` above its start, from the profiler's
    allocation and free events in the order they happened."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step()
    events = [event for event in profiler.profiler.kineto_results.events() if event.name() == "[memory]"]
    events.sort(key=lambda event: event.start_ns())  # stable: simultaneous events keep their order
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def compare(case_name: str, stage: str, setting: str, device: str = "cpu") -> dict[str, Any]:
    """One record: estimate, measurement and their ratio."""
    case = CASES[case_name]
    knobs = settings(case)[setting]
    started = time.perf_counter()
    estimated = estimate(case, stage, knobs, "cpu" if device == "cpu" else "cuda")
    estimate_s = time.perf_counter() - started
    started = time.perf_counter()
    measured = measure(case_model(case, stage, device), case, stage, knobs, device)
    return {
        "case": case_name,
        "stage": stage,
        "setting": setting,
        "estimate_bytes": estimated,
        "measured_bytes": measured,
        "ratio": estimated / measured,
        "estimate_s": round(estimate_s, 2),
        "measure_s": round(time.perf_counter() - started, 2),
    }


def markdown(records: list[dict[str, Any]]) -> str:
    """The records as a markdown table (MiB)."""
    lines = [
        "| case | stage | setting | estimate | measured | estimate / measured |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['case']} | {r['stage']} | {r['setting']} | {r['estimate_bytes'] / 2**20:.1f} MiB | "
            f"{r['measured_bytes'] / 2**20:.1f} MiB | {r['ratio']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--cases", default="small,gfslt-lora", help="comma-separated names of CASES")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--settings", default=None, help="comma-separated setting names (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--output", type=Path, help="default: results/plan_<device>.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    records = []
    for case_name in args.cases.split(","):
        for stage in args.stages.split(","):
            for setting in chosen_settings(CASES[case_name], args.settings):
                record = compare(case_name, stage, setting, args.device)
                records.append(record)
                print(json.dumps(record), flush=True)
    output = args.output or RESULTS_DIR / f"plan_{args.device}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine_info(torch.device(args.device)),
        "threads": args.threads,
        "cases": {name: asdict(CASES[name]) for name in args.cases.split(",")},
        "records": records,
    }
    output.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(markdown(records))
    return records


if __name__ == "__main__":
    main()
