"""The SCL method, usable inside any training loop: no Trainer, recipe or publishing code.

Snapshots of the reference run and their similarity series (with the fused CiCo kernels), the
trajectory analysis, Pair Selection scores (dense or over sparse candidates), the curriculum and
baseline batch samplers, and the selective contrastive loss. It imports torch, numpy,
safetensors and ``modeling_scl_slt`` only (matplotlib on plotting).
"""

from __future__ import annotations

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
)
from .similarity_series import SimilaritySeries, SnapshotSimilaritySeries, TensorSimilaritySeries
from .snapshots import (
    Snapshot,
    load_snapshot,
    load_snapshot_series,
    pad_and_concatenate,
    save_snapshot,
    snapshot_filename,
)
from .text_groups import text_group_ids, tight_threshold
from .trajectories import TrajectoryReport, analyze_trajectories, plot_trajectories, write_trajectory_report

__all__ = [
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
    "snapshot_filename",
    "text_group_ids",
    "tight_threshold",
    "write_trajectory_report",
]
