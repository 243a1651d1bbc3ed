"""Reference-run snapshots: the embeddings Pair Selection needs, one file per checkpoint.

A snapshot holds, for every training sample in a fixed order, what is needed to recompute the
video–text similarity of any pair at one checkpoint of the plain contrastive reference run:

* ``kind="tokens"``: L2-normalised token embeddings of video and text plus their padding masks
  (enough for every aggregation: ``cico``, ``cls``, ``mean``), or
* ``kind="pooled"``: one L2-normalised vector per video and per text (``cls``/``mean`` only).

On disk a snapshot is ONE safetensors file (tensors in fp16 by default, masks as bool) whose
header metadata holds a JSON record under the key ``"scl_slt_snapshot"``: format version, step,
epoch, checkpoint path, aggregation, CiCo temperature, kind, number of samples and the sample ids
in order. No pickles. Sizes: tokens take ``N·(Lv+Lt)·D·2`` bytes (PHOENIX-2014T with 7,096
videos, 75 visual and 30 text tokens of 1,024 dims: about 1.5 GB); pooled vectors ``2·N·D·2``.

:class:`SnapshotSimilaritySeries` (and :class:`TensorSimilaritySeries` for a precomputed
``(S, N, N)`` tensor) present a series of snapshots as similarity matrices read block by block,
which is all that trajectory analysis and Pair Selection need.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from modeling_scl_slt.similarity import (
    AGGREGATIONS,
    cico_similarity,
    pool_text_tokens,
    pool_video_tokens,
)

SNAPSHOT_METADATA_KEY = "scl_slt_snapshot"
SNAPSHOT_FORMAT = "scl-slt-snapshot"
SNAPSHOT_FORMAT_VERSION = 1
TOKEN_TENSORS = ("video_tokens", "video_mask", "text_tokens", "text_mask")
POOLED_TENSORS = ("video_pooled", "text_pooled")

Direction = Literal["both", "video_to_text", "text_to_video"]
DIRECTIONS = ("both", "video_to_text", "text_to_video")


@dataclass
class Snapshot:
    """Embeddings of every training sample at one reference checkpoint.

    Attributes:
        sample_ids: One id per sample (dataset index or name), in the order of every tensor.
        step: Optimiser step of the checkpoint.
        epoch: Epoch of the checkpoint (may be fractional).
        aggregation: Aggregation the reference model was trained with (``cico``/``cls``/``mean``).
        checkpoint_path: Where the checkpoint lives, for provenance only.
        temperature: CiCo token-matching temperature ``tau_f`` of the reference model.
        video_tokens: (N, Lv, D) L2-normalised visual tokens, or None for a pooled snapshot.
        video_mask: (N, Lv) bool, True for real tokens.
        text_tokens: (N, Lt, D) L2-normalised text tokens.
        text_mask: (N, Lt) bool.
        video_pooled: (N, D) L2-normalised video vectors, or None for a token snapshot.
        text_pooled: (N, D) L2-normalised text vectors.
        source_path: File the snapshot was loaded from (set by :func:`load_snapshot`).
    """

    sample_ids: list
    step: int
    epoch: float
    aggregation: str = "cico"
    checkpoint_path: str | None = None
    temperature: float = 0.07
    video_tokens: torch.Tensor | None = None
    video_mask: torch.Tensor | None = None
    text_tokens: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    video_pooled: torch.Tensor | None = None
    text_pooled: torch.Tensor | None = None
    source_path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # ids must survive JSON: strings stay, integer-likes (numpy, torch) become int
        self.sample_ids = [i if isinstance(i, str) else operator.index(i) for i in self.sample_ids]
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        has_tokens = [getattr(self, name) is not None for name in TOKEN_TENSORS]
        has_pooled = [getattr(self, name) is not None for name in POOLED_TENSORS]
        if not (all(has_tokens) or all(has_pooled)):
            raise ValueError(
                f"A snapshot needs all of {TOKEN_TENSORS} or all of {POOLED_TENSORS}; "
                f"got tokens {has_tokens} and pooled {has_pooled}."
            )
        for name in (*TOKEN_TENSORS, *POOLED_TENSORS):
            tensor = getattr(self, name)
            if tensor is not None and tensor.shape[0] != len(self.sample_ids):
                raise ValueError(
                    f"{name} has {tensor.shape[0]} rows but there are {len(self.sample_ids)} sample ids."
                )

    @property
    def kind(self) -> Literal["tokens", "pooled"]:
        """``"tokens"`` when token embeddings are stored (they win over pooled vectors)."""
        return "tokens" if self.video_tokens is not None else "pooled"

    @property
    def num_samples(self) -> int:
        return len(self.sample_ids)

    @classmethod
    def from_embeddings(
        cls,
        sample_ids: Sequence,
        step: int,
        epoch: float,
        video_tokens: torch.Tensor | None = None,
        video_mask: torch.Tensor | None = None,
        text_tokens: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        video_pooled: torch.Tensor | None = None,
        text_pooled: torch.Tensor | None = None,
        **metadata,
    ) -> Snapshot:
        """Build a snapshot from raw model outputs: vectors are L2-normalised, masks made bool."""

        def normalised(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else F.normalize(tensor.detach().float(), dim=-1).cpu()

        def boolean(mask: torch.Tensor | None) -> torch.Tensor | None:
            return None if mask is None else mask.detach().bool().cpu()

        return cls(
            sample_ids=list(sample_ids),
            step=step,
            epoch=epoch,
            video_tokens=normalised(video_tokens),
            video_mask=boolean(video_mask),
            text_tokens=normalised(text_tokens),
            text_mask=boolean(text_mask),
            video_pooled=normalised(video_pooled),
            text_pooled=normalised(text_pooled),
            **metadata,
        )

    def metadata_record(self) -> dict:
        """The JSON record stored in the file header."""
        return {
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_FORMAT_VERSION,
            "step": int(self.step),
            "epoch": float(self.epoch),
            "checkpoint_path": self.checkpoint_path,
            "aggregation": self.aggregation,
            "temperature": float(self.temperature),
            "kind": self.kind,
            "num_samples": self.num_samples,
            "sample_ids": self.sample_ids,
        }

    def pooled_vectors(self, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (N, D) video and text vectors; ``pooling`` is ``cls`` or ``mean`` for tokens."""
        if self.kind == "pooled":
            return self.video_pooled, self.text_pooled
        chunk = 1024  # float32 copies of every token at once would dwarf the fp16 snapshot
        video = [
            pool_video_tokens(
                self.video_tokens[i : i + chunk].float(), self.video_mask[i : i + chunk], pooling
            )
            for i in range(0, self.num_samples, chunk)
        ]
        text = [
            pool_text_tokens(self.text_tokens[i : i + chunk].float(), self.text_mask[i : i + chunk], pooling)
            for i in range(0, self.num_samples, chunk)
        ]
        return torch.cat(video), torch.cat(text)


