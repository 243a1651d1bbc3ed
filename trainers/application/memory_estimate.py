"""Memory of one training step, estimated on the meta device: no memory, no compute, any shape.

The model is built on torch's ``meta`` device, whose tensors have shapes and dtypes but no data.
One training step of a stage (the batch, forward, the stage's losses, backward) then runs on meta
tensors under :class:`LiveBytes`, a dispatch mode that follows every tensor storage the step
creates until it is freed, and keeps the peak of the bytes alive at once. That peak is the step's
*activation* memory: the batch itself, the tensors kept for backward, the transient tensors of
forward and backward and, under autocast, the low-precision copies of the weights. Parameter
gradients are allocated before the step (as in every step after the first), so they are not part
of it; :class:`StepMemory` counts them, the weights and the optimizer state separately.

What the step assumes: every clip has the frame cap's frames and every text the given length
(no padding: the largest batch the caps allow). Two data-dependent questions of the step are
answered for that case: a boolean mask selects every element (``torch.nonzero``), and "is this
mask all ones?" (``bool(tensor)``) is true. Any other question about values is an error.

Not counted: kernel workspaces (cuDNN, cuBLAS), the CUDA context and allocator fragmentation,
the optimizer's own temporaries; the plan keeps a headroom for them.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation, translation_loss
from modeling_scl_slt.modeling_scl_slt import shift_tokens_right

from ..method.losses import SelectiveContrastiveLoss
from ..training.stages import Stage
from .meta_tracking import EmulatedAutocast, LiveBytes, meta_step_answers

ADAM_STATES = 2  # AdamW keeps exp_avg and exp_avg_sq, each the size of its parameter
FLOAT32_BYTES = 4  # weights, gradients and optimizer state stay float32 under autocast


@dataclass(frozen=True)
class StepShape:
    """The batch of one training step: ``batch_size`` clips of ``num_frames`` frames of
    ``image_size`` × ``image_size`` pixels, and texts of ``text_length`` tokens. With
    ``feature_dim`` the clips are stored frame features (B, T, feature_dim) float16 instead of
    pixels (``video.features``): the backbone does not run."""

    batch_size: int
    num_frames: int
    image_size: int
    text_length: int
    feature_dim: int | None = None


@dataclass(frozen=True)
class StepMemory:
    """Per-device memory of one training step, in bytes, and the parameter counts.

    Attributes:
        weights: Parameters and buffers (fp32; peft's copies of fully trained modules included).
        gradients: One fp32 gradient per parameter that receives one in this stage.
        optimizer: AdamW state of those parameters (two fp32 tensors each).
        activations: Peak of what the step allocates (see the module docstring).
        total_parameters: Every parameter of the model.
        trainable_parameters: Parameters that require a gradient.
        updated_parameters: Parameters that receive a gradient in this stage (a frozen decoder in
            stage reference takes no part in its loss).
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int
    total_parameters: int
    trainable_parameters: int
    updated_parameters: int

    @property
    def peak(self) -> int:
        """Weights + gradients + optimizer state + activations: the step's peak, or above it."""
        return self.weights + self.gradients + self.optimizer + self.activations


# --- the step --------------------------------------------------------------------------------------
def step_batch(
    shape: StepShape, vocab_size: int, device: str | torch.device = "meta"
) -> dict[str, torch.Tensor]:
    """A collated batch without padding: ``pixel_values`` (B, T, 3, H, W) float (or, with
    ``shape.feature_dim``, ``frame_features`` (B, T, D) float16), ``labels`` and ``text_input_ids``
    (B, L) long. Random values on a real device (ids 4 … vocab - 1)."""
    if shape.feature_dim is None:
        key, frames, dtype = "pixel_values", (3, shape.image_size, shape.image_size), torch.float32
    else:
        key, frames, dtype = "frame_features", (shape.feature_dim,), torch.float16
    frames = (shape.batch_size, shape.num_frames, *frames)
    tokens = (shape.batch_size, shape.text_length)
    generator = torch.Generator().manual_seed(0)
    if torch.device(device).type == "meta":
        return {
            key: torch.empty(frames, dtype=dtype, device=device),
            "labels": torch.empty(tokens, dtype=torch.long, device=device),
            "text_input_ids": torch.empty(tokens, dtype=torch.long, device=device),
        }
    ids = [torch.randint(4, max(5, vocab_size), tokens, generator=generator) for _ in range(2)]
    return {
        key: torch.randn(frames, generator=generator).to(device, dtype),
        "labels": ids[0].to(device),
        "text_input_ids": ids[1].to(device),
    }


def stage_loss(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    stage: Stage,
    label_smoothing: float = 0.0,
    autocast: contextlib.AbstractContextManager | None = None,
) -> torch.Tensor:
    """The scalar loss of ``stage`` on ``batch``, computed as ``SclSltTrainer.compute_loss`` does
    (the model's forward under ``autocast``, the losses in float32 after it)."""
    config = model.config
    inputs = {key: batch[key] for key in ("pixel_values", "frame_features") if key in batch}
    if stage.contrastive_loss:
        inputs["text_input_ids"] = batch["text_input_ids"]
        inputs["text_attention_mask"] = torch.ones_like(batch["text_input_ids"])
    if stage.translation_loss:
        inputs["decoder_input_ids"] = shift_tokens_right(
            batch["labels"], config.pad_token_id, config.decoder_start_token_id
        )
    with autocast or contextlib.nullcontext():
        outputs = model(**inputs)
    total = torch.zeros((), device=batch["labels"].device)
    if stage.translation_loss:
        total = total + translation_loss(outputs.logits, batch["labels"], label_smoothing=label_smoothing)
    if stage.contrastive_loss:
        loss = SelectiveContrastiveLoss(learnable_logit_scale=False, mask_false_negatives=False)
        contrastive = loss(
            outputs.similarity_per_video.float(),
            outputs.similarity_per_text.float(),
            logit_scale=outputs.logit_scale.float(),
        )
        total = total + contrastive.loss
    return total


BACKBONE_PHASES = ("backbone forward", "backbone backward")


def estimate_step_memory(
    model: nn.Module,
    stage: Stage,
    shape: StepShape,
    autocast_dtype: torch.dtype | None = None,
    autocast_policy: str = "cuda",
    label_smoothing: float = 0.0,
    max_exact_chunks: int = 12,
) -> StepMemory:
    """Run one training step of ``stage`` on the meta ``model`` at ``shape`` and count its memory.

    ``autocast_dtype`` (bf16 / fp16) emulates mixed precision with the op lists of
    ``autocast_policy``. A backbone that runs in more than ``max_exact_chunks`` chunks
    (``config.backbone_chunk_size``) is estimated from two steps with larger chunks (see
    :func:`chunked_activations`): the meta step costs time per chunk, not per frame.
    """
    config = model.config
    frames = shape.batch_size * shape.num_frames
    chunk = config.backbone_chunk_size
    if chunk is None or math.ceil(frames / chunk) <= max_exact_chunks:
        peaks, updated = phase_peaks(model, stage, shape, autocast_dtype, autocast_policy, label_smoothing)
        activations = max(peaks.values())
    else:
        activations, updated = chunked_activations(
            model, stage, shape, (autocast_dtype, autocast_policy, label_smoothing)
        )
    parameters = list(model.parameters())
    updated_numel = sum(p.numel() for p in parameters if id(p) in updated)
    return StepMemory(
        weights=sum(t.numel() * t.element_size() for t in (*parameters, *model.buffers())),
        gradients=FLOAT32_BYTES * updated_numel,
        optimizer=ADAM_STATES * FLOAT32_BYTES * updated_numel,
        activations=activations,
        total_parameters=sum(p.numel() for p in parameters),
        trainable_parameters=sum(p.numel() for p in parameters if p.requires_grad),
        updated_parameters=updated_numel,
    )


def chunked_activations(
    model: nn.Module, stage: Stage, shape: StepShape, options: tuple
) -> tuple[int, set[int]]:
    """Activation peak of a step whose backbone runs in many chunks, from two steps with few chunks.

    Outside the backbone, the step does not depend on the chunk size. Inside it, what is alive while
    a chunk runs (forward, or recomputation and backward) is what the rest of the step holds then
    plus that one chunk's tensors, which grow linearly with the chunk's frames: the peaks of the two
    backbone phases are linear in the chunk size (up to the pooled features of a partial last
    chunk). Two steps with a third and a sixth of the frames per chunk give the line.
    """
    config = model.config
    chunk = config.backbone_chunk_size
    frames = shape.batch_size * shape.num_frames
    sizes = (math.ceil(frames / 3), math.ceil(frames / 6))
    runs = []
    try:
        for size in sizes:
            config.backbone_chunk_size = size
            runs.append(phase_peaks(model, stage, shape, *options))
    finally:
        config.backbone_chunk_size = chunk
    (large, _), (small, updated) = runs
    activations = max(value for phase, value in small.items() if phase not in BACKBONE_PHASES)
    for phase in BACKBONE_PHASES:
        slope = (large.get(phase, 0) - small.get(phase, 0)) / (sizes[0] - sizes[1])
        activations = max(activations, round(small.get(phase, 0) + slope * (chunk - sizes[1])))
    return activations, updated


def phase_peaks(
    model: nn.Module,
    stage: Stage,
    shape: StepShape,
    autocast_dtype: torch.dtype | None,
    autocast_policy: str,
    label_smoothing: float,
) -> tuple[dict[str, int], set[int]]:
    """One meta training step: the peak of live bytes per phase, and the ids of the parameters that
    received a gradient. Phases: ``forward``, ``backbone forward`` (until the temporal module
    starts), ``backward`` and ``backbone backward`` (from the backbone's first recomputation on:
    the backbone, which runs first, is the last part of backward)."""
    tracker = LiveBytes()
    updated: set[int] = set()
    handles = [
        p.register_post_accumulate_grad_hook(lambda p: updated.add(id(p)))
        for p in model.parameters()
        if p.requires_grad
    ]
    handles += phase_hooks(model, tracker)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.grad = torch.zeros_like(parameter)  # as in every step after the first
    autocast = recompute = contextlib.nullcontext()
    if autocast_dtype is not None:
        autocast = EmulatedAutocast(autocast_dtype, autocast_policy)
        recompute = EmulatedAutocast(autocast_dtype, autocast_policy, cache_weights=False)
    try:
        with meta_step_answers(), tracker:
            tracker.phase = "forward"
            batch = step_batch(shape, model.config.text_config.vocab_size)
            loss = stage_loss(model, batch, stage, label_smoothing, autocast)
            del batch  # the step's own reference: what backward needs stays alive anyway
            tracker.phase = "backward"
            with recompute:
                backward_under_modes(loss)
            del loss
    finally:
        for handle in handles:
            handle.remove()
    return dict(tracker.peaks), updated


def phase_hooks(model: nn.Module, tracker: LiveBytes) -> list[Any]:
    """Forward pre-hooks that move ``tracker.phase`` into and out of the backbone's phases."""
    modules = dict(model.named_modules())
    backbone = modules[module_name(modules, "video_encoder.backbone")]
    temporal = modules[module_name(modules, "video_encoder.temporal")]

    def enter_backbone(*_: Any) -> None:
        tracker.phase = "backbone backward" if tracker.phase.endswith("backward") else "backbone forward"

    def leave_backbone(*_: Any) -> None:
        tracker.phase = "forward"

    return [
        backbone.register_forward_pre_hook(enter_backbone),
        temporal.register_forward_pre_hook(leave_backbone),
    ]


def module_name(modules: dict[str, nn.Module], suffix: str) -> str:
    """The shortest module name ending in ``suffix`` (peft prefixes the names of the base model's)."""
    names = [name for name in modules if name == suffix or name.endswith("." + suffix)]
    if not names:
        raise ValueError(f"the model has no module {suffix!r}")
    return min(names, key=len)


def backward_under_modes(loss: torch.Tensor) -> None:
    """``loss.backward()`` with the active function modes kept.

    ``Tensor.backward`` is itself dispatched to function modes, and a mode is left while it handles
    a call: the emulated autocast would be gone when activation checkpointing recomputes in backward.
    The autograd engine is therefore called directly, as ``torch.autograd.backward`` does after its
    checks.
    """
    from torch.autograd.graph import _engine_run_backward

    _engine_run_backward((loss,), (torch.ones_like(loss),), False, False, (), True, True)


# --- the model -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MemoryKnobs:
    """The settings that trade compute for memory; the defaults are all off.

    Attributes:
        backbone_chunk_size: ``SclSltConfig.backbone_chunk_size`` (frames per ResNet call).
        freeze_batch_norm: ``SclSltConfig.freeze_batch_norm`` (needed by chunks and checkpointing).
        gradient_checkpointing: transformers' gradient checkpointing (the Trainer's
            ``gradient_checkpointing``): the mBART layers, and the backbone chunk by chunk.
        autocast: ``"bf16"`` or ``"fp16"`` mixed precision, or None (float32).
    """

    backbone_chunk_size: int | None = None
    freeze_batch_norm: bool = False
    gradient_checkpointing: bool = False
    autocast: str | None = None

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[self.autocast]


def set_knobs(model: nn.Module, knobs: MemoryKnobs) -> nn.Module:
    """Give ``model`` (also peft-wrapped) the knobs' model settings, in training mode. The config
    fields are read at every call, so one model serves every setting."""
    config = model.config
    config.backbone_chunk_size = knobs.backbone_chunk_size
    config.freeze_batch_norm = knobs.freeze_batch_norm
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
    on = getattr(type(base), "is_activation_checkpointing", None)  # transformers >= 5.24
    on = base.is_activation_checkpointing if on is not None else base.is_gradient_checkpointing
    if knobs.gradient_checkpointing != on:
        name = "enable" if knobs.gradient_checkpointing else "disable"
        toggle = getattr(base, f"activation_checkpointing_{name}", None)
        (toggle or getattr(base, f"gradient_checkpointing_{name}"))()  # non-reentrant, as the Trainer's
    return model.train()


def build_stage_model(
    config: SclSltConfig,
    stage: Stage,
    lora: Any | None = None,
    device: str | torch.device = "meta",
    frozen_backbone: bool = False,
) -> nn.Module:
    """The model that ``stage`` trains, in training mode: without the text branch where the stage has
    no contrastive loss, with LoRA where ``lora`` (a ``LoraSection``) is enabled, with the backbone
    frozen where ``frozen_backbone`` (training on frame features). Built on ``device`` (meta: no
    memory)."""
    with torch.device(device):
        model: Any = SclSltForSignTranslation(copy.deepcopy(config))  # its knobs change per row
    if not stage.contrastive_loss:
        model.drop_text_branch()
    if frozen_backbone:
        model.video_encoder.backbone.requires_grad_(False)
    if lora is not None and lora.enabled:
        from ..training.lora import apply_lora, paper_lora_config

        train_backbone = lora.train_backbone and not frozen_backbone
        model = apply_lora(model, paper_lora_config(lora.r, lora.alpha, lora.dropout, train_backbone))
    return model.train()
