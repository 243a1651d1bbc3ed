"""What a training plan starts from: the device, the vocabulary, the model config and the batch.

Everything here works offline and allocates nothing: a tokenizer is read only where it is on disk
(a folder, or the Hugging Face cache), and a GPU's memory is read from CUDA where there is one.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from modeling_scl_slt import SclSltConfig
from modeling_scl_slt.configuration_scl_slt import PRESETS

from .memory_estimate import StepShape
from .recipe_config import RecipeConfig, StageSection
from .stage_arguments import resolved_precision

GIB = 2**30
HEADROOM = 0.10  # of a GPU's memory, kept for the CUDA context, kernel workspaces and fragmentation
KNOB_FIELDS = ("backbone_chunk_size", "freeze_batch_norm")


@dataclass(frozen=True)
class PlanDevice:
    """Where the run trains: ``count`` devices of ``memory`` bytes each (None: not known).

    ``autocast`` is the resolved precision (``"bf16"``, ``"fp16"`` or None for fp32); ``note`` says how
    the device was found or assumed.
    """

    kind: str  # "gpu" or "cpu"
    count: int = 1
    memory: int | None = None
    name: str | None = None
    autocast: str | None = None
    note: str = ""

    @property
    def usable(self) -> int | None:
        """The bytes a step may take: the memory less the headroom."""
        return None if self.memory is None else int(self.memory * (1 - HEADROOM))

    def describe(self) -> str:
        """E.g. ``1 GPU of 80 GiB`` or ``this machine's CPU``."""
        if self.kind == "cpu":
            return "this machine's CPU"
        size = "unknown memory" if self.memory is None else f"{self.memory / GIB:.3g} GiB"
        return f"{self.count} GPU{'s' if self.count > 1 else ''} of {size}"


# --- the device ---------------------------------------------------------------------------------
def plan_device(
    precision: str, gpus: int | None = None, gpu_memory_gib: float | None = None, name: str | None = None
) -> PlanDevice:
    """The device of a planned run: ``gpus`` GPUs of ``gpu_memory_gib`` (either given implies a GPU),
    else this machine's (its GPU when CUDA is available, else its CPU, whose memory is not checked).

    On a CPU every row is an fp32 estimate: what bf16 or fp16 autocast allocates there depends on the
    processor's kernels (those without bf16 instructions convert through float32 buffers), and the
    note says so.
    """
    local = torch.cuda.is_available()
    if gpus is None and gpu_memory_gib is None and not local:
        note = "no GPU given or found"
        if precision in ("bf16", "fp16"):
            note += (
                f"; precision {precision} on a CPU: its memory is not estimated (CPU autocast kernels "
                "allocate differently from one processor to another), the rows are fp32 estimates"
            )
        return PlanDevice("cpu", name=name, note=note)
    memory = None if gpu_memory_gib is None else int(gpu_memory_gib * GIB)
    note = ""
    if local:
        properties = torch.cuda.get_device_properties(torch.cuda.current_device())
        memory = memory if memory is not None else properties.total_memory
        name = name or properties.name
        autocast = precision_autocast(resolved_precision(precision))
    elif precision == "auto":
        autocast, note = "bf16", "precision auto: bf16, assuming a GPU that supports it (Ampere or newer)"
    else:
        autocast = precision_autocast(precision)
    return PlanDevice("gpu", gpus or 1, memory, name, autocast, note)


def local_device(precision: str) -> PlanDevice:
    """This process's device as ``scl-slt train`` will use it: its GPU (memory read from CUDA), one of
    the launch's ``WORLD_SIZE`` GPUs, else the CPU."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    return plan_device(precision, processes if torch.cuda.is_available() and processes > 1 else None)


def precision_autocast(precision: str) -> str | None:
    """``"fp32"`` → None, ``"bf16"`` / ``"fp16"`` as they are."""
    return None if precision == "fp32" else precision


# --- the model and the batch ------------------------------------------------------------------
def plan_vocabulary(config: RecipeConfig, run_dir: Path | None = None) -> tuple[int, str]:
    """The vocabulary size the run's model will have, and a sentence on where it comes from.

    The run's own tokenizer when ``run_dir`` has one, else the configured tokenizer if it is on disk
    (a folder, or the Hugging Face cache: nothing is downloaded), else the preset's vocabulary; for a
    tokenizer trained on the corpus, ``model.vocab_size`` (an upper bound).
    """
    section = config.model
    if run_dir is not None and (Path(run_dir) / "tokenizer").is_dir():
        size = tokenizer_size(Path(run_dir) / "tokenizer")
        if size:
            return size, f"vocabulary: {size:,} tokens (the run's tokenizer)"
    if not section.tokenizer:
        return section.vocab_size, (
            f"vocabulary: at most {section.vocab_size:,} tokens (model.vocab_size; the run trains its "
            "tokenizer on the corpus, which may give fewer)"
        )
    trimmed = (
        "; trim_vocabulary keeps only the training texts' pieces, so the vocabulary-sized parts (token "
        "tables, LM head, logits) are upper bounds"
        if section.trim_vocabulary
        else ""
    )
    size = tokenizer_size(section.tokenizer)
    if size:
        return size, f"vocabulary: {size:,} tokens (the tokenizer {section.tokenizer}){trimmed}"
    size = PRESETS[section.preset]["text_config"]["vocab_size"]
    return size, (
        f"vocabulary: {size:,} tokens, the preset {section.preset}'s (the tokenizer {section.tokenizer} "
        f"is not on disk){trimmed}"
    )


def tokenizer_size(name_or_path: str | Path) -> int | None:
    """``len(tokenizer)`` of a tokenizer folder or of a Hub tokenizer in the local cache, else None."""
    from transformers import AutoTokenizer

    try:
        with quiet_libraries():
            return len(AutoTokenizer.from_pretrained(str(name_or_path), local_files_only=True))
    except Exception:  # not on disk, or not loadable offline: the preset's vocabulary serves
        return None


def plan_model_config(config: RecipeConfig, vocab_size: int) -> SclSltConfig:
    """The run's model config (the preset with the vocabulary and ``model.overrides``), without the
    memory knobs, which each row sets itself."""
    section = config.model
    overrides = {key: value for key, value in section.overrides.items() if key not in KNOB_FIELDS}
    preset_text = PRESETS[section.preset]["text_config"]
    text_config = {
        "vocab_size": vocab_size,
        "decoder_start_token_id": min(preset_text["decoder_start_token_id"], vocab_size - 1),
        **overrides.pop("text_config", {}),
    }
    with quiet_libraries():
        return SclSltConfig.from_preset(
            section.preset, text_config=text_config, tgt_lang=section.tgt_lang, **overrides
        )


def plan_shape(
    config: RecipeConfig, stage: str, batch_size: int | None = None, feature_dim: int | None = None
) -> StepShape:
    """The largest batch of ``stage``: its batch size, clips at the frame cap, texts of
    ``translate.max_new_tokens`` tokens; with ``video.features``, clips of frame features of
    ``feature_dim`` (the model's ``frame_feature_size``)."""
    section: StageSection = getattr(config, stage)
    video = config.video
    return StepShape(
        batch_size or section.batch_size,
        video.max_frames,
        video.image_size,
        config.translate.max_new_tokens,
        feature_dim if video.features is not None else None,
    )


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """No warnings or transformers log lines from building and stepping meta models."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    logging.getLogger("peft").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