def pad_and_concatenate(
    tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate batches of (B_k, L_k, D) tokens and (B_k, L_k) masks, right-padding to max L_k."""
    max_length = max(t.shape[1] for t in tokens)
    padded = [F.pad(t, (0, 0, 0, max_length - t.shape[1])) for t in tokens]
    padded_masks = [F.pad(m.bool(), (0, max_length - m.shape[1]), value=False) for m in masks]
    return torch.cat(padded), torch.cat(padded_masks)


def save_snapshot(snapshot: Snapshot, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``snapshot`` to one safetensors file (embeddings in ``dtype``, masks bool).

    Returns the path written. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = TOKEN_TENSORS if snapshot.kind == "tokens" else POOLED_TENSORS
    tensors = {}
    for name in names:
        tensor = getattr(snapshot, name)
        tensors[name] = tensor.bool() if name.endswith("mask") else tensor.to(dtype)
        tensors[name] = tensors[name].contiguous().cpu()
    save_file(tensors, str(path), metadata={SNAPSHOT_METADATA_KEY: json.dumps(snapshot.metadata_record())})
    return path


def snapshot_filename(step: int) -> str:
    """Conventional file name of the snapshot taken at ``step``."""
    return f"snapshot-step{step:09d}.safetensors"


def read_snapshot_record(path: str | Path) -> dict:
    """The JSON record of a snapshot file, without loading its tensors."""
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if SNAPSHOT_METADATA_KEY not in metadata:
        raise ValueError(
            f"{path} is not an SCL-SLT snapshot: its header has no {SNAPSHOT_METADATA_KEY!r} key."
        )
    record = json.loads(metadata[SNAPSHOT_METADATA_KEY])
    if record.get("version", 0) > SNAPSHOT_FORMAT_VERSION:
        raise ValueError(
            f"{path} has snapshot format version {record['version']}; "
            f"this code reads up to {SNAPSHOT_FORMAT_VERSION}."
        )
    return record


def load_snapshot(path: str | Path) -> Snapshot:
    """Load one snapshot file written by :func:`save_snapshot` (tensors keep their stored dtype)."""
    record = read_snapshot_record(path)
    with safe_open(str(path), framework="pt") as handle:
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return Snapshot(
        sample_ids=record["sample_ids"],
        step=record["step"],
        epoch=record["epoch"],
        aggregation=record["aggregation"],
        checkpoint_path=record.get("checkpoint_path"),
        temperature=record.get("temperature", 0.07),
        source_path=Path(path),
        **tensors,
    )


def find_snapshot_files(source: str | Path | Sequence[str | Path]) -> list[Path]:
    """Snapshot files from a folder (every ``*.safetensors`` in it) or an explicit list of paths."""
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        paths = sorted(Path(source).glob("*.safetensors"))
        if not paths:
            raise FileNotFoundError(f"No *.safetensors snapshot files in {source}.")
        return paths
    if isinstance(source, (str, Path)):
        return [Path(source)]
    return [Path(p) for p in source]


def load_snapshot_series(
    source: str | Path | Sequence[str | Path], first_and_last_only: bool = False
) -> list[Snapshot]:
    """Load snapshots sorted by (epoch, step) and check they describe the same samples.

    Args:
        source: A folder of snapshot files or a list of their paths.
        first_and_last_only: Load the tensors of only the earliest and latest snapshot (what the
            two-point ``delta`` score needs); every file's record is still validated.

    Raises:
        ValueError: If two snapshots disagree on sample ids or order, kind or aggregation, or two
            share the same (epoch, step).
    """
    paths = find_snapshot_files(source)
    records = [(read_snapshot_record(p), p) for p in paths]
    records.sort(key=lambda item: (item[0]["epoch"], item[0]["step"]))
    validate_same_samples(records)
    if first_and_last_only and len(records) > 2:
        records = [records[0], records[-1]]
    return [load_snapshot(path) for _, path in records]


def validate_same_samples(records: Sequence[tuple[dict, Path]]) -> None:
    """Raise a one-sentence ValueError when snapshot records do not cover identical samples."""
    reference, reference_path = records[0]
    seen_positions = set()
    for record, path in records:
        position = (record["epoch"], record["step"])
        if position in seen_positions:
            raise ValueError(
                f"Two snapshots share epoch {position[0]} and step {position[1]} (one is {path})."
            )
        seen_positions.add(position)
        for key in ("kind", "aggregation"):
            if record[key] != reference[key]:
                raise ValueError(
                    f"Snapshot {path} has {key}={record[key]!r} but {reference_path} has {reference[key]!r}."
                )
        ids, expected = record["sample_ids"], reference["sample_ids"]
        if ids != expected:
            raise ValueError(
                f"Snapshot {path} does not cover the same samples in the same order as {reference_path}: "
                f"{sample_mismatch(expected, ids)}."
            )


def sample_mismatch(expected: list, actual: list) -> str:
    """Describe where two sample-id lists first differ."""
    if len(expected) != len(actual):
        return f"{len(actual)} samples instead of {len(expected)}"
    position = next(i for i, (a, b) in enumerate(zip(expected, actual, strict=True)) if a != b)
    return f"position {position} holds {actual[position]!r} instead of {expected[position]!r}"


# --------------------------------------------------------------------------- similarity series


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
            :func:`load_snapshot_series`).
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
            :func:`fused_cico_logits`) or
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
        """Video tokens, video mask, text tokens, text mask of one snapshot on ``device``, cached."""
        if snapshot not in self._token_cache:
            snap = self.snapshots[snapshot]
            tensors = (snap.video_tokens, snap.video_mask, snap.text_tokens, snap.text_mask)
            self._token_cache[snapshot] = tuple(t.to(self.device) for t in tensors)
        return self._token_cache[snapshot]

    def block(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        rows, cols = rows.to(self.device), cols.to(self.device)
        if self.aggregation != "cico":
            video, text = self.pooled(snapshot, self.aggregation)
            return (rows_float(video, rows) @ rows_float(text, cols).transpose(0, 1)).cpu()
        video_lengths, text_lengths = self.lengths(snapshot)
        # similar lengths share a tile, so trimming each tile to its longest sample wastes little
        row_order = torch.argsort(video_lengths.index_select(0, rows), stable=True)
        col_order = torch.argsort(text_lengths.index_select(0, cols), stable=True)
        sorted_block = self.fused_sorted_block if self.uses_fused_kernel else self.reference_sorted_block
        result = sorted_block(snapshot, rows[row_order], cols[col_order])
        unsorted = torch.empty_like(result)
        unsorted[row_order.unsqueeze(1), col_order.unsqueeze(0)] = result
        return unsorted.cpu()

    @property
    def uses_fused_kernel(self) -> bool:
        return self.cico_kernel == "fused" and self.temperature >= FUSED_MIN_TEMPERATURE

    def tile_steps(self, num_rows: int) -> tuple[int, int]:
        """Rows and columns per tile (``tile_size``; a single row gets ``videos·texts`` columns)."""
        videos, texts = self.tile_size
        return (1, videos * texts) if num_rows == 1 else (videos, texts)

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
        """Run independent tile jobs: on the CPU on ``tile_workers`` threads, elsewhere in order."""
        if self.device.type != "cpu" or self.tile_workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                job()
            return
        # torch.set_num_threads in a worker thread only sets that thread's OpenMP team size
        with ThreadPoolExecutor(self.tile_workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()  # re-raises a worker's exception

    def text_rows(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Text tokens prepared for :func:`fused_cico_logits`, cached: (N, Lt, D + 2) float32
        augmented rows and (N, Lt) mean weights (None if ``direction`` needs none).

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

    def lengths(self, snapshot: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,) long numbers of real video and text tokens of one snapshot, on ``device``, cached."""
        if snapshot not in self._lengths_cache:
            _, video_mask, _, text_mask = self.tokens(snapshot)
            self._lengths_cache[snapshot] = (video_mask.sum(dim=1), text_mask.sum(dim=1))
        return self._lengths_cache[snapshot]

    def cico_tile(self, snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """Reference-kernel CiCo of one tile → (r, c), with padding trimmed to its longest sample."""
        video_tokens, video_mask, text_tokens, text_mask = (
            tensor.index_select(0, indices)
            for tensor, indices in zip(self.tokens(snapshot), (rows, rows, cols, cols), strict=True)
        )
        video_tokens, video_mask = trim_padding(video_tokens, video_mask)
        text_tokens, text_mask = trim_padding(text_tokens, text_mask)
        video_to_text, text_to_video = cico_similarity(
            video_tokens.float(), video_mask, text_tokens.float(), text_mask, self.temperature
        )
        return combine_directions(video_to_text, text_to_video.transpose(0, 1), self.direction)

    def pairs(self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor) -> torch.Tensor:
        if self.aggregation != "cico":
            return self.pooled_pairs(snapshot, video_indices, text_indices)
        return self.cico_pairs(snapshot, video_indices, text_indices)

    def pooled_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor, chunk: int = 1 << 12
    ) -> torch.Tensor:
        """Pooled cosine of the pairs → (P,) float32, ``chunk`` pairs per job (bounded memory).

        The rows of a chunk are gathered once per distinct index of a run (a side given as runs
        of equal indices, like ``arange(N).repeat_interleave(M)``, costs one random read per run,
        not per pair). Chunks are small so that their temporaries stay in cache and are reused by
        the allocator (chunks of 2¹⁸ pairs made 256 MB temporaries, fresh pages every time: 2–4×
        slower); they run on ``tile_workers`` threads. Extra memory per worker: about
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

    def cico_pairs(
        self, snapshot: int, video_indices: torch.Tensor, text_indices: torch.Tensor
    ) -> torch.Tensor:
        """CiCo of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32.

        Fused kernel: per video, its texts sorted by length and cut into chunks of
        ``pair_chunk`` (see :meth:`fused_pairs_of_video`); otherwise one 1 × k reference tile per
        video. Each pair is computed once, with padding trimmed to its chunk's longest text.
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
        (Lv, pair_chunk·Lt) logits near the size of a core's L2 cache and trim padding well (one
        tile of all of a video's texts made the kernel memory-bound: 1.4–1.7× slower). Extra
        memory per call: about ``pair_chunk·Lt·(D+2)`` floats plus two logits tiles.
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
                        snapshot, torch.tensor([video], device=self.device), texts[part].to(self.device)
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

    def candidate_block(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        pooling = self.aggregation if self.aggregation != "cico" else self.candidate_pooling
        video, text = self.pooled(self.num_snapshots - 1, pooling)
        rows, cols = rows.to(self.device), cols.to(self.device)
        forward = rows_float(video, rows) @ rows_float(text, cols).transpose(0, 1)  # s(V_i, T_j), (r, c)
        backward = rows_float(text, rows) @ rows_float(video, cols).transpose(0, 1)  # s(V_j, T_i), (r, c)
        return (0.5 * (forward + backward)).cpu()


def rows_float(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D)."""
    return vectors.index_select(0, rows).float()


def gather_runs(vectors: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``vectors[rows]`` as float32 (r, D), reading each run of equal consecutive ``rows`` once."""
    unique, inverse = torch.unique_consecutive(rows, return_inverse=True)
    if unique.shape[0] * 2 > rows.shape[0]:  # few repeats: a plain gather is cheaper
        return rows_float(vectors, rows)
    return rows_float(vectors, unique).index_select(0, inverse)


FUSED_MIN_TEMPERATURE = 0.015  # below, exp(1/τ) summed over tokens could overflow float32
PADDING_LOGIT = -1.0e4  # times 1/τ ≥ 1: exp2 underflows to exactly 0 in float32
LOG2_E = 1.4426950408889634  # log₂(e): base-2 logits, so that exp2 replaces exp


def augment_video_tokens(tokens: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(a, Lv, D) → (a, Lv, D + 2) float32 rows ``[v·log₂e / τ, 1, pad]`` (pad: 0 real, PADDING_LOGIT padded).

    The ``log₂e`` factor makes the GEMM yield base-2 logits: ``exp2`` is several times cheaper
    than ``exp`` on the CPU and gives the same softmax weights.
    """
    pad = torch.where(mask, 0.0, PADDING_LOGIT).unsqueeze(-1)  # (a, Lv, 1)
    return torch.cat([tokens * (LOG2_E / temperature), torch.ones_like(pad), pad], dim=-1)


def augment_text_tokens(tokens: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(b, Lt, D) → (b, Lt, D + 2) float32 rows ``[t, pad / τ, 1 / τ]``: row·row = c·log₂e/τ + pads/τ."""
    pad = torch.where(mask, 0.0, PADDING_LOGIT).unsqueeze(-1)  # (b, Lt, 1)
    return torch.cat([tokens, pad * (1.0 / temperature), torch.full_like(pad, 1.0 / temperature)], dim=-1)


def mean_weights(
    mask: torch.Tensor, temperature: float, direction: Direction, side: Literal["video", "text"]
) -> torch.Tensor | None:
    """(n, L) float32 weights of the mean over one side's real tokens, for :func:`fused_cico_logits`.

    The mean over video tokens closes the video→text direction (softmax over text tokens), the
    mean over text tokens the text→video one; ``None`` when ``direction`` leaves that one out.
    The weights also carry ``τ / log₂e``, which turns a mean of base-2 logits back into a mean
    of cosines, and the ½ of ``direction="both"``.
    """
    closes = "video_to_text" if side == "video" else "text_to_video"
    if direction not in (closes, "both"):
        return None
    scale = temperature / LOG2_E * (0.5 if direction == "both" else 1.0)
    return mask * (scale / mask.sum(1, keepdim=True).clamp_min(1))


def fused_cico_logits(
    video_rows: torch.Tensor,
    text_rows: torch.Tensor,
    video_weights: torch.Tensor | None,
    text_weights: torch.Tensor | None,
    workspace: torch.Tensor | None = None,
) -> torch.Tensor:
    """CiCo similarity of a tile with one GEMM, equal to ``cico_similarity`` within float32 rounding.

    The rows come from :func:`augment_video_tokens` and :func:`augment_text_tokens`: their two
    extra coordinates make the GEMM itself yield ``c_ij·log₂e / τ`` for real token pairs and a
    huge negative logit for any pair with a padded token (its softmax weight is then exactly 0),
    so no masked copies of the (a·Lv, b·Lt) tile are made. Since ``|c_ij| ≤ 1``, ``exp(c_ij / τ)``
    (computed as ``exp2``) cannot overflow for ``τ ≥ FUSED_MIN_TEMPERATURE`` and no max is
    subtracted. After the GEMM: one ``exp2`` and one product over the tile; the weights and the
    weighted logits lie side by side, so each direction's two softmax sums take one reduction
    (a matrix–vector product over text tokens, a sum over video tokens).

    Args:
        video_rows: (a, Lv, D + 2) augmented video tokens.
        text_rows: (b, Lt, D + 2) augmented text tokens.
        video_weights: (a, Lv) from :func:`mean_weights` (side ``"video"``), or None.
        text_weights: (b, Lt) from :func:`mean_weights` (side ``"text"``), or None.
        workspace: Optional float32 buffer of at least ``2·a·Lv·b·Lt`` elements, reused across
            calls (fresh large allocations cost page faults); allocated when missing.

    Returns:
        (a, b) float32 ``s(V_i, T_j)``.
    """
    (a, lv, _), (b, lt, _) = video_rows.shape, text_rows.shape
    size = a * lv * b * lt
    if workspace is None or workspace.numel() < 2 * size:
        workspace = torch.empty(2 * size, device=video_rows.device)
    both = workspace[: 2 * size].view(2, a * lv, b * lt)  # [exp2(logits), logits·exp2(logits)]
    weights, weighted = both.unbind(0)
    torch.mm(video_rows.reshape(a * lv, -1), text_rows.reshape(b * lt, -1).transpose(0, 1), out=weighted)
    torch.exp2(weighted, out=weights)  # = exp(c/τ); padded pairs: 0
    weighted.mul_(weights)
    result = torch.zeros(a, b, device=video_rows.device)
    if video_weights is not None:  # softmax over each text's tokens, mean over the video tokens
        sums = torch.mv(both.view(-1, lt), torch.ones(lt, device=both.device)).view(2, a, lv, b)
        per_token = sums[1].div_(sums[0].clamp_min_(1e-30))  # (a, Lv, b); padded rows: 0
        result.add_(torch.bmm(video_weights.unsqueeze(1), per_token).view(a, b))
    if text_weights is not None:  # softmax over each video's tokens, mean over the text tokens
        sums = both.view(2 * a, lv, b * lt).sum(1).view(2, a, b * lt)
        per_token = sums[1].div_(sums[0].clamp_min_(1e-30)).mul_(text_weights.view(-1))  # (a, b·Lt)
        result.add_(torch.mv(per_token.view(-1, lt), torch.ones(lt, device=both.device)).view(a, b))
    return result


def combine_directions(
    video_to_text: torch.Tensor, text_to_video: torch.Tensor, direction: Direction
) -> torch.Tensor:
    """``s(V_i, T_j)`` from the (a, b) video→text and (a, b) text→video matrices."""
    if direction == "video_to_text":
        return video_to_text
    if direction == "text_to_video":
        return text_to_video
    return 0.5 * (video_to_text + text_to_video)


def trim_padding(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing all-padding positions of a (n, L, D) / (n, L) batch (right padding assumed)."""
    length = max(int(mask.sum(dim=1).max()), 1)
    return tokens[:, :length], mask[:, :length]


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
