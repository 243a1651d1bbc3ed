"""Which samples Pair Selection scores belong to: the record stored with them, and the alignment
of stored scores to a training set.

Row and column i of the scores are sample i of the reference snapshots. A training set that is
reordered or filtered differently (another manifest, ``on_error="skip"`` dropping other clips)
would silently get a wrong curriculum if only the count were checked, so a scores file written by
:func:`~trainers.method.pair_selection.save_pair_scores` carries, as JSON under the header key
``"scl_slt_pair_scores"``:

* ``format`` ``"scl-slt-pair-scores"``, ``version`` 1, ``num_samples``;
* ``sample_ids``: the snapshots' sample ids (the corpus ``name`` column, or dataset indices),
  in the order of the score rows, and ``sample_ids_sha256`` (SHA-256 of their compact JSON) to
  catch a damaged header; 18,000 names of about 30 characters are about 0.6 MB of header;
* ``series``: the snapshot series the scores came from (each snapshot's step, epoch, file name
  and checkpoint path; the aggregation and temperature), or None when unknown.

:func:`align_order` compares stored ids with a training set's: the same list → nothing to do;
the same samples in another order → the permutation that reorders the scores; anything else → one
ValueError naming the first differing position, both names and both counts.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .similarity_series import SnapshotSimilaritySeries
from .snapshots import Snapshot

SCORES_METADATA_KEY = "scl_slt_pair_scores"
SCORES_FORMAT = "scl-slt-pair-scores"
SCORES_FORMAT_VERSION = 1


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
    record = json.loads(metadata[SCORES_METADATA_KEY])
    if record.get("version", 0) > SCORES_FORMAT_VERSION:
        raise ValueError(
            f"{path} has pair-scores format version {record['version']}; "
            f"this code reads up to {SCORES_FORMAT_VERSION}."
        )
    ids = record.get("sample_ids")
    if ids is not None and ids_digest(ids) != record.get("sample_ids_sha256"):
        raise ValueError(
            f"{path}: the sample ids in the header do not match their SHA-256; the file is damaged."
        )
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
