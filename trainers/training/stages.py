"""The three SCL-SLT training stages as data: what each one trains and how it is evaluated.

The Trainer and the recipe read a stage's fields instead of branching on its name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arguments import BatchSamplers, ContrastiveLosses, StageName


@dataclass(frozen=True)
class Stage:
    """One training stage.

    Args:
        name: ``reference``, ``scl`` or ``translate``.
        translation_loss: Whether the translation cross-entropy is trained (weight
            ``args.translation_weight``).
        contrastive_loss: Whether the contrastive loss is trained (weight ``args.contrastive_weight``);
            the batches then need the text branch's inputs.
        default_batch_sampler: The sampler ``batch_sampler="auto"`` picks; ``None`` is the Trainer's
            own random sampler.
        default_contrastive_loss: The loss ``contrastive_loss="auto"`` picks (``None`` without a
            contrastive loss).
        takes_snapshots: Whether the reference snapshots are saved (``ReferenceSnapshotCallback``).
        evaluates_by_generation: Evaluation generates and scores BLEU/ROUGE; otherwise it measures
            video↔text retrieval.
        reports_retrieval: The recipe evaluates dev retrieval once the stage is trained (its
            ``DONE`` record and ``metrics.json``).
    """

    name: StageName
    translation_loss: bool
    contrastive_loss: bool
    default_batch_sampler: BatchSamplers | None
    default_contrastive_loss: ContrastiveLosses | None = None
    takes_snapshots: bool = False
    evaluates_by_generation: bool = False
    reports_retrieval: bool = False


STAGES: dict[str, Stage] = {
    "reference": Stage(
        "reference",
        translation_loss=False,
        contrastive_loss=True,
        default_batch_sampler=BatchSamplers.RANDOM,
        default_contrastive_loss=ContrastiveLosses.CLIP,
        takes_snapshots=True,
    ),
    "scl": Stage(
        "scl",
        translation_loss=True,
        contrastive_loss=True,
        default_batch_sampler=BatchSamplers.PS_CURRICULUM,
        default_contrastive_loss=ContrastiveLosses.SELECTIVE,
        reports_retrieval=True,
    ),
    "translate": Stage(
        "translate",
        translation_loss=True,
        contrastive_loss=False,
        default_batch_sampler=None,
        evaluates_by_generation=True,
    ),
}


def get_stage(name: str) -> Stage:
    """The stage called ``name``; a clear error for anything else."""
    if name not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {name!r}")
    return STAGES[name]
