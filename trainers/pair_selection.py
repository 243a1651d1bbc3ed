"""Pair Selection scores: how the similarity of every negative pair moved during the reference run.

For video i and a non-matching text j the score is (method.md, "Pair Selection"):

* ``score="delta"`` (default): ``delta(i, j) = s_last(V_i, T_j) − s_first(V_i, T_j)``, the change
  between the first and the last snapshot. Negative: pushed apart (easy); positive: drifted
  together (hard).
* ``score="slope"``: the least-squares slope of ``s_k(V_i, T_j)`` against the snapshot positions
  ``x_k`` (their epochs when snapshots are used, else 0..S−1), in similarity per unit of x.
  Intermediate snapshots enter; the sampler is invariant to a positive rescaling, so the unit
  does not matter there.

Two storage modes, both computed block by block with bounded memory:

* dense (:func:`compute_dense_scores`): an exact ``(N, N)`` float32 tensor; the diagonal (the
  positive pairs, which have no negative score) is set to 0. Memory ``4·N²`` bytes + one block.
* sparse (:func:`compute_sparse_scores`): per sample i, the ``M`` candidates j ≠ i with the
  highest symmetric pooled similarity ``½(s(V_i,T_j) + s(V_j,T_i))`` at the LAST snapshot (mean
  pooling for CiCo token snapshots, the snapshots' own pooling otherwise; exact blocked top-M
  search), with ``delta(i, j)`` and ``delta(j, i)`` computed by the configured similarity.
  Every other pair is treated as score 0 ("did not move"). Rationale: pairs that end up
  similar are the ones the curriculum must schedule (hard negatives and false negatives);
  pairs that end far apart are approximated as neutral. Memory ``O(N·M)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .snapshots import SimilaritySeries, Snapshot, as_similarity_series

ScoreKind = Literal["delta", "slope"]
SCORE_KINDS = ("delta", "slope")


@dataclass
class SparseScores:
    """Pair Selection scores of the top-M candidates of every sample.

    Attributes:
        indices: (N, M) long, candidate text/video indices j of sample i (never i itself).
        scores: (N, M) float32, ``delta(i, indices[i, m])``.
        reverse_scores: (N, M) float32, ``delta(indices[i, m], i)``.
    """

    indices: torch.Tensor
    scores: torch.Tensor
    reverse_scores: torch.Tensor

    def __post_init__(self) -> None:
        if (
            not (self.indices.shape == self.scores.shape == self.reverse_scores.shape)
            or self.indices.dim() != 2
        ):
            raise ValueError(
                f"indices, scores and reverse_scores must share one (N, M) shape, got "
                f"{tuple(self.indices.shape)}, {tuple(self.scores.shape)}, "
                f"{tuple(self.reverse_scores.shape)}."
            )

    @property
    def num_samples(self) -> int:
        return self.indices.shape[0]

    def to_dense(self) -> torch.Tensor:
        """(N, N) float32 delta matrix with 0 for every pair that is not a candidate (either way)."""
        n = self.num_samples
        dense = torch.zeros(n, n, dtype=torch.float32)
        rows = torch.arange(n).unsqueeze(1).expand_as(self.indices)
        dense[rows, self.indices] = self.scores.float()
        dense[self.indices, rows] = self.reverse_scores.float()
        return dense

    def symmetric_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Undirected pair weights ``w(i, j) = delta(i, j) + delta(j, i)`` in CSR form, both directions.

        Returns ``row_offsets`` (N+1,), ``columns`` (E,) and ``weights`` (E,): the neighbours of i are
        ``columns[row_offsets[i]:row_offsets[i+1]]``. A pair that is a candidate of both its
        samples appears once per direction.
        """
        n, m = self.indices.shape
        rows = torch.arange(n).repeat_interleave(m)
        cols = self.indices.reshape(-1)
        weights = (self.scores + self.reverse_scores).reshape(-1).float()
        low, high = torch.minimum(rows, cols), torch.maximum(rows, cols)
        keys, first = unique_first(low * n + high)
        low, high, weights = keys // n, keys % n, weights[first]
        both_rows, both_cols = torch.cat([low, high]), torch.cat([high, low])
        both_weights = torch.cat([weights, weights])
        order = torch.argsort(both_rows * n + both_cols)
        row_offsets = torch.zeros(n + 1, dtype=torch.long)
        row_offsets[1:] = torch.cumsum(torch.bincount(both_rows, minlength=n), dim=0)
        return row_offsets, both_cols[order], both_weights[order]


def unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and, for each, the position of one occurrence in ``keys``."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    first = torch.empty(unique.shape[0], dtype=torch.long)
    first.scatter_(0, inverse, torch.arange(keys.shape[0]))
    return unique, first


def slope_weights(positions: torch.Tensor) -> torch.Tensor:
    """(S,) weights ``w_k`` with ``slope = Σ_k w_k·s_k`` for least squares against ``positions``."""
    centred = positions - positions.mean()
    denominator = (centred**2).sum()
    if denominator == 0:
        raise ValueError("The slope needs at least two snapshots at different positions.")
    return centred / denominator


def check_series(series: SimilaritySeries, score: str) -> None:
    if score not in SCORE_KINDS:
        raise ValueError(f"score must be one of {SCORE_KINDS}, got {score!r}")
    if series.num_snapshots < 2:
        raise ValueError(f"Pair Selection needs at least 2 snapshots, got {series.num_snapshots}.")


