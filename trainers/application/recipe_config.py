"""The recipe's YAML configuration: typed, documented sections with strict checking.

A config file is a mapping of sections (``corpus``, ``model``, ``lora``, ``video``, ``reference``,
``pair_selection``, ``scl``, ``translate``, ``evaluation``) plus top-level settings (``seed``,
``precision``, ``num_workers``, the speed switches ``optimizer``, ``cudnn_benchmark`` and
``backbone_compile``, ...). Every key is a field below. An unknown key, a value of the wrong type, a choice
outside its set, a number outside its range (the ``bounds`` of the field) or a broken rule between
fields is one clear error naming the file and the dotted key, e.g.
``config.yaml: scl.epochs: -3 is out of range; expected a number > 0``. :func:`validate_config`
runs the same checks on a config built in Python.

Files are read with ``yaml.safe_load``: loading a config never executes code. This module imports
only yaml and the standard library, so the command line checks a config in milliseconds, before it
loads the training stack.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A recipe config that cannot be used; the message names the file and key."""


# Fixed choices, written out here: their sources of truth import torch or transformers, which would
# cost the command line seconds. tests/test_recipe_config.py keeps each equal to its source.
ModelPreset = Literal["tiny", "small", "gfslt", "paper"]  # modeling_scl_slt.PRESETS
SyntheticSize = Literal["tiny", "small", "default", "large"]  # datasets_scripts.synthetic.SIZE_PRESETS
LrScheduler = Literal[  # transformers.SchedulerType
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
]
CurriculumSchedule = Literal["log", "linear", "sqrt", "easy", "hard"]  # trainers.method.sampler.SCHEDULES
BatchSamplerName = Literal["random", "no_duplicates", "ps_curriculum"]  # BatchSamplers but "auto"
ContrastiveLossName = Literal["selective", "clip"]  # trainers.training.arguments.ContrastiveLosses but "auto"

# What corpus.path (and the command line's corpus path) holds, by corpus kind.
CORPUS_PATHS = {
    "phoenix2014t": "the PHOENIX-2014-T release folder",
    "csl_daily": "the CSL-Daily folder (with sentence_label/ and sentence/)",
    "manifest": "a manifest file (.csv, .tsv or .jsonl)",
    "synthetic": "the folder of a generated synthetic corpus (with manifest.csv)",
    "gloss_rendered": "gloss annotations: a folder of {train,validation,test}.jsonl, a PHOENIX-2014-T "
    "release or a CSL-Daily folder",
}


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric field; ``None`` leaves that side open."""

    low: float | None = None
    high: float | None = None
    include_low: bool = True
    include_high: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.include_low)):
            return False
        return self.high is None or value < self.high or (value == self.high and self.include_high)

    def describe(self, integer: bool) -> str:
        """E.g. ``"a number > 0"``, ``"an integer >= 1"``, ``"a number in [0, 1)"``."""
        kind = "an integer" if integer else "a number"
        if self.low is not None and self.high is not None:
            left, right = "[" if self.include_low else "(", "]" if self.include_high else ")"
            return f"{kind} in {left}{number(self.low)}, {number(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>=' if self.include_low else '>'} {number(self.low)}"
        return f"{kind} {'<=' if self.include_high else '<'} {number(self.high)}"


def within(bounds: Bounds) -> Mapping[str, Bounds]:
    """Field metadata: the field's numbers must lie within ``bounds`` (other values are not ranged)."""
    return types.MappingProxyType({"bounds": bounds})


POSITIVE = within(Bounds(low=0, include_low=False))
AT_LEAST_ONE = within(Bounds(low=1))
NON_NEGATIVE = within(Bounds(low=0))
FRACTION = within(Bounds(low=0, high=1))  # [0, 1)
ABOVE_ONE = within(Bounds(low=1, include_low=False))
SEED = within(Bounds(low=0, high=2**32))  # what numpy's global seed accepts


