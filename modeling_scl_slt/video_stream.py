"""Videos as people have them → frames at the model's frame rate, read as a stream.

This file travels to the Hub with the pipeline: it imports only stdlib, numpy, torch and its sibling
files; PyAV (video files) and PIL (frame folders) are imported only when such an input arrives.

An input goes through three steps, each holding one frame or two, so that what follows
(:mod:`video_windows`: windows) bounds the memory whatever the length of the video:

1. **Timed frames** (:func:`timed_frames`). A video file gives each decoded frame its presentation
   time, ``pts × time_base`` (variable frame rates included), and turns it upright by its display
   rotation (phone videos store portrait frames as landscape ones plus a rotation); horizontal and
   vertical flips in the display matrix are not applied. A frame folder (images in numeric
   file-name order) or a ``(T, H, W, 3)`` uint8 array gives frame ``i`` the time ``i / fps``.
   Times count from the first frame (0 s).
2. **Resampling** to the model's frame rate ``r`` (:class:`FrameRateResampler`): output frame ``k``
   is the input frame nearest to ``k / r`` seconds (the earlier one on a tie), for every ``k`` with
   ``k / r`` before the end of the last frame (its time plus the last frame interval). The same
   rate keeps every frame once; 50 → 25 fps keeps every other frame; 30 or 60 → 25 fps keeps the
   nearest ones; 12 → 25 fps repeats frames. Frames that are not chosen are never converted to RGB.
3. **Shrinking on arrival** (:func:`shrink_frame`): a frame whose shorter side exceeds the model's
   ``video_preprocessing["resize"]`` is resized to it at once, with the model's own resize
   (bilinear, antialiased) rounded to uint8; the model's resize is then the identity. A window of
   4K frames costs what a window of 256-pixel frames costs.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .video_processing import resize_shorter_side

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
EXPECTED_INPUT = "a video file, a folder of frame images or a (T, H, W, 3) uint8 array"
# A decoded video that ends this much before its container's stated duration is reported.
TRUNCATION_TOLERANCE_S = 0.5
# Frame time stamps are kept exact (fractions); a rate given as a float is read to this precision.
RATE_DENOMINATOR = 1_000_000

VideoInput = str | os.PathLike | np.ndarray | torch.Tensor
# A frame that is converted to RGB only when chosen: () → (H, W, 3) uint8.
LazyFrame = Callable[[], np.ndarray]


@dataclass(frozen=True)
class TimedStream:
    """The timed frames of one input and what is known of it before decoding.

    Args:
        frames: (time in seconds from the first frame, lazy frame) in presentation order.
        duration_s: the stated duration (container metadata, or frames / fps); ``None`` if unknown.
    """

    frames: Iterator[tuple[Fraction, LazyFrame]]
    duration_s: float | None


def exact_rate(rate: float, argument: str) -> Fraction:
    """``rate`` (frames per second, > 0) as an exact fraction; ``argument`` names it in errors."""
    if isinstance(rate, bool) or not isinstance(rate, int | float | Fraction) or not rate > 0:
        raise ValueError(f"{argument} must be a positive number of frames per second, got {rate!r}")
    if not math.isfinite(rate):
        raise ValueError(f"{argument} must be a finite number of frames per second, got {rate!r}")
    return Fraction(rate).limit_denominator(RATE_DENOMINATOR)


def describe_input(video: Any) -> str:
    """How error messages name an input."""
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        kind = "frame folder" if path.is_dir() else "video file"
        return f"{kind} {str(path)!r}"
    if isinstance(video, np.ndarray | torch.Tensor):
        return f"video array of shape {tuple(video.shape)} and dtype {video.dtype}"
    return f"input of type {type(video).__name__}"


def timed_frames(video: Any, fps: float) -> TimedStream:
    """The timed frames of a video file, a frame folder (at ``fps``) or a uint8 array (at ``fps``).

    Raises a ValueError naming the input when it is missing, of an unsupported kind or unreadable.
    """
    if isinstance(video, str | os.PathLike):
        path = Path(video)
        if path.is_dir():
            return folder_frames(path, exact_rate(fps, "fps"))
        if path.is_file():
            return video_file_frames(path)
        raise ValueError(f"video input {str(path)!r} does not exist; expected {EXPECTED_INPUT}")
    if isinstance(video, np.ndarray | torch.Tensor):
        check_video_array(video)
        return array_frames(video, exact_rate(fps, "fps"))
    raise ValueError(f"unsupported video input of type {type(video).__name__}; expected {EXPECTED_INPUT}")


def check_video_array(video: np.ndarray | torch.Tensor) -> None:
    """Refuse arrays that are not (T, H, W, 3) uint8."""
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(
            f"video array of shape {tuple(video.shape)} is not a clip: expected a (T, H, W, 3) uint8 array"
        )
    expected_dtype = np.uint8 if isinstance(video, np.ndarray) else torch.uint8
    if video.dtype != expected_dtype:
        raise ValueError(
            f"video array of dtype {video.dtype} is not a clip: expected uint8 pixels, shape (T, H, W, 3)"
        )


def array_frames(video: np.ndarray | torch.Tensor, fps: Fraction) -> TimedStream:
    """Frame ``i`` of a (T, H, W, 3) uint8 array at ``i / fps`` seconds."""
    array = video.numpy(force=True) if isinstance(video, torch.Tensor) else video
    frames = ((index / fps, lambda index=index: array[index]) for index in range(len(array)))
    return TimedStream(frames, float(len(array) / fps))


def natural_key(file_name: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs by value: ``images2.png`` < ``images10.png``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", file_name))


def frame_folder_names(folder: Path) -> list[str]:
    """The image file names of a frame folder in numeric order; a ValueError when it holds none."""
    names = sorted(
        (
            entry.name
            for entry in os.scandir(folder)
            if entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file()
        ),
        key=natural_key,
    )
    if not names:
        raise ValueError(f"frame folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return names


def folder_frames(folder: Path, fps: Fraction) -> TimedStream:
    """Image ``i`` of a frame folder (numeric file-name order) at ``i / fps`` seconds, read when chosen."""
    names = frame_folder_names(folder)
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading a folder of frame images needs Pillow: pip install pillow") from None

    def read(name: str) -> np.ndarray:
        try:
            with Image.open(folder / name) as image:
                return np.asarray(image.convert("RGB"))
        except OSError as error:
            raise ValueError(f"frame {name!r} of folder {str(folder)!r} cannot be read ({error})") from None

    frames = ((index / fps, lambda name=name: read(name)) for index, name in enumerate(names))
    return TimedStream(frames, float(len(names) / fps))


def video_file_frames(path: Path) -> TimedStream:
    """The frames of a video file decoded with PyAV, timed by their presentation time stamps.

    A file without a video stream, or that FFmpeg cannot open or decode, is refused with a
    ValueError naming it. A file whose frames end more than :data:`TRUNCATION_TOLERANCE_S` before
    the duration its container states (a truncated download) is translated as far as it goes, with a
    warning that says so.
    """
    try:
        import av
    except ImportError:
        raise ImportError("reading video files needs PyAV: pip install av") from None
    name = str(path)
    if path.stat().st_size == 0:
        raise ValueError(f"video file {name!r} is empty (0 bytes)")
    try:
        container = av.open(name)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise ValueError(f"video file {name!r} cannot be decoded: FFmpeg cannot open it ({error})") from None
    if not container.streams.video:
        kinds = sorted({stream.type for stream in container.streams}) or ["none"]
        container.close()
        raise ValueError(
            f"video file {name!r} has no video stream (its streams: {', '.join(kinds)}); "
            f"expected {EXPECTED_INPUT}"
        )
    stream = container.streams.video[0]
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    return TimedStream(decoded_frames(container, name, duration, av.FFmpegError), duration)


def decoded_frames(
    container: Any, name: str, duration: float | None, decoding_error: type[Exception]
) -> Iterator[tuple[Fraction, LazyFrame]]:
    """Decode ``container``'s first video stream frame by frame (closing it at the end)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame and slice threads: decoding order and results are unchanged
    fallback_period = 1 / Fraction(stream.average_rate or 25)
    origin: Fraction | None = None
    last: Fraction | None = None
    count = 0
    with container:
        try:
            for frame in container.decode(stream):
                if frame.pts is None:  # no time stamp: the frame after the previous one
                    time = Fraction(0) if last is None else last + fallback_period
                else:
                    time = Fraction(frame.pts) * frame.time_base
                    origin = time if origin is None else origin
                    time = time - origin
                yield time, lambda frame=frame: upright_rgb(frame)
                last, count = time, count + 1
        except (decoding_error, OSError) as error:
            raise ValueError(
                f"video file {name!r} cannot be decoded after {count} frame(s) "
                f"(corrupt or truncated: {error})"
            ) from None
    if count == 0:
        raise ValueError(f"video file {name!r} holds no decodable frames (corrupt or truncated?)")
    decoded_s = float(last + fallback_period)
    if duration is not None and decoded_s < duration - TRUNCATION_TOLERANCE_S:
        logger.warning(
            "video file %r ends after %.2f s of the %.2f s its container states (truncated?): "
            "translating the %.2f s that decode",
            name,
            decoded_s,
            duration,
            decoded_s,
        )


