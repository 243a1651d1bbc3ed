"""Any sign language: load a corpus from a manifest table of videos (or frame folders) and text.

Expected on disk: one manifest file, or one per split, in one of these formats
(chosen from the extension, or with ``format=``):

- ``.csv`` (comma), ``.tsv`` (tab): one header line, then one row per sample;
  ``delimiter=`` overrides the separator (How2Sign's ``.csv`` files are tab-separated);
- ``.jsonl``: one JSON object per line.

Canonical columns (rename yours with ``columns={"text": "SENTENCE", …}``):

- ``video`` (required unless ``path_template`` is given): a video file (mp4, webm, mov,
  mkv, avi, … anything FFmpeg decodes) or a folder of frame images;
- ``text`` (required): the spoken-language sentence;
- ``split``, ``signer``, ``language``, ``name``, ``gloss`` (optional).

Relative paths resolve against ``root`` (default: the manifest's folder). Splits
``dev``/``val``/``valid`` become ``validation``; without a split column every row goes to
``split=`` (default ``"train"``). ``name`` defaults to the video's file stem.

Videos are decoded with PyAV while loading (which also validates them) and each frame
is stored as an encoded image (lossless PNG by default, or JPEG) inside the arrow file,
so training never decodes video. Frame folders are stored as paths and decoded lazily.

How2Sign, for example, needs no special code::

    load_sign_corpus(
        {"train": "how2sign_realigned_train.csv", "val": "how2sign_realigned_val.csv",
         "test": "how2sign_realigned_test.csv"},
        delimiter="\\t",
        columns={"name": "SENTENCE_NAME", "text": "SENTENCE"},
        path_template="{split}_rgb_front_clips/raw_videos/{SENTENCE_NAME}.mp4",
        language="ase",
    )
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

from datasets import Dataset, Features, Value
from datasets.fingerprint import Hasher

from .build import (
    Sample,
    build_split,
    corpus_features,
    flag_duplicate_names,
    normalise_split,
    ordered_splits,
    sort_problems,
)
from .corpus import (
    LoadReport,
    OnError,
    Problem,
    SignCorpus,
    check_on_error,
    raise_file_problems,
    resolve_problems,
)
from .frames import FrameCheck, ImageFormat, VideoDecodeError, check_frame_folder, decode_video
from .tables import Row, read_delimited, read_json_lines
from .workers import map_in_threads

ManifestFormat = Literal["csv", "tsv", "jsonl"]
CANONICAL_COLUMNS = ("video", "text", "split", "signer", "language", "name", "gloss")
_FORMAT_BY_SUFFIX: dict[str, ManifestFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_DEFAULT_DELIMITER = {"csv": ",", "tsv": "\t"}
_PROBLEM_COLUMN = "_problem"  # why a video failed to decode; dropped before returning


class _ColumnMap:
    """Canonical column name → the user's column name."""

    def __init__(self, columns: Mapping[str, str] | None) -> None:
        columns = dict(columns or {})
        unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"columns maps canonical names to yours; unknown canonical name(s) {', '.join(unknown)} "
                f"(expected some of {', '.join(CANONICAL_COLUMNS)})."
            )
        self.explicit = columns

    def __getitem__(self, canonical: str) -> str:
        return self.explicit.get(canonical, canonical)

    def value(self, row: Row, canonical: str) -> str | None:
        """The row's value for a canonical column as stripped str, or None if absent/empty."""
        value = row.values.get(self[canonical])
        if isinstance(value, list):  # JSONL may hold e.g. glosses as a list
            value = " ".join(str(item) for item in value)
        text = "" if value is None else str(value).strip()
        return text or None


def _template_fields(path_template: str | None) -> list[str]:
    """Field names of a ``str.format`` template (ValueError if it is not one)."""
    if path_template is None:
        return []
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(path_template) if field is not None]
    except ValueError as error:
        raise ValueError(f"path_template {path_template!r} is not a valid format string: {error}.") from None
    # Only plain column names: positional "{}" or "{0}" and "{a.b}"/"{a[0]}" lookups name no column.
    odd = [field for field in fields if not field or field.isdigit() or any(c in field for c in ".[]")]
    if odd:
        raise ValueError(
            f"path_template {path_template!r} must name columns, e.g. '{{SENTENCE_NAME}}.mp4'; "
            f"got {', '.join(repr('{' + f + '}') for f in odd)}."
        )
    return fields


