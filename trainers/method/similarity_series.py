"""Similarity series: S matrices ``s_k(V_i, T_j)`` over the same N samples, read block by block.

:class:`SnapshotSimilaritySeries` recomputes them from reference-run snapshots
(:mod:`trainers.method.snapshots`) and :class:`TensorSimilaritySeries` reads a precomputed
``(S, N, N)`` tensor; trajectory analysis and Pair Selection need nothing else. The CiCo work
of a snapshot series lives in :mod:`~trainers.method.cico_kernels` (the kernels),
:mod:`~trainers.method.cico_tiles` (dense blocks) and :mod:`~trainers.method.pair_scoring`
(given pairs); its device tensors in :class:`~trainers.method.snapshot_cache.SnapshotCache`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist

from modeling_scl_slt.similarity import AGGREGATIONS

from . import cico_tiles, pair_scoring
from .cico_kernels import DIRECTIONS, FUSED_MIN_TEMPERATURE, Direction
from .job_runner import JobRunner
from .snapshot_cache import SnapshotCache, rows_float

if TYPE_CHECKING:
    from .snapshots import Snapshot


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
            ``2·videos·texts·Lv·Lt`` floats per worker. The default (8, 64) was the fastest of
            the shapes measured side by side on a 2-core CPU (``benchmarks/RESULTS.md``: 32 × 32
            and 16 × 16 took 4–10 % longer). On a GPU, (128, 256) is a good value. Rows and columns of a
            block are sorted by length first, so that each tile's padding (trimmed) is small.
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
        from .snapshots import validate_same_samples  # not at the top: snapshots re-exports this module

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
        self.cache = SnapshotCache(self.snapshots, self.device, self.temperature, self.direction)
        self.jobs = JobRunner(self.device, self.tile_workers)

    # ------------------------------------------------------------------ reading the snapshots

    def pooled(self, snapshot: int, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) video and text vectors of one snapshot on ``device``, cached in their stored dtype."""
        return self.cache.pooled(snapshot, pooling)

    def tokens(self, snapshot: int) -> tuple[torch.Tensor, ...]:
        """Video tokens, video mask, text tokens, text mask of one snapshot on ``device``, cached."""
        return self.cache.tokens(snapshot)

    def lengths(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) long numbers of real video and text tokens of one snapshot, on ``device``, cached."""
        return self.cache.lengths(snapshot)

    def text_rows(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, Lt, D + 2) augmented text rows and (N, Lt) mean weights or None, cached (fused kernel)."""
        return self.cache.text_rows(snapshot)

    def gathered_text_rows(
        self, snapshot: int, texts: torch.Tensor, length: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented rows (k, L, D + 2) and mean weights (k, L) or None of ``texts`` (k,)."""
        return self.cache.gathered_text_rows(snapshot, texts, length)

    def run_jobs(self, jobs: Sequence[Callable[[], None]]) -> None:
        """Run independent tile jobs: on the CPU on ``tile_workers`` threads, elsewhere in order."""
        self.jobs.run(jobs)

    # ------------------------------------------------------------------ blocks

    def block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        rows, cols = rows.to(self.device), cols.to(self.device)
        if self.aggregation != "cico":
            video, text = self.pooled(snapshot, self.aggregation)
            return (rows_float(video, rows) @ rows_float(text, cols).transpose(0, 1)).cpu()
        return cico_tiles.cico_block(self, snapshot, rows, cols).cpu()

    @property
    def uses_fused_kernel(self) -> bool:
        return self.cico_kernel == "fused" and self.temperature >= FUSED_MIN_TEMPERATURE

    def tile_steps(self, num_rows: int) -> tuple[int, int]:
        """Rows and columns per tile (``tile_size``; a single row gets ``videos·texts`` columns)."""
        return cico_tiles.tile_steps(self.tile_size, num_rows)

    def reference_sorted_block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """CiCo of length-sorted ``rows`` × ``cols`` with the reference kernel → (r, c) on ``device``."""
        return cico_tiles.reference_sorted_block(self, snapshot, rows, cols)

    def fused_sorted_block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """CiCo of length-sorted ``rows`` × ``cols`` with the fused kernel → (r, c) on ``device``."""
        return cico_tiles.fused_sorted_block(self, snapshot, rows, cols)

    def video_row_blocks(
        self, snapshot: int, sorted_rows: torch.Tensor
    ) -> list[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """Per block of tile rows: (start, (a, Lv, D + 2) augmented rows, (a, Lv) weights)."""
        return cico_tiles.video_row_blocks(self, snapshot, sorted_rows)

    def cico_tile(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Reference-kernel CiCo of one tile → (r, c), with padding trimmed to its longest sample."""
        return cico_tiles.cico_tile(self, snapshot, rows, cols)

    # ------------------------------------------------------------------ pairs and candidates

    def pairs(self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor) -> torch.Tensor:
        if self.aggregation != "cico":
            return self.pooled_pairs(snapshot, video_indices, text_indices)
        return self.cico_pairs(snapshot, video_indices, text_indices)

    def pooled_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor, chunk: int = 1 << 12
    ) -> torch.Tensor:
        """Pooled cosine of the pairs → (P,) float32, ``chunk`` pairs per job (bounded memory)."""
        return pair_scoring.pooled_pairs(self, snapshot, video_indices, text_indices, chunk)

    def cico_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32."""
        return pair_scoring.cico_pairs(self, snapshot, video_indices, text_indices)

    def fused_pairs_of_video(
        self, snapshot: int, video: int, texts: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of one video with ``texts`` (k,) sorted by their ``lengths`` (k,) → (k,) float32."""
        return pair_scoring.fused_pairs_of_video(self, snapshot, video, texts, lengths)

    def tiled_cico_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of the pairs → (P,) with one 1 × k reference tile per video."""
        return pair_scoring.tiled_cico_pairs(self, snapshot, video_indices, text_indices)

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
