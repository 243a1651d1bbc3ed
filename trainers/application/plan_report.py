"""The text of a training plan (``scl-slt plan``, the start of ``scl-slt train``) and its time estimate.

Times come from frames per second measured on a named device (``benchmarks/RESULTS.md``): without a
measurement for the device, preset, precision and frame size of the run, the plan has no time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..training.progress import format_duration
from .recipe_config import RecipeConfig

if TYPE_CHECKING:
    from .plan import TrainingPlan
    from .plan_inputs import PlanDevice

# (device name, preset, precision, frame side) → training frames per second of one step: both
# losses, full fine-tuning, a batch of 2 clips of 112 frames (benchmarks/RESULTS.md §1, H100 table).
MEASURED_FRAMES_PER_SECOND: dict[tuple[str, str, str, int], float] = {
    ("NVIDIA H100 80GB HBM3", "paper", "bf16", 224): 1243.0,
    ("NVIDIA H100 80GB HBM3", "paper", "fp32", 224): 1472.0,
    ("NVIDIA H100 80GB HBM3", "small", "bf16", 224): 4112.0,
}
# Training videos and their frames, by corpus kind (the official train split; ../shared/data).
TRAINING_CLIPS: dict[str, tuple[int, int]] = {
    "phoenix2014t": (7096, 827_354),  # median 112 frames, longest 475 (23 clips above 300)
}
COLUMNS = ("weights", "gradients", "optimizer", "activations", "peak")
GIB = 2**30


def format_plan(plan: TrainingPlan, compact: bool = False) -> str:
    """The plan as text: notes, one table per stage (``compact``: one table, the configured rows),
    the verdict, the advice and the times."""
    usable = plan.device.usable
    fits_header = [] if usable is None else [f"fits {gib(usable)}"]
    lines = [
        f"plan of {plan.source} for {plan.device.describe()}",
        *(f"  {note}" for note in (plan.shape_note, *plan.notes)),
    ]
    header = ["setting" if not compact else "stage", *COLUMNS, *fits_header]
    rows: list[list[str]] = []
    for stage in plan.stages:
        _, first = stage.rows[0]
        title = (
            f"stage {stage.stage} (batch {stage.batch_size}, {stage.epochs:g} epochs): "
            f"{first.total_parameters / 1e6:,.1f} M parameters, {first.trainable_parameters / 1e6:,.1f} M "
            f"trainable, {first.updated_parameters / 1e6:,.1f} M get gradients in this stage"
        )
        stage_rows = stage.rows[:1] if compact else stage.rows
        if not compact:
            lines += ["", title, *table(header, [row_cells(v.label, m, usable) for v, m in stage_rows])]
        else:
            rows += [row_cells(stage.stage, memory, usable) for _, memory in stage_rows]
    if compact:
        lines += ["", *table(header, rows)]
    lines += ["", f"verdict: {plan.verdict}", *(f"advice: {line}" for line in plan.advice)]
    lines += [f"time: {line}" for line in plan.time]
    return "\n".join(lines)


def row_cells(label: str, memory: object, usable: int | None) -> list[str]:
    """One table row: the label, the five sizes and (with a known memory) whether it fits."""
    cells = [label, *(gib(getattr(memory, column)) for column in COLUMNS)]
    if usable is not None:
        cells.append("yes" if memory.peak <= usable else "no")  # type: ignore[attr-defined]
    return cells


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  "
        + "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in (header, *rows)
    ]


def time_estimate(config: RecipeConfig, device: PlanDevice) -> list[str]:
    """Lines on the training time per epoch and per stage, or one line on why there is none."""
    if config.video.features is not None:
        return [
            "no estimate: frames/s were measured with the backbone running; on frame features it does not"
        ]
    precision = device.autocast or "fp32"
    name = device.name
    key = measured_key(name, config.model.preset, precision, config.video.image_size)
    if device.kind != "gpu" or key is None:
        known = ", ".join(sorted({f"{d} ({p}, {q}, {s}²)" for d, p, q, s in MEASURED_FRAMES_PER_SECOND}))
        where = name or ("an unnamed GPU" if device.kind == "gpu" else "a CPU")
        return [
            f"no estimate: no frames/s measured for {where}, preset {config.model.preset}, {precision} at "
            f"{config.video.image_size}² (measured: {known}; --device-name picks one)"
        ]
    if config.corpus.kind not in TRAINING_CLIPS:
        return [f"no estimate: the clip count and length of a {config.corpus.kind} corpus are not known here"]
    clips, total_frames = TRAINING_CLIPS[config.corpus.kind]
    frames = clips * min(total_frames / clips, config.video.max_frames)  # the cap cuts the few long clips
    rate = MEASURED_FRAMES_PER_SECOND[key] * device.count
    epoch = frames / rate
    epochs = {stage: getattr(config, stage).epochs for stage in ("reference", "scl", "translate")}
    stages = ", ".join(f"{stage} {n:g} epochs {format_duration(epoch * n)}" for stage, n in epochs.items())
    total = epoch * sum(epochs.values())
    return [
        f"{key[0]}: {MEASURED_FRAMES_PER_SECOND[key]:,.0f} frames/s measured ({key[1]}, {key[2]}, 2 clips "
        "of 112 frames, full fine-tuning; benchmarks/RESULTS.md §1)"
        + (f" × {device.count} GPUs (assuming linear scaling)" if device.count > 1 else ""),
        f"one epoch ({clips:,} clips, {frames:,.0f} frames): {format_duration(epoch)}; {stages}; "
        f"{format_duration(total)} in all",
        "training steps only (no evaluation, snapshots or loading stalls), at the configured knobs "
        "(checkpointing recomputes: about one more forward of what it covers)",
    ]


def measured_key(name: str | None, preset: str, precision: str, image_size: int) -> tuple | None:
    """The measurement for a device ``name`` (a case-insensitive part of it, e.g. ``h100``), if any."""
    if not name:
        return None
    for key in MEASURED_FRAMES_PER_SECOND:
        if name.lower() in key[0].lower() and key[1:] == (preset, precision, image_size):
            return key
    return None


def gib(size: float) -> str:
    """Bytes as ``12.3 GiB`` (or ``45.6 MiB`` below a GiB)."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / 2**20:.1f} MiB"
