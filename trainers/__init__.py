"""SCL-SLT training, in subpackages by job:

- ``trainers.method``: the SCL method (snapshots and similarity series, trajectories, Pair
  Selection, batch samplers, selective contrastive loss); it imports nothing below;
- ``trainers.training``: ``SclSltTrainer``, its arguments, LoRA;
- ``trainers.metrics``: BLEU-1..4 and ROUGE-L (also an offline ``evaluate`` module);
- ``trainers.application``: the recipe and its config, CLI, demo, evaluation, tokenization,
  vocabulary trimming;
- ``trainers.publishing``: model cards and Hub uploads.

Every name below is importable from ``trainers`` directly. Importing this package does not import
matplotlib (only the plotting function does); the Trainer, the recipe and the metrics (which pull
in ``evaluate``, ``datasets`` and the corpus loaders) load on first access.
"""

from __future__ import annotations

import importlib

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
    text_group_ids,
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
from .method.trajectories import (
    TrajectoryReport,
    analyze_trajectories,
    plot_trajectories,
    write_trajectory_report,
)

# Heavy imports resolve on first access (PEP 562): name → submodule.
_LAZY_NAMES = {
    "SIGN_TRANSLATION_METRIC_PATH": ".metrics",
    "compute_translation_metrics": ".metrics",
    "sign_translation_metric_path": ".metrics",
    "SclSltTrainer": ".training.trainer",
    "SclSltTrainingArguments": ".training.trainer",
    "RecipeConfig": ".application.recipe_config",
    "run_recipe": ".application.recipe",
    "train_tokenizer": ".application.tokenization",
    "build_model_card": ".publishing.model_card",
    "apply_lora": ".training.lora",
    "paper_lora_config": ".training.lora",
    "trim_vocabulary": ".application.vocabulary",
    "write_model_card": ".publishing.model_card",
    "config_for_tokenizer": ".application.tokenization",
}


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "train_tokenizer",
    "trim_vocabulary",
    "write_model_card",
    "write_trajectory_report",
]
