"""`scl-slt plan`: what each stage of a recipe config needs on one device, before anything trains.

For every stage (reference, scl, translate) the plan estimates the peak memory of one training step
on one device, split into weights, gradients, optimizer state and activations
(:mod:`trainers.application.memory_estimate`: the step runs on the meta device at the config's
batch size and frame cap), once as configured and once more with each memory knob added:

1. gradient checkpointing (``<stage>.gradient_checkpointing``, the Trainer's switch: the mBART
   layers, and the backbone in chunks of ``model.overrides.backbone_chunk_size``, with the
   ``model.overrides.freeze_batch_norm`` that both need; on frame features (``video.features``) no
   backbone runs, so the knob is the mBART layers' checkpointing alone);
2. bf16 autocast (``precision``; on a GPU only: on a CPU it is slower).

Given the memory of the device, it says whether the run fits and, if not, which settings to change:
the first knobs in that order that make every stage fit, else also the largest batch size of each
stage that still does not fit. ``scl-slt train`` prints the configured rows at its start and refuses
a run that cannot fit a GPU whose memory it can read. Times per epoch come from measured frames/s
(:mod:`trainers.application.plan_times`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modeling_scl_slt import SclSltConfig

from ..training.stages import STAGES, get_stage
from .memory_estimate import MemoryKnobs, StepMemory, build_stage_model, estimate_step_memory, set_knobs
from .plan_inputs import (
    GIB,
    HEADROOM,
    PlanDevice,
    local_device,
    plan_model_config,
    plan_shape,
    plan_vocabulary,
    quiet_libraries,
)
from .plan_times import time_estimate
from .recipe_config import ConfigError, RecipeConfig, StageSection

SUGGESTED_CHUNK = 32  # frames per backbone call that the advice suggests (configs/phoenix2014t.yaml)
KNOB_KINDS = ("configured", "checkpointing", "bf16")  # the order in which rows add knobs
COLUMNS = ("weights", "gradients", "optimizer", "activations", "peak")  # of every table row


@dataclass(frozen=True)
class Variant:
    """One row of a stage's table: a setting of the knobs and the config values that give it.

    ``settings`` maps dotted config keys to values (``--set`` syntax).
    """

    label: str
    knobs: MemoryKnobs
    settings: dict[str, Any] = field(default_factory=dict)
    kind: str = "configured"  # one of KNOB_KINDS: the last knob this row adds


@dataclass
class StagePlan:
    """The rows of one stage: ``(variant, memory)``, the configured one first."""

    stage: str
    batch_size: int
    epochs: float
    rows: list[tuple[Variant, StepMemory]]

    def up_to(self, kind: str) -> tuple[Variant, StepMemory]:
        """The row with every knob up to ``kind`` (rows add knobs in the order of KNOB_KINDS; a knob
        that is on already has no row of its own)."""
        limit = KNOB_KINDS.index(kind)
        return [row for row in self.rows if KNOB_KINDS.index(row[0].kind) <= limit][-1]


@dataclass
class TrainingPlan:
    """Everything ``scl-slt plan`` prints: notes, per-stage rows, the verdict and the advice."""

    device: PlanDevice
    shape_note: str
    notes: list[str]
    stages: list[StagePlan]
    source: str = "the recipe config"
    fits: bool | None = None  # None: the device's memory is not known
    verdict: str = ""
    advice: list[str] = field(default_factory=list)
    time: list[str] = field(default_factory=list)


# --- the text ------------------------------------------------------------------------------------
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


def gib(size: float) -> str:
    """Bytes as ``12.3 GiB`` (or ``45.6 MiB`` below a GiB)."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / 2**20:.1f} MiB"


# --- the rows -------------------------------------------------------------------------------------
def configured_knobs(config: RecipeConfig, stage: str, device: PlanDevice) -> MemoryKnobs:
    """The knobs as the config sets them for ``stage`` on ``device``."""
    overrides = config.model.overrides
    return MemoryKnobs(
        backbone_chunk_size=overrides.get("backbone_chunk_size"),
        freeze_batch_norm=bool(overrides.get("freeze_batch_norm", False)),
        gradient_checkpointing=getattr(config, stage).gradient_checkpointing,
        autocast=device.autocast,
    )


def stage_variants(config: RecipeConfig, stage: str, device: PlanDevice) -> list[Variant]:
    """The configured row, then each knob that is off added to the row before, in the order of
    :data:`KNOB_KINDS` (bf16 on a GPU only)."""
    knobs = configured_knobs(config, stage, device)
    variants = [Variant(f"as configured ({knobs.autocast or 'fp32'})", knobs, kind="configured")]
    if config.video.features is not None:
        if not knobs.gradient_checkpointing:  # no backbone runs: its chunks and BatchNorm do not apply
            knobs = dataclasses.replace(knobs, gradient_checkpointing=True)
            settings = {f"{stage}.gradient_checkpointing": True}
            label = "+ gradient checkpointing (mBART layers; no backbone on frame features)"
            variants.append(Variant(label, knobs, settings, kind="checkpointing"))
    elif not (knobs.backbone_chunk_size and knobs.gradient_checkpointing):
        chunk = knobs.backbone_chunk_size or SUGGESTED_CHUNK
        knobs = dataclasses.replace(
            knobs, backbone_chunk_size=chunk, gradient_checkpointing=True, freeze_batch_norm=True
        )
        settings = {
            "model.overrides.backbone_chunk_size": chunk,
            "model.overrides.freeze_batch_norm": True,
            f"{stage}.gradient_checkpointing": True,
        }
        label = f"+ backbone chunks of {chunk}, gradient checkpointing"
        variants.append(Variant(label, knobs, settings, kind="checkpointing"))
    if device.kind == "gpu" and knobs.autocast is None:
        knobs = dataclasses.replace(knobs, autocast="bf16")
        variants.append(Variant("+ bf16 autocast", knobs, {"precision": "bf16"}, kind="bf16"))
    return variants