def score_block(
    series: SimilaritySeries, rows: torch.Tensor, cols: torch.Tensor, score: ScoreKind
) -> torch.Tensor:
    """Scores of videos ``rows`` × texts ``cols`` → (r, c) float32, one snapshot block at a time."""
    if score == "delta":
        return series.block(series.num_snapshots - 1, rows, cols) - series.block(0, rows, cols)
    weights = slope_weights(series.positions).float()
    total = torch.zeros(len(rows), len(cols), dtype=torch.float32)
    for k in range(series.num_snapshots):
        total += weights[k] * series.block(k, rows, cols)
    return total


def score_pairs(
    series: SimilaritySeries, video_indices: torch.Tensor, text_indices: torch.Tensor, score: ScoreKind
) -> torch.Tensor:
    """Scores of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32."""
    if score == "delta":
        last = series.pairs(series.num_snapshots - 1, video_indices, text_indices)
        return last - series.pairs(0, video_indices, text_indices)
    weights = slope_weights(series.positions).float()
    total = torch.zeros(video_indices.shape[0], dtype=torch.float32)
    for k in range(series.num_snapshots):
        total += weights[k] * series.pairs(k, video_indices, text_indices)
    return total


def compute_dense_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    score: ScoreKind = "delta",
    block_size: int = 512,
    **series_kwargs,
) -> torch.Tensor:
    """Exact (N, N) float32 Pair Selection scores; entry (i, j) scores video i with text j.

    Args:
        source: A :class:`SimilaritySeries`, an (S, N, N) similarity tensor or snapshots sorted
            by epoch.
        score: ``"delta"`` (last − first) or ``"slope"`` (least squares over all snapshots).
        block_size: Rows computed at once; peak extra memory is about ``block_size · N`` floats
            per snapshot block (plus CiCo tiles inside the series).
        **series_kwargs: Passed to the series built from ``source`` (e.g. ``aggregation``).

    Returns:
        (N, N) float32 with a zero diagonal.
    """
    series = as_similarity_series(source, **series_kwargs)
    check_series(series, score)
    n = series.num_samples
    all_cols = torch.arange(n)
    dense = torch.empty(n, n, dtype=torch.float32)
    for start in range(0, n, block_size):
        rows = torch.arange(start, min(start + block_size, n))
        dense[rows] = score_block(series, rows, all_cols, score)
    dense.fill_diagonal_(0.0)
    return dense


def find_candidates(series: SimilaritySeries, num_candidates: int, block_size: int = 512) -> torch.Tensor:
    """(N, M) long: for every i, the M samples j ≠ i with the highest ``series.candidate_block`` score.

    Exact top-M, computed on row blocks; ties are broken towards the lower index.
    """
    n = series.num_samples
    if not 1 <= num_candidates <= n - 1:
        raise ValueError(f"num_candidates must be between 1 and N-1 = {n - 1}, got {num_candidates}.")
    all_cols = torch.arange(n)
    indices = torch.empty(n, num_candidates, dtype=torch.long)
    for start in range(0, n, block_size):
        rows = torch.arange(start, min(start + block_size, n))
        similarity = series.candidate_block(rows, all_cols)  # (r, N)
        similarity[torch.arange(len(rows)), rows] = float("-inf")  # never its own positive
        indices[rows] = torch.topk(similarity, num_candidates, dim=1, sorted=True).indices
    return indices


def compute_sparse_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    num_candidates: int = 256,
    score: ScoreKind = "delta",
    block_size: int = 512,
    **series_kwargs,
) -> SparseScores:
    """Pair Selection scores of each sample's top-``num_candidates`` candidates (see module doc).

    Memory is O(N · num_candidates) plus one ``block_size × N`` block of the candidate search.
    """
    series = as_similarity_series(source, **series_kwargs)
    check_series(series, score)
    indices = find_candidates(series, num_candidates, block_size)  # (N, M)
    n, m = indices.shape
    rows = torch.arange(n).repeat_interleave(m)  # (N·M,)
    cols = indices.reshape(-1)
    forward = score_pairs(series, rows, cols, score).reshape(n, m)
    backward = score_pairs(series, cols, rows, score).reshape(n, m)
    return SparseScores(indices=indices, scores=forward, reverse_scores=backward)


def compute_pair_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    mode: Literal["dense", "sparse"] = "dense",
    score: ScoreKind = "delta",
    num_candidates: int = 256,
    block_size: int = 512,
    **series_kwargs,
) -> torch.Tensor | SparseScores:
    """Dense or sparse Pair Selection scores, as configured (one entry point for the recipe)."""
    if mode == "dense":
        return compute_dense_scores(source, score=score, block_size=block_size, **series_kwargs)
    if mode == "sparse":
        return compute_sparse_scores(source, num_candidates, score, block_size, **series_kwargs)
    raise ValueError(f"mode must be 'dense' or 'sparse', got {mode!r}")


def save_pair_scores(
    scores: torch.Tensor | SparseScores, path: str | Path, metadata: dict | None = None
) -> Path:
    """Write dense or sparse scores to a safetensors file (string ``metadata`` in its header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(scores, SparseScores):
        tensors = {
            "indices": scores.indices.contiguous(),
            "scores": scores.scores.contiguous(),
            "reverse_scores": scores.reverse_scores.contiguous(),
        }
    else:
        tensors = {"dense": scores.contiguous()}
    header = {key: str(value) for key, value in (metadata or {}).items()}
    save_file(tensors, str(path), metadata=header)
    return path


def load_pair_scores(path: str | Path) -> torch.Tensor | SparseScores:
    """Read what :func:`save_pair_scores` wrote."""
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    if "dense" in tensors:
        return tensors["dense"]
    return SparseScores(**tensors)
