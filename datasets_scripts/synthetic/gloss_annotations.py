"""Reading gloss annotations (JSONL, PHOENIX-2014-T csv, CSL-Daily, in-memory rows) into `GlossRow`s.

The formats, and what counts as a bad row, are described in :mod:`datasets_scripts.synthetic.gloss_rendered`.
Every bad row becomes one `Problem` naming its file, line (``row`` for in-memory rows) and what
was expected; they are settled all at once with the loaders' ``on_error`` policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from ..build import SPLIT_ORDER, normalise_split
from ..corpus import CorpusError, OnError, Problem, check_on_error, raise_file_problems, resolve_problems
from ..csl_daily import FRAME_FOLDERS, LABEL_FILE, SPLIT_FILE, join_strings, read_csl_labels
from ..frames import check_frame_folder, natural_key
from ..phoenix import PHOENIX_SPLITS, find_phoenix_root
from ..tables import read_delimited, read_json_lines

AnnotationFormat = Literal["jsonl", "phoenix", "csl"]
_JSONL_KEYS = ("name", "gloss", "text", "num_frames")
_PHOENIX_KEYS = ("name", "orth", "translation")
_PHOENIX_FILE = re.compile(r"PHOENIX-2014-T\.(train|dev|test)\.corpus\.csv$")
_PHOENIX_FRAMES = Path("features/fullFrame-210x260px")
_SPLIT_FILE_STEMS = {"train": ("train",), "validation": ("validation", "dev", "val"), "test": ("test",)}


@dataclass(frozen=True)
class GlossRow:
    """One annotated video: ``glosses`` may be empty; ``num_frames`` is the real video's length."""

    name: str
    glosses: tuple[str, ...]
    text: str
    num_frames: int
    signer: str | None = None


GlossAnnotations = dict[str, list[GlossRow]]  # split (train/validation/test) → rows in order


# --------------------------------------------------------------------------------------------
# Checking one row
# --------------------------------------------------------------------------------------------


class _Where(NamedTuple):
    """Where a row comes from, for messages: its file, ``"line 4"``/``"row 4"``, and its split."""

    source: Path
    where: str
    split: str


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 1 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value) or None
    return None


def _frame_count(value: Any, folder: Path | None, field: str) -> tuple[int | None, str | None]:
    """The row's frame count from its ``field``, else from counting its frame folder."""
    if value is not None and value != "":
        count = _positive_int(value)
        return (count, None) if count else (None, f"{field} must be a positive integer, got {value!r}")
    if folder is None:
        return None, f"no frame count: {field} is missing and there are no frame folders to count"
    frames, reason = check_frame_folder(folder, "none")
    if reason:
        return None, f"no frame count: {field} is missing and the {reason}"
    return len(frames), None


def _glosses(value: Any) -> tuple[tuple[str, ...] | None, str | None]:
    if isinstance(value, str):
        return tuple(value.split()), None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip()), None
    return None, f"gloss must be a string of space-separated glosses or a list of strings, got {value!r}"


