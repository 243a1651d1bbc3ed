"""Frames on disk: list a frame folder, check image files cheaply, decode videos.

Frame checks (`check_frame`), chosen per loader with ``frame_check=``:

- ``"fast"`` (default): the file is not empty, starts with the format's signature and
  ends with its end marker (PNG ``IEND`` chunk, JPEG ``EOI`` marker; other formats:
  PIL parses the header). This catches empty, non-image and truncated files, which is
  how copies usually break (an interrupted download or unpack). Two small reads per
  file; on a cold disk the two seeks per file dominate.
- ``"full"``: decode every frame with PIL. Also catches damage in the middle of a file
  (intact ends, corrupt pixels), at the cost of a full decode per frame.
- ``"none"``: only list the files. Damaged frames then fail when decoded (training).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import av
from PIL import Image

FrameCheck = Literal["fast", "full", "none"]
ImageFormat = Literal["png", "jpeg"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"  # last 8 bytes of every PNG: the IEND chunk type + its CRC
_JPEG_SIGNATURE = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_JPEG_TAIL_BYTES = 64  # some encoders pad after EOI; FF D9 cannot occur in entropy-coded data
_MAX_BAD_FRAMES_LISTED = 5  # per folder; the sample is reported either way


def natural_key(file_name: str) -> tuple:
    """Sort key that orders digit runs by value: ``images9999.png`` < ``images10000.png``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", file_name))


def list_frames(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files of a frame folder in numeric order (other files are ignored).

    Args:
        folder: A folder holding one image per frame.
        suffixes: File suffixes (lower case) that count as frames.

    Returns:
        Absolute paths, sorted by `natural_key` of the file name.
    """
    suffixes = tuple(suffixes)
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.lower().endswith(suffixes) and e.is_file()]
    folder = folder.absolute()
    return [folder / name for name in sorted(names, key=natural_key)]


def check_frame(path: Path, mode: FrameCheck = "fast") -> str | None:
    """Check one image file.

    Args:
        path: The image file.
        mode: ``"fast"``, ``"full"`` or ``"none"`` (see the module docstring).

    Returns:
        ``None`` if the frame looks fine, else why not (one sentence naming the file).
    """
    if mode == "none":
        return None
    try:
        reason = _check_ends(path) if mode == "fast" else _decode_fully(path)
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
    return None if reason is None else f"frame {path} {reason}"


def _check_ends(path: Path) -> str | None:
    """Signature and end-marker check: two small reads."""
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        if size == 0:
            return "is empty (0 bytes)"
        stream.seek(0)
        head = stream.read(8)
        stream.seek(max(0, size - _JPEG_TAIL_BYTES))
        tail = stream.read()
    if head.startswith(_PNG_SIGNATURE):
        return None if tail.endswith(_PNG_END) else "is truncated (no PNG end chunk)"
    if head.startswith(_JPEG_SIGNATURE):
        return None if _JPEG_END in tail else "is truncated (no JPEG end marker)"
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return f"is not a {path.suffix.lstrip('.').upper()} image (wrong file signature)"
    try:  # other formats: let PIL parse the header
        with Image.open(path):
            return None
    except Image.UnidentifiedImageError:
        return "is not an image PIL can read"


def _decode_fully(path: Path) -> str | None:
    """Decode every pixel (slow, thorough)."""
    try:
        with Image.open(path) as image:
            image.load()
    except Image.UnidentifiedImageError:
        return "is not an image PIL can read"
    except (OSError, SyntaxError, ValueError) as error:  # PIL reports broken data as these
        return f"cannot be decoded ({error})"
    return None


def check_frame_folder(
    folder: Path, mode: FrameCheck, suffixes: Iterable[str] = IMAGE_SUFFIXES
) -> tuple[list[Path], str | None]:
    """List a frame folder and check its frames.

    Returns:
        ``(frames, reason)``: the sorted frame paths, and ``None`` or why the folder is
        unusable (missing, empty, or naming every bad frame in it).
    """
    suffixes = tuple(suffixes)
    if not folder.is_dir():
        return [], f"frame folder {folder} is missing"
    try:
        frames = list_frames(folder, suffixes)
    except OSError as error:
        return [], f"frame folder {folder} cannot be listed ({error.strerror or error})"
    if not frames:
        return [], f"frame folder {folder} holds no frames ({', '.join('*' + s for s in suffixes)})"
    bad = [reason for frame in frames if (reason := check_frame(frame, mode)) is not None]
    if len(bad) > _MAX_BAD_FRAMES_LISTED:
        bad[_MAX_BAD_FRAMES_LISTED:] = [
            f"and {len(bad) - _MAX_BAD_FRAMES_LISTED} more bad frames in {folder}"
        ]
    return frames, "; ".join(bad) or None


def encode_image(image: Image.Image, image_format: ImageFormat = "png", jpeg_quality: int = 95) -> bytes:
    """Encode one frame: lossless PNG (fast compression level) or JPEG."""
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=1)  # lossless at any level; 1 is the fastest
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    return buffer.getvalue()


class VideoDecodeError(Exception):
    """A video file cannot be decoded (message: why, naming the file)."""


def decode_video(path: Path, image_format: ImageFormat = "png", jpeg_quality: int = 95) -> list[bytes]:
    """Decode every frame of a video file with PyAV and encode each as an image.

    Frames are encoded as soon as they are decoded, so a long HD clip never sits in
    memory as raw RGB.

    Args:
        path: Any container/codec FFmpeg reads (mp4, webm, mov, mkv, avi, …).
        image_format: ``"png"`` (lossless) or ``"jpeg"``.
        jpeg_quality: JPEG quality (1-95) when ``image_format="jpeg"``.

    Returns:
        One encoded image per frame, in presentation order.

    Raises:
        VideoDecodeError: the file is missing, empty, not a video, undecodable or has
            no frames.
    """
    try:
        if path.stat().st_size == 0:
            raise VideoDecodeError(f"video {path} is empty (0 bytes)")
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"video {path} has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            frames = [
                encode_image(frame.to_image(), image_format, jpeg_quality)
                for frame in container.decode(stream)
            ]
    except FileNotFoundError:
        raise VideoDecodeError(f"video {path} is missing") from None
    except (av.FFmpegError, OSError) as error:
        raise VideoDecodeError(f"video {path} cannot be decoded ({error})") from None
    if not frames:
        raise VideoDecodeError(f"video {path} holds no frames")
    return frames
