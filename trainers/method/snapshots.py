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

:class:`~trainers.method.similarity_series.SnapshotSimilaritySeries` presents a series of
snapshots as similarity matrices read block by block.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from modeling_scl_slt.similarity import AGGREGATIONS, pool_text_tokens, pool_video_tokens

from .atomic_files import atomic_file
from .damaged_files import DamagedFileError, read_safetensors_metadata

SNAPSHOT_METADATA_KEY = "scl_slt_snapshot"
SNAPSHOT_FORMAT = "scl-slt-snapshot"
SNAPSHOT_FORMAT_VERSION = 1
TOKEN_TENSORS = ("video_tokens", "video_mask", "text_tokens", "text_mask")
POOLED_TENSORS = ("video_pooled", "text_pooled")
RECORD_KEYS = ("step", "epoch", "aggregation", "kind", "sample_ids")  # what a reader of a record uses


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

    Returns the path written, atomically (:mod:`.atomic_files`). Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = TOKEN_TENSORS if snapshot.kind == "tokens" else POOLED_TENSORS
    tensors = {}
    for name in names:
        tensor = getattr(snapshot, name)
        tensors[name] = tensor.bool() if name.endswith("mask") else tensor.to(dtype)
        tensors[name] = tensors[name].contiguous().cpu()
    metadata = {SNAPSHOT_METADATA_KEY: json.dumps(snapshot.metadata_record())}
    with atomic_file(path, "snapshot") as temporary:
        save_file(tensors, str(temporary), metadata=metadata)
    return path


def snapshot_filename(step: int) -> str:
    """Conventional file name of the snapshot taken at ``step``."""
    return f"snapshot-step{step:09d}.safetensors"


def read_snapshot_record(path: str | Path) -> dict:
    """The JSON record of a snapshot file, without loading its tensors.

    Raises:
        DamagedFileError: the file does not read whole, or its record does not parse or lacks a key.
        ValueError: the file is a safetensors file but no snapshot, or of a newer format version.
    """
    metadata = read_safetensors_metadata(path)
    if SNAPSHOT_METADATA_KEY not in metadata:
        raise ValueError(
            f"{path} is not an SCL-SLT snapshot: its header has no {SNAPSHOT_METADATA_KEY!r} key."
        )
    try:
        record = json.loads(metadata[SNAPSHOT_METADATA_KEY])
    except json.JSONDecodeError as error:
        raise DamagedFileError(path, f"its snapshot record is not valid JSON: {error}") from None
    missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise DamagedFileError(path, f"its snapshot record lacks {', '.join(missing)}")
    if record.get("version", 0) > SNAPSHOT_FORMAT_VERSION:
        raise ValueError(
            f"{path} has snapshot format version {record['version']}; "
            f"this code reads up to {SNAPSHOT_FORMAT_VERSION}."
        )
    return record


def load_snapshot(path: str | Path) -> Snapshot:
    """Load one snapshot file written by :func:`save_snapshot` (tensors keep their stored dtype).

    Raises:
        DamagedFileError: the file does not read whole or its tensors do not fit its record.
    """
    record = read_snapshot_record(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except SafetensorError as error:  # changed since its record was read
        raise DamagedFileError(path, str(error)) from None
    unknown = sorted(set(tensors) - {*TOKEN_TENSORS, *POOLED_TENSORS})
    if unknown:
        raise DamagedFileError(path, f"it holds tensors no snapshot has: {', '.join(unknown)}")
    try:
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
    except (TypeError, ValueError) as error:
        raise DamagedFileError(path, str(error)) from None


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
        DamagedFileError: naming the first snapshot file that does not read whole.
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
