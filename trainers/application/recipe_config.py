"""The recipe's YAML configuration: typed, documented sections with strict key checking.

A config file is a mapping of sections (``corpus``, ``model``, ``lora``, ``video``, ``reference``,
``pair_selection``, ``scl``, ``translate``, ``evaluation``) plus ``seed``. Every key is a field
below; an unknown key or a value of the wrong type is one clear error naming the file and key.
Files are read with ``yaml.safe_load``: loading a config never executes code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A recipe config that cannot be used; the message names the file and key."""


@dataclass
class CorpusSection:
    """Which corpus to train on."""

    kind: Literal["synthetic", "phoenix2014t", "csl_daily", "manifest"] = "synthetic"
    path: str | None = None  # data_dir (phoenix2014t, csl_daily) or manifest file (manifest)
    language: str = "de"  # metric language: 13a BLEU for de/en/..., characters for zh
    synthetic_size: str | int = "default"  # synthetic corpus: tiny, small, default, large or N train videos
    synthetic_seed: int = 0
    synthetic_format: Literal["mp4", "frames"] = "mp4"  # frames: PNG folders, no video decoding at load
    # further make_synthetic_corpus keyword arguments, e.g. frame_size or the duplicate-rich
    # variant's repeat_fraction: 0.6 and near_duplicate_fraction: 0.3
    synthetic_options: dict = field(default_factory=dict)
    manifest_options: dict = field(default_factory=dict)  # extra load_sign_corpus keyword arguments
    on_error: Literal["raise", "skip"] = "raise"


@dataclass
class ModelSection:
    """The model and its tokenizer."""

    preset: str = "small"  # tiny, small, gfslt or paper
    backbone: str | None = None  # pretrained ResNet (Hub id or folder) for from_pretrained_parts
    text_model: str | None = None  # pretrained mBART (Hub id or folder) for from_pretrained_parts
    tokenizer: str | None = None  # tokenizer folder or Hub id; None trains one on the corpus
    trim_vocabulary: bool = False  # keep only the pieces of the training texts (pretrained tokenizers)
    tokenizer_model: Literal["unigram", "wordlevel"] = "unigram"
    vocab_size: int = 1000  # for a trained tokenizer
    tgt_lang: str = "de_DE"
    overrides: dict = field(default_factory=dict)  # further SclSltConfig fields


@dataclass
class LoraSection:
    """LoRA on the visual encoder and decoder attention (trainers.training.lora.paper_lora_config)."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    train_backbone: bool = True  # the ResNet trains fully (False: frozen)


@dataclass
class VideoSection:
    """Frame preprocessing (shared by training, evaluation and the pipeline)."""

    image_size: int = 224
    resize: int | None = 256
    max_frames: int = 300
    augment: bool = True


@dataclass
class StageSection:
    """One training stage's optimisation settings."""

    epochs: float = 1.0
    batch_size: int = 16
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "cosine"
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    eval_batch_size: int = 16
    logging_steps: int = 10


@dataclass
class ReferenceSection(StageSection):
    """Stage 0: plain contrastive run that records snapshots."""

    snapshot_interval: int = 5
    # the paper's reference run is plain in-batch CLIP ("clip"); "selective" masks identical texts
    contrastive_loss: str = "clip"


@dataclass
class PairSelectionSection:
    """Scores from the reference snapshots."""

    mode: Literal["dense", "sparse"] = "dense"
    score: Literal["delta", "slope"] = "delta"
    num_candidates: int = 256  # sparse mode
    block_size: int = 512


@dataclass
class SclSection(StageSection):
    """Stage 1: PS curriculum batches, selective contrastive + translation loss."""

    schedule: str = "log"
    log_base: float = 10.0
    batch_sampler: str = "ps_curriculum"
    contrastive_loss: str = "selective"
    contrastive_weight: float = 1.0
    translation_weight: float = 1.0
    avoid_duplicate_texts: bool = True
    init_from: Literal["initial", "reference"] = "initial"
    # label smoothing of the translation cross-entropy; null: translate.label_smoothing
    label_smoothing: float | None = None


@dataclass
class TranslateSection(StageSection):
    """Stage 2: translation fine-tuning from the scl model, without the text branch."""

    label_smoothing: float = 0.2
    num_beams: int = 8
    max_new_tokens: int = 64
    eval_every_epochs: float = 1.0


@dataclass
class EvaluationSection:
    """Final evaluation."""

    num_beams: int = 8
    max_new_tokens: int = 64


@dataclass
class RecipeConfig:
    """The whole recipe: corpus → reference → scores → scl → translate → evaluation."""

    seed: int = 0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # mixed precision of training and evaluation
    num_workers: int = 0  # DataLoader worker processes (decoding and transforms run there)
    corpus: CorpusSection = field(default_factory=CorpusSection)
    model: ModelSection = field(default_factory=ModelSection)
    lora: LoraSection = field(default_factory=LoraSection)
    video: VideoSection = field(default_factory=VideoSection)
    reference: ReferenceSection = field(default_factory=ReferenceSection)
    pair_selection: PairSelectionSection = field(default_factory=PairSelectionSection)
    scl: SclSection = field(default_factory=SclSection)
    translate: TranslateSection = field(default_factory=TranslateSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> RecipeConfig:
        """Read a config file; ``overrides`` maps dotted keys (``scl.epochs``) to values."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
        for dotted, value in (overrides or {}).items():
            apply_override(raw, dotted, value)
        return build_dataclass(cls, raw, str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_override(raw: dict, dotted: str, value: Any) -> None:
    """Set ``raw[a][b] = value`` for ``dotted == "a.b"``."""
    *sections, key = dotted.split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
    target[key] = value


def build_dataclass(cls: type, values: dict, where: str) -> Any:
    """Instantiate ``cls`` from ``values``, checking every key and value type."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = check_value(hints[name], value, f"{where}: {name}")
    return cls(**kwargs)


def check_value(hint: Any, value: Any, where: str) -> Any:
    """``value`` if it matches ``hint`` (nested dataclasses are built), else a ConfigError."""
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return check_value(option, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} matches none of {typing.get_args(hint)}")
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected nothing (null), got {value!r}")
        return None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = origin or hint
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(expected, '__name__', expected)}, got {value!r}")
    return value
