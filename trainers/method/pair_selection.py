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
  pairs that end far apart are approximated as neutral. Memory ``O(N·M)``. For very large N the
  candidate search can be approximate (``search="ann"``: an inverted-file inner-product index of
  the optional ``faiss`` library, see :func:`ann_candidates`); without ``faiss`` it falls back to
  the exact search with a warning.

A scores file (:func:`save_pair_scores`) says which samples its rows belong to: row and column i
are sample i of the reference snapshots, and a training set reordered or filtered differently
(another manifest, ``on_error="skip"`` dropping other clips) would silently get a wrong curriculum
if only the count were checked. Its header holds, as JSON under the key ``"scl_slt_pair_scores"``:

* ``format`` ``"scl-slt-pair-scores"``, ``version`` 1, ``num_samples``;
* ``sample_ids``: the snapshots' sample ids (the corpus ``name`` column, or dataset indices),
  in the order of the score rows, and ``sample_ids_sha256`` (SHA-256 of their compact JSON) to
  catch a damaged header;
* ``series``: the snapshot series the scores came from (each snapshot's step, epoch, file name
  and checkpoint path; the aggregation and temperature), or None when unknown.

:func:`align_order` compares stored ids with a training set's: the same list → nothing to do;
the same samples in another order → the permutation that reorders the scores; anything else → one
ValueError naming the first differing position, both names and both counts.
"""

from __future__ import annotations

import hashlib
import json
import typing
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .atomic_files import atomic_file
from .damaged_files import DamagedFileError, read_safetensors_metadata
from .similarity_series import RowShare, SimilaritySeries, SnapshotSimilaritySeries, as_similarity_series
from .snapshots import Snapshot

ScoreKind = Literal["delta", "slope"]
SCORE_KINDS: tuple[str, ...] = typing.get_args(ScoreKind)
SCORES_METADATA_KEY = "scl_slt_pair_scores"
SCORES_FORMAT = "scl-slt-pair-scores"
SCORES_FORMAT_VERSION = 1
SPARSE_TENSORS = frozenset({"indices", "scores", "reverse_scores"})
SCORES_REMEDY = (
    "compute the scores again from the reference snapshots (compute_pair_scores; a recipe run "
    "does so when its command is run again)"
)


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
        ``columns[row_offsets[i]:row_offsets[i+1]]``, in increasing order. A pair that is a
        candidate of both its samples appears once per direction (weighted as its first
        occurrence in row-major candidate order).

        Memory matters at N = 10⁶: the distinct pairs ``low < high`` come out of one sort already
        ordered by (low, high), which is the (row, column) order of the direction low → high. Row r
        of the CSR lists its neighbours below r (direction high → low, one stable sort by row)
        and then those above r, so no sort of all 2·E entries is needed.
        """
        n, m = self.indices.shape
        keys = torch.arange(n).repeat_interleave(m)  # rows
        cols = self.indices.reshape(-1)
        high = torch.maximum(keys, cols)
        keys = torch.minimum(keys, cols).mul_(n).add_(high)  # low · N + high
        del high
        keys, first = unique_first(keys)  # sorted by (low, high)
        weights = (self.scores + self.reverse_scores).reshape(-1).float()[first]
        del first
        low, high = keys // n, keys % n
        del keys
        above, below = torch.bincount(low, minlength=n), torch.bincount(high, minlength=n)
        row_offsets = torch.zeros(n + 1, dtype=torch.long)
        row_offsets[1:] = torch.cumsum(above + below, dim=0)
        columns = torch.empty(2 * low.shape[0], dtype=torch.long)
        edge_weights = torch.empty(2 * low.shape[0], dtype=torch.float32)
        # direction low → high, already in (row, column) order: after the row's lower neighbours
        slots = rank_in_run(low, above).add_(row_offsets[low]).add_(below[low])
        columns[slots], edge_weights[slots] = high, weights
        # direction high → low: a stable sort by row keeps each row's columns (low) increasing
        order = torch.sort(high, stable=True).indices
        rows = high[order]
        del high
        slots = rank_in_run(rows, below).add_(row_offsets[rows])
        del rows
        columns[slots], edge_weights[slots] = low[order], weights[order]
        return row_offsets, columns, edge_weights


