"""Similarity of P given pairs ``(V_i, T_j)`` of a snapshot series: what sparse Pair Selection reads.

:class:`~trainers.method.similarity_series.SnapshotSimilaritySeries` delegates its pair methods
here. Three paths, each computing every pair once on the series' job runner:

* :func:`pooled_pairs`: cosines of pooled vectors, in small chunks of pairs;
* :func:`cico_pairs` with the fused kernel: per video, its texts sorted by length and cut into
  chunks of ``series.pair_chunk`` (:func:`fused_pairs_of_video`);
* :func:`tiled_cico_pairs` with the reference kernel: one 1 × k tile per video.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .cico_kernels import augment_video_tokens, fused_cico_logits, mean_weights, trim_padding
from .cico_tiles import cico_tile
from .snapshot_cache import gather_runs

if TYPE_CHECKING:
    from .similarity_series import SnapshotSimilaritySeries


def pooled_pairs(
    series: SnapshotSimilaritySeries,
    snapshot: int,
    video_indices: torch.Tensor,
    text_indices: torch.Tensor,
    chunk: int = 1 << 12,
) -> torch.Tensor:
    """Pooled cosine of the pairs (P,) × (P,) → (P,) float32, ``chunk`` pairs per job (bounded memory).

    The rows of a chunk are gathered once per distinct index of a run (a side given as runs
    of equal indices, like ``arange(N).repeat_interleave(M)``, costs one random read per run,
    not per pair). Chunks are small so that their temporaries stay in cache and are reused by
    the allocator (chunks of 2¹⁸ pairs made 256 MB temporaries, fresh pages every time: 2–4×
    slower); they run on ``tile_workers`` threads. Extra memory per worker: about
    ``4·chunk·D`` bytes per side.
    """
    video, text = series.pooled(snapshot, series.aggregation)
    values = torch.empty(video_indices.shape[0], dtype=torch.float32)

    def chunk_job(start: int) -> Callable[[], None]:
        def job() -> None:
            videos = gather_runs(video, video_indices[start : start + chunk].to(series.device))
            texts = gather_runs(text, text_indices[start : start + chunk].to(series.device))
            values[start : start + chunk] = (videos * texts).sum(-1).cpu()

        return job

    series.run_jobs([chunk_job(start) for start in range(0, video_indices.shape[0], chunk)])
    return values


def cico_pairs(
    series: SnapshotSimilaritySeries, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
) -> torch.Tensor:
    """CiCo of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32.

    Fused kernel: per video, its texts sorted by length and cut into chunks of
    ``pair_chunk`` (see :func:`fused_pairs_of_video`); otherwise one 1 × k reference tile per
    video (:func:`tiled_cico_pairs`). Each pair is computed once, with padding trimmed to its
    chunk's longest text.
    """
    if not series.uses_fused_kernel:
        return tiled_cico_pairs(series, snapshot, video_indices, text_indices)
    values = torch.empty(video_indices.shape[0], dtype=torch.float32)
    series.text_rows(snapshot)  # built once here, not by racing worker threads
    text_lengths = series.lengths(snapshot)[1].cpu()
    lengths = text_lengths.index_select(0, text_indices)
    order = torch.argsort(video_indices * (int(text_lengths.max()) + 1) + lengths)  # video, length
    sorted_texts, sorted_lengths = text_indices[order], lengths[order]
    unique, counts = torch.unique_consecutive(video_indices[order], return_counts=True)
    starts = (torch.cumsum(counts, 0) - counts).tolist()

    def video_job(video: int, start: int, stop: int) -> Callable[[], None]:
        def job() -> None:
            values[order[start:stop]] = fused_pairs_of_video(
                series, snapshot, video, sorted_texts[start:stop], sorted_lengths[start:stop]
            )

        return job

    jobs = [video_job(v, s, s + c) for v, s, c in zip(unique.tolist(), starts, counts.tolist(), strict=True)]
    series.run_jobs(jobs)
    return values


def fused_pairs_of_video(
    series: SnapshotSimilaritySeries, snapshot: int, video: int, texts: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """CiCo of one video with ``texts`` (k,) sorted by their ``lengths`` (k,) → (k,) float32.

    The augmented rows of ``pair_chunk`` texts at a time (padded to the chunk's longest) are
    gathered from ``series.text_rows``: small chunks keep the gathered rows and the
    (Lv, pair_chunk·Lt) logits near the size of a core's L2 cache and trim padding well (one
    tile of all of a video's texts made the kernel memory-bound: 1.4–1.7× slower). Extra
    memory per call: about ``pair_chunk·Lt·(D+2)`` floats plus two logits tiles.
    """
    video_tokens, video_mask, _, _ = series.tokens(snapshot)
    tokens, mask = trim_padding(video_tokens[video].unsqueeze(0), video_mask[video].unsqueeze(0))
    video_rows = augment_video_tokens(tokens.float(), mask, series.temperature)  # (1, Lv_i, D + 2)
    video_weights = mean_weights(mask, series.temperature, series.direction, "video")
    result = torch.empty(texts.shape[0], dtype=torch.float32, device=series.device)
    texts = texts.to(series.device)
    for c0 in range(0, texts.shape[0], series.pair_chunk):
        chunk_texts = texts[c0 : c0 + series.pair_chunk]
        length = int(lengths[c0 + len(chunk_texts) - 1])  # sorted: the last is the longest
        text_rows, text_weights = series.gathered_text_rows(snapshot, chunk_texts, length)
        result[c0 : c0 + len(chunk_texts)] = fused_cico_logits(
            video_rows, text_rows, video_weights, text_weights
        )[0]
    return result.cpu()


def tiled_cico_pairs(
    series: SnapshotSimilaritySeries, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
) -> torch.Tensor:
    """CiCo of the pairs → (P,) with :func:`~trainers.method.cico_tiles.cico_tile`: one 1 × k tile
    per video (reference kernel)."""
    values = torch.empty(video_indices.shape[0], dtype=torch.float32)
    _, text_lengths = series.lengths(snapshot)
    chunk = series.tile_steps(1)[1]
    order = torch.argsort(video_indices, stable=True)
    unique, counts = torch.unique_consecutive(video_indices[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts

    def video_job(video: int, start: int, count: int) -> Callable[[], None]:
        def job() -> None:
            chosen = order[start : start + count]
            texts = text_indices[chosen]
            by_length = torch.argsort(text_lengths.index_select(0, texts.to(series.device)), stable=True)
            for c0 in range(0, count, chunk):  # chunks of similar text lengths
                part = by_length[c0 : c0 + chunk].cpu()
                tile = cico_tile(
                    series,
                    snapshot,
                    torch.tensor([video], device=series.device),
                    texts[part].to(series.device),
                )
                values[chosen[part]] = tile[0].float().cpu()

        return job

    series.run_jobs(
        [
            video_job(v, s, c)
            for v, s, c in zip(unique.tolist(), starts.tolist(), counts.tolist(), strict=True)
        ]
    )
    return values