def number(value: float) -> str:
    """``3`` for 3.0 (as a user writes it), else the value's repr."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


@dataclass
class CorpusSection:
    """Which corpus to train on."""

    kind: Literal["synthetic", "phoenix2014t", "csl_daily", "manifest", "gloss_rendered"] = "synthetic"
    # data_dir (phoenix2014t, csl_daily), manifest file (manifest) or gloss annotations
    # (gloss_rendered: rendered into the run directory); none for synthetic, whose corpus is
    # generated in the run directory
    path: str | None = None
    language: str = "de"  # metric language: 13a BLEU for de/en/..., characters for zh
    # synthetic corpus: tiny, small, default, large or N train videos
    synthetic_size: SyntheticSize | int = field(default="default", metadata=AT_LEAST_ONE)
    synthetic_seed: int = field(default=0, metadata=NON_NEGATIVE)
    synthetic_format: Literal["mp4", "frames"] = "mp4"  # frames: PNG folders, no video decoding at load
    # further make_synthetic_corpus keyword arguments, e.g. frame_size or the duplicate-rich
    # variant's repeat_fraction: 0.6 and near_duplicate_fraction: 0.3
    synthetic_options: dict = field(default_factory=dict)
    manifest_options: dict = field(default_factory=dict)  # extra load_sign_corpus keyword arguments
    # gloss_rendered: make_gloss_rendered_corpus keyword arguments (image_size, frame_step,
    # num_signers, max_train_videos, num_workers, ...)
    rendering_options: dict = field(default_factory=dict)
    on_error: Literal["raise", "skip"] = "raise"
    # frames per second of the corpus's clips, saved as the model's config.frame_rate (the pipeline
    # resamples every input to it); None: the kind's own (synthetic and phoenix2014t 25, csl_daily 30,
    # gloss_rendered 25 / frame_step) and 25 for a manifest
    frame_rate: float | None = field(default=None, metadata=POSITIVE)


@dataclass
class ModelSection:
    """The model and its tokenizer."""

    preset: ModelPreset = "small"
    backbone: str | None = None  # pretrained ResNet (Hub id or folder) for from_pretrained_parts
    text_model: str | None = None  # pretrained mBART (Hub id or folder) for from_pretrained_parts
    tokenizer: str | None = None  # tokenizer folder or Hub id; None trains one on the corpus
    trim_vocabulary: bool = False  # keep only the pieces of the training texts (pretrained tokenizers)
    tokenizer_model: Literal["unigram", "wordlevel"] = "unigram"
    vocab_size: int = field(default=1000, metadata=AT_LEAST_ONE)  # for a trained tokenizer
    tgt_lang: str = "de_DE"
    # channels_last (NHWC) memory format of the ResNet's weights and frames
    # (SclSltConfig.backbone_channels_last; same results up to float summation order); auto: on where
    # CUDA is available (cuDNN's kernels are made for it), off on a CPU; true on a CPU is refused
    # where a probe finds that CPU's NHWC convolution backward unsound;
    # resolved by stage_arguments.resolved_channels_last
    backbone_channels_last: bool | Literal["auto"] = "auto"
    overrides: dict = field(default_factory=dict)  # further SclSltConfig fields


@dataclass
class LoraSection:
    """LoRA on the visual encoder and decoder attention (trainers.training.lora.paper_lora_config)."""

    enabled: bool = False
    r: int = field(default=16, metadata=AT_LEAST_ONE)
    alpha: int = field(default=32, metadata=AT_LEAST_ONE)
    dropout: float = field(default=0.05, metadata=FRACTION)
    train_backbone: bool = True  # the ResNet trains fully (False: frozen)


@dataclass
class VideoSection:
    """Frame preprocessing (shared by training, evaluation and the pipeline)."""

    image_size: int = field(default=224, metadata=AT_LEAST_ONE)
    resize: int | None = field(
        default=256, metadata=AT_LEAST_ONE
    )  # shorter side before the crop; at least image_size
    max_frames: int = field(default=300, metadata=AT_LEAST_ONE)
    augment: bool = True
    # Loaders decode and collate uint8 clips, the model resizes/crops/augments/normalises them on
    # the training device; false: the loader workers do it all (float clips), e.g. on a CPU.
    transform_in_model: bool = True
    # A frame-features folder (scl-slt extract-features): every stage trains on these stored backbone
    # features, with the backbone frozen and never run (a deviation from the paper, which fine-tunes
    # the ResNet). Names, texts and the metric language come from it; the corpus section is not read.
    # The saved model keeps its backbone and translates raw video. null: train on pixels.
    features: str | None = None


@dataclass
class StageSection:
    """One training stage's optimisation settings."""

    epochs: float = field(default=1.0, metadata=POSITIVE)
    batch_size: int = field(default=16, metadata=AT_LEAST_ONE)
    learning_rate: float = field(default=1e-4, metadata=POSITIVE)
    weight_decay: float = field(default=0.0, metadata=NON_NEGATIVE)
    warmup_ratio: float = field(default=0.0, metadata=FRACTION)
    lr_scheduler: LrScheduler = "cosine"
    gradient_accumulation_steps: int = field(default=1, metadata=AT_LEAST_ONE)
    max_grad_norm: float = field(default=1.0, metadata=POSITIVE)
    eval_batch_size: int = field(default=16, metadata=AT_LEAST_ONE)
    logging_steps: int = field(default=10, metadata=AT_LEAST_ONE)
    # the Trainer's gradient checkpointing: the mBART layers and the backbone (chunk by chunk, with
    # model.overrides.backbone_chunk_size); it needs model.overrides.freeze_batch_norm=true, except on
    # frame features (video.features), where no backbone runs
    gradient_checkpointing: bool = False


