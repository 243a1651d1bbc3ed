"""The pluggable parts of `SclSltTrainer`, built from its arguments: contrastive loss and batch sampler."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Sampler

from ..method.losses import ContrastiveLossOutput, SelectiveContrastiveLoss
from ..method.pair_selection import SparseScores, load_pair_scores
from ..method.sampler import NoDuplicatesBatchSampler, PSCurriculumBatchSampler, RandomBatchSampler
from .arguments import BatchSamplers, ContrastiveLosses, SclSltTrainingArguments
from .stages import Stage

if TYPE_CHECKING:
    from .trainer import SclSltTrainer

BATCH_SAMPLERS: dict[BatchSamplers, type[Sampler]] = {
    BatchSamplers.RANDOM: RandomBatchSampler,
    BatchSamplers.NO_DUPLICATES: NoDuplicatesBatchSampler,
    BatchSamplers.PS_CURRICULUM: PSCurriculumBatchSampler,
}


def build_contrastive_loss(
    args: SclSltTrainingArguments, stage: Stage
) -> Callable[..., ContrastiveLossOutput] | None:
    """``args.contrastive_loss``: a :class:`ContrastiveLosses` name, an ``nn.Module`` class or a callable.

    ``auto`` is the stage's default; None for a stage without a contrastive loss.
    """
    choice = args.contrastive_loss
    if isinstance(choice, str):
        if choice not in list(ContrastiveLosses):
            names = [loss.value for loss in ContrastiveLosses]
            raise ValueError(
                f"contrastive_loss must be one of {names}, a class or a callable, got {choice!r}"
            )
        choice = ContrastiveLosses(choice)
        if choice is ContrastiveLosses.AUTO:
            choice = stage.default_contrastive_loss
        if choice is None:
            return None
        return SelectiveContrastiveLoss(
            learnable_logit_scale=False,  # the model owns the learnable scale
            max_logit_scale=args.max_logit_scale,
            mask_false_negatives=choice is ContrastiveLosses.SELECTIVE,
        )
    if isinstance(choice, type):
        return choice()
    if callable(choice):
        return choice
    raise ValueError(f"contrastive_loss must be a loss name, a class or a callable, got {choice!r}")


def build_batch_sampler(trainer: SclSltTrainer) -> Sampler[list[int]] | None:
    """``args.batch_sampler`` for the trainer's stage, or None for the Trainer's own random sampler.

    A :class:`BatchSamplers` name (``auto``: the stage's default), a ``Sampler`` class (built from
    the keyword arguments its ``__init__`` names) or a callable ``trainer -> batch sampler``.
    """
    choice = trainer.args.batch_sampler
    if isinstance(choice, str):
        if choice not in list(BatchSamplers):
            names = [sampler.value for sampler in BatchSamplers]
            raise ValueError(f"batch_sampler must be one of {names}, got {choice!r}")
        choice = BatchSamplers(choice)
        if choice is BatchSamplers.AUTO:
            choice = trainer.stage.default_batch_sampler
        if choice is None:
            return None
        choice = BATCH_SAMPLERS[choice]
    if isinstance(choice, type):
        return choice(**sampler_kwargs(trainer, choice))
    return choice(trainer)


def sampler_kwargs(trainer: SclSltTrainer, sampler_class: type) -> dict[str, Any]:
    """The keyword arguments ``sampler_class`` names, from the training set and the args."""
    args, dataset = trainer.args, trainer.train_dataset
    accepted = inspect.signature(sampler_class.__init__).parameters
    available: dict[str, Any] = {
        "num_samples": len(dataset),
        "batch_size": args.per_device_train_batch_size,
        "num_epochs": max(1, math.ceil(args.num_train_epochs)),
        "schedule": args.curriculum_schedule,
        "log_base": args.curriculum_log_base,
        "avoid_duplicate_texts": args.avoid_duplicate_texts,
        "seed": args.seed,
        "drop_last": args.dataloader_drop_last,
    }
    if "texts" in accepted:
        names = getattr(dataset, "column_names", None) or []
        available["texts"] = list(dataset["text"]) if "text" in names else None
    if "scores" in accepted:
        available["scores"] = training_scores(trainer)
    return {name: value for name, value in available.items() if name in accepted}


def training_scores(trainer: SclSltTrainer) -> torch.Tensor | SparseScores:
    """The Pair Selection scores of the training set: given to the trainer or read from the args' file.

    Scores read from a file are matched to the training set by sample name (see
    :func:`~trainers.method.pair_selection.load_pair_scores`); scores given as tensors carry no
    names, so only their count is checked.
    """
    scores = trainer.pair_selection_scores
    if scores is None and trainer.args.pair_selection_scores:
        # reordered to the training set's order, or refused when they belong to other samples
        scores = load_pair_scores(
            trainer.args.pair_selection_scores, sample_ids=training_sample_ids(trainer.train_dataset)
        )
    if scores is None:
        raise ValueError(
            "the ps_curriculum sampler needs Pair Selection scores: pass pair_selection_scores= to "
            "SclSltTrainer or set args.pair_selection_scores to a scores file"
        )
    count = scores.num_samples if isinstance(scores, SparseScores) else scores.shape[0]
    num_train = len(trainer.train_dataset)
    if count != num_train:
        raise ValueError(f"Pair Selection scores cover {count} samples but the training set has {num_train}")
    return scores


def training_sample_ids(dataset: Any) -> list:
    """The ids the reference snapshots give the training samples: the ``name`` column, else indices."""
    names = getattr(dataset, "column_names", None) or []
    return list(dataset["name"]) if "name" in names else list(range(len(dataset)))