def rank_in_run(sorted_rows: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(E,) position of each entry of a non-decreasing ``sorted_rows`` within its run of equal rows.

    ``counts`` (N,) is ``bincount(sorted_rows)``.
    """
    run_starts = torch.cumsum(counts, dim=0) - counts
    return torch.arange(sorted_rows.shape[0]) - run_starts[sorted_rows]


def unique_first(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique keys and, for each, the position of its first occurrence in ``keys``."""
    sorted_keys, order = torch.sort(keys, stable=True)
    starts = torch.ones_like(sorted_keys, dtype=torch.bool)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return sorted_keys[starts], order[starts]


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


def snapshot_coefficients(series: SimilaritySeries, score: ScoreKind) -> list[tuple[int, float]]:
    """The score as a linear combination of snapshot similarities: ``[(snapshot, weight), ...]``."""
    if score == "delta":
        return [(series.num_snapshots - 1, 1.0), (0, -1.0)]
    return list(enumerate(slope_weights(series.positions).tolist()))


def score_pairs(
    series: SimilaritySeries, video_indices: torch.Tensor, text_indices: torch.Tensor, score: ScoreKind
) -> torch.Tensor:
    """Scores of the pairs ``(video_indices[p], text_indices[p])`` → (P,) float32."""
    total = torch.zeros(video_indices.shape[0], dtype=torch.float32)
    for snapshot, weight in snapshot_coefficients(series, score):
        total.add_(series.pairs(snapshot, video_indices, text_indices), alpha=weight)
    return total


def compute_dense_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    score: ScoreKind = "delta",
    block_size: int = 512,
    share: RowShare | None = None,
    **series_kwargs,
) -> torch.Tensor | None:
    """Exact (N, N) float32 Pair Selection scores; entry (i, j) scores video i with text j.

    Args:
        source: A :class:`SimilaritySeries`, an (S, N, N) similarity tensor or snapshots sorted
            by epoch.
        score: ``"delta"`` (last − first) or ``"slope"`` (least squares over all snapshots).
        block_size: Rows computed at once; peak extra memory is about ``block_size · N`` floats
            per snapshot block (plus CiCo tiles inside the series). Snapshots are the outer
            loop, so a series prepares each snapshot's tensors once.
        share: This process's row blocks when several processes share the work (every one of
            them calls this function): each computes its blocks, process 0 gets the whole matrix
            (identical to one process's), the others None. Process 0 then holds the received
            rows twice (as parts and in the result) for a moment: about ``8·N²`` bytes.
        **series_kwargs: Passed to the series built from ``source`` (e.g. ``aggregation``).

    Returns:
        (N, N) float32 with a zero diagonal (None on the processes of a share other than 0).
    """
    series = as_similarity_series(source, **series_kwargs)
    check_series(series, score)
    share = share or RowShare()
    n = series.num_samples
    all_cols = torch.arange(n)
    dense = torch.zeros(n, n, dtype=torch.float32) if share.count == 1 else None
    blocks: dict[int, torch.Tensor] = {}  # start row -> (r, N) rows of this process
    for number, start in enumerate(range(0, n, block_size)):
        if share.owns(number):  # in one process, views of the result
            blocks[start] = (
                dense[start : start + block_size]
                if dense is not None
                else torch.zeros(min(block_size, n - start), n)
            )
    for snapshot, weight in snapshot_coefficients(series, score):  # one snapshot's tensors at a time
        for start, rows in blocks.items():
            block_rows = torch.arange(start, start + rows.shape[0])
            rows.add_(series.block(snapshot, block_rows, all_cols), alpha=weight)
    if dense is None:
        parts = share.gather_to_main(blocks)
        if parts is None:
            return None
        dense = torch.zeros(n, n, dtype=torch.float32)
        for part in parts:
            for start, rows in part.items():
                dense[start : start + rows.shape[0]] = rows
    dense.fill_diagonal_(0.0)
    return dense


