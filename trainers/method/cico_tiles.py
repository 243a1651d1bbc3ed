"""Dense CiCo blocks of a :class:`~trainers.method.similarity_series.SnapshotSimilaritySeries`, tile by tile.

A block ``rows × cols`` is sorted by token counts (so that each tile's padding, trimmed, is
small), cut into tiles of ``series.tile_size`` and computed on the series' job runner with the
fused kernel (:func:`~trainers.method.cico_kernels.fused_cico_logits`) or the reference one
(:func:`~trainers.method.cico_kernels.reference_cico_tile`). The functions read the series'
cached tensors through its public methods (``tokens``, ``lengths``, ``text_rows``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .cico_kernels import (
    augment_video_tokens,
    fused_cico_logits,
    mean_weights,
    reference_cico_tile,
    trim_padding,
)

if TYPE_CHECKING:
    from .similarity_series import SnapshotSimilaritySeries


def tile_steps(tile_size: tuple[int, int], num_rows: int) -> tuple[int, int]:
    """Rows and columns per tile (``tile_size``; a single row gets ``videos·texts`` columns)."""
    videos, texts = tile_size
    return (1, videos * texts) if num_rows == 1 else (videos, texts)


def cico_block(
    series: SnapshotSimilaritySeries, snapshot: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """CiCo of ``rows`` (r,) × ``cols`` (c,) on ``series.device`` → (r, c) float32 on that device.

    Similar lengths share a tile, so trimming each tile to its longest sample wastes little:
    rows and columns are sorted by token count, computed, and put back in their given order.
    """
    video_lengths, text_lengths = series.lengths(snapshot)
    row_order = torch.argsort(video_lengths.index_select(0, rows), stable=True)
    col_order = torch.argsort(text_lengths.index_select(0, cols), stable=True)
    sorted_block = fused_sorted_block if series.uses_fused_kernel else reference_sorted_block
    result = sorted_block(series, snapshot, rows[row_order], cols[col_order])
    unsorted = torch.empty_like(result)
    unsorted[row_order.unsqueeze(1), col_order.unsqueeze(0)] = result
    return unsorted


def cico_tile(
    series: SnapshotSimilaritySeries, snapshot: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """Reference-kernel CiCo of one tile ``rows`` (r,) × ``cols`` (c,) → (r, c), padding trimmed."""
    video_tokens, video_mask, text_tokens, text_mask = (
        tensor.index_select(0, indices)
        for tensor, indices in zip(series.tokens(snapshot), (rows, rows, cols, cols), strict=True)
    )
    return reference_cico_tile(
        video_tokens, video_mask, text_tokens, text_mask, series.temperature, series.direction
    )


def reference_sorted_block(
    series: SnapshotSimilaritySeries, snapshot: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """CiCo of length-sorted ``rows`` × ``cols`` with :func:`cico_tile` → (r, c) on ``device``."""
    result = torch.empty(len(rows), len(cols), dtype=torch.float32, device=series.device)
    row_step, col_step = series.tile_steps(len(rows))

    def tile_job(r0: int, c0: int) -> Callable[[], None]:
        def job() -> None:
            tile_rows, tile_cols = rows[r0 : r0 + row_step], cols[c0 : c0 + col_step]
            result[r0 : r0 + len(tile_rows), c0 : c0 + len(tile_cols)] = cico_tile(
                series, snapshot, tile_rows, tile_cols
            )

        return job

    series.run_jobs(
        [tile_job(r0, c0) for r0 in range(0, len(rows), row_step) for c0 in range(0, len(cols), col_step)]
    )
    return result


def fused_sorted_block(
    series: SnapshotSimilaritySeries, snapshot: int, rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """CiCo of length-sorted ``rows`` × ``cols`` with :func:`fused_cico_logits` → (r, c) on ``device``.

    Each row block is augmented once; each job gathers one column block once and runs it
    against all row blocks in one reused workspace, so besides the GEMMs a tile costs its
    elementwise passes and a few small operations.
    """
    series.text_rows(snapshot)  # built here, not by racing worker threads
    row_blocks = video_row_blocks(series, snapshot, rows)
    longest_block = max(video_rows.shape[0] * video_rows.shape[1] for _, video_rows, _ in row_blocks)
    result = torch.empty(len(rows), len(cols), dtype=torch.float32, device=series.device)
    col_step = series.tile_steps(len(rows))[1]

    def column_job(c0: int) -> Callable[[], None]:
        def job() -> None:
            block_cols = cols[c0 : c0 + col_step]
            text_rows, text_weights = series.gathered_text_rows(snapshot, block_cols)
            workspace = torch.empty(
                2 * longest_block * text_rows.shape[0] * text_rows.shape[1], device=series.device
            )
            for r0, video_rows, video_weights in row_blocks:
                result[r0 : r0 + len(video_rows), c0 : c0 + len(block_cols)] = fused_cico_logits(
                    video_rows, text_rows, video_weights, text_weights, workspace
                )

        return job

    series.run_jobs([column_job(c0) for c0 in range(0, len(cols), col_step)])
    return result


def video_row_blocks(
    series: SnapshotSimilaritySeries, snapshot: int, sorted_rows: torch.Tensor
) -> list[tuple[int, torch.Tensor, torch.Tensor | None]]:
    """Per block of tile rows: (start, (a, Lv, D + 2) augmented rows, (a, Lv) weights)."""
    video_tokens, video_mask = series.tokens(snapshot)[:2]
    row_step = series.tile_steps(len(sorted_rows))[0]
    blocks = []
    for r0 in range(0, len(sorted_rows), row_step):
        block_rows = sorted_rows[r0 : r0 + row_step]
        tokens, mask = trim_padding(
            video_tokens.index_select(0, block_rows), video_mask.index_select(0, block_rows)
        )
        video_rows = augment_video_tokens(tokens.float(), mask, series.temperature)
        blocks.append((r0, video_rows, mean_weights(mask, series.temperature, series.direction, "video")))
    return blocks
