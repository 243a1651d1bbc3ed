"""`SclSltTrainingArguments` and the typed choices of its fields.

Every field has a type that ``transformers.HfArgumentParser`` turns into a command-line option:
enums and ``Literal`` choices become ``choices=``. In Python, ``batch_sampler`` and
``contrastive_loss`` also take a class or a callable (see their help).
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import torch
from torch import nn
from torch.utils.data import Sampler
from transformers import Seq2SeqTrainingArguments

from ..method.losses import ContrastiveLossOutput
from ..method.sampler import ScheduleName

StageName = Literal["reference", "scl", "translate"]
STAGE_NAMES: tuple[str, ...] = typing.get_args(StageName)


class BatchSamplers(StrEnum):
    """The built-in batch samplers (``trainers.method.sampler``); ``AUTO`` is the stage's default."""

    AUTO = "auto"
    RANDOM = "random"
    NO_DUPLICATES = "no_duplicates"
    PS_CURRICULUM = "ps_curriculum"


class ContrastiveLosses(StrEnum):
    """The built-in contrastive losses: in-batch CLIP with identical texts masked, or plain CLIP.

    ``AUTO`` is the stage's default: plain CLIP in stage reference (the paper's trajectories come
    from plain in-batch CLIP), selective in stage scl.
    """

    AUTO = "auto"
    SELECTIVE = "selective"
    CLIP = "clip"


# A name (what a command line gives) or, in Python, a class or callable. HfArgumentParser keeps the
# enum of such a union, so the command line offers the names as choices.
BatchSamplerChoice = BatchSamplers | str | type[Sampler] | Callable[..., Sampler]
ContrastiveLossChoice = ContrastiveLosses | str | type[nn.Module] | Callable[..., ContrastiveLossOutput]


@dataclass
class SclSltTrainingArguments(Seq2SeqTrainingArguments):
    """`Seq2SeqTrainingArguments` plus the SCL-SLT stage settings.

    ``remove_unused_columns`` defaults to False: the collator needs the corpus columns
    (``frames``, ``text``) that the model's ``forward`` does not name.
    """

    stage: StageName = field(
        default="scl",
        metadata={"help": "reference (contrastive only), scl (PS batches + both losses) or translate."},
    )
    batch_sampler: BatchSamplerChoice = field(
        default=BatchSamplers.AUTO,
        metadata={
            "help": "auto (reference: random, scl: ps_curriculum, translate: the Trainer's own), random, "
            "no_duplicates, ps_curriculum; in Python also a Sampler class (built from the keyword "
            "arguments it names) or a callable trainer -> batch sampler."
        },
    )
    contrastive_loss: ContrastiveLossChoice = field(
        default=ContrastiveLosses.AUTO,
        metadata={
            "help": "auto (reference: clip, scl: selective), selective (identical texts masked) or clip "
            "(no masking); in Python also an nn.Module "
            "class or a callable (similarity_v2t, similarity_t2v, group_ids, logit_scale) -> "
            "ContrastiveLossOutput."
        },
    )
    contrastive_weight: float = field(default=1.0, metadata={"help": "Weight of the contrastive loss."})
    translation_weight: float = field(default=1.0, metadata={"help": "Weight of the translation loss."})
    max_logit_scale: float = field(default=100.0, metadata={"help": "Clamp of the learnable logit scale."})
    curriculum_schedule: ScheduleName = field(
        default="log", metadata={"help": "PS curriculum: log, linear, sqrt, easy or hard."}
    )
    curriculum_log_base: float = field(default=10.0, metadata={"help": "Base b of the log schedule."})
    avoid_duplicate_texts: bool = field(
        default=True, metadata={"help": "Keep identical target texts out of one batch (text-aware samplers)."}
    )
    pair_selection_scores: str | None = field(
        default=None, metadata={"help": "safetensors file of Pair Selection scores (stage scl)."}
    )
    snapshot_interval: int = field(
        default=5, metadata={"help": "Reference stage: snapshot every this many epochs (and at the end)."}
    )
    snapshot_dir: str | None = field(
        default=None, metadata={"help": "Where reference snapshots go (default: output_dir/snapshots)."}
    )
    metric_language: str = field(
        default="de", metadata={"help": "BLEU tokenisation: 13a for de/en/..., characters for zh."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep corpus columns for the collator."}
    )
    cudnn_benchmark: bool = field(
        default=False,
        metadata={
            "help": "Set torch.backends.cudnn.benchmark (cuDNN autotunes each new convolution shape once, "
            "then reuses the fastest kernel); False leaves torch's setting as it is. GPU only."
        },
    )
    backbone_compile: bool = field(
        default=False,
        metadata={
            "help": "torch.compile the ResNet frame backbone only, in place (parameter names and saved "
            "files unchanged). The first step and new frame counts compile first (minutes on a CPU)."
        },
    )

    @property
    def device(self) -> torch.device:
        """This process's device; a CPU device never carries an index.

        On a multi-process CPU run (gloo) accelerate names the device ``cpu:<rank>``. Transformers
        before 5.18 maps a resumed checkpoint's optimizer state to ``args.device``, and torch cannot
        restore storages to an indexed CPU device, so every rank failed to resume.
        """
        device = super().device
        return torch.device("cpu") if device.type == "cpu" else device
