"""The frame-features corpus: per-frame backbone features of every video, stored once, read by `datasets`.

A features folder ``DIR`` holds

- ``DIR/features.json``, written last (its presence means the corpus is complete)::

      {"format": "scl-slt-frame-features", "version": 1, "feature_dim": D, "dtype": "float16",
       "backbone": {"kind": "model" | "synthetic", "identity": "...", "source": "..."},
       "transform": {...the evaluation transform used...} or null,
       "language": "de", "splits": {"train": N, "validation": N, "test": N}}

  ``backbone.identity`` binds the features to the backbone that made them: for ``kind: model`` a
  sha256 over the backbone's architecture and weights (``trainers.application.feature_extraction``),
  for ``kind: synthetic`` (generated straight in feature space) ``feature-twin:<parameters hash>``.
- ``DIR/<split>/<start>-<stop>.parquet``: the rows ``start`` to ``stop - 1`` of the split, columns
  ``name`` (string), ``text`` (string), ``features`` (float16, shape (T, D), T varies per row) and
  ``num_frames`` (int, = T). Each shard is written under a temporary name and renamed, so a killed
  writer leaves only complete shards, and a rerun skips them.

Disk cost: ``frames × D × 2`` bytes, e.g. PHOENIX-2014T train (7,096 videos × 116 frames on average,
ResNet-18's D = 512) ≈ 0.84 GB. Reading memory-maps the Arrow data (``datasets``): a batch reads its
own rows only, as numpy arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Array2D, Dataset, DatasetDict, Features, Value, concatenate_datasets

FORMAT = "scl-slt-frame-features"
VERSION = 1
INFO_FILE = "features.json"
PENDING_FILE = "features.pending.json"  # the writer's settings while shards are being written
SPLITS = ("train", "validation", "test")
BACKBONE_KINDS = ("model", "synthetic")
DTYPE = "float16"


class FrameFeaturesError(ValueError):
    """A features folder that cannot be read or written as asked; the message names the file."""


@dataclass(frozen=True)
class FrameFeaturesInfo:
    """The contents of ``features.json``.

    Args:
        feature_dim: D, the size of one frame's feature vector.
        backbone: ``{"kind": "model" | "synthetic", "identity": str, "source": str}``.
        transform: the evaluation transform that made the frames (``size``, ``resize``), or None.
        language: the metric language of the texts (``de``, ``zh``, ...).
        splits: rows per split.
        dtype: storage dtype of the features (``float16``).
    """

    feature_dim: int
    backbone: dict[str, str]
    transform: dict[str, Any] | None
    language: str
    splits: dict[str, int]
    dtype: str = DTYPE

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> FrameFeaturesInfo:
        """Check ``data`` (parsed JSON) against the format; errors name ``where`` and the key."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FrameFeaturesError(
                f"{where}: not a frame-features description (expected format {FORMAT!r})"
            )
        if data.get("version") != VERSION:
            raise FrameFeaturesError(
                f"{where}: version {data.get('version')!r}; this release reads {VERSION}"
            )
        if data.get("dtype") != DTYPE:
            raise FrameFeaturesError(f"{where}: dtype {data.get('dtype')!r}; expected {DTYPE!r}")
        dim = data.get("feature_dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise FrameFeaturesError(f"{where}: feature_dim {dim!r}; expected a positive integer")
        backbone = data.get("backbone")
        if (
            not isinstance(backbone, dict)
            or backbone.get("kind") not in BACKBONE_KINDS
            or not isinstance(backbone.get("identity"), str)
        ):
            raise FrameFeaturesError(
                f"{where}: backbone {backbone!r}; expected {{'kind': 'model' or 'synthetic', "
                "'identity': str, 'source': str}"
            )
        splits = data.get("splits")
        if not isinstance(splits, dict) or not all(isinstance(n, int) and n >= 0 for n in splits.values()):
            raise FrameFeaturesError(f"{where}: splits {splits!r}; expected a mapping of split to row count")
        transform = data.get("transform")
        if transform is not None and not isinstance(transform, dict):
            raise FrameFeaturesError(f"{where}: transform {transform!r}; expected a mapping or null")
        language = data.get("language")
        if not isinstance(language, str) or not language:
            raise FrameFeaturesError(f"{where}: language {language!r}; expected a language code such as 'de'")
        return cls(dim, dict(backbone), transform, language, dict(splits))


def features_schema(feature_dim: int) -> Features:
    """The columns of a shard."""
    return Features(
        {
            "name": Value("string"),
            "text": Value("string"),
            "features": Array2D(shape=(None, feature_dim), dtype=DTYPE),
            "num_frames": Value("int32"),
        }
    )


@dataclass(frozen=True)
class FeatureRow:
    """One video: its ``name``, ``text`` and ``features`` (T, D), any float dtype (stored as float16)."""

    name: str
    text: str
    features: np.ndarray


class FrameFeaturesWriter:
    """Writes a features folder shard by shard; a rerun with the same settings skips complete shards.

    Use: ``writer = FrameFeaturesWriter(out_dir, info_without_splits...)``; for each split and each
    ``(start, stop)`` of :meth:`shard_ranges`, unless :meth:`has_shard`, compute the rows and
    :meth:`write_shard` them; then :meth:`finish`. A folder begun with other settings (backbone,
    transform, feature size, shard size) is refused, not mixed.

    Args:
        out_dir: the features folder (created).
        feature_dim: D.
        backbone: ``{"kind", "identity", "source"}`` (see the module docstring).
        transform: the evaluation transform's settings, or None (features not made from pixels).
        language: metric language of the texts.
        shard_size: rows per shard (the last one of a split may hold fewer).
    """

    def __init__(
        self,
        out_dir: str | Path,
        feature_dim: int,
        backbone: Mapping[str, str],
        transform: Mapping[str, Any] | None,
        language: str,
        shard_size: int = 256,
    ) -> None:
        if shard_size < 1:
            raise FrameFeaturesError(f"shard_size must be at least 1, got {shard_size}")
        self.out_dir = Path(out_dir)
        self.shard_size = shard_size
        self.settings = {
            "feature_dim": feature_dim,
            "backbone": dict(backbone),
            "transform": dict(transform) if transform is not None else None,
            "language": language,
            "shard_size": shard_size,
        }
        # The reader's checks, before anything is written.
        FrameFeaturesInfo.from_json(self.info(dict.fromkeys(SPLITS, 0)).to_json(), str(self.out_dir))
        self._begin()

    def _begin(self) -> None:
        if (self.out_dir / INFO_FILE).exists():
            raise FrameFeaturesError(
                f"{self.out_dir / INFO_FILE} exists: {self.out_dir} holds a finished features corpus; "
                "choose another folder or delete it"
            )
        pending = self.out_dir / PENDING_FILE
        if pending.exists():
            recorded = json.loads(pending.read_text(encoding="utf-8"))
            if recorded != json.loads(json.dumps(self.settings)):
                changed = sorted(k for k in self.settings if recorded.get(k) != self.settings[k])
                raise FrameFeaturesError(
                    f"{pending}: an unfinished extraction with other settings ({', '.join(changed)}) "
                    "is in this folder; rerun it with the same settings to resume, or delete the folder"
                )
            return
        if self.out_dir.exists() and any(self.out_dir.glob("*/*.parquet")):
            raise FrameFeaturesError(
                f"{self.out_dir} holds parquet shards but no {PENDING_FILE}; delete it first"
            )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(pending, json.dumps(self.settings, indent=2))

    def info(self, splits: Mapping[str, int]) -> FrameFeaturesInfo:
        settings = self.settings
        return FrameFeaturesInfo(
            feature_dim=settings["feature_dim"],
            backbone=settings["backbone"],
            transform=settings["transform"],
            language=settings["language"],
            splits=dict(splits),
        )

    def shard_ranges(self, num_rows: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of every shard of a split of ``num_rows`` rows."""
        return [
            (start, min(start + self.shard_size, num_rows)) for start in range(0, num_rows, self.shard_size)
        ]

    def shard_path(self, split: str, start: int, stop: int) -> Path:
        return self.out_dir / split / f"{start:08d}-{stop:08d}.parquet"

    def has_shard(self, split: str, start: int, stop: int) -> bool:
        return self.shard_path(split, start, stop).exists()

    def write_shard(self, split: str, start: int, rows: Sequence[FeatureRow]) -> Path:
        """Write ``rows`` (the split's rows ``start`` to ``start + len(rows) - 1``) atomically."""
        dim = self.settings["feature_dim"]
        for row in rows:
            shape = np.shape(row.features)
            if len(shape) != 2 or shape[1] != dim or shape[0] < 1:
                raise FrameFeaturesError(
                    f"features of {row.name!r} have shape {shape}; expected (frames >= 1, {dim})"
                )
        path = self.shard_path(split, start, start + len(rows))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # Dictionary encoding and statistics of the float16 values would take most of the write
        # time (5x) and help no reader.
        pq.write_table(
            shard_table(rows, dim), temporary, use_dictionary=["name", "text"], write_statistics=["name"]
        )

        os.replace(temporary, path)
        return path

    def finish(self, splits: Mapping[str, int]) -> FrameFeaturesInfo:
        """Check that every shard of every split is there, then write ``features.json``."""
        for split, num_rows in splits.items():
            missing = [r for r in self.shard_ranges(num_rows) if not self.has_shard(split, *r)]
            if missing:
                raise FrameFeaturesError(f"{self.out_dir / split}: shard(s) {missing} missing; cannot finish")
        for leftover in self.out_dir.glob("*/.*.tmp"):  # of writers killed mid-shard
            leftover.unlink()
        info = self.info(splits)
        atomic_write_text(self.out_dir / INFO_FILE, json.dumps(info.to_json(), indent=2))
        (self.out_dir / PENDING_FILE).unlink(missing_ok=True)
        return info


def shard_table(rows: Sequence[FeatureRow], dim: int) -> pa.Table:
    """The Arrow table of a shard, built from the arrays without per-value Python objects; its
    schema carries the ``datasets`` features (:func:`features_schema`)."""
    arrays = [np.asarray(row.features, dtype=np.float16) for row in rows]
    lengths = np.array([array.shape[0] for array in arrays], dtype=np.int32)
    values = pa.array(np.concatenate([array.reshape(-1) for array in arrays]), type=pa.float16())
    frames = pa.ListArray.from_arrays(pa.array(np.arange(0, len(values) + 1, dim, dtype=np.int32)), values)
    videos = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)), frames
    )
    schema = features_schema(dim).arrow_schema
    columns = [
        pa.array([row.name for row in rows], pa.string()),
        pa.array([row.text for row in rows], pa.string()),
        pa.ExtensionArray.from_storage(schema.field("features").type, videos),
        pa.array(lengths, pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def write_frame_features_corpus(
    out_dir: str | Path,
    splits: Mapping[str, Iterable[FeatureRow]],
    feature_dim: int,
    backbone: Mapping[str, str],
    transform: Mapping[str, Any] | None,
    language: str,
    shard_size: int = 256,
) -> FrameFeaturesInfo:
    """Write a whole features corpus from in-memory rows (generators welcome); returns its info.

    For features that are cheap to make (a generated twin). Rows are gathered one shard at a time.
    """
    writer = FrameFeaturesWriter(out_dir, feature_dim, backbone, transform, language, shard_size)
    counts: dict[str, int] = {}
    for split, rows in splits.items():
        buffer: list[FeatureRow] = []
        start = 0
        for row in rows:
            buffer.append(row)
            if len(buffer) == shard_size:
                writer.write_shard(split, start, buffer)
                start, buffer = start + len(buffer), []
        if buffer:
            writer.write_shard(split, start, buffer)
        counts[split] = start + len(buffer)
    return writer.finish(counts)


def read_frame_features_info(folder: str | Path) -> FrameFeaturesInfo:
    """The checked ``features.json`` of a features folder."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        pending = (
            " (an extraction into it has not finished: rerun it to resume)"
            if (Path(folder) / PENDING_FILE).exists()
            else ""
        )
        raise FrameFeaturesError(
            f"{path} is missing: {folder} is not a finished frame-features corpus{pending}"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FrameFeaturesError(f"{path} is not valid JSON: {error}") from None
    return FrameFeaturesInfo.from_json(data, str(path))


def load_frame_features(folder: str | Path) -> tuple[DatasetDict, FrameFeaturesInfo]:
    """The features corpus as a ``DatasetDict`` and its info.

    Every split is read from its parquet shards in row order and memory-mapped by ``datasets``; the
    ``features`` column comes out as a float16 numpy array (T, D) per row, ``name`` and ``text`` as
    str. The row counts must match ``features.json``.
    """
    folder = Path(folder)
    info = read_frame_features_info(folder)
    corpus = {}
    for split, expected in info.splits.items():
        shards = sorted((folder / split).glob("*.parquet"))
        if not shards:
            if expected:
                raise FrameFeaturesError(
                    f"{folder / split}: no parquet shards; features.json lists {expected} rows"
                )
            continue
        parts = [
            Dataset.from_parquet(str(shard), features=features_schema(info.feature_dim)) for shard in shards
        ]
        dataset = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        if len(dataset) != expected:
            raise FrameFeaturesError(
                f"{folder / split}: {len(dataset)} rows in its shards; features.json lists {expected}"
            )
        # numpy would upcast to float32 by default: rows stay float16 until the model casts them.
        corpus[split] = dataset.with_format(
            "numpy", columns=["features"], output_all_columns=True, dtype=np.float16
        )
    return DatasetDict(corpus), info


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
