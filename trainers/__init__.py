"""SCL-SLT training, in subpackages by job:

- ``trainers.method``: the SCL method (snapshots and similarity series, trajectories, Pair
  Selection, batch samplers, selective contrastive loss); it imports nothing below;
- ``trainers.training``: ``SclSltTrainer``, its arguments, LoRA;
- ``trainers.metrics``: BLEU-1..4 and ROUGE-L (also an offline ``evaluate`` module);
- ``trainers.application``: the recipe and its config, CLI, demo, evaluation, tokenization,
  vocabulary trimming;
- ``trainers.publishing``: model cards and Hub uploads.

Every name of ``__all__`` is importable from ``trainers`` directly. Importing this package imports
nothing heavy (the ``scl-slt`` command line starts from it): each name is imported from its module
on first access (PEP 562), as transformers does; type checkers and IDEs read the imports of the
``TYPE_CHECKING`` block.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name → the module that defines it
_NAME_MODULES = {
    "ContrastiveLossOutput": ".method.losses",
    "SelectiveContrastiveLoss": ".method.losses",
    "false_negative_mask": ".method.losses",
    "SparseScores": ".method.pair_selection",
    "compute_dense_scores": ".method.pair_selection",
    "compute_pair_scores": ".method.pair_selection",
    "compute_sparse_scores": ".method.pair_selection",
    "find_candidates": ".method.pair_selection",
    "load_pair_scores": ".method.pair_selection",
    "save_pair_scores": ".method.pair_selection",
    "NoDuplicatesBatchSampler": ".method.sampler",
    "PSCurriculumBatchSampler": ".method.sampler",
    "RandomBatchSampler": ".method.sampler",
    "batch_score": ".method.sampler",
    "curriculum_alpha": ".method.sampler",
    "SimilaritySeries": ".method.similarity_series",
    "SnapshotSimilaritySeries": ".method.similarity_series",
    "TensorSimilaritySeries": ".method.similarity_series",
    "Snapshot": ".method.snapshots",
    "load_snapshot": ".method.snapshots",
    "load_snapshot_series": ".method.snapshots",
    "pad_and_concatenate": ".method.snapshots",
    "save_snapshot": ".method.snapshots",
    "snapshot_filename": ".method.snapshots",
    "text_group_ids": ".method.text_groups",
    "tight_threshold": ".method.text_groups",
    "TrajectoryReport": ".method.trajectories",
    "analyze_trajectories": ".method.trajectories",
    "plot_trajectories": ".method.trajectories",
    "write_trajectory_report": ".method.trajectories",
    "SIGN_TRANSLATION_METRIC_PATH": ".metrics",
    "compute_translation_metrics": ".metrics.sign_translation_metric",
    "sign_translation_metric_path": ".metrics",
    "SclSltTrainingArguments": ".training.arguments",
    "apply_lora": ".training.lora",
    "paper_lora_config": ".training.lora",
    "SclSltTrainer": ".training.trainer",
    "run_recipe": ".application.recipe",
    "RecipeConfig": ".application.recipe_config",
    "config_for_tokenizer": ".application.tokenization",
    "train_tokenizer": ".application.tokenization",
    "trim_vocabulary": ".application.vocabulary",
    "build_model_card": ".publishing.model_card",
    "write_model_card": ".publishing.model_card",
}

__all__ = [
    "SIGN_TRANSLATION_METRIC_PATH",
    "ContrastiveLossOutput",
    "NoDuplicatesBatchSampler",
    "PSCurriculumBatchSampler",
    "RandomBatchSampler",
    "RecipeConfig",
    "SclSltTrainer",
    "SclSltTrainingArguments",
    "SelectiveContrastiveLoss",
    "SimilaritySeries",
    "Snapshot",
    "SnapshotSimilaritySeries",
    "SparseScores",
    "TensorSimilaritySeries",
    "TrajectoryReport",
    "analyze_trajectories",
    "apply_lora",
    "batch_score",
    "build_model_card",
    "compute_dense_scores",
    "compute_pair_scores",
    "compute_sparse_scores",
    "compute_translation_metrics",
    "config_for_tokenizer",
    "curriculum_alpha",
    "false_negative_mask",
    "find_candidates",
    "load_pair_scores",
    "load_snapshot",
    "load_snapshot_series",
    "pad_and_concatenate",
    "paper_lora_config",
    "plot_trajectories",
    "run_recipe",
    "save_pair_scores",
    "save_snapshot",
    "sign_translation_metric_path",
    "snapshot_filename",
    "text_group_ids",
    "tight_threshold",
    "train_tokenizer",
    "trim_vocabulary",
    "write_model_card",
    "write_trajectory_report",
]

if TYPE_CHECKING:
    from .application.recipe import run_recipe
    from .application.recipe_config import RecipeConfig
    from .application.tokenization import config_for_tokenizer, train_tokenizer
    from .application.vocabulary import trim_vocabulary
    from .method.losses import ContrastiveLossOutput, SelectiveContrastiveLoss, false_negative_mask
    from .method.pair_selection import (
        SparseScores,
        compute_dense_scores,
        compute_pair_scores,
        compute_sparse_scores,
        find_candidates,
        load_pair_scores,
        save_pair_scores,
    )
    from .method.sampler import (
        NoDuplicatesBatchSampler,
        PSCurriculumBatchSampler,
        RandomBatchSampler,
        batch_score,
        curriculum_alpha,
    )
    from .method.similarity_series import SimilaritySeries, SnapshotSimilaritySeries, TensorSimilaritySeries
    from .method.snapshots import (
        Snapshot,
        load_snapshot,
        load_snapshot_series,
        pad_and_concatenate,
        save_snapshot,
        snapshot_filename,
    )
    from .method.text_groups import text_group_ids, tight_threshold
    from .method.trajectories import (
        TrajectoryReport,
        analyze_trajectories,
        plot_trajectories,
        write_trajectory_report,
    )
    from .metrics import SIGN_TRANSLATION_METRIC_PATH, sign_translation_metric_path
    from .metrics.sign_translation_metric import compute_translation_metrics
    from .publishing.model_card import build_model_card, write_model_card
    from .training.arguments import SclSltTrainingArguments
    from .training.lora import apply_lora, paper_lora_config
    from .training.trainer import SclSltTrainer


def __getattr__(name: str) -> Any:
    if name not in _NAME_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAME_MODULES[name], __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
