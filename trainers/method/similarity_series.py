"""Similarity series: S matrices ``s_k(V_i, T_j)`` over the same N samples, read block by block.

:class:`SnapshotSimilaritySeries` recomputes them from reference-run snapshots
(:mod:`trainers.method.snapshots`) with the CiCo kernels of :mod:`trainers.method.cico_kernels`,
and :class:`TensorSimilaritySeries` reads a precomputed ``(S, N, N)`` tensor; trajectory analysis
and Pair Selection need nothing else. :class:`RowShare` splits the row blocks of such a
computation between processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist

from modeling_scl_slt.similarity import AGGREGATIONS

from .cico_kernels import (
    DIRECTIONS,
    FUSED_MIN_TEMPERATURE,
    Direction,
    augment_text_tokens,
    augment_video_tokens,
    fused_cico_logits,
    mean_weights,
    reference_cico_tile,
    trim_padding,
)
from .snapshots import Snapshot, validate_same_samples


class SimilaritySeries:
    """S similarity matrices ``s_k(V_i, T_j)`` over the same N samples, read in blocks.

    Subclasses implement :meth:`block`; :meth:`pairs` and :meth:`candidate_block` have generic
    fallbacks. ``positions`` (S,) float64 are the x values of the snapshots (their epochs when
    known), used by the least-squares slope.
    """

    num_snapshots: int
    num_samples: int
    positions: torch.Tensor
    expensive_pairs: bool = False  # True: pairs cost far more than a lookup, deduplicate them

    def block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Similarity ``s(V_i, T_j)`` for i in ``rows`` (r,), j in ``cols`` (c,) → (r, c) float32."""
        raise NotImplementedError

    def pairs(self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor) -> torch.Tensor:
        """Similarity of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32."""
        values = torch.empty(video_indices.shape[0], dtype=torch.float32)
        order = torch.argsort(video_indices, stable=True)
        unique, counts = torch.unique_consecutive(video_indices[order], return_counts=True)
        start = 0
        for video, count in zip(unique.tolist(), counts.tolist(), strict=True):
            chosen = order[start : start + count]
            values[chosen] = self.block(snapshot, torch.tensor([video]), text_indices[chosen])[0]
            start += count
        return values

    def candidate_block(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Symmetric score used to find sparse candidates: ½(s(V_i,T_j) + s(V_j,T_i)), last snapshot."""
        last = self.num_snapshots - 1
        return 0.5 * (self.block(last, rows, cols) + self.block(last, cols, rows).transpose(0, 1))


class TensorSimilaritySeries(SimilaritySeries):
    """A precomputed (S, N, N) similarity tensor (rows = videos, columns = texts)."""

    def __init__(self, similarities: torch.Tensor, positions: Sequence[float] | torch.Tensor | None = None):
        if similarities.dim() != 3 or similarities.shape[1] != similarities.shape[2]:
            raise ValueError(f"similarities must have shape (S, N, N), got {tuple(similarities.shape)}.")
        self.similarities = similarities
        self.num_snapshots, self.num_samples = similarities.shape[0], similarities.shape[1]
        self.positions = as_positions(positions, self.num_snapshots)

    def block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return self.similarities[snapshot].index_select(0, rows).index_select(1, cols).float()

    def pairs(self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor) -> torch.Tensor:
        return self.similarities[snapshot][video_indices, text_indices].float()


class SnapshotSimilaritySeries(SimilaritySeries):
    """Similarities recomputed on the fly from a series of :class:`Snapshot` objects.

    Args:
        snapshots: Snapshots sorted by epoch, covering the same samples (see
            :func:`~trainers.method.snapshots.load_snapshot_series`).
        aggregation: Similarity to compute (``cico``, ``cls``, ``mean``); default: the snapshots'.
            ``cico`` needs token snapshots.
        temperature: CiCo temperature; default: the snapshots'.
        direction: For ``cico``, which matrix gives ``s(V_i, T_j)``: ``video_to_text[i, j]``,
            ``text_to_video[j, i]`` or their mean (``both``, default: both directions enter the
            contrastive loss). Pooled similarities are symmetric, so it does not matter there.
        candidate_pooling: Pooling used by :meth:`candidate_block` for token snapshots (``mean``
            or ``cls``; default ``mean``).
        tile_size: CiCo is computed on tiles of ``(videos, texts)`` samples (an int n: n × n);
            a single video gets ``videos·texts`` texts per tile. Memory about
            ``2·videos·texts·Lv·Lt`` floats per worker (default (8, 64) for the CPU, e.g. (128, 256) on a
            GPU; ``benchmarks/RESULTS.md`` compares shapes). Rows and columns of a block are
            sorted by length first, so that each tile's padding (trimmed) is small.
        device: Where similarities are computed (e.g. ``"cuda"``). Token tensors of a snapshot
            are copied there, in their stored dtype, on first use and kept; results come back
            to the CPU as float32.
        tile_workers: On the CPU, tiles run on this many Python threads with ONE intra-op thread
            each (default: ``torch.get_num_threads()``): per-operation OpenMP parallelism stalls
            on every small operation of a tile when the cores are shared, threads over whole tiles
            do not. Ignored on other devices.
        cico_kernel: ``"fused"`` (default: one GEMM per tile that also applies the padding mask,
            then exp2, one product and one reduction per direction, see
            :func:`~trainers.method.cico_kernels.fused_cico_logits`) or
            ``"reference"`` (:func:`~modeling_scl_slt.similarity.cico_similarity`, the einsum +
            two masked softmaxes of the model). Equal within float32 rounding.
        pair_chunk: Texts per GEMM when the fused kernel scores given pairs (:meth:`pairs`):
            each video's texts are sorted by length and taken ``pair_chunk`` at a time.
    """

    def __init__(
        self,
        snapshots: Sequence[Snapshot],
        aggregation: str | None = None,
        temperature: float | None = None,
        direction: Direction = "both",
        candidate_pooling: str = "mean",
        tile_size: int | tuple[int, int] = (8, 64),
        device: str | torch.device = "cpu",
        tile_workers: int | None = None,
        cico_kernel: Literal["fused", "reference"] = "fused",
        pair_chunk: int = 64,
    ):
        if not snapshots:
            raise ValueError("SnapshotSimilaritySeries needs at least one snapshot.")
        validate_same_samples(
            [(s.metadata_record(), s.source_path or f"snapshot #{k}") for k, s in enumerate(snapshots)]
        )
        self.snapshots = list(snapshots)
        self.aggregation = aggregation or snapshots[0].aggregation
        self.temperature = snapshots[0].temperature if temperature is None else temperature
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        if self.aggregation == "cico" and snapshots[0].kind != "tokens":
            raise ValueError("aggregation='cico' needs token snapshots; these store only pooled vectors.")
        self.direction = direction
        self.candidate_pooling = candidate_pooling
        self.tile_size = (tile_size, tile_size) if isinstance(tile_size, int) else tuple(tile_size)
        self.device = torch.device(device)
        self.tile_workers = torch.get_num_threads() if tile_workers is None else tile_workers
        if cico_kernel not in ("fused", "reference"):
            raise ValueError(f"cico_kernel must be 'fused' or 'reference', got {cico_kernel!r}")
        self.cico_kernel = cico_kernel
        self.pair_chunk = pair_chunk
        self.num_snapshots = len(snapshots)
        self.num_samples = snapshots[0].num_samples
        self.positions = as_positions([s.epoch for s in snapshots], self.num_snapshots)
        # device copies of the snapshots' tensors, built on first use and kept
        self._pooled_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
        self._token_cache: dict[int, tuple[torch.Tensor, ...]] = {}
        self._text_rows_cache: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._lengths_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    # ------------------------------------------------------------------ reading the snapshots

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

        Costs ``4·N·Lt·(D+3)`` bytes; only the snapshot used last is kept, since the scores read
        one snapshot at a time.
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

    def run_jobs(self, jobs: Sequence[Callable[[], None]]) -> None:
        """Run independent jobs (each writes its own part of a shared result); re-raise their errors.

        On the CPU they run on ``tile_workers`` threads with ONE intra-op thread each; on other
        devices (or with at most one worker or job) in order, in the calling thread.
        """
        if self.device.type != "cpu" or self.tile_workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                job()
            return
        # torch.set_num_threads in a worker thread only sets that thread's OpenMP team size
        with ThreadPoolExecutor(self.tile_workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()  # re-raises a worker's exception

    # ------------------------------------------------------------------ blocks

    def block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        rows, cols = rows.to(self.device), cols.to(self.device)
        if self.aggregation != "cico":
            video, text = self.pooled(snapshot, self.aggregation)
            return (rows_float(video, rows) @ rows_float(text, cols).transpose(0, 1)).cpu()
        return self.cico_block(snapshot, rows, cols).cpu()

    @property
    def uses_fused_kernel(self) -> bool:
        return self.cico_kernel == "fused" and self.temperature >= FUSED_MIN_TEMPERATURE

    def tile_steps(self, num_rows: int) -> tuple[int, int]:
        """Rows and columns per tile (``tile_size``; a single row gets ``videos·texts`` columns)."""
        videos, texts = self.tile_size
        return (1, videos * texts) if num_rows == 1 else (videos, texts)

    def cico_block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """CiCo of ``rows`` (r,) × ``cols`` (c,) on ``device`` → (r, c) float32 on that device.

        Similar lengths share a tile, so trimming each tile to its longest sample wastes little:
        rows and columns are sorted by token count, computed, and put back in their given order.
        """
        video_lengths, text_lengths = self.lengths(snapshot)
        row_order = torch.argsort(video_lengths.index_select(0, rows), stable=True)
        col_order = torch.argsort(text_lengths.index_select(0, cols), stable=True)
        sorted_block = self.fused_sorted_block if self.uses_fused_kernel else self.reference_sorted_block
        result = sorted_block(snapshot, rows[row_order], cols[col_order])
        unsorted = torch.empty_like(result)
        unsorted[row_order.unsqueeze(1), col_order.unsqueeze(0)] = result
        return unsorted

    def cico_tile(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Reference-kernel CiCo of one tile ``rows`` (r,) × ``cols`` (c,) → (r, c), padding trimmed."""
        video_tokens, video_mask, text_tokens, text_mask = (
            tensor.index_select(0, indices)
            for tensor, indices in zip(self.tokens(snapshot), (rows, rows, cols, cols), strict=True)
        )
        return reference_cico_tile(
            video_tokens, video_mask, text_tokens, text_mask, self.temperature, self.direction
        )

    def reference_sorted_block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """CiCo of length-sorted ``rows`` × ``cols`` with :meth:`cico_tile` → (r, c) on ``device``."""
        result = torch.empty(len(rows), len(cols), dtype=torch.float32, device=self.device)
        row_step, col_step = self.tile_steps(len(rows))

        def tile_job(r0: int, c0: int) -> Callable[[], None]:
            def job() -> None:
                tile_rows, tile_cols = rows[r0 : r0 + row_step], cols[c0 : c0 + col_step]
                result[r0 : r0 + len(tile_rows), c0 : c0 + len(tile_cols)] = self.cico_tile(
                    snapshot, tile_rows, tile_cols
                )

            return job

        self.run_jobs(
            [tile_job(r0, c0) for r0 in range(0, len(rows), row_step) for c0 in range(0, len(cols), col_step)]
        )
        return result

    def fused_sorted_block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """CiCo of length-sorted ``rows`` × ``cols`` with :func:`fused_cico_logits` → (r, c) on ``device``.

        Each row block is augmented once; each job gathers one column block once and runs it
        against all row blocks in one reused workspace, so besides the GEMMs a tile costs its
        elementwise passes and a few small operations.
        """
        self.text_rows(snapshot)  # built here, not by racing worker threads
        row_blocks = self.video_row_blocks(snapshot, rows)
        longest_block = max(video_rows.shape[0] * video_rows.shape[1] for _, video_rows, _ in row_blocks)
        result = torch.empty(len(rows), len(cols), dtype=torch.float32, device=self.device)
        col_step = self.tile_steps(len(rows))[1]

        def column_job(c0: int) -> Callable[[], None]:
            def job() -> None:
                block_cols = cols[c0 : c0 + col_step]
                text_rows, text_weights = self.gathered_text_rows(snapshot, block_cols)
                workspace = torch.empty(
                    2 * longest_block * text_rows.shape[0] * text_rows.shape[1], device=self.device
                )
                for r0, video_rows, video_weights in row_blocks:
                    result[r0 : r0 + len(video_rows), c0 : c0 + len(block_cols)] = fused_cico_logits(
                        video_rows, text_rows, video_weights, text_weights, workspace
                    )

            return job

        self.run_jobs([column_job(c0) for c0 in range(0, len(cols), col_step)])
        return result

    def video_row_blocks(
        self, snapshot: int, sorted_rows: torch.Tensor
    ) -> list[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """Per block of tile rows: (start, (a, Lv, D + 2) augmented rows, (a, Lv) weights)."""
        video_tokens, video_mask = self.tokens(snapshot)[:2]
        row_step = self.tile_steps(len(sorted_rows))[0]
        blocks = []
        for r0 in range(0, len(sorted_rows), row_step):
            block_rows = sorted_rows[r0 : r0 + row_step]
            tokens, mask = trim_padding(
                video_tokens.index_select(0, block_rows), video_mask.index_select(0, block_rows)
            )
            video_rows = augment_video_tokens(tokens.float(), mask, self.temperature)
            blocks.append((r0, video_rows, mean_weights(mask, self.temperature, self.direction, "video")))
        return blocks

    # ------------------------------------------------------------------ pairs and candidates

    def pairs(self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor) -> torch.Tensor:
        if self.aggregation != "cico":
            return self.pooled_pairs(snapshot, video_indices, text_indices)
        return self.cico_pairs(snapshot, video_indices, text_indices)

    def pooled_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor, chunk: int = 1 << 12
    ) -> torch.Tensor:
        """Pooled cosine of the pairs (P,) × (P,) → (P,) float32, ``chunk`` pairs per job (bounded memory).

        The rows of a chunk are gathered once per distinct index of a run (a side given as runs
        of equal indices, like ``arange(N).repeat_interleave(M)``, costs one random read per run,
        not per pair). Chunks are small so that their temporaries stay in cache and are reused by
        the allocator; they run on ``tile_workers`` threads. Extra memory per worker: about
        ``4·chunk·D`` bytes per side.
        """
        video, text = self.pooled(snapshot, self.aggregation)
        values = torch.empty(video_indices.shape[0], dtype=torch.float32)

        def chunk_job(start: int) -> Callable[[], None]:
            def job() -> None:
                videos = gather_runs(video, video_indices[start : start + chunk].to(self.device))
                texts = gather_runs(text, text_indices[start : start + chunk].to(self.device))
                values[start : start + chunk] = (videos * texts).sum(-1).cpu()

            return job

        self.run_jobs([chunk_job(start) for start in range(0, video_indices.shape[0], chunk)])
        return values

    def cico_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32.

        Fused kernel: per video, its texts sorted by length and cut into chunks of
        ``pair_chunk`` (see :meth:`fused_pairs_of_video`); otherwise one 1 × k reference tile per
        video (:meth:`tiled_cico_pairs`). Each pair is computed once, with padding trimmed to its
        chunk's longest text.
        """
        if not self.uses_fused_kernel:
            return self.tiled_cico_pairs(snapshot, video_indices, text_indices)
        values = torch.empty(video_indices.shape[0], dtype=torch.float32)
        self.text_rows(snapshot)  # built once here, not by racing worker threads
        text_lengths = self.lengths(snapshot)[1].cpu()
        lengths = text_lengths.index_select(0, text_indices)
        order = torch.argsort(video_indices * (int(text_lengths.max()) + 1) + lengths)  # video, length
        sorted_texts, sorted_lengths = text_indices[order], lengths[order]
        unique, counts = torch.unique_consecutive(video_indices[order], return_counts=True)
        starts = (torch.cumsum(counts, 0) - counts).tolist()

        def video_job(video: int, start: int, stop: int) -> Callable[[], None]:
            def job() -> None:
                values[order[start:stop]] = self.fused_pairs_of_video(
                    snapshot, video, sorted_texts[start:stop], sorted_lengths[start:stop]
                )

            return job

        jobs = [
            video_job(v, s, s + c) for v, s, c in zip(unique.tolist(), starts, counts.tolist(), strict=True)
        ]
        self.run_jobs(jobs)
        return values

    def fused_pairs_of_video(
        self, snapshot: int, video: int, texts: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of one video with ``texts`` (k,) sorted by their ``lengths`` (k,) → (k,) float32.

        The augmented rows of ``pair_chunk`` texts at a time (padded to the chunk's longest) are
        gathered from :meth:`text_rows`: small chunks keep the gathered rows and the
        (Lv, pair_chunk·Lt) logits near the size of a core's L2 cache and trim padding well.
        Extra memory per call: about ``pair_chunk·Lt·(D+2)`` floats plus two logits tiles.
        """
        video_tokens, video_mask, _, _ = self.tokens(snapshot)
        tokens, mask = trim_padding(video_tokens[video].unsqueeze(0), video_mask[video].unsqueeze(0))
        video_rows = augment_video_tokens(tokens.float(), mask, self.temperature)  # (1, Lv_i, D + 2)
        video_weights = mean_weights(mask, self.temperature, self.direction, "video")
        result = torch.empty(texts.shape[0], dtype=torch.float32, device=self.device)
        texts = texts.to(self.device)
        for c0 in range(0, texts.shape[0], self.pair_chunk):
            chunk_texts = texts[c0 : c0 + self.pair_chunk]
            length = int(lengths[c0 + len(chunk_texts) - 1])  # sorted: the last is the longest
            text_rows, text_weights = self.gathered_text_rows(snapshot, chunk_texts, length)
            result[c0 : c0 + len(chunk_texts)] = fused_cico_logits(
                video_rows, text_rows, video_weights, text_weights
            )[0]
        return result.cpu()

    def tiled_cico_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of the pairs → (P,) with :meth:`cico_tile`: one 1 × k tile per video (reference kernel)."""
        values = torch.empty(video_indices.shape[0], dtype=torch.float32)
        _, text_lengths = self.lengths(snapshot)
        chunk = self.tile_steps(1)[1]
        order = torch.argsort(video_indices, stable=True)
        unique, counts = torch.unique_consecutive(video_indices[order], return_counts=True)
        starts = torch.cumsum(counts, 0) - counts

        def video_job(video: int, start: int, count: int) -> Callable[[], None]:
            def job() -> None:
                chosen = order[start : start + count]
                texts = text_indices[chosen]
                by_length = torch.argsort(text_lengths.index_select(0, texts.to(self.device)), stable=True)
                for c0 in range(0, count, chunk):  # chunks of similar text lengths
                    part = by_length[c0 : c0 + chunk].cpu()
                    tile = self.cico_tile(
                        snapshot,
                        torch.tensor([video], device=self.device),
                        texts[part].to(self.device),
                    )
                    values[chosen[part]] = tile[0].float().cpu()

            return job

        self.run_jobs(
            [
                video_job(v, s, c)
                for v, s, c in zip(unique.tolist(), starts.tolist(), counts.tolist(), strict=True)
            ]
        )
        return values

    @property
    def expensive_pairs(self) -> bool:
        """True when one pair costs far more than a lookup (CiCo): worth deduplicating pairs."""
        return self.aggregation == "cico"

    def candidate_vectors(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries ``[V_i, T_i]`` and keys ``[T_i, V_i]`` of ``rows`` (r, 2D) float32, last snapshot.

        ``query_i · key_j = 2 · candidate_block(i, j)``: an inner-product index over the keys
        finds the candidates (see :func:`trainers.method.pair_selection.find_candidates`).
        """
        pooling = self.aggregation if self.aggregation != "cico" else self.candidate_pooling
        video, text = self.pooled(self.num_snapshots - 1, pooling)
        rows = rows.to(self.device)
        videos, texts = rows_float(video, rows), rows_float(text, rows)
        return torch.cat([videos, texts], dim=1).cpu(), torch.cat([texts, videos], dim=1).cpu()

    def candidate_block(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        pooling = self.aggregation if self.aggregation != "cico" else self.candidate_pooling
        video, text = self.pooled(self.num_snapshots - 1, pooling)
        rows, cols = rows.to(self.device), cols.to(self.device)
        forward = rows_float(video, rows) @ rows_float(text, cols).transpose(0, 1)  # s(V_i, T_j), (r, c)
        backward = rows_float(text, rows) @ rows_float(video, cols).transpose(0, 1)  # s(V_j, T_i), (r, c)
        return (0.5 * (forward + backward)).cpu()


@dataclass(frozen=True)
class RowShare:
    """The row blocks of a similarity computation that one process does, and how the parts meet.

    Rows are cut into blocks of ``block_size`` at the same boundaries as in one process, and block
    ``b`` belongs to process ``b mod count`` (round-robin, so every process gets blocks from the
    whole range). Each value is therefore computed from the same block as by a single process:
    the results are identical, not just close.

    Attributes:
        index: This process (0 … count − 1).
        count: Number of processes sharing the work.
        all_gather: ``part -> [part of process 0, part of process 1, …]`` on every process.
        gather: The same list on process 0 and None elsewhere (default: ``all_gather``).
    """

    index: int = 0
    count: int = 1
    all_gather: Callable[[Any], list[Any]] | None = None
    gather: Callable[[Any], list[Any] | None] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"RowShare index must be in [0, {self.count}), got {self.index}.")
        if self.count > 1 and self.all_gather is None:
            raise ValueError(f"A RowShare of {self.count} processes needs an all_gather function.")

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def owns(self, block: int) -> bool:
        """Whether this process computes row block number ``block``."""
        return block % self.count == self.index

    def gather_all(self, part: Any) -> list[Any]:
        """Every process's ``part``, in process order, on every process."""
        return [part] if self.count == 1 else self.all_gather(part)

    def gather_to_main(self, part: Any) -> list[Any] | None:
        """Every process's ``part`` on process 0; None on the others."""
        if self.count == 1:
            return [part]
        return (self.gather or self.all_gather)(part)

    @classmethod
    def from_process_group(cls) -> RowShare:
        """This process's share of the default torch.distributed group (the whole work without one).

        Parts travel as pickled objects (``all_gather_object``, ``gather_object``): on NCCL they
        are staged on the current CUDA device, which accelerate sets for each process.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        count = dist.get_world_size()

        def all_gather(part: Any) -> list[Any]:
            parts: list[Any] = [None] * count
            dist.all_gather_object(parts, part)
            return parts

        def gather(part: Any) -> list[Any] | None:
            main = dist.get_rank() == 0
            parts: list[Any] | None = [None] * count if main else None
            dist.gather_object(part, parts, dst=0)
            return parts

        return cls(index=dist.get_rank(), count=count, all_gather=all_gather, gather=gather)


def as_positions(positions: Sequence[float] | torch.Tensor | None, num_snapshots: int) -> torch.Tensor:
    """Snapshot x values as (S,) float64; default 0..S-1."""
    if positions is None:
        return torch.arange(num_snapshots, dtype=torch.float64)
    positions = torch.as_tensor(positions, dtype=torch.float64)
    if positions.shape != (num_snapshots,):
        raise ValueError(f"positions must have {num_snapshots} entries, got shape {tuple(positions.shape)}.")
    return positions


def as_similarity_series(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot], **kwargs
) -> SimilaritySeries:
    """Accept a series, an (S, N, N) tensor or a list of snapshots (``kwargs`` go to the series)."""
    if isinstance(source, SimilaritySeries):
        return source
    if isinstance(source, torch.Tensor):
        return TensorSimilaritySeries(source, **kwargs)
    return SnapshotSimilaritySeries(list(source), **kwargs)


def rows_float(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D)."""
    return vectors.index_select(0, rows).float()


def gather_runs(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D), reading each run of equal consecutive ``rows`` once."""
    unique, inverse = torch.unique_consecutive(rows, return_inverse=True)
    if unique.shape[0] * 2 > rows.shape[0]:  # few repeats: a plain gather is cheaper
        return rows_float(vectors, rows)
    return rows_float(vectors, unique).index_select(0, inverse)
