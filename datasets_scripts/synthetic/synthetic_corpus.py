"""A built-in synthetic sign language: weather reports signed by coloured hand shapes.

It is the default corpus of ``scl-slt demo``, of the tests and of the ablations: small enough to
train on a CPU, yet it keeps what makes sign language translation and SCL interesting —
the sign order is not the word order, signers differ, and sentences repeat.

Signs
    29 signs (:data:`SIGN_LEXICON`). A sign is one or two hand shapes (circle, square,
    triangle, diamond, bar) moving along a path (line, arc, loop, zigzag, back-and-forth) from
    a location in the signing space in a direction. Shape, path, direction, location and
    one- vs two-handedness all carry meaning: NORTH and SOUTH differ only by direction, RAIN
    and SNOW only by path, FOG and FROST only by shape and height. A figure (head and torso)
    gives the signing space a reference. Two-handed signs mirror the right hand's path.

Grammar (English text, 36 words; sign order = topic first, time last, no function words)
    ================================================= ======================================
    text                                              signs (``gloss`` column)
    ================================================= ======================================
    TIME in the REGION [INTENSITY] WEATHER [and TEMP] REGION WEATHER [INTENSITY] [TEMP] TIME
    TIME the temperatures rise|fall in the REGION     REGION TEMPERATURE RISE|FALL TIME
    TIME the wind comes from the DIRECTION            WIND FROM DIRECTION TIME
    TIME it stays dry|cloudy in the REGION            REGION DRY|CLOUDY TIME
    ================================================= ======================================

    TIME: today, tomorrow, tonight, monday, friday. REGION: north, south, east, west,
    mountains ("in the"), coast ("on the"). DIRECTION: north, south, east, west. INTENSITY:
    strong, light. WEATHER: rain, snow, sun, fog, wind, storms. TEMP: cold, warm, mild,
    frosty. Example: "tomorrow in the north strong rain and cold" is signed
    ``NORTH RAIN STRONG COLD TOMORROW``. Sentences have 5–8 words and 3–5 signs; the grammar
    yields about 2,800 distinct sentences.

Signers
    ``num_signers`` signers (default 8) differ in hand colour, hand size, background and
    clothing shade, position offset, size of the signing space, speed (frames per sign) and
    timing jitter. The last ``num_unseen_signers`` (default 1) never sign in the training
    split: they sign ``unseen_signer_fraction`` (default half) of the validation and test
    videos, so both hold signing variation (a new hand colour, background and
    offset/speed combination) that training never saw.

Duplicates (the false negatives SCL exists for)
    In every split, a video re-signs an earlier sentence of the split by another signer with
    probability ``repeat_fraction`` (default 0.3), or signs a near-duplicate of an earlier
    sentence — the same sentence with exactly one word changed — with probability
    ``near_duplicate_fraction`` (default 0.2); otherwise it signs a fresh sentence from the
    grammar. ``make_synthetic_corpus(out, **DUPLICATE_RICH)`` builds the duplicate-rich
    variant used by the ablations.

Sizes and timing
    Frames are ``frame_size`` × ``frame_size`` RGB (default 64), 25 fps. A sign lasts 4–9
    frames (6 at speed 1), a transition 1–3, a clip 21–66 (about 40 on average). Videos per
    split (train/validation/test): tiny 24/6/6, small 200/40/40, default 800/100/100,
    large 4000/400/400, or an int ``n`` for n/max(4, n//8)/max(4, n//8).

Files
    ``<out_dir>/manifest.csv`` (or ``.jsonl``) with columns ``name, video, text, split,
    signer, gloss, language`` — the format read by
    :func:`datasets_scripts.manifest.load_sign_corpus` — and one video per row: a lossless
    H.264 RGB ``.mp4`` (``libx264rgb``, qp 0: decoded pixels equal the rendered ones) under
    ``videos/<split>/``, or a folder of PNG frames ``0001.png, 0002.png, …`` under
    ``frames/<split>/`` with ``video_format="frames"``. Everything is a pure function of the
    seed and the arguments: the manifest is byte-identical and the decoded frames are
    identical across runs.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .language import SyntheticSentence, near_duplicate, sample_sentence
from .rendering import SyntheticSigner, make_signers, render_clip

SPLITS = ("train", "validation", "test")
FPS = 25
LANGUAGE = "en"
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (24, 6, 6),
    "small": (200, 40, 40),
    "default": (800, 100, 100),
    "large": (4000, 400, 400),
}
# Knob values for the duplicate-rich corpus of the ablations: most videos repeat a sentence.
DUPLICATE_RICH: dict[str, float] = {"repeat_fraction": 0.6, "near_duplicate_fraction": 0.3}

# --------------------------------------------------------------------------------------------
# Writing videos and the manifest
# --------------------------------------------------------------------------------------------


def write_mp4(frames: np.ndarray, path: Path) -> None:
    """Write (T, H, W, 3) uint8 RGB frames as lossless H.264 RGB (``libx264rgb``, qp 0) at 25 fps."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264rgb", rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24"
        stream.options = {"qp": "0", "preset": "veryfast"}
        stream.thread_count = 1  # one thread keeps the bitstream byte-identical across machines' core counts
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frame_folder(frames: np.ndarray, folder: Path) -> None:
    """Write (T, H, W, 3) uint8 frames as ``0001.png``, ``0002.png``, … in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.png"):  # frames of an earlier, longer clip would join this one
        stale.unlink()
    for index, frame in enumerate(frames, start=1):
        Image.fromarray(frame).save(folder / f"{index:04d}.png", compress_level=1)


@dataclass(frozen=True)
class _Row:
    name: str
    split: str
    sentence: SyntheticSentence
    signer: SyntheticSigner


def _split_sizes(size: str | int) -> tuple[int, int, int]:
    if isinstance(size, str):
        if size not in SIZE_PRESETS:
            raise ValueError(f"size must be one of {sorted(SIZE_PRESETS)} or a positive int, got {size!r}")
        return SIZE_PRESETS[size]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be one of {sorted(SIZE_PRESETS)} or a positive int, got {size!r}")
    held_out = max(4, size // 8)
    return size, held_out, held_out


def _plan_split(
    split: str,
    num_videos: int,
    seen: list[SyntheticSigner],
    unseen: list[SyntheticSigner],
    options: dict[str, float],
    rng: np.random.Generator,
) -> list[_Row]:
    """Choose every video's sentence and signer: fresh, repeated or near-duplicate sentences."""
    rows: list[_Row] = []
    for index in range(num_videos):
        draw = rng.random()
        if rows and draw < options["repeat_fraction"]:
            sentence = rows[rng.integers(len(rows))].sentence
        elif rows and draw < options["repeat_fraction"] + options["near_duplicate_fraction"]:
            sentence = near_duplicate(rows[rng.integers(len(rows))].sentence, rng)
        else:
            sentence = sample_sentence(rng)
        use_unseen = split != "train" and unseen and rng.random() < options["unseen_signer_fraction"]
        pool = unseen if use_unseen else seen
        # A repeated sentence goes to a signer who has not signed it yet, when one is left.
        taken = {row.signer.name for row in rows if row.sentence == sentence}
        fresh = [signer for signer in pool if signer.name not in taken] or pool
        signer = fresh[rng.integers(len(fresh))]
        rows.append(_Row(f"{split}-{index:05d}-{signer.name}", split, sentence, signer))
    return rows


