"""Build tiny copies of the official corpus layouts (and small videos) at test time."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

FRAME_WIDTH, FRAME_HEIGHT = 8, 10


def frame_pixels(index: int, width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> np.ndarray:
    """A distinct flat colour per frame index: shape (height, width, 3), uint8."""
    colour = ((index * 40) % 256, (index * 90 + 30) % 256, (255 - index * 20) % 256)
    return np.full((height, width, 3), colour, dtype=np.uint8)


def write_frames(folder: Path, count: int, pattern: str = "images{:04d}.png", start: int = 1) -> list[Path]:
    """Write `count` frames named by `pattern`, frame i coloured by `frame_pixels(i)`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / pattern.format(start + index)
        Image.fromarray(frame_pixels(index)).save(path)
        paths.append(path)
    return paths


def write_csv_rows(path: Path, header: str, rows: Sequence[str]) -> Path:
    """Write a header line and rows (already joined by their delimiter) as UTF-8."""
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


PHOENIX_HEADER = "name|video|start|end|speaker|orth|translation"


def phoenix_row(
    name: str, signer: str = "Signer01", gloss: str = "REGEN KOMMEN", text: str = "es regnet ."
) -> str:
    # The `video` column names a /1/ sub-folder that does not exist on disk, as in the release.
    return f"{name}|{name}/1/*.png|-1|-1|{signer}|{gloss}|{text}"


def make_phoenix(
    root: Path, rows: dict[str, Sequence[str]] | None = None, frames: dict[str, int] | None = None
) -> Path:
    """Write ``PHOENIX-2014-T-release-v3/PHOENIX-2014-T/`` under `root`.

    Args:
        rows: split file part ("train"/"dev"/"test") → annotation lines (no header).
        frames: sample name → number of frames (written under the split of its row).

    Returns:
        The release root folder.
    """
    rows = rows or {
        "train": [phoenix_row("train-a", "Signer01"), phoenix_row("train-b", "Signer02", text="sonne .")],
        "dev": [phoenix_row("dev-a", "Signer03", text="wind .")],
        "test": [phoenix_row("test-a", "Signer04", text="schnee .")],
    }
    release = root / "PHOENIX-2014-T-release-v3"
    inner = release / "PHOENIX-2014-T"
    annotations = inner / "annotations" / "manual"
    annotations.mkdir(parents=True)
    frames = frames or {}
    for split, lines in rows.items():
        (annotations / f"PHOENIX-2014-T.{split}.corpus.csv").write_text(
            "\n".join([PHOENIX_HEADER, *lines]) + "\n", encoding="utf-8"
        )
        for line in lines:
            name = line.split("|")[0]
            write_frames(inner / "features" / "fullFrame-210x260px" / split / name, frames.get(name, 3))
    return release


def csl_entry(name: str, signer: int = 1, words: Sequence[str] = ("今天", "天气", "好")) -> dict:
    """One entry of CSL-Daily's ``info`` list, with the keys of the real pickle."""
    chars = [c for word in words for c in word]
    return {
        "name": name,
        "length": 3,
        "label_gloss": ["今天", "天气", "好"],
        "label_char": chars,
        "label_word": list(words),
        "label_postag": ["t", "n", "a"][: len(words)],
        "signer": signer,
        "time": 1.5,
    }


def make_csl_daily(
    root: Path,
    splits: dict[str, str] | None = None,
    entries: Sequence[dict] | None = None,
    nested: bool = False,
    frames: dict[str, int] | None = None,
) -> Path:
    """Write a CSL-Daily copy under `root`: split file, label pickle, JPEG frame folders.

    Args:
        splits: sample name → split value ("train"/"dev"/"test").
        entries: the pickle's ``info`` list (default: one `csl_entry` per name).
        nested: use ``sentence_frames-512x512/frames_512x512/`` instead of
            ``sentence/frames_512x512/``.
        frames: sample name → number of frames (default 3).
    """
    splits = splits or {"S000000_P0000_T00": "train", "S000001_P0001_T00": "dev", "S000002_P0002_T00": "test"}
    labels = root / "sentence_label"
    labels.mkdir(parents=True)
    (labels / "split_1.txt").write_text(
        "\n".join(["name|split", *(f"{n}|{s}" for n, s in splits.items())]) + "\n", encoding="utf-8"
    )
    entries = entries if entries is not None else [csl_entry(n, i) for i, n in enumerate(splits)]
    info = {"info": list(entries), "gloss_map": ["今天", "天气", "好"], "char_map": ["今", "天", "气", "好"]}
    (labels / "csl2020ct_v2.pkl").write_bytes(pickle.dumps(info))
    frames_root = root / ("sentence_frames-512x512" if nested else "sentence") / "frames_512x512"
    frames = frames or {}
    for name in splits:
        write_frames(frames_root / name, frames.get(name, 3), pattern="{:06d}.jpg", start=0)
    return root


def write_video(
    path: Path, num_frames: int, codec: str = "libx264", size: tuple[int, int] = (32, 32)
) -> None:
    """Encode `num_frames` flat-coloured frames (`frame_pixels`) with PyAV."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "0", "preset": "ultrafast"}  # near-lossless colours
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pixels(index, width, height), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