SearchKind = Literal["exact", "ann"]


def find_candidates(
    series: SimilaritySeries,
    num_candidates: int,
    block_size: int = 512,
    search: SearchKind = "exact",
    ann_lists: int | None = None,
    ann_probes: int = 16,
) -> torch.Tensor:
    """(N, M) long: for every i, the M samples j ≠ i with the highest ``series.candidate_block`` score.

    ``search="exact"``: exact top-M on row blocks (O(N²·D) work); ties go to the lower index.
    ``search="ann"``: approximate, with :func:`ann_candidates` (needs ``faiss`` and a series
    with ``candidate_vectors``; otherwise a warning and the exact search).
    """
    n = series.num_samples
    if not 1 <= num_candidates <= n - 1:
        raise ValueError(f"num_candidates must be between 1 and N-1 = {n - 1}, got {num_candidates}.")
    if search not in ("exact", "ann"):
        raise ValueError(f"search must be 'exact' or 'ann', got {search!r}")
    if search == "ann":
        if faiss_available() and hasattr(series, "candidate_vectors"):
            return ann_candidates(series, num_candidates, ann_lists, ann_probes, block_size)
        warnings.warn(
            "search='ann' needs the optional faiss package (pip install faiss-cpu) and pooled "
            "candidate vectors; falling back to the exact candidate search.",
            stacklevel=2,
        )
    indices = torch.empty(n, num_candidates, dtype=torch.long)
    for start in range(0, n, block_size):
        rows = torch.arange(start, min(start + block_size, n))
        indices[rows] = exact_candidate_rows(series, rows, num_candidates)
    return indices