def upright_rgb(frame: Any) -> np.ndarray:
    """A decoded PyAV frame as (H, W, 3) uint8 RGB, turned by its display rotation (counter-clockwise)."""
    array = frame.to_ndarray(format="rgb24")
    quarter_turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(array, k=quarter_turns)) if quarter_turns else array


def shrink_frame(frame: np.ndarray, shorter_side: int | None) -> np.ndarray:
    """(H, W, 3) uint8 → the same with the shorter side at most ``shorter_side`` (the model's resize,
    rounded to uint8); smaller frames, and ``shorter_side=None``, are returned as they are."""
    if shorter_side is None or min(frame.shape[:2]) <= shorter_side:
        return frame
    # a copy: decoders may hand out read-only arrays, which torch.from_numpy warns about
    pixels = torch.tensor(frame, dtype=torch.float32).permute(2, 0, 1)[None]  # (1, 3, H, W)
    resized = resize_shorter_side(pixels, shorter_side)[0].round().to(torch.uint8)  # (3, H', W')
    return resized.permute(1, 2, 0).contiguous().numpy()


class FrameRateResampler:
    """Nearest-frame resampling of timed frames to ``rate`` frames per second, as a stream.

    Output frame ``k`` is the input frame whose time is nearest to ``k / rate`` (the earlier of two
    at the same distance), for each ``k`` with ``k / rate`` before the end of the last frame (its
    time plus the last interval between frames; one frame lasts ``1 / rate``). :meth:`push` gives
    the outputs that a new frame settles, :meth:`finish` the rest. Times are exact fractions, so
    25 → 25 fps keeps every frame and 50 → 25 fps every other one, without rounding. A frame whose
    time does not come after the previous one cannot be placed and is counted in ``skipped``.
    """

    def __init__(self, rate: Fraction) -> None:
        self.period = 1 / rate
        self.skipped = 0
        self._previous: tuple[Fraction, Any] | None = None
        self._interval: Fraction | None = None
        self._next = 0  # index k of the next output frame

    def push(self, time: Fraction, item: Any) -> list[Any]:
        """Add the frame ``item`` at ``time`` seconds; returns the output frames now settled."""
        if self._previous is None:
            self._previous = (time, item)
            return []
        previous_time, previous_item = self._previous
        if time <= previous_time:
            self.skipped += 1
            return []
        midpoint = (previous_time + time) / 2
        settled = []
        while self._next * self.period <= midpoint:
            settled.append(previous_item)
            self._next += 1
        self._previous, self._interval = (time, item), time - previous_time
        return settled

    def finish(self) -> list[Any]:
        """The output frames after the last push (those nearest to the last frame)."""
        if self._previous is None:
            return []
        time, item = self._previous
        end = time + (self._interval if self._interval is not None else self.period)
        settled = []
        while self._next * self.period < end:
            settled.append(item)
            self._next += 1
        return settled


def resampled_frames(
    stream: TimedStream, rate: Fraction, shorter_side: int | None, name: str
) -> Generator[np.ndarray, None, None]:
    """The frames of ``stream`` at ``rate`` (:class:`FrameRateResampler`), each (H, W, 3) uint8 RGB,
    shrunk on arrival (:func:`shrink_frame`). A frame repeated by upsampling is converted once."""
    resampler = FrameRateResampler(rate)
    converted: tuple[Any, np.ndarray] | None = None
    for time, lazy in _timed_then_end(stream.frames):
        for chosen in resampler.push(time, lazy) if lazy is not None else resampler.finish():
            if converted is None or converted[0] is not chosen:
                converted = (chosen, shrink_frame(chosen(), shorter_side))
            yield converted[1]
    if resampler.skipped:
        logger.warning(
            "%s: %d frame(s) whose time stamp does not come after the previous frame's were left out",
            name,
            resampler.skipped,
        )


def _timed_then_end(
    frames: Iterator[tuple[Fraction, LazyFrame]],
) -> Iterator[tuple[Fraction, LazyFrame | None]]:
    """The frames, then one ``(end, None)`` marker."""
    yield from frames
    yield Fraction(0), None
