"""CSL-Daily (Chinese Sign Language → Chinese) as a `DatasetDict`.

Expected on disk (as distributed)::

    <data_dir>/
      sentence_label/split_1.txt            "|"-delimited, header "name|split", split ∈ train/dev/test
      sentence_label/csl2020ct_v2.pkl       {"info": [{"name", "length", "label_gloss", "label_char",
                                              "label_word", "label_postag", "signer", "time"}, …],
                                             plus vocabularies such as "gloss_map", "char_map"}
      sentence/frames_512x512/<name>/000000.jpg, 000001.jpg, …
        (or, in some copies, sentence_frames-512x512/frames_512x512/<name>/…)

The pickle is read with `safe_pickle.load_pickle_safely`, which admits plain data only
and never runs code from the file.

Columns: ``name``, ``signer`` (str), ``gloss`` (``" ".join(label_gloss)``), ``text``
(``"".join(label_word)``, or of ``label_char`` if words are missing), ``frames``
(``List(Image())`` of frame paths, decoded lazily, numeric order), ``num_frames``
(frames found on disk). Splits: ``train``, ``validation`` (= dev), ``test``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .build import Sample, build_corpus, corpus_features, normalise_split, requested_splits, settle_problems
from .corpus import CorpusError, OnError, Problem, SignCorpus, check_on_error, raise_file_problems
from .frames import FrameCheck, check_frame_folder
from .safe_pickle import load_pickle_safely
from .tables import Row, read_delimited

CSL_SPLITS = ("train", "validation", "test")
SPLIT_FILE = Path("sentence_label/split_1.txt")
LABEL_FILE = Path("sentence_label/csl2020ct_v2.pkl")
FRAME_FOLDERS = (Path("sentence/frames_512x512"), Path("sentence_frames-512x512/frames_512x512"))
_REQUIRED_KEYS = ("name", "label_gloss", "signer")
_JPEG_SUFFIXES = (".jpg", ".jpeg")


def find_csl_frames(root: Path) -> Path:
    """The folder holding one frame folder per sentence (either known layout)."""
    for candidate in FRAME_FOLDERS:
        if (root / candidate).is_dir():
            return root / candidate
    expected = " or ".join(str(root / c) for c in FRAME_FOLDERS)
    raise CorpusError([Problem(root, f"No CSL-Daily frames found: expected {expected}.")])


def read_csl_labels(path: Path) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Read ``csl2020ct_v2.pkl`` safely and index its ``info`` entries by name.

    Returns:
        ``(entries_by_name, problems)``; an entry that is not a dict with a str
        ``name`` is one problem (``"entry 12 of 'info'"``).

    Raises:
        CorpusError: missing/corrupt file, or no ``info`` list in it.
        UnsafePickleError: the pickle refers to any Python global.
    """
    labels = load_pickle_safely(path)
    if not isinstance(labels, dict) or not isinstance(labels.get("info"), list):
        found = sorted(labels) if isinstance(labels, dict) else type(labels).__name__
        raise CorpusError(
            [Problem(path, f"The label file {path} should hold a dict with an 'info' list; found {found}.")]
        )
    entries: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    for index, entry in enumerate(labels["info"]):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            entries[entry["name"]] = entry
        else:
            problems.append(
                Problem(path, "expected a dict with a str 'name'", where=f"entry {index} of 'info'")
            )
    return entries, problems


def join_strings(entry: dict[str, Any], key: str, separator: str) -> str | None:
    """Join a list-of-str label, or None if the key is missing or not such a list."""
    value = entry.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    return separator.join(value).strip()


def _csl_sample(
    row: Row, source: Path, entry: dict[str, Any] | None, frames_root: Path, frame_check: FrameCheck
) -> Sample:
    """Validate one split-file row against its label entry and frame folder."""
    name = row.values["name"].strip()
    sample = Sample(normalise_split(row.values["split"]), source, row.line, name, example={})
    if entry is None:
        sample.reasons.append(f"not found in {LABEL_FILE.name}")
        return sample
    missing = [key for key in _REQUIRED_KEYS if key not in entry]
    if missing:
        sample.reasons.append(f"its entry in {LABEL_FILE.name} lacks {', '.join(missing)}")
        return sample
    text = join_strings(entry, "label_word", "") or join_strings(entry, "label_char", "")
    if not text:
        sample.reasons.append("empty sentence (label_word and label_char are empty or missing)")
    gloss = join_strings(entry, "label_gloss", " ")
    if gloss is None:
        sample.reasons.append(f"label_gloss in {LABEL_FILE.name} is not a list of strings")
    frames, reason = check_frame_folder(frames_root / name, frame_check, suffixes=_JPEG_SUFFIXES)
    if reason:
        sample.reasons.append(reason)
    sample.example = {
        "name": name,
        "signer": str(entry["signer"]),
        "gloss": gloss or "",
        "text": text or "",
        "frames": [str(frame) for frame in frames],
        "num_frames": len(frames),
    }
    return sample


def load_csl_daily(
    data_dir: str | Path,
    *,
    splits: Sequence[str] | None = None,
    on_error: OnError = "raise",
    frame_check: FrameCheck = "fast",
    cache_dir: str | Path | None = None,
) -> SignCorpus:
    """Load CSL-Daily from its distributed layout (see the module docstring).

    Args:
        data_dir: Folder holding ``sentence_label/`` and the frames.
        splits: Subset of ``("train", "validation", "test")`` (``"dev"`` is accepted);
            default all three.
        on_error: ``"raise"``: one `CorpusError` listing every bad sample; ``"skip"``:
            drop bad samples, log them, and list them in ``result.report.skipped``.
        frame_check: ``"fast"``, ``"full"`` or ``"none"``; see `datasets_scripts.frames`.
        cache_dir: Where `datasets` writes the arrow files (default: its cache).

    Returns:
        A `SignCorpus` (a `DatasetDict`) with columns
        ``name, signer, gloss, text, frames, num_frames``.

    Raises:
        CorpusError: missing/malformed split or label file, missing frame root, or
            (with ``on_error="raise"``) any bad sample; the message lists all of them.
        UnsafePickleError: the label pickle refers to a Python global (not loaded).
    """
    check_on_error(on_error)
    root = Path(data_dir)
    if not root.is_dir():
        raise CorpusError([Problem(root, f"The CSL-Daily folder {root} does not exist.")])
    wanted = requested_splits(splits, CSL_SPLITS)
    split_file, label_file = root / SPLIT_FILE, root / LABEL_FILE
    rows, row_problems = read_delimited(
        split_file, delimiter="|", required=("name", "split"), what="split file", quotechar=None
    )
    if not label_file.is_file():
        row_problems.append(Problem(label_file, f"The label file {label_file} is missing."))
    raise_file_problems(row_problems)
    frames_root = find_csl_frames(root)
    entries, entry_problems = read_csl_labels(label_file)
    samples = []
    for row in rows:
        split = normalise_split(row.values["split"])
        if split not in CSL_SPLITS:
            reason = f"unknown split {row.values['split']!r} (expected train, dev or test)"
            row_problems.append(Problem(split_file, reason, f"line {row.line}", row.values["name"]))
        elif split in wanted:
            entry = entries.get(row.values["name"].strip())
            samples.append(_csl_sample(row, split_file, entry, frames_root, frame_check))
    good, skipped = settle_problems(
        samples, [*row_problems, *entry_problems], [split_file, label_file], on_error
    )
    return build_corpus(good, skipped, corpus_features(gloss=True), cache_dir, splits=wanted)