def exact_candidate_rows(series: SimilaritySeries, rows: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """(r, M) exact top-M candidates of ``rows`` against all N samples."""
    similarity = series.candidate_block(rows, torch.arange(series.num_samples))  # (r, N)
    similarity[torch.arange(len(rows)), rows] = float("-inf")  # never its own positive
    return torch.topk(similarity, num_candidates, dim=1, sorted=True).indices


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def ann_candidates(
    series: SimilaritySeries,
    num_candidates: int,
    num_lists: int | None = None,
    num_probes: int = 16,
    chunk: int = 1 << 15,
    train_size: int = 1 << 17,
) -> torch.Tensor:
    """(N, M) approximate top-M candidates with a faiss inverted-file inner-product index.

    The symmetric candidate score is an inner product, ``½ (query_i · key_j)`` with
    ``query_i = [V_i, T_i]`` and ``key_j = [T_j, V_j]`` (see ``candidate_vectors``), so the keys
    go into an IVF index (``num_lists`` k-means cells, default ``4·√N``, trained on at most
    ``train_size`` keys; vectors stored as fp16) and each query scans ``num_probes`` cells. The
    query's own key is dropped; a row that comes back short (empty cells) is redone exactly.
    Memory: the index holds ``N·2D`` fp16 values; queries and keys are made ``chunk`` at a time.
    """
    import faiss

    n = series.num_samples
    rows_all = torch.arange(n)
    train_rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: min(n, train_size)]
    _, train_keys = series.candidate_vectors(train_rows.sort().values)
    dim = train_keys.shape[1]
    num_lists = num_lists or max(1, min(int(4 * n**0.5), n // 39))  # faiss wants ≥ 39 points per cell
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, num_lists, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index.train(train_keys.numpy())
    del train_keys
    for start in range(0, n, chunk):
        index.add(series.candidate_vectors(rows_all[start : start + chunk])[1].numpy())
    index.nprobe = num_probes
    indices = torch.empty(n, num_candidates, dtype=torch.long)
    short_rows = []
    for start in range(0, n, chunk):
        rows = rows_all[start : start + chunk]
        queries, _ = series.candidate_vectors(rows)
        _, found = index.search(queries.numpy(), num_candidates + 1)
        found = torch.from_numpy(found)  # (r, M+1), −1 where a cell ran out
        keep = (found != rows[:, None]) & (found >= 0)
        enough = keep.sum(1) >= num_candidates
        # the first M kept entries of each row, in score order
        position = torch.where(keep, keep.cumsum(1) - 1, num_candidates)
        chosen = torch.full((len(rows), num_candidates + 1), -1, dtype=torch.long)
        chosen.scatter_(1, position, torch.where(keep, found, -1))
        indices[rows] = chosen[:, :num_candidates]
        short_rows.append(rows[~enough])
    short = torch.cat(short_rows)
    for start in range(0, short.shape[0], 512):
        rows = short[start : start + 512]
        indices[rows] = exact_candidate_rows(series, rows, num_candidates)
    return indices


def compute_sparse_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    num_candidates: int = 256,
    score: ScoreKind = "delta",
    block_size: int = 512,
    search: SearchKind = "exact",
    ann_lists: int | None = None,
    ann_probes: int = 16,
    candidates: torch.Tensor | None = None,
    **series_kwargs,
) -> SparseScores:
    """Pair Selection scores of each sample's top-``num_candidates`` candidates (see module doc).

    Memory is O(N · num_candidates) plus one ``block_size × N`` block of the exact candidate
    search. ``search``, ``ann_lists``, ``ann_probes``: see :func:`find_candidates`.
    ``candidates``: (N, M) long candidates found before (e.g. by :func:`find_candidates`); then
    no search runs and ``num_candidates`` is ignored.
    """
    series = as_similarity_series(source, **series_kwargs)
    check_series(series, score)
    indices = (
        find_candidates(series, num_candidates, block_size, search, ann_lists, ann_probes)
        if candidates is None
        else candidates
    )  # (N, M)
    n, m = indices.shape
    rows = torch.arange(n).repeat_interleave(m)  # (N·M,)
    cols = indices.reshape(-1)
    if not series.expensive_pairs:
        forward = score_pairs(series, rows, cols, score).reshape(n, m)
        backward = score_pairs(series, cols, rows, score).reshape(n, m)
        return SparseScores(indices=indices, scores=forward, reverse_scores=backward)
    # (i, j) is the forward pair of i and the backward pair of j when both are candidates of
    # each other (common: the candidate score is symmetric): score every distinct pair once
    keys, inverse = torch.unique(torch.cat([rows * n + cols, cols * n + rows]), return_inverse=True)
    values = score_pairs(series, keys // n, keys % n, score)[inverse]  # (2·N·M,)
    return SparseScores(
        indices=indices, scores=values[: n * m].reshape(n, m), reverse_scores=values[n * m :].reshape(n, m)
    )


def compute_pair_scores(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    mode: Literal["dense", "sparse"] = "dense",
    score: ScoreKind = "delta",
    num_candidates: int = 256,
    block_size: int = 512,
    search: SearchKind = "exact",
    share: RowShare | None = None,
    **series_kwargs,
) -> torch.Tensor | SparseScores | None:
    """Dense or sparse Pair Selection scores, as configured (one entry point for the recipe).

    ``share``: dense scores only, see :func:`compute_dense_scores` (None on processes other than 0).
    """
    if mode == "dense":
        return compute_dense_scores(source, score=score, block_size=block_size, share=share, **series_kwargs)
    if share is not None and share.count > 1:
        raise ValueError(f"Only dense scores can be shared between processes, not mode={mode!r}.")
    if mode == "sparse":
        return compute_sparse_scores(source, num_candidates, score, block_size, search, **series_kwargs)
    raise ValueError(f"mode must be 'dense' or 'sparse', got {mode!r}")


# --- scores files: the samples the rows belong to ---------------------------------------------
def ids_digest(sample_ids: Sequence) -> str:
    """SHA-256 (hex) of the compact JSON of ``sample_ids``."""
    return hashlib.sha256(json.dumps(list(sample_ids), separators=(",", ":")).encode()).hexdigest()


def source_snapshots(source: Any) -> list[Snapshot] | None:
    """The snapshots behind ``source`` (a snapshot list or a :class:`SnapshotSimilaritySeries`)."""
    if isinstance(source, SnapshotSimilaritySeries):
        return source.snapshots
    if isinstance(source, Sequence) and source and all(isinstance(s, Snapshot) for s in source):
        return list(source)
    return None


def series_record(source: Any) -> dict | None:
    """JSON provenance of the snapshot series ``source``; None when it is not made of snapshots."""
    snapshots = source_snapshots(source)
    if snapshots is None:
        return None
    return {
        "snapshots": [
            {
                "step": int(s.step),
                "epoch": float(s.epoch),
                "file": s.source_path.name if s.source_path is not None else None,
                "checkpoint_path": s.checkpoint_path,
            }
            for s in snapshots
        ],
        "aggregation": getattr(source, "aggregation", snapshots[0].aggregation),
        "temperature": float(getattr(source, "temperature", snapshots[0].temperature)),
    }


def scores_record(num_samples: int, source: Any = None, sample_ids: Sequence | None = None) -> dict:
    """The header record of scores over ``num_samples`` samples.

    ``sample_ids`` default to those of the snapshots in ``source``; given both, they must agree.
    Without either, the record holds no ids (such a file is only count-checked when loaded).
    """
    snapshots = source_snapshots(source)
    from_source = None if snapshots is None else list(snapshots[0].sample_ids)
    if sample_ids is not None and from_source is not None and list(sample_ids) != from_source:
        raise ValueError("sample_ids differ from the sample ids of the snapshots the scores came from.")
    ids = list(sample_ids) if sample_ids is not None else from_source
    if ids is not None and len(ids) != num_samples:
        raise ValueError(f"{len(ids)} sample ids were given for scores over {num_samples} samples.")
    return {
        "format": SCORES_FORMAT,
        "version": SCORES_FORMAT_VERSION,
        "num_samples": num_samples,
        "sample_ids": ids,
        "sample_ids_sha256": None if ids is None else ids_digest(ids),
        "series": series_record(source),
    }


def parse_scores_record(metadata: dict[str, str] | None, path: str | Path) -> dict | None:
    """The record of a scores file's header, checked; None for a file written before records existed."""
    if not metadata or SCORES_METADATA_KEY not in metadata:
        return None
    try:
        record = json.loads(metadata[SCORES_METADATA_KEY])
    except json.JSONDecodeError as error:
        raise DamagedFileError(path, f"its scores record is not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise DamagedFileError(path, "its scores record is not a JSON object")
    if record.get("version", 0) > SCORES_FORMAT_VERSION:
        raise ValueError(
            f"{path} has pair-scores format version {record['version']}; "
            f"this code reads up to {SCORES_FORMAT_VERSION}."
        )
    ids = record.get("sample_ids")
    if ids is not None and ids_digest(ids) != record.get("sample_ids_sha256"):
        raise DamagedFileError(path, "the sample ids in its header do not match their SHA-256")
    return record


def align_order(stored_ids: Sequence, wanted_ids: Sequence, path: str | Path) -> torch.Tensor | None:
    """How to reorder scores over ``stored_ids`` to the order of ``wanted_ids``.

    Returns None when the lists are equal, else the (N,) long permutation ``order`` with
    ``wanted_ids[k] == stored_ids[order[k]]``.

    Raises:
        ValueError: When the two lists do not hold the same samples (or repeat ids, which makes
            the order ambiguous), naming the first differing position.
    """
    stored, wanted = list(stored_ids), list(wanted_ids)
    if stored == wanted:
        return None
    unique = len(set(wanted)) == len(wanted)
    if unique and Counter(stored) == Counter(wanted):
        position = {sample: index for index, sample in enumerate(stored)}
        return torch.tensor([position[sample] for sample in wanted], dtype=torch.long)
    first = next((i for i, (a, b) in enumerate(zip(wanted, stored, strict=False)) if a != b), None)
    first = min(len(wanted), len(stored)) if first is None else first
    found = repr(stored[first]) if first < len(stored) else "nothing"
    expected = repr(wanted[first]) if first < len(wanted) else "nothing"
    reason = "" if unique or Counter(stored) != Counter(wanted) else " and the training set repeats names"
    raise ValueError(
        f"The Pair Selection scores in {path} were computed for other samples than the training set"
        f"{reason}: at position {first} the training set has {expected} but the scores have {found} "
        f"(training set {len(wanted)} samples, scores {len(stored)}); recompute the scores from "
        "reference snapshots of this training set."
    )


def save_pair_scores(
    scores: torch.Tensor | SparseScores,
    path: str | Path,
    metadata: dict | None = None,
    source: SimilaritySeries | Sequence[Snapshot] | None = None,
    sample_ids: Sequence | None = None,
) -> Path:
    """Write dense or sparse scores to a safetensors file, atomically (:mod:`.atomic_files`).

    The header holds the string ``metadata`` and the record described in the module doc: the sample
    ids of the score rows (those of the snapshots in ``source``, the snapshot list or series the
    scores were computed from, or ``sample_ids`` given explicitly) and the snapshot series.
    """
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
    count = scores.num_samples if isinstance(scores, SparseScores) else scores.shape[0]
    header[SCORES_METADATA_KEY] = json.dumps(scores_record(count, source, sample_ids))
    with atomic_file(path, "pair_scores") as temporary:
        save_file(tensors, str(temporary), metadata=header)
    return path


def load_pair_scores(path: str | Path, sample_ids: Sequence | None = None) -> torch.Tensor | SparseScores:
    """Read what :func:`save_pair_scores` wrote; with ``sample_ids``, in the order of those samples.

    Scores stored for the same samples in another order are reordered; other samples raise a
    ValueError (see :func:`align_order`). A file without sample ids (written
    before they were stored) is returned as stored, with a warning: only its count can be checked.

    Raises:
        DamagedFileError: naming ``path``, what is wrong and how to compute the scores again, when
            the file does not read whole.
    """
    try:
        record = parse_scores_record(read_safetensors_metadata(path), path)
        scores = read_scores_tensors(path)
    except DamagedFileError as error:
        raise error.with_remedy(SCORES_REMEDY) from None
    if sample_ids is None:
        return scores
    if record is None or record.get("sample_ids") is None:
        warnings.warn(
            f"{path} stores no sample ids (written by an older version): only the number of samples "
            "is checked, not which samples the scores belong to; recompute the scores to check them.",
            stacklevel=2,
        )
        return scores
    order = align_order(record["sample_ids"], sample_ids, path)
    return scores if order is None else reorder_pair_scores(scores, order)


def read_scores_tensors(path: str | Path) -> torch.Tensor | SparseScores:
    """The dense (N, N) matrix or the sparse scores stored in ``path``, as stored.

    Raises:
        DamagedFileError: the file does not read whole or holds other tensors than scores do.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except SafetensorError as error:
        raise DamagedFileError(path, str(error)) from None
    if set(tensors) == {"dense"}:
        return tensors["dense"]
    if set(tensors) == SPARSE_TENSORS:
        try:
            return SparseScores(**tensors)
        except ValueError as error:
            raise DamagedFileError(path, str(error)) from None
    found = ", ".join(sorted(tensors)) or "none"
    expected = ", ".join(sorted(SPARSE_TENSORS))
    raise DamagedFileError(path, f"it holds the tensors {found}; scores are dense, or {expected}")


def reorder_pair_scores(
    scores: torch.Tensor | SparseScores, order: torch.Tensor
) -> torch.Tensor | SparseScores:
    """The scores of the samples renumbered: new sample k is old sample ``order[k]`` ((N,) permutation)."""
    if not isinstance(scores, SparseScores):
        return scores[order][:, order]
    new_index = torch.empty_like(order)
    new_index[order] = torch.arange(order.shape[0])
    return SparseScores(new_index[scores.indices[order]], scores.scores[order], scores.reverse_scores[order])