def estimate_row(
    model: torch.nn.Module,
    config: RecipeConfig,
    stage: str,
    knobs: MemoryKnobs,
    device: PlanDevice,
    batch_size: int | None = None,
) -> StepMemory:
    """One row: the step's memory with ``knobs`` (plus DDP's gradient buckets on several GPUs)."""
    set_knobs(model, knobs)
    smoothing = {"reference": 0.0, "translate": config.translate.label_smoothing}.get(
        stage,
        config.translate.label_smoothing
        if config.scl.label_smoothing is None
        else config.scl.label_smoothing,
    )
    with quiet_libraries():
        memory = estimate_step_memory(
            model,
            get_stage(stage),
            plan_shape(config, stage, batch_size, model.config.frame_feature_size),
            knobs.autocast_dtype,
            label_smoothing=smoothing,
        )
    if device.count > 1:  # DDP keeps a bucket copy of every trainable parameter's gradient
        memory = dataclasses.replace(memory, gradients=memory.gradients + 4 * memory.trainable_parameters)
    return memory


def stage_models(config: RecipeConfig, model_config: SclSltConfig) -> Iterator[tuple[str, torch.nn.Module]]:
    """Each stage with the meta model it trains; reference and scl share one, translate drops its
    text branch afterwards (as the recipe does)."""
    with quiet_libraries():
        frozen_backbone = config.video.features is not None
        model = build_stage_model(
            model_config, get_stage("scl"), config.lora, frozen_backbone=frozen_backbone
        )
    for stage in STAGES:
        if not get_stage(stage).contrastive_loss:
            base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
            base.drop_text_branch()
        yield stage, model


def make_plan(
    config: RecipeConfig,
    device: PlanDevice,
    source: str = "the recipe config",
    run_dir: Path | None = None,
    knob_rows: bool = True,
) -> TrainingPlan:
    """The plan of ``config`` (read from ``source``) on ``device``: every stage's rows (only the
    configured one without ``knob_rows``), the verdict and, where the run does not fit, the advice.
    ``run_dir``: a run directory whose tokenizer gives the vocabulary."""
    vocab_size, vocab_note = plan_vocabulary(config, run_dir)
    model_config = plan_model_config(config, vocab_size)
    stages = []
    for stage, model in stage_models(config, model_config):
        variants = stage_variants(config, stage, device)[: None if knob_rows else 1]
        rows = [(variant, estimate_row(model, config, stage, variant.knobs, device)) for variant in variants]
        section: StageSection = getattr(config, stage)
        stages.append(StagePlan(stage, section.batch_size, section.epochs, rows))
    video = config.video
    frames = f"at {video.image_size}² pixels"
    if video.features is not None:
        frames = (
            f"of {model_config.frame_feature_size} stored float16 features (video.features: the backbone is "
            "frozen and does not run)"
        )
    shape_note = (
        f"batch: each stage's batch size × {video.max_frames} frames (video.max_frames) "
        f"{frames}, texts of {config.translate.max_new_tokens} tokens "
        "(translate.max_new_tokens); every clip at the cap, no padding"
    )
    notes = [vocab_note] + ([device.note] if device.note else [])
    plan = TrainingPlan(device, shape_note, notes, stages, source, time=time_estimate(config, device))
    judge(plan, config, model_config)
    return plan


# --- verdict and advice ---------------------------------------------------------------------------
def judge(plan: TrainingPlan, config: RecipeConfig, model_config: SclSltConfig) -> None:
    """Set the plan's verdict, and its advice when the configured run does not fit."""
    usable = plan.device.usable
    worst_stage = max(plan.stages, key=lambda s: s.rows[0][1].peak)
    worst = worst_stage.rows[0][1].peak
    where = plan.device.describe()
    if usable is None:
        plan.verdict = (
            f"memory not checked: the memory of {where} is not known (scl-slt plan --gpus N --gpu-memory "
            f"GB checks a GPU's); the largest peak is {gib(worst)} (stage {worst_stage.stage})"
        )
        return
    plan.fits = worst <= usable
    if plan.fits:
        plan.verdict = (
            f"fits {where}: the largest peak is {gib(worst)} (stage {worst_stage.stage}) of {gib(usable)} "
            f"usable ({HEADROOM:.0%} kept for the CUDA context, workspaces and fragmentation)"
        )
        return
    plan.verdict = (
        f"does not fit {where}: stage {worst_stage.stage} needs {gib(worst)} of {gib(usable)} usable "
        f"({HEADROOM:.0%} kept for the CUDA context, workspaces and fragmentation)"
    )
    plan.advice = advice(plan, config, model_config)


