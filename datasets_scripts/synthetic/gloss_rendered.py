"""A gloss-rendered corpus: any gloss annotation, signed by the synthetic corpus's signers.

It is the "twin" of a real corpus: the real names, gloss sequences, sentences, splits and video
lengths, with videos that a CPU can generate and train on. Each distinct gloss gets one
procedural sign, so how hard translation is follows the real corpus's statistics (vocabulary,
sentence lengths, repeats, gloss order vs word order), not the weather-report grammar.

Input (:func:`read_gloss_annotations`): rows of ``name``, ``gloss`` (space-separated, or a
list), ``text``, ``num_frames`` and an optional ``signer``, per split, from

- ``format="jsonl"``: one JSON object per line — a folder holding ``train.jsonl``,
  ``validation.jsonl`` (or ``dev.jsonl``) and ``test.jsonl``; a ``{split: file}`` mapping; or
  one file whose rows carry a ``split`` key (default ``train``);
- ``format="phoenix"``: ``PHOENIX-2014-T.{train,dev,test}.corpus.csv`` (``|``-separated,
  ``name|video|start|end|speaker|orth|translation``) — the release folder, one such file, or a
  ``{split: file}`` mapping. Frames are counted in
  ``features/fullFrame-210x260px/<split>/<name>/`` when the file sits in the release layout,
  unless the file has a ``num_frames`` column (which then wins);
- ``format="csl"``: a CSL-Daily folder, read with :mod:`datasets_scripts.csl_daily`'s readers
  (split file + safe pickle); the frame count is the entry's ``length``, else the frames on disk;
- in memory: ``{split: [row dict, …]}``.

Every bad row is reported in one `CorpusError` naming file, line and what was expected
(``on_error="skip"`` drops them with a logged warning instead). Empty gloss sequences are valid
(PHOENIX dev and test hold two each): the signer then stands at rest.

Signs
    A gloss's hand shapes, path, location, direction and handedness (one hand, mirrored two
    hands, or a passive base hand) are drawn from a stable hash of the gloss string
    (:func:`~datasets_scripts.synthetic.gloss_signs.gloss_sign`): the same gloss looks the same in every
    run, process and corpus, whatever ``seed``.

Signers
    ``num_signers`` (default 9) signers of :func:`~datasets_scripts.synthetic.rendering.make_signers`
    (hand colour and size, background, clothing, offset, signing space, speed, jitter), drawn
    from ``seed``. Rows naming a signer get one rendered signer per distinct id (ids in natural
    sort order → ``signer01``, ``signer02``, …); other rows get one from a stable hash of their
    name. The manifest's ``signer`` column keeps the row's own id when it has one.

Timing
    A video has exactly ``ceil(num_frames / frame_step)`` frames — ``frame_step=1`` keeps the
    real length, ``frame_step=4`` the length of keeping every fourth real frame. Rest, signs and
    the transitions between them are stretched to fill them, with per-video jitter.

Output
    ``<out_dir>/manifest.csv`` (or ``.jsonl``) with columns ``name, video, text, split, signer,
    gloss[, language]`` for :func:`~datasets_scripts.manifest.load_sign_corpus`, and PNG frame
    folders ``frames/<split>/<name>/0001.png …`` (or lossless ``videos/<split>/<name>.mp4``),
    as :func:`~datasets_scripts.synthetic.synthetic_corpus.make_synthetic_corpus` writes them. Same input and
    arguments → the same bytes, for any ``num_workers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ..build import SPLIT_ORDER
from ..corpus import OnError
from .gloss_annotations import (
    AnnotationFormat,
    GlossAnnotations,
    GlossRow,
    read_gloss_annotations,
    split_key,
)
from .gloss_signs import VideoJob, assign_signers, run_jobs
from .rendering import SyntheticSigner
from .synthetic_corpus import write_manifest

__all__ = ["make_gloss_rendered_corpus"]


def _check_options(image_size: int, frame_step: int, num_workers: int, max_train_videos: int | None) -> None:
    for name, value, least in (("image_size", image_size, 8), ("frame_step", frame_step, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int of at least {least}, got {value!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
    if max_train_videos is not None and (not isinstance(max_train_videos, int) or max_train_videos < 0):
        raise ValueError(f"max_train_videos must be None or an int of at least 0, got {max_train_videos!r}")


def make_gloss_rendered_corpus(
    annotations: GlossAnnotations | str | Path | Mapping[str, Any],
    out_dir: str | Path,
    *,
    format: AnnotationFormat | None = None,
    image_size: int = 32,
    frame_step: int = 1,
    num_signers: int = 9,
    seed: int = 0,
    num_workers: int = 1,
    max_train_videos: int | None = None,
    video_format: Literal["frames", "mp4"] = "frames",
    manifest_format: Literal["csv", "jsonl"] = "csv",
    language: str | None = None,
    on_error: OnError = "raise",
    show_progress: bool = False,
) -> Path:
    """Render every annotated video with gloss signs and return the manifest path.

    Args:
        annotations: ``{split: [GlossRow, …]}`` from :func:`read_gloss_annotations`, or anything it reads.
        out_dir: Folder to write into (created if missing); files of the same name are replaced.
        format: Annotation format when ``annotations`` is read here (default: guessed).
        image_size: Frame height and width in pixels (at least 8).
        frame_step: Subsampling factor: a video has ``ceil(num_frames / frame_step)`` frames.
        num_signers: Rendered signers (1–10); must cover the distinct signer ids of the rows.
        seed: Draws the signers' looks and every video's timing jitter (not the signs).
        num_workers: Threads rendering and writing videos (the output does not depend on it).
        max_train_videos: Keep only the first K train rows (validation and test stay whole).
        video_format: ``"frames"`` (PNG frame folders) or ``"mp4"`` (lossless H.264 RGB).
        manifest_format: ``"csv"`` (``manifest.csv``) or ``"jsonl"`` (``manifest.jsonl``).
        language: Value of a ``language`` column (none when None), e.g. ``"de"``.
        on_error: What reading the annotations does with bad rows: ``"raise"`` or ``"skip"``.
        show_progress: Draw a progress bar (videos rendered of all, ETA) on standard error.

    Returns:
        The manifest path, ready for ``load_sign_corpus(path)``.

    Raises:
        CorpusError: bad annotations (see :func:`read_gloss_annotations`).
        ValueError: an invalid argument, or more distinct signer ids than ``num_signers``.
    """
    _check_options(image_size, frame_step, num_workers, max_train_videos)
    if video_format not in ("frames", "mp4") or manifest_format not in ("csv", "jsonl"):
        raise ValueError(
            f"video_format must be 'frames' or 'mp4' and manifest_format 'csv' or 'jsonl', "
            f"got {video_format!r} and {manifest_format!r}"
        )
    annotations = _as_read(annotations) or read_gloss_annotations(annotations, format, on_error=on_error)
    # Before max_train_videos truncates the rows, so a signer id maps to the same look either way.
    signer_of = assign_signers(
        [(row.name, row.signer) for rows in annotations.values() for row in rows], num_signers, seed
    )
    out_dir = Path(out_dir)
    jobs, manifest_rows = [], []
    for split, rows in annotations.items():
        for row in rows[:max_train_videos] if split == "train" and max_train_videos is not None else rows:
            relative = Path("videos", split, f"{row.name}.mp4") if video_format == "mp4" else None
            relative = relative or Path("frames", split, row.name)
            signer, num_frames = signer_of[row.name], -(-row.num_frames // frame_step)  # ceil
            job = VideoJob(
                row.glosses, num_frames, signer, image_size, seed, row.name, out_dir / relative, video_format
            )
            jobs.append(job)
            manifest_rows.append(_manifest_row(row, split, relative, signer, language))
    if not manifest_rows:
        raise ValueError(
            "No videos to render: the annotations hold no rows (or max_train_videos=0 left none)."
        )
    run_jobs(jobs, num_workers, show_progress)
    manifest_path = out_dir / f"manifest.{manifest_format}"
    write_manifest(manifest_rows, manifest_path)
    return manifest_path


def _as_read(annotations: Any) -> GlossAnnotations | None:
    """``{split: [GlossRow, …]}`` in split order when already read, else None (still to read)."""
    if not isinstance(annotations, Mapping):
        return None
    rows_of = list(annotations.values())
    if not any(rows_of) or not all(
        isinstance(rows, list) and all(isinstance(row, GlossRow) for row in rows) for rows in rows_of
    ):
        return None
    by_split = {split_key(split): rows for split, rows in annotations.items() if rows}
    return {split: by_split[split] for split in SPLIT_ORDER if split in by_split}


def _manifest_row(
    row: GlossRow, split: str, relative: Path, signer: SyntheticSigner, language: str | None
) -> dict[str, str]:
    manifest_row = {
        "name": row.name,
        "video": relative.as_posix(),
        "text": row.text,
        "split": split,
        "signer": row.signer or signer.name,
        "gloss": " ".join(row.glosses),
    }
    if language is not None:
        manifest_row["language"] = language
    return manifest_row