def write_manifest(rows: list[dict[str, str]], path: Path) -> None:
    """Write ``rows`` (same keys, in order) as ``.jsonl`` (one JSON object a line) or as CSV with a header."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        return
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def make_synthetic_corpus(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: Literal["tiny", "small", "default", "large"] | int = "default",
    frame_size: int = 64,
    video_format: Literal["mp4", "frames"] = "mp4",
    manifest_format: Literal["csv", "jsonl"] = "csv",
    num_signers: int = 8,
    num_unseen_signers: int = 1,
    unseen_signer_fraction: float = 0.5,
    repeat_fraction: float = 0.3,
    near_duplicate_fraction: float = 0.2,
    show_progress: bool = False,
) -> Path:
    """Generate the synthetic weather-report corpus and return the path of its manifest.

    Args:
        out_dir: folder to write into (created if missing); existing files of the same name are replaced.
        seed: every random choice derives from it; the same arguments give the same corpus.
        size: videos per split — a preset of :data:`SIZE_PRESETS` or the number of training
            videos (validation and test then get ``max(4, size // 8)`` each).
        frame_size: frame height and width in pixels (at least 16).
        video_format: ``"mp4"`` (lossless H.264 RGB files) or ``"frames"`` (PNG frame folders).
        manifest_format: ``"csv"`` (``manifest.csv``) or ``"jsonl"`` (``manifest.jsonl``).
        num_signers: signers in total (1–10).
        num_unseen_signers: the last signers, who sign only in validation and test (0 to disable).
        unseen_signer_fraction: share of validation/test videos signed by unseen signers.
        repeat_fraction: probability that a video re-signs an earlier sentence of its split.
        near_duplicate_fraction: probability that a video signs an earlier sentence with one word changed.
        show_progress: draw a progress bar (videos written of all, ETA) on standard error.

    Returns:
        The manifest path, ready for ``load_sign_corpus(path)``.
    """
    options = {
        "repeat_fraction": repeat_fraction,
        "near_duplicate_fraction": near_duplicate_fraction,
        "unseen_signer_fraction": unseen_signer_fraction,
    }
    check_synthetic_options(
        frame_size, video_format, manifest_format, num_signers, num_unseen_signers, options
    )
    split_sizes = _split_sizes(size)
    out_dir = Path(out_dir)
    signers = make_signers(num_signers, seed)
    seen, unseen = signers[: num_signers - num_unseen_signers], signers[num_signers - num_unseen_signers :]
    manifest_rows = []
    description = "generating the synthetic corpus"
    bar = tqdm(total=sum(split_sizes), desc=description, unit="video", disable=not show_progress)
    for split_index, (split, num_videos) in enumerate(zip(SPLITS, split_sizes, strict=True)):
        plan_rng = np.random.default_rng([seed, 2, split_index])
        for video_index, row in enumerate(_plan_split(split, num_videos, seen, unseen, options, plan_rng)):
            # Each video has its own random stream, so it does not depend on the others.
            frames = render_clip(
                row.sentence.glosses,
                row.signer,
                np.random.default_rng([seed, 3, split_index, video_index]),
                frame_size,
            )
            manifest_rows.append(_write_video(out_dir, row, frames, video_format))
            bar.update()
    bar.close()
    manifest_path = out_dir / f"manifest.{manifest_format}"
    write_manifest(manifest_rows, manifest_path)
    return manifest_path


def _write_video(out_dir: Path, row: _Row, frames: np.ndarray, video_format: str) -> dict[str, str]:
    """Write one clip and return its manifest row (paths relative to ``out_dir``)."""
    if video_format == "mp4":
        relative = Path("videos") / row.split / f"{row.name}.mp4"
        (out_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(frames, out_dir / relative)
    else:
        relative = Path("frames") / row.split / row.name
        write_frame_folder(frames, out_dir / relative)
    return {
        "name": row.name,
        "video": relative.as_posix(),
        "text": row.sentence.text,
        "split": row.split,
        "signer": row.signer.name,
        "gloss": " ".join(row.sentence.glosses),
        "language": LANGUAGE,
    }


def check_synthetic_options(
    frame_size: int,
    video_format: str,
    manifest_format: str,
    num_signers: int,
    num_unseen_signers: int,
    fractions: dict[str, float],
) -> None:
    """Raise ``ValueError`` naming the first bad argument of :func:`make_synthetic_corpus`.

    ``fractions``: ``repeat_fraction``, ``near_duplicate_fraction`` and ``unseen_signer_fraction``.
    It runs before anything is written, so a caller can check options without generating.
    """
    if not isinstance(frame_size, int) or frame_size < 16:
        raise ValueError(f"frame_size must be an int of at least 16 pixels, got {frame_size!r}")
    if video_format not in ("mp4", "frames"):
        raise ValueError(f"video_format must be 'mp4' or 'frames', got {video_format!r}")
    if manifest_format not in ("csv", "jsonl"):
        raise ValueError(f"manifest_format must be 'csv' or 'jsonl', got {manifest_format!r}")
    if not 0 <= num_unseen_signers < num_signers:
        raise ValueError(
            f"num_unseen_signers must leave a training signer, got {num_unseen_signers} of {num_signers}"
        )
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    if fractions["repeat_fraction"] + fractions["near_duplicate_fraction"] > 1.0:
        raise ValueError("repeat_fraction + near_duplicate_fraction must not exceed 1")