def advice(plan: TrainingPlan, config: RecipeConfig, model_config: SclSltConfig) -> list[str]:
    """What to change: the first settable knobs with which every stage fits, else those knobs and
    the largest batch size per stage that fits with them."""
    usable = plan.device.usable or 0
    settable = list(KNOB_KINDS[1:])
    for kind in settable:
        peak = max(stage.up_to(kind)[1].peak for stage in plan.stages)
        if peak <= usable:
            return [f"set {settings_text(plan, kind)} (the largest peak is then {gib(peak)})"]
    changes = []
    # the settable knobs that leave the smallest peak (bf16's weight copies can outweigh what it saves)
    best = min(["configured", *settable], key=lambda kind: max(s.up_to(kind)[1].peak for s in plan.stages))
    if best != "configured" and settings_text(plan, best):
        changes.append(f"set {settings_text(plan, best)}")
    for stage_plan, size in largest_batches(plan, config, model_config, best):
        if size is None:
            smaller = "video.max_frames or video.image_size"
            if config.video.features is not None:  # stored features: the image size shapes nothing
                smaller = "video.max_frames"
            changes.append(
                f"stage {stage_plan.stage} does not fit even with batch size 1: it needs a GPU with more "
                f"memory, or a smaller {smaller}"
            )
        else:
            changes.append(f"set {stage_plan.stage}.batch_size={size}")
    changes.append(
        "a smaller batch size changes the method (fewer in-batch negatives in the contrastive stages); "
        "gradient_accumulation_steps keeps the samples per update, not the negatives"
    )
    return changes


def settings_text(plan: TrainingPlan, kind: str) -> str:
    """The ``key=value`` settings of the rows up to ``kind``, e.g. ``precision=bf16``."""
    limit = KNOB_KINDS.index(kind)
    settings: dict[str, Any] = {}
    for stage in plan.stages:
        for variant, _ in stage.rows:
            if KNOB_KINDS.index(variant.kind) <= limit:
                settings.update(variant.settings)
    values = [
        f"{key}={str(value).lower() if isinstance(value, bool) else value}" for key, value in settings.items()
    ]
    return ", ".join(values[:-1]) + (" and " if len(values) > 1 else "") + "".join(values[-1:])


def largest_batches(
    plan: TrainingPlan, config: RecipeConfig, model_config: SclSltConfig, kind: str
) -> Iterator[tuple[StagePlan, int | None]]:
    """For each stage that does not fit with the knobs up to ``kind``: the largest batch size that
    fits (None: not even 1)."""
    usable = plan.device.usable or 0
    failing = {stage.stage: stage for stage in plan.stages if stage.up_to(kind)[1].peak > usable}
    for stage, model in stage_models(config, model_config):
        if stage in failing:
            variant, at_batch = failing[stage].up_to(kind)
            yield failing[stage], fitting_batch(model, config, stage, variant.knobs, plan.device, at_batch)


def fitting_batch(
    model: torch.nn.Module,
    config: RecipeConfig,
    stage: str,
    knobs: MemoryKnobs,
    device: PlanDevice,
    at_batch: StepMemory,
) -> int | None:
    """The largest batch size below the stage's whose step fits ``device`` (None: not even 1).

    Activations grow about linearly with the batch: the line through batch 1 and the stage's batch
    gives a first guess, which is then checked (and lowered until it fits).
    """
    usable, batch_size = device.usable or 0, getattr(config, stage).batch_size
    at_one = estimate_row(model, config, stage, knobs, device, batch_size=1)
    if at_one.peak > usable:
        return None
    per_sample = (at_batch.activations - at_one.activations) / max(1, batch_size - 1)
    size = 1 + math.floor((usable - at_one.peak) / per_sample) if per_sample > 0 else batch_size - 1
    size = max(1, min(size, batch_size - 1))
    while size > 1 and estimate_row(model, config, stage, knobs, device, batch_size=size).peak > usable:
        size -= 1
    return size


def check_run_fits(
    config: RecipeConfig, where: str, run_dir: Path | None = None, report: Callable[[str], None] = print
) -> None:
    """What ``scl-slt train`` does first: print the configured plan on this machine's device (the main
    process of a launch only) and refuse, with a ConfigError that carries the advice, a run that
    cannot fit a GPU whose memory is known."""
    device = local_device(config.precision)
    plan = make_plan(config, device, where, run_dir, knob_rows=False)
    if os.environ.get("RANK", "0") == "0":
        report(format_plan(plan, compact=True))
    if plan.fits is False:
        plan = make_plan(config, device, where, run_dir)  # the knob rows, for the advice
        raise ConfigError(f"{where}: the run cannot fit: {plan.verdict}; " + "; ".join(plan.advice))
