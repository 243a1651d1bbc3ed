"""RWTH-PHOENIX-Weather 2014 T (German Sign Language → German) as a `DatasetDict`.

Expected on disk (the official ``phoenix-2014-T.v3.tar.gz``, unpacked as it is)::

    PHOENIX-2014-T-release-v3/            <- `data_dir` may be this folder …
      PHOENIX-2014-T/                     <- … or this one
        annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv
        features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png, images0002.png, …

The annotation files are ``|``-delimited with the header
``name|video|start|end|speaker|orth|translation``. Their ``video`` column names a
``<name>/1/*.png`` sub-folder that does not exist on disk, so frames are found from
``name`` instead, and sorted numerically. The CSV is the only label source read here
(no derived pickles).

Columns: ``name``, ``signer`` (= speaker), ``gloss`` (= orth), ``text`` (= translation),
``frames`` (``List(Image())`` of frame paths, decoded lazily), ``num_frames``.
Splits: ``train``, ``validation`` (= dev), ``test``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .build import Sample, build_corpus, corpus_features, requested_splits, settle_problems
from .corpus import CorpusError, OnError, Problem, SignCorpus, check_on_error, raise_file_problems
from .frames import FrameCheck, check_frame_folder
from .tables import Row, read_delimited

PHOENIX_COLUMNS = ("name", "video", "start", "end", "speaker", "orth", "translation")
PHOENIX_SPLITS = {"train": "train", "validation": "dev", "test": "test"}  # ours → file name part
_INNER_FOLDER = "PHOENIX-2014-T"
_ANNOTATIONS = Path("annotations/manual")
_FRAMES = Path("features/fullFrame-210x260px")


def find_phoenix_root(data_dir: str | Path) -> Path:
    """The folder holding ``annotations/`` and ``features/``.

    Args:
        data_dir: The release root (``PHOENIX-2014-T-release-v3``) or the inner
            ``PHOENIX-2014-T`` folder.

    Raises:
        CorpusError: neither layout is found under `data_dir`.
    """
    data_dir = Path(data_dir)
    for candidate in (data_dir, data_dir / _INNER_FOLDER):
        if (candidate / _ANNOTATIONS).is_dir():
            return candidate
    reason = (
        f"No PHOENIX-2014-T release found at {data_dir}: expected {data_dir / _ANNOTATIONS} "
        f"or {data_dir / _INNER_FOLDER / _ANNOTATIONS}."
    )
    if not data_dir.exists():
        reason = f"The PHOENIX-2014-T folder {data_dir} does not exist."
    raise CorpusError([Problem(data_dir, reason)])


def _phoenix_sample(row: Row, split: str, source: Path, frames_dir: Path, frame_check: FrameCheck) -> Sample:
    """Validate one annotation row: name, translation and its frame folder."""
    values = row.values
    name = values["name"].strip()
    sample = Sample(split, source, row.line, name, example={})
    if not name:
        sample.reasons.append("empty name")
        return sample
    text = values["translation"].strip()
    if not text:
        sample.reasons.append("empty translation")
    # The `video` column says <name>/1/*.png, but frames live directly in <name>/.
    frames, reason = check_frame_folder(frames_dir / name, frame_check, suffixes=(".png",))
    if reason:
        sample.reasons.append(reason)
    sample.example = {
        "name": name,
        "signer": values["speaker"].strip(),
        "gloss": values["orth"].strip(),
        "text": text,
        "frames": [str(frame) for frame in frames],
        "num_frames": len(frames),
    }
    return sample


def load_phoenix2014t(
    data_dir: str | Path,
    *,
    splits: Sequence[str] | None = None,
    on_error: OnError = "raise",
    frame_check: FrameCheck = "fast",
    cache_dir: str | Path | None = None,
) -> SignCorpus:
    """Load PHOENIX-2014-T from its official layout (see the module docstring).

    Args:
        data_dir: ``PHOENIX-2014-T-release-v3/`` or its inner ``PHOENIX-2014-T/``.
        splits: Subset of ``("train", "validation", "test")`` (``"dev"`` is accepted);
            default all three.
        on_error: ``"raise"``: one `CorpusError` listing every bad sample; ``"skip"``:
            drop bad samples, log them, and list them in ``result.report.skipped``.
        frame_check: ``"fast"`` (signature + end marker of every frame), ``"full"``
            (decode every frame) or ``"none"``; see `datasets_scripts.frames`.
        cache_dir: Where `datasets` writes the arrow files (default: its cache).

    Returns:
        A `SignCorpus` (a `DatasetDict`) with splits among ``train``/``validation``/``test``
        and columns ``name, signer, gloss, text, frames, num_frames``.

    Raises:
        CorpusError: a missing or malformed annotation file, or (with
            ``on_error="raise"``) any bad sample; the message lists all of them.
    """
    check_on_error(on_error)
    root = find_phoenix_root(data_dir)
    wanted = requested_splits(splits, list(PHOENIX_SPLITS))
    samples: list[Sample] = []
    row_problems: list[Problem] = []
    sources: list[Path] = []
    tables = {}
    for split in wanted:
        source = root / _ANNOTATIONS / f"PHOENIX-2014-T.{PHOENIX_SPLITS[split]}.corpus.csv"
        sources.append(source)
        tables[split] = read_delimited(source, delimiter="|", required=PHOENIX_COLUMNS, quotechar=None)
        row_problems.extend(tables[split][1])
    raise_file_problems(row_problems)  # every missing/malformed file at once, before any frame I/O
    for split, source in zip(wanted, sources, strict=True):
        frames_dir = root / _FRAMES / PHOENIX_SPLITS[split]
        samples.extend(
            _phoenix_sample(row, split, source, frames_dir, frame_check) for row in tables[split][0]
        )
    good, skipped = settle_problems(samples, row_problems, sources, on_error)
    return build_corpus(good, skipped, corpus_features(gloss=True), cache_dir, splits=wanted)