def _name_reason(name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return f"name must be a non-empty string, got {name!r}"
    if any(c in name for c in "/\\") or name.strip() in (".", ".."):
        return "the name cannot name a frame folder (expected no '/' or '\\', and not '.' or '..')"
    return None


def _parse_row(
    values: Mapping[str, Any], frames: Path | None, count_field: str = "num_frames"
) -> tuple[GlossRow | None, list[str]]:
    """Check canonical values (name, gloss, text, num_frames, signer) → ``(row or None, reasons)``."""
    name_reason = _name_reason(values.get("name"))
    reasons = [name_reason] if name_reason else []
    glosses, reason = _glosses(values.get("gloss"))
    reasons += [reason] if reason else []
    text = values.get("text")
    if not isinstance(text, str) or not text.strip():
        reasons.append(f"text must be a non-empty string, got {text!r}")
    folder = frames / values["name"].strip() if frames is not None and not name_reason else None
    num_frames, reason = _frame_count(values.get("num_frames"), folder, count_field)
    reasons += [reason] if reason else []
    signer = values.get("signer")
    signer = None if signer is None or not str(signer).strip() else str(signer).strip()
    if reasons or glosses is None or num_frames is None:
        return None, reasons
    return GlossRow(values["name"].strip(), glosses, text.strip(), num_frames, signer), []


class _Collector:
    """Gathers rows and problems over every source, then settles them with ``on_error``."""

    def __init__(self) -> None:
        self.rows: list[tuple[_Where, GlossRow]] = []
        self.problems: list[Problem] = []
        self.sources: list[Path] = []

    def add(self, where: _Where, values: Mapping[str, Any], frames: Path | None, count_field: str) -> None:
        split = normalise_split(where.split) if isinstance(where.split, str) else where.split
        row, reasons = _parse_row(values, frames, count_field)
        if split not in SPLIT_ORDER:
            reasons.insert(0, f"unknown split {where.split!r} (expected train, validation, dev or test)")
        if reasons:
            name = values.get("name") if isinstance(values.get("name"), str) else None
            self.problems.append(Problem(where.source, "; ".join(reasons), where.where, name))
        elif row is not None:
            self.rows.append((where._replace(split=split), row))

    def settle(self, on_error: OnError) -> GlossAnnotations:
        raise_file_problems(self.problems)
        first_seen: dict[str, _Where] = {}
        duplicates = set()
        for index, (where, row) in enumerate(self.rows):
            if row.name in first_seen:
                seen = first_seen[row.name]
                reason = f"duplicate name, already used at {seen.where} of {seen.source}"
                self.problems.append(Problem(where.source, reason, where.where, row.name))
                duplicates.add(index)
            first_seen.setdefault(row.name, where)
        order = {source: index for index, source in enumerate(self.sources)}
        self.problems.sort(key=lambda p: (order.get(p.source, len(order)), natural_key(p.where or "")))
        resolve_problems(self.problems, on_error)
        annotations: GlossAnnotations = {}
        for index, (where, row) in enumerate(self.rows):
            if index not in duplicates:
                annotations.setdefault(where.split, []).append(row)
        return {split: annotations[split] for split in SPLIT_ORDER if split in annotations}


# --------------------------------------------------------------------------------------------
# Readers of each format
# --------------------------------------------------------------------------------------------


def split_key(split: str) -> str:
    canonical = normalise_split(str(split))
    if canonical not in SPLIT_ORDER:
        raise ValueError(f"annotation splits must be train, validation (or dev/val) or test; got {split!r}.")
    return canonical


def _read_jsonl(collector: _Collector, path: Path, split: str | None) -> None:
    collector.sources.append(path)
    if not path.is_file():
        collector.problems.append(Problem(path, f"The annotation file {path} is missing."))
        return
    rows, problems = read_json_lines(path, required=_JSONL_KEYS)
    collector.problems += problems
    for row in rows:
        row_split = split if split is not None else row.values.get("split", "train")
        collector.add(_Where(path, f"line {row.line}", row_split), row.values, None, "num_frames")


def _split_files(folder: Path, suffix: str) -> dict[str, Path]:
    """``{split: file}`` for the split files (``train.jsonl``, ``dev.jsonl``, …) found in a folder."""
    found = {}
    for split, stems in _SPLIT_FILE_STEMS.items():
        files = [folder / f"{stem}{suffix}" for stem in stems if (folder / f"{stem}{suffix}").is_file()]
        if files:
            found[split] = files[0]
    if not found:
        expected = ", ".join(f"{stem}{suffix}" for stems in _SPLIT_FILE_STEMS.values() for stem in stems)
        raise CorpusError([Problem(folder, f"No annotation files in {folder}: expected some of {expected}.")])
    return found


def _phoenix_frames(path: Path, split: str) -> Path | None:
    """The frame folder of a PHOENIX annotation file in the release layout, or None."""
    match = _PHOENIX_FILE.search(path.name)
    part = match.group(1) if match else PHOENIX_SPLITS[split]
    if path.parent.parts[-2:] != ("annotations", "manual"):
        return None
    frames = path.parent.parent.parent / _PHOENIX_FRAMES / part
    return frames if frames.is_dir() else None


def _read_phoenix_csv(collector: _Collector, path: Path, split: str) -> None:
    collector.sources.append(path)
    rows, problems = read_delimited(path, delimiter="|", required=_PHOENIX_KEYS, quotechar=None)
    collector.problems += problems
    frames = _phoenix_frames(path, split)
    for row in rows:
        values = row.values
        canonical = {
            "name": values["name"],
            "gloss": values["orth"],
            "text": values["translation"],
            "num_frames": values.get("num_frames"),
            "signer": values.get("speaker"),
        }
        collector.add(_Where(path, f"line {row.line}", split), canonical, frames, "num_frames")


def _phoenix_files(source: Path) -> dict[str, Path]:
    if source.is_dir():
        root = find_phoenix_root(source) / "annotations" / "manual"
        return {split: root / f"PHOENIX-2014-T.{part}.corpus.csv" for split, part in PHOENIX_SPLITS.items()}
    match = _PHOENIX_FILE.search(source.name)
    if match is None:
        raise ValueError(
            f"Cannot tell the split of {source} (expected a name like PHOENIX-2014-T.dev.corpus.csv); "
            "pass {split: file} instead."
        )
    return {normalise_split(match.group(1)): source}


def _read_csl(collector: _Collector, root: Path) -> None:
    if not root.is_dir():
        raise CorpusError([Problem(root, f"The CSL-Daily folder {root} does not exist.")])
    split_file, label_file = root / SPLIT_FILE, root / LABEL_FILE
    collector.sources += [split_file, label_file]
    rows, problems = read_delimited(
        split_file, delimiter="|", required=("name", "split"), what="split file", quotechar=None
    )
    if not label_file.is_file():
        problems.append(Problem(label_file, f"The label file {label_file} is missing."))
    raise_file_problems(problems)
    entries, entry_problems = read_csl_labels(label_file)
    collector.problems += problems + entry_problems
    frames = next((root / folder for folder in FRAME_FOLDERS if (root / folder).is_dir()), None)
    for row in rows:
        name = row.values["name"].strip()
        where = _Where(split_file, f"line {row.line}", row.values["split"])
        entry = entries.get(name)
        if entry is None:
            collector.problems.append(
                Problem(split_file, f"not found in {LABEL_FILE.name}", where.where, name)
            )
            continue
        canonical = {
            "name": name,
            "gloss": entry.get("label_gloss"),
            "text": join_strings(entry, "label_word", "") or join_strings(entry, "label_char", ""),
            "num_frames": entry.get("length"),
            "signer": entry.get("signer"),
        }
        collector.add(where, canonical, frames, f"'length' in {LABEL_FILE.name}")


def _read_in_memory(collector: _Collector, split: str, rows: Sequence[Mapping[str, Any]]) -> None:
    source = Path(f"<{split} rows>")
    collector.sources.append(source)
    for number, values in enumerate(rows, start=1):
        where = _Where(source, f"row {number}", split)
        if not isinstance(values, Mapping):
            reason = (
                f"expected a mapping of name, gloss, text, num_frames[, signer], got {type(values).__name__}"
            )
            collector.problems.append(Problem(source, reason, where.where))
            continue
        missing = [key for key in _JSONL_KEYS if key not in values]
        if missing:
            reason = f"lacks the key(s) {', '.join(missing)} (found {', '.join(values)})"
            collector.problems.append(Problem(source, reason, where.where))
        else:
            collector.add(where, values, None, "num_frames")


def _guess_format(source: Path) -> AnnotationFormat:
    if source.is_dir():
        if (source / SPLIT_FILE).is_file():
            return "csl"
        if any(source.glob("*.jsonl")):
            return "jsonl"
        return "phoenix"
    return "jsonl" if source.suffix.lower() in (".jsonl", ".ndjson") else "phoenix"


def read_gloss_annotations(
    source: str | Path | Mapping[str, str | Path | Sequence[Mapping[str, Any]]],
    format: AnnotationFormat | None = None,
    *,
    on_error: OnError = "raise",
) -> GlossAnnotations:
    """Read gloss annotations of any supported format (see the module docstring).

    Args:
        source: A file, a folder, ``{split: file}`` or ``{split: [row dict, …]}``; splits are
            ``train``, ``validation`` (``dev``/``val`` accepted) and ``test``.
        format: ``"jsonl"``, ``"phoenix"`` or ``"csl"``; default: guessed from ``source``
            (a ``.jsonl`` file or a folder of them, a CSL-Daily folder, else PHOENIX).
        on_error: ``"raise"``: one `CorpusError` listing every bad row; ``"skip"``: drop bad
            rows and log one warning listing them.

    Returns:
        ``{split: [GlossRow, …]}`` in ``train, validation, test`` order, rows in file order.

    Raises:
        CorpusError: a missing or malformed file, or (``on_error="raise"``) any bad row.
        ValueError: an unknown split key or format.
    """
    check_on_error(on_error)
    if format not in (None, "jsonl", "phoenix", "csl"):
        raise ValueError(f"format must be 'jsonl', 'phoenix', 'csl' or None, got {format!r}.")
    collector = _Collector()
    if isinstance(source, Mapping):
        for split, item in source.items():
            if isinstance(item, str | Path):
                _read_file(collector, Path(item), format, split_key(split))
            else:
                _read_in_memory(collector, split_key(split), item)
    else:
        path = Path(source)
        fmt = format or _guess_format(path)
        if fmt == "csl":
            _read_csl(collector, path)
        elif path.is_dir() and fmt == "jsonl":
            for split, file in _split_files(path, ".jsonl").items():
                _read_jsonl(collector, file, split)
        elif fmt == "phoenix":
            for split, file in _phoenix_files(path).items():
                _read_phoenix_csv(collector, file, split)
        else:
            _read_file(collector, path, fmt, None)
    return collector.settle(on_error)


def _read_file(collector: _Collector, path: Path, format: AnnotationFormat | None, split: str | None) -> None:
    fmt = format or _guess_format(path)
    if fmt == "jsonl":
        _read_jsonl(collector, path, split)
    elif fmt == "phoenix":
        _read_phoenix_csv(collector, path, split or next(iter(_phoenix_files(path))))
    else:
        raise ValueError(f"format must be 'jsonl' or 'phoenix' for a single annotation file, got {fmt!r}.")
