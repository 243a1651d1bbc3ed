"""The SCL training method: Pair Selection, curriculum sampling, selective contrastive loss, Trainer.

Importing this package does not import matplotlib (only the plotting function does) nor
``evaluate`` (the metric names below are loaded on first access).
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

# ``evaluate`` takes seconds to import: the metric names resolve lazily (PEP 562).
_LAZY_METRIC_NAMES = (
    "SIGN_TRANSLATION_METRIC_PATH",
    "compute_translation_metrics",
    "sign_translation_metric_path",
)


def __getattr__(name: str):
    if name in _LAZY_METRIC_NAMES:
        return getattr(importlib.import_module(".metrics", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SIGN_TRANSLATION_METRIC_PATH",
    "ContrastiveLossOutput",
    "NoDuplicatesBatchSampler",
    "PSCurriculumBatchSampler",
    "RandomBatchSampler",
    "SelectiveContrastiveLoss",
    "SimilaritySeries",
    "Snapshot",
    "SnapshotSimilaritySeries",
    "SparseScores",
    "TensorSimilaritySeries",
    "TrajectoryReport",
    "analyze_trajectories",
    "batch_score",
    "compute_dense_scores",
    "compute_pair_scores",
    "compute_sparse_scores",
    "compute_translation_metrics",
    "curriculum_alpha",
    "false_negative_mask",
    "find_candidates",
    "load_pair_scores",
    "load_snapshot",
    "load_snapshot_series",
    "pad_and_concatenate",
    "plot_trajectories",
    "save_pair_scores",
    "save_snapshot",
    "sign_translation_metric_path",
    "snapshot_filename",
    "text_group_ids",
    "write_trajectory_report",
]