def _required_columns(column_map: _ColumnMap, template_fields: Sequence[str]) -> list[str]:
    """User columns every row must have: text, video (unless templated), anything named explicitly."""
    required = [column_map["text"]]
    if not template_fields:
        required.append(column_map["video"])
    required += [column_map[c] for c in column_map.explicit if c not in ("split", "text", "video")]
    for field in template_fields:
        if field != "split":
            required.append(column_map[field] if field in CANONICAL_COLUMNS else field)
    return list(dict.fromkeys(required))


def _manifest_format(path: Path, format: ManifestFormat | None) -> ManifestFormat:
    if format is not None:
        return format
    try:
        return _FORMAT_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"Cannot tell the format of the manifest {path} from its extension; "
            "pass format='csv', 'tsv' or 'jsonl'."
        ) from None


def _read_manifest(
    path: Path,
    format: ManifestFormat | None,
    delimiter: str | None,
    quotechar: str | None,
    required: Sequence[str],
) -> tuple[list[Row], list[Problem]]:
    fmt = _manifest_format(path, format)
    if fmt == "jsonl":
        if delimiter is not None:
            raise ValueError(f"delimiter= applies to csv/tsv manifests, but {path} is read as JSON lines.")
        return read_json_lines(path, required=required)
    return read_delimited(
        path,
        delimiter=delimiter or _DEFAULT_DELIMITER[fmt],
        required=required,
        what="manifest",
        quotechar=quotechar,
    )


class _RowReader:
    """Turns manifest rows into validated `Sample`s (frame folders checked, videos located)."""

    def __init__(
        self,
        column_map: _ColumnMap,
        path_template: str | None,
        root: Path,
        default_split: str,
        language: str | None,
        frame_check: FrameCheck,
    ) -> None:
        self.columns = column_map
        self.path_template = path_template
        self.root = root
        self.default_split = default_split
        self.language = language
        self.frame_check = frame_check

    def video_path(self, row: Row, raw_split: str) -> str | None:
        """The row's video file or frame folder, as written or built from `path_template`."""
        if self.path_template is None:
            return self.columns.value(row, "video")
        # Canonical names first, so the manifest's own columns win when names coincide.
        fields = {c: self.columns.value(row, c) or "" for c in CANONICAL_COLUMNS}
        fields.update({key: "" if value is None else str(value) for key, value in row.values.items()})
        fields["split"] = raw_split  # as written (e.g. How2Sign's "val"), not normalised
        return self.path_template.format(**fields)

    def sample(self, row: Row, source: Path, forced_split: str | None) -> tuple[Sample, Path | None]:
        """Validate one row.

        Returns:
            ``(sample, video)``: `video` is the video file to decode, or None when the
            row names a frame folder (already listed into ``frames``) or is bad.
        """
        raw_split = forced_split or self.columns.value(row, "split") or self.default_split
        video = self.video_path(row, raw_split)
        path = self.root / video if video else None
        name = self.columns.value(row, "name") or (path.stem if path else f"{source.stem}-line{row.line}")
        example: dict[str, Any] = {
            "name": name,
            "signer": self.columns.value(row, "signer") or "",
            "language": self.columns.value(row, "language") or self.language or "",
            "gloss": self.columns.value(row, "gloss") or "",
            "text": self.columns.value(row, "text") or "",
            "frames": [],
            "num_frames": 0,
        }
        sample = Sample(normalise_split(raw_split), source, row.line, name, example)
        if not example["text"]:
            sample.reasons.append(f"empty text (column {self.columns['text']!r})")
        if path is None:
            sample.reasons.append(f"no video path (column {self.columns['video']!r} is empty)")
        elif path.is_dir():
            frames, reason = check_frame_folder(path, self.frame_check)
            example.update(frames=[str(f) for f in frames], num_frames=len(frames))
            if reason:
                sample.reasons.append(reason)
        elif path.is_file():
            return sample, path
        else:
            sample.reasons.append(f"video file or frame folder {path} is missing")
        return sample, None


