"""The SCL training method: Pair Selection, curriculum sampling, selective contrastive loss, Trainer.

Importing this package does not import matplotlib (only the plotting function does); the
Trainer, the recipe and the metrics (which pull in ``evaluate``, ``datasets`` and the corpus
loaders) load on first access.
"""

from __future__ import annotations

import importlib

from .losses import ContrastiveLossOutput, SelectiveContrastiveLoss, false_negative_mask
from .pair_selection import (
    SparseScores,
    compute_dense_scores,
    compute_pair_scores,
    compute_sparse_scores,
    find_candidates,
    load_pair_scores,
    save_pair_scores,
)
from .sampler import (
    NoDuplicatesBatchSampler,
    PSCurriculumBatchSampler,
    RandomBatchSampler,
    batch_score,
    curriculum_alpha,
    text_group_ids,
)
from .snapshots import (
    SimilaritySeries,
    Snapshot,
    SnapshotSimilaritySeries,
    TensorSimilaritySeries,
    load_snapshot,
    load_snapshot_series,
    pad_and_concatenate,
    save_snapshot,
    snapshot_filename,
)
from .trajectories import TrajectoryReport, analyze_trajectories, plot_trajectories, write_trajectory_report

# Heavy imports resolve on first access (PEP 562): name → submodule.
_LAZY_NAMES = {
    "SIGN_TRANSLATION_METRIC_PATH": ".metrics",
    "compute_translation_metrics": ".metrics",
    "sign_translation_metric_path": ".metrics",
    "SclSltTrainer": ".trainer",
    "SclSltTrainingArguments": ".trainer",
    "RecipeConfig": ".recipe_config",
    "run_recipe": ".recipe",
    "train_tokenizer": ".tokenization",
    "build_model_card": ".model_card",
    "apply_lora": ".lora",
    "paper_lora_config": ".lora",
    "trim_vocabulary": ".vocabulary",
    "write_model_card": ".model_card",
    "config_for_tokenizer": ".tokenization",
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