@dataclass
class ReferenceSection(StageSection):
    """Stage 0: plain contrastive run that records snapshots."""

    # by default two snapshots (Pair Selection needs 2): after epoch 5 and after epoch 10
    epochs: float = field(default=10.0, metadata=POSITIVE)
    snapshot_interval: int = field(default=5, metadata=AT_LEAST_ONE)  # epochs
    # the paper's reference run is plain in-batch CLIP ("clip"); "selective" masks identical texts
    contrastive_loss: ContrastiveLossName = "clip"


@dataclass
class PairSelectionSection:
    """Scores from the reference snapshots."""

    mode: Literal["dense", "sparse"] = "dense"
    score: Literal["delta", "slope"] = "delta"
    num_candidates: int = field(default=256, metadata=AT_LEAST_ONE)  # sparse mode
    block_size: int = field(default=512, metadata=AT_LEAST_ONE)


@dataclass
class SclSection(StageSection):
    """Stage 1: PS curriculum batches, selective contrastive + translation loss."""

    schedule: CurriculumSchedule = "log"
    log_base: float = field(default=10.0, metadata=ABOVE_ONE)
    batch_sampler: BatchSamplerName = "ps_curriculum"
    contrastive_loss: ContrastiveLossName = "selective"
    contrastive_weight: float = field(default=1.0, metadata=NON_NEGATIVE)
    translation_weight: float = field(default=1.0, metadata=NON_NEGATIVE)
    avoid_duplicate_texts: bool = True
    init_from: Literal["initial", "reference"] = "initial"
    # label smoothing of the translation cross-entropy; null: translate.label_smoothing
    label_smoothing: float | None = field(default=None, metadata=FRACTION)


@dataclass
class TranslateSection(StageSection):
    """Stage 2: translation fine-tuning from the scl model, without the text branch."""

    label_smoothing: float = field(default=0.2, metadata=FRACTION)
    num_beams: int = field(default=8, metadata=AT_LEAST_ONE)
    max_new_tokens: int = field(default=64, metadata=AT_LEAST_ONE)
    eval_every_epochs: float = field(default=1.0, metadata=POSITIVE)


@dataclass
class EvaluationSection:
    """Final evaluation."""

    num_beams: int = field(default=8, metadata=AT_LEAST_ONE)
    max_new_tokens: int = field(default=64, metadata=AT_LEAST_ONE)