def _decode_job(job: dict[str, Any], image_format: ImageFormat, jpeg_quality: int) -> dict[str, Any]:
    """One row of a split: the job's example with its video's frames.

    A video that fails to decode gives a row with no frames and the reason in ``_problem``, so
    failures are seen (and reported again) even when the split comes from the cache.
    """
    example = dict(job["example"])
    example[_PROBLEM_COLUMN] = None
    if job["video"] is not None:
        try:
            frames = decode_video(Path(job["video"]), image_format, jpeg_quality)
        except VideoDecodeError as error:
            frames, example[_PROBLEM_COLUMN] = [], str(error)
        example["frames"] = [{"bytes": frame, "path": None} for frame in frames]
        example["num_frames"] = len(frames)
    return example


def _decode_jobs(
    jobs: Sequence[dict[str, Any]], image_format: ImageFormat, jpeg_quality: int, num_workers: int
) -> Iterator[dict[str, Any]]:
    """Generator for `Dataset.from_generator`: `_decode_job` of each job, in order, by
    ``num_workers`` threads."""
    decode = partial(_decode_job, image_format=image_format, jpeg_quality=jpeg_quality)
    yield from map_in_threads(decode, jobs, num_workers)


def _job(sample: Sample, video: Path | None, features: Features) -> dict[str, Any]:
    """What `_decode_jobs` needs for one sample (its arguments also form the cache key)."""
    stat = video.stat() if video is not None else None
    return {
        "example": {key: sample.example[key] for key in features},
        "video": str(video) if video is not None else None,
        # Size and mtime enter the cache key, so a replaced video is decoded again.
        "stat": (stat.st_size, stat.st_mtime_ns) if stat is not None else None,
    }


def _build_video_split(
    jobs: list[dict[str, Any]],
    features: Features,
    split: str,
    image_format: ImageFormat,
    jpeg_quality: int,
    num_workers: int,
    cache_dir: str | Path | None,
) -> Dataset:
    """Build one split, decoding its videos; the extra ``_problem`` column records failures."""
    features = Features({**features, _PROBLEM_COLUMN: Value("string")})
    if not jobs:
        return build_split([], features, split, cache_dir)
    # A tuple: `datasets` would split a list into one generator call per job, leaving the
    # generator one video at a time to decode.
    decoding = {"jobs": tuple(jobs), "image_format": image_format, "jpeg_quality": jpeg_quality}
    return Dataset.from_generator(
        _decode_jobs,
        features=features,
        gen_kwargs={**decoding, "num_workers": num_workers},
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        split=split,
        # The cache key: the videos (with their size and mtime), how frames are stored, the
        # columns and the split; not how many threads decode them.
        fingerprint=Hasher.hash(["manifest videos", decoding, features, split]),
    )


def _manifest_files(
    manifest: str | Path | Mapping[str, str | Path], split: str | None
) -> list[tuple[Path, str | None]]:
    """``[(file, split forced on all its rows or None), …]``."""
    if isinstance(manifest, Mapping):
        if split is not None:
            raise ValueError("Pass split= only with a single manifest; a dict of manifests names the splits.")
        return [(Path(path), str(name)) for name, path in manifest.items()]
    return [(Path(manifest), None)]


