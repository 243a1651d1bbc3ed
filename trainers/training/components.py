"""The pluggable parts of `SclSltTrainer` named by its arguments: the contrastive loss and the batch samplers.

The trainer builds its batch sampler itself from :data:`BATCH_SAMPLERS`
(:meth:`~trainers.training.trainer.SclSltTrainer.build_batch_sampler`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Sampler

from ..method.losses import ContrastiveLossOutput, SelectiveContrastiveLoss
from ..method.sampler import NoDuplicatesBatchSampler, PSCurriculumBatchSampler, RandomBatchSampler
from .arguments import BatchSamplers, ContrastiveLosses, SclSltTrainingArguments
from .stages import Stage

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


def training_sample_ids(dataset: Any) -> list:
    """The ids the reference snapshots give the training samples: the ``name`` column, else indices."""
    names = getattr(dataset, "column_names", None) or []
    return list(dataset["name"]) if "name" in names else list(range(len(dataset)))
