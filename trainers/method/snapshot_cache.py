"""Per-snapshot tensors on the compute device, prepared once and kept, and row gathering from them.

:class:`SnapshotCache` is what :class:`~trainers.method.similarity_series.SnapshotSimilaritySeries`
reads its snapshots through: pooled vectors, token tensors, token counts and the augmented text
rows of the fused CiCo kernel (:mod:`trainers.method.cico_kernels`), each built on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from .cico_kernels import Direction, augment_text_tokens, mean_weights

if TYPE_CHECKING:
    from .snapshots import Snapshot


class SnapshotCache:
    """Device copies of a series' snapshot tensors, built on first use and kept.

    Args:
        snapshots: The snapshots of the series, in order.
        device: Where tensors are copied (in their stored dtype) and rows are prepared.
        temperature: CiCo temperature the augmented text rows are prepared with.
        direction: CiCo direction, which decides the text-side mean weights (or None).
    """

    def __init__(
        self, snapshots: Sequence[Snapshot], device: torch.device, temperature: float, direction: Direction
    ):
        self.snapshots = snapshots
        self.device = device
        self.temperature = temperature
        self.direction = direction
        self._pooled_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._token_cache: dict[int, tuple[torch.Tensor, ...]] = {}
        self._text_rows_cache: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._lengths_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def pooled(self, snapshot: int, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) video and text vectors of one snapshot on ``device``, cached in their stored dtype.

        Callers convert the rows they select to float32: a float32 copy of every vector would
        double the memory of large (pooled fp16) snapshots.
        """
        key = (snapshot, pooling)
        if key not in self._pooled_cache:
            video, text = self.snapshots[snapshot].pooled_vectors(pooling)
            self._pooled_cache[key] = (video.to(self.device), text.to(self.device))
        return self._pooled_cache[key]

    def tokens(self, snapshot: int) -> tuple[torch.Tensor, ...]:
        """Video tokens (N, Lv, D), video mask (N, Lv), text tokens (N, Lt, D), text mask (N, Lt)
        of one snapshot on ``device``, cached."""
        if snapshot not in self._token_cache:
            snap = self.snapshots[snapshot]
            tensors = (snap.video_tokens, snap.video_mask, snap.text_tokens, snap.text_mask)
            self._token_cache[snapshot] = tuple(t.to(self.device) for t in tensors)
        return self._token_cache[snapshot]

    def lengths(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) long numbers of real video and text tokens of one snapshot, on ``device``, cached."""
        if snapshot not in self._lengths_cache:
            _, video_mask, _, text_mask = self.tokens(snapshot)
            self._lengths_cache[snapshot] = (video_mask.sum(dim=1), text_mask.sum(dim=1))
        return self._lengths_cache[snapshot]

    def text_rows(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text tokens prepared for :func:`~trainers.method.cico_kernels.fused_cico_logits`, cached:
        (N, Lt, D + 2) float32 augmented rows and (N, Lt) mean weights (None if ``direction``
        needs none).

        Costs ``4·N·Lt·(D+3)`` bytes (7,096 × 38 × 259: 279 MB); only the snapshot used last is
        kept, since the scores read one snapshot at a time (rebuilding takes well under a second).
        """
        if snapshot not in self._text_rows_cache:
            self._text_rows_cache.clear()
            _, _, text_tokens, text_mask = self.tokens(snapshot)
            n, length, dim = text_tokens.shape
            rows = torch.empty(n, length, dim + 2, dtype=torch.float32, device=self.device)
            for i in range(0, n, 1024):
                rows[i : i + 1024] = augment_text_tokens(
                    text_tokens[i : i + 1024].float(), text_mask[i : i + 1024], self.temperature
                )
            weights = mean_weights(text_mask, self.temperature, self.direction, "text")
            self._text_rows_cache[snapshot] = (rows, weights)
        return self._text_rows_cache[snapshot]

    def gathered_text_rows(
        self, snapshot: int, texts: torch.Tensor, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented rows (k, L, D + 2) and mean weights (k, L) or None of ``texts`` (k,).

        ``L`` is ``length`` if given, else the longest of ``texts``: padding beyond it is dropped.
        """
        prepared, weights = self.text_rows(snapshot)  # (N, Lt, D + 2), (N, Lt)
        if length is None:
            length = int(self.lengths(snapshot)[1].index_select(0, texts).max())
        positions = torch.arange(max(length, 1), device=self.device)
        token_rows = (texts.unsqueeze(1) * prepared.shape[1] + positions).view(-1)
        rows = (
            prepared.view(-1, prepared.shape[2])
            .index_select(0, token_rows)
            .view(len(texts), len(positions), -1)
        )
        if weights is None:
            return rows, None
        return rows, weights.view(-1).index_select(0, token_rows).view(len(texts), len(positions))


def rows_float(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D)."""
    return vectors.index_select(0, rows).float()


def gather_runs(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D), reading each run of equal consecutive ``rows`` once."""
    unique, inverse = torch.unique_consecutive(rows, return_inverse=True)
    if unique.shape[0] * 2 > rows.shape[0]:  # few repeats: a plain gather is cheaper
        return rows_float(vectors, rows)
    return rows_float(vectors, unique).index_select(0, inverse)