@dataclass
class RecipeConfig:
    """The whole recipe: corpus → reference → scores → scl → translate → evaluation."""

    seed: int = field(default=0, metadata=SEED)
    # mixed precision of training and evaluation; auto: bf16 autocast on a GPU that supports it,
    # else fp32 (never bf16 on a CPU); resolved by stage_arguments.resolved_precision
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    # DataLoader worker processes (decoding and transforms); auto: min(8, CPU cores per process - 1),
    # resolved by stage_arguments.resolved_num_workers
    num_workers: int | Literal["auto"] = field(default=0, metadata=NON_NEGATIVE)
    # AdamW implementation (the Trainer's optim): adamw_torch_fused runs one fused kernel per step,
    # adamw_torch is torch's default (foreach kernels on CUDA, a loop over the parameters on a CPU).
    # Same updates up to float rounding. auto: adamw_torch_fused, on CUDA and on the CPU alike (torch
    # has fused kernels for both; benchmarks/RESULTS.md compares them); resolved by
    # stage_arguments.resolved_optimizer
    optimizer: Literal["auto", "adamw_torch", "adamw_torch_fused"] = "auto"
    # torch.backends.cudnn.benchmark: cuDNN times its kernels once for every new convolution shape,
    # then reuses the fastest. The backbone sees one shape per total of real frames in a batch (per
    # chunk size with model.overrides.backbone_chunk_size), so with varying clip lengths the first
    # epoch pays for many such timings. auto: on where CUDA is available (no effect on a CPU);
    # resolved by stage_arguments.resolved_cudnn_benchmark
    cudnn_benchmark: bool | Literal["auto"] = "auto"
    # torch.compile of the ResNet frame backbone only, in place (the saved model is unchanged); the
    # first step and every new frame count compile first (minutes on a CPU). Off by default
    backbone_compile: bool = False
    # Timeout of every collective (each wait for another process) of a multi-process launch, in
    # minutes. The recipe creates the process group with it (torch's default: 30 min), and it holds
    # for the whole run, the Trainer's ddp_timeout included. The longest wait left is the final
    # evaluation, which the main process runs alone (beam search over dev and test).
    distributed_timeout_minutes: float = field(default=120.0, metadata=POSITIVE)
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
        """Read and validate a config file; ``overrides`` maps dotted keys (``scl.epochs``) to values."""
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
        return validate_config(build_dataclass(cls, raw, str(path)), str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def apply_override(raw: dict, dotted: str, value: Any) -> None:
    """Set ``raw[a][b] = value`` for ``dotted == "a.b"``."""
    *sections, key = dotted.split(".")
    target = raw
    for section in sections:
        target = target.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {dotted}: {section} is not a section")
    target[key] = value


def build_dataclass(cls: type, values: dict, where: str, prefix: str = "") -> Any:
    """Instantiate ``cls`` from ``values``, checking every key and value type.

    ``where`` names the source (a file); ``prefix`` is the dotted key of this section (``"scl."``).
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.')}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        section = prefix.rstrip(".") or "top level"
        raise ConfigError(f"{where}: {section}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(
        **{name: check_value(hints[name], value, where, prefix + name) for name, value in values.items()}
    )


def check_value(hint: Any, value: Any, where: str, key: str) -> Any:
    """``value`` if it matches ``hint`` (nested dataclasses are built from mappings), else a ConfigError."""
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build_dataclass(hint, value, where, key + ".")
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return check_value(option, value, where, key)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {key}: expected {describe_type(hint)}, got {value!r}")
    if typing.get_origin(hint) is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"{where}: {key}: {value!r} is not one of {list(typing.get_args(hint))}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typing.get_origin(hint) or hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: {key}: expected {describe_type(hint)}, got {value!r}")
    return value


def describe_type(hint: Any) -> str:
    """``float or null``, ``one of ['tiny', 'small'] or int``, …"""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(describe_type(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return f"one of {list(typing.get_args(hint))}"
    if hint is type(None):
        return "null"
    hint = typing.get_origin(hint) or hint
    return "a mapping" if hint is dict else getattr(hint, "__name__", str(hint))


# --- validation -------------------------------------------------------------------------------
def validate_config(config: RecipeConfig, where: str = "recipe config") -> RecipeConfig:
    """``config`` if every value has its type, choice and range and the fields agree; else a ConfigError.

    Pure: it reads no file (:func:`check_corpus_path` checks that the corpus exists).
    """
    check_section(config, where, "")
    for rule in CROSS_FIELD_RULES:
        problem = rule(config)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    return config


def check_section(section: Any, where: str, prefix: str) -> None:
    """Check the type and bounds of every field of one section, and of its subsections."""
    hints = typing.get_type_hints(type(section))
    for item in dataclasses.fields(section):
        key, value = prefix + item.name, getattr(section, item.name)
        if dataclasses.is_dataclass(hints[item.name]) and dataclasses.is_dataclass(value):
            check_section(value, where, key + ".")
            continue
        value = check_value(hints[item.name], value, where, key)
        bounds = item.metadata.get("bounds")
        if bounds is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isnan(value) or value not in bounds:
            expected = bounds.describe(integer=isinstance(value, int))
            raise ConfigError(f"{where}: {key}: {number(value)} is out of range; expected {expected}")


def resize_not_below_image_size(config: RecipeConfig) -> str | None:
    video = config.video
    if video.resize is not None and video.resize < video.image_size:
        return (
            f"video.resize: {video.resize} is below video.image_size {video.image_size}; expected "
            f"null (no resize) or a number >= {video.image_size}"
        )
    return None


def reference_takes_two_snapshots(config: RecipeConfig) -> str | None:
    # Snapshots are taken every snapshot_interval epochs and after the last epoch.
    reference = config.reference
    if math.ceil(reference.epochs) <= reference.snapshot_interval:
        return (
            f"reference.epochs: {number(reference.epochs)} gives one snapshot at reference.snapshot_interval "
            f"{reference.snapshot_interval}; Pair Selection needs 2: expected reference.epochs > "
            "reference.snapshot_interval"
        )
    return None


def model_fields_not_overridden_twice(config: RecipeConfig) -> str | None:
    # A model-section field that is also a SclSltConfig field is set there, not in overrides.
    twice = sorted(set(config.model.overrides) & {"backbone_channels_last"})
    if twice:
        key = twice[0]
        return f"model.overrides.{key}: set model.{key} instead (it is a field of the model section)"
    if "backbone_checkpointing" in config.model.overrides:
        return (
            "model.overrides.backbone_checkpointing: not a model field; set <stage>.gradient_checkpointing="
            "true (e.g. scl.gradient_checkpointing), which checkpoints the backbone and the mBART layers"
        )
    return None


def checkpointing_has_frozen_batch_norm(config: RecipeConfig) -> str | None:
    if config.video.features is not None:  # on frame features the backbone never runs
        return None
    names = ("reference", "scl", "translate")
    stages = [name for name in names if getattr(config, name).gradient_checkpointing]
    if stages and not config.model.overrides.get("freeze_batch_norm", False):
        return (
            f"{stages[0]}.gradient_checkpointing: true needs model.overrides.freeze_batch_norm: true (the "
            "backbone is checkpointed too, and recomputing a training-mode BatchNorm would update its "
            "statistics twice)"
        )
    return None


def scl_has_a_loss(config: RecipeConfig) -> str | None:
    if config.scl.contrastive_weight == 0 and config.scl.translation_weight == 0:
        return "scl.contrastive_weight and scl.translation_weight are both 0; expected at least one > 0"
    return None


def corpus_path_matches_kind(config: RecipeConfig) -> str | None:
    corpus = config.corpus
    if corpus.kind == "synthetic" and corpus.path is not None:
        return (
            f"corpus.path: {corpus.path!r} is not used by corpus.kind 'synthetic' (the run generates "
            "its corpus in its own corpus/ folder); expected null, or the kind of the corpus at that path"
        )
    if corpus.kind != "synthetic" and corpus.path is None:
        return f"corpus.path: missing; corpus.kind {corpus.kind!r} needs {corpus_path_help(corpus.kind)}"
    return None


CROSS_FIELD_RULES: tuple[Callable[[RecipeConfig], str | None], ...] = (
    corpus_path_matches_kind,
    resize_not_below_image_size,
    reference_takes_two_snapshots,
    scl_has_a_loss,
    model_fields_not_overridden_twice,
    checkpointing_has_frozen_batch_norm,
)


def corpus_path_help(kind: str) -> str:
    """What the path of a corpus of ``kind`` holds (for help texts and errors)."""
    return CORPUS_PATHS.get(kind, "an existing file or folder")


def check_corpus_path(kind: str, path: str | Path, key: str) -> Path:
    """``path`` if it exists, else a ConfigError naming ``key`` (``"config.yaml: corpus.path"``)."""
    if not Path(path).exists():
        raise ConfigError(f"{key}: {path} does not exist; expected {corpus_path_help(kind)}")
    return Path(path)