def load_sign_corpus(
    manifest: str | Path | Mapping[str, str | Path],
    *,
    columns: Mapping[str, str] | None = None,
    split: str | None = None,
    language: str | None = None,
    format: ManifestFormat | None = None,
    delimiter: str | None = None,
    quotechar: str | None = '"',
    path_template: str | None = None,
    root: str | Path | None = None,
    image_format: ImageFormat = "png",
    jpeg_quality: int = 95,
    frame_check: FrameCheck = "fast",
    on_error: OnError = "raise",
    num_workers: int = 1,
    cache_dir: str | Path | None = None,
) -> SignCorpus:
    """Load a sign-language corpus described by a manifest (see the module docstring).

    Args:
        manifest: One manifest file, or ``{split: file}`` (e.g. ``{"train": …, "val": …}``).
        columns: Canonical name → your column name, e.g. ``{"text": "SENTENCE"}``.
            Unmapped canonical columns are used when the manifest has them.
        split: Split of every row when the manifest has no split column (default ``"train"``).
        language: Language code stored for rows without a language column.
        format: ``"csv"``, ``"tsv"`` or ``"jsonl"``; default from the file extension.
        delimiter: Field separator overriding the format's (e.g. ``"\\t"`` for a tab-separated .csv).
        quotechar: Character that quotes fields in csv/tsv manifests; None when the file
            never quotes, so a sentence starting with ``"`` keeps its quote.
        path_template: ``str.format`` template building each row's video path from its
            columns (your names, plus the canonical ones); ``{split}`` is the split as
            written in the manifest or dict key, before ``val`` → ``validation``.
        root: Folder that relative video paths resolve against (default: the manifest's).
        image_format: How decoded video frames are stored: ``"png"`` (lossless) or ``"jpeg"``.
        jpeg_quality: JPEG quality when ``image_format="jpeg"``.
        frame_check: Check of frame-folder images: ``"fast"``, ``"full"`` or ``"none"``.
        on_error: ``"raise"`` or ``"skip"`` (bad samples logged and listed in ``result.report``).
        num_workers: Threads decoding videos in parallel (default: one); the corpus and its
            cache do not depend on their number.
        cache_dir: Where `datasets` writes the arrow files (default: its cache).

    Returns:
        A `SignCorpus` (a `DatasetDict`) with columns ``name, signer, [language], [gloss],
        text, frames, num_frames``; ``language`` when given or in the manifest, ``gloss``
        when in the manifest.

    Raises:
        CorpusError: missing/malformed manifest, or (with ``on_error="raise"``) any bad
            sample, including videos that fail to decode; the message lists all of them.
        ValueError: an invalid argument (unknown canonical column, bad template, …).
    """
    check_on_error(on_error)
    if image_format not in ("png", "jpeg"):
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int, got {num_workers!r}.")
    column_map = _ColumnMap(columns)
    required = _required_columns(column_map, _template_fields(path_template))
    files = _manifest_files(manifest, split)
    candidates: list[tuple[Sample, Path | None]] = []
    problems: list[Problem] = []
    columns_seen: set[str] = set()
    for path, forced_split in files:
        rows, file_problems = _read_manifest(path, format, delimiter, quotechar, required)
        problems += file_problems
        base = Path(root) if root is not None else path.parent
        reader = _RowReader(column_map, path_template, base, split or "train", language, frame_check)
        candidates += [reader.sample(row, path, forced_split) for row in rows]
        columns_seen.update(key for row in rows for key in row.values)
    raise_file_problems(problems)
    flag_duplicate_names([sample for sample, _ in candidates])
    problems += [sample.problem() for sample, _ in candidates if sample.reasons]

    has_language = language is not None or column_map["language"] in columns_seen
    features = corpus_features(gloss=column_map["gloss"] in columns_seen, language=has_language)
    jobs = [(sample, _job(sample, video, features)) for sample, video in candidates if not sample.reasons]
    datasets = {
        split_name: _build_video_split(
            [job for sample, job in jobs if sample.split == split_name],
            features,
            split_name,
            image_format,
            jpeg_quality,
            num_workers,
            cache_dir,
        )
        for split_name in ordered_splits(sample.split for sample, _ in candidates)
    }
    problems += _decode_problems(datasets, {sample.name: sample for sample, _ in jobs})
    skipped = resolve_problems(sort_problems(problems, [path for path, _ in files]), on_error)
    kept = {name: _drop_failed_videos(dataset) for name, dataset in datasets.items()}
    return SignCorpus(kept, LoadReport({name: len(d) for name, d in kept.items()}, skipped))


def _decode_problems(datasets: Mapping[str, Dataset], samples_by_name: Mapping[str, Sample]) -> list[Problem]:
    """One problem per row whose video failed to decode (read from the built splits)."""
    return [
        samples_by_name[name].problem_with(reason)
        for dataset in datasets.values()
        for name, reason in zip(dataset["name"], dataset[_PROBLEM_COLUMN], strict=True)
        if reason
    ]


def _drop_failed_videos(dataset: Dataset) -> Dataset:
    """Remove rows whose video failed to decode, then the bookkeeping column."""
    failed = {index for index, reason in enumerate(dataset[_PROBLEM_COLUMN]) if reason}
    if failed:
        dataset = dataset.select([index for index in range(len(dataset)) if index not in failed])
    return dataset.remove_columns(_PROBLEM_COLUMN)
