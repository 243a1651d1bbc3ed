"""A stream of frames at the model's rate → windows the model reads, each with its time span.

This file travels to the Hub with the pipeline: it imports only stdlib, numpy, torch and its sibling
files.

Windows follow transformers' ASR chunking (``chunk_length_s``, ``stride_length_s``): each window
reads its own span plus context on both sides, and the own spans tile the video. Spans end where
the signing pauses (:class:`PauseSignal`) rather than on a fixed grid. Only the frames of the
window being filled are held, so memory is bounded by one window, whatever the video's length.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .video_stream import describe_input, resampled_frames, timed_frames

# The pause signal: grey thumbnails of this side, motion averaged over this many seconds.
THUMBNAIL_SIDE = 32
PAUSE_SMOOTHING_S = 0.2
# ASR's default context on each side of a window: a sixth of its length.
DEFAULT_STRIDE_FRACTION = 1 / 6


@dataclass(frozen=True)
class Window:
    """One window of a stream of frames at the model's rate.

    Args:
        frames: (T, H, W, 3) uint8, the frames the model reads (the own span plus context).
        start, end: the window's own span in seconds (frame ``k`` is at ``k / rate``): own spans
            tile the video, and the window's translation is reported for them.
        is_last: whether this is the stream's last window.
    """

    frames: np.ndarray
    start: float
    end: float
    is_last: bool


class PauseSignal:
    """How much the picture moves at each frame: the cheap signal that places window cuts.

    ``motion[k]`` is the mean absolute difference (0–255) between the grey
    :data:`THUMBNAIL_SIDE` × :data:`THUMBNAIL_SIDE` thumbnails of frames ``k − 1`` and ``k``
    (``motion[0] = 0``). A signer who pauses (hands down or held still) moves little, so a cut there
    splits no sign; :meth:`quietest_cut` averages the motion over :data:`PAUSE_SMOOTHING_S` around
    each candidate cut. The signal cannot tell signing from other motion: a moving camera or
    background hides the pauses, and cuts then fall where the motion happens to dip.
    """

    def __init__(self, rate: Fraction) -> None:
        self.motion: list[float] = []
        self.half_width = max(1, round(float(rate) * PAUSE_SMOOTHING_S / 2))
        self._previous: torch.Tensor | None = None

    def add(self, frame: np.ndarray) -> None:
        """Record the motion at the next frame, (H, W, 3) uint8."""
        pixels = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float().mean(0)  # (H, W)
        thumbnail = F.adaptive_avg_pool2d(pixels[None], THUMBNAIL_SIDE)[0]  # (32, 32)
        if self._previous is None or self._previous.shape != thumbnail.shape:
            self.motion.append(0.0)
        else:
            self.motion.append(float((thumbnail - self._previous).abs().mean()))
        self._previous = thumbnail

    def quietest_cut(self, low: int, high: int) -> int:
        """The cut ``c`` in ``[low, high]`` (between frames ``c − 1`` and ``c``) where the smoothed
        motion is least; the latest of equals, so that a still video is cut on the fixed grid."""
        motion = self.motion
        best, best_score = high, math.inf
        for cut in range(high, low - 1, -1):
            around = motion[max(1, cut - self.half_width) : cut + self.half_width + 1]
            score = sum(around) / len(around) if around else 0.0
            if score < best_score:
                best, best_score = cut, score
        return best


class WindowCutter:
    """Cuts a stream of frames at the model's rate into windows, as transformers' ASR pipeline cuts
    audio (``chunk_length_s``, ``stride_length_s``).

    A window reads at most ``window_frames`` frames: its *own span* plus up to ``left`` frames of
    context before it and ``right`` after it (ASR's strides). Own spans tile the stream without gaps
    or overlap; each window's translation is reported for its own span. An own span lasts at most
    ``window_frames − left − right`` frames (the *step*) and, except the last, at least half of it.
    With ``cut_at_pauses`` it ends at the quietest point of the :class:`PauseSignal` in that range
    (the second half of the step); otherwise after a full step (a fixed grid). The last window
    takes what remains once that fits in one window with its left context (so a video of at most
    ``window_frames`` frames is one window), at least ``min_frames`` when the stream has as many.

    Memory: the frames from the current window's first context frame on, at most
    ``window_frames + max(right, pause smoothing)`` frames.
    """

    def __init__(
        self,
        window_frames: int,
        left: int,
        right: int,
        rate: Fraction,
        *,
        cut_at_pauses: bool = True,
        min_frames: int = 1,
    ) -> None:
        self.step = window_frames - left - right
        if left < 0 or right < 0 or self.step < 2 * min_frames:
            raise ValueError(
                f"a window of {window_frames} frames with strides of {left} and {right} frames leaves "
                f"{self.step} frames of its own; at least {2 * min_frames} are needed"
            )
        self.window_frames, self.left, self.right = window_frames, left, right
        self.rate, self.min_frames = rate, min_frames
        self.pauses = PauseSignal(rate) if cut_at_pauses else None
        self.lookahead = max(right, self.pauses.half_width if self.pauses else 0, 1)
        self._frames: list[np.ndarray] = []
        self._first = 0  # stream index of _frames[0]
        self._start = 0  # stream index where the next own span starts
        self._count = 0  # frames pushed

    def push(self, frame: np.ndarray) -> Iterator[Window]:
        """Add the next frame (H, W, 3) uint8; yields the windows it completes."""
        self._frames.append(frame)
        if self.pauses is not None:
            self.pauses.add(frame)
        self._count += 1
        while self._count >= self._start + max(self.step + self.lookahead, self._last_span() + 1):
            yield self._cut(self._choose_cut(self._start + self.step), is_last=False)

    def finish(self) -> Iterator[Window]:
        """The windows of the frames left after the last push, the last one marked ``is_last``."""
        while self._count - self._start > self._last_span():
            latest = min(self._start + self.step, self._count - self.min_frames)
            yield self._cut(self._choose_cut(latest), is_last=False)
        if self._count > self._start:
            yield self._cut(self._count, is_last=True)

    def _last_span(self) -> int:
        """The longest own span a last window can have: a window less its left context."""
        return self.window_frames - (self.left if self._start > 0 else 0)

    def _choose_cut(self, latest: int) -> int:
        earliest = min(self._start + math.ceil(self.step / 2), latest)
        return latest if self.pauses is None else self.pauses.quietest_cut(earliest, latest)

    def _cut(self, cut: int, *, is_last: bool) -> Window:
        read_start = max(self._first, self._start - self.left)
        read_end = min(self._count, cut + self.right)
        chosen = self._frames[read_start - self._first : read_end - self._first]
        sizes = {frame.shape for frame in chosen}
        if len(sizes) > 1:
            raise ValueError(f"all frames of a video must have one size, got {sorted(sizes)}")
        window = Window(
            frames=np.stack(chosen),
            start=float(self._start / self.rate),
            end=float(cut / self.rate),
            is_last=is_last,
        )
        self._start = cut
        keep_from = max(self._first, cut - self.left)
        del self._frames[: keep_from - self._first]
        self._first = keep_from
        return window


@dataclass(frozen=True)
class Windowing:
    """How a video becomes windows, in frames at the model's rate.

    Args:
        window_frames: frames one window reads at most (ASR's ``chunk_length_s`` × rate).
        left, right: context frames before and after each own span (ASR's ``stride_length_s``).
        cut_at_pauses: end own spans at the quietest point (:class:`PauseSignal`), not on a fixed grid.
    """

    window_frames: int
    left: int
    right: int
    cut_at_pauses: bool = True

    @classmethod
    def from_seconds(
        cls,
        chunk_length_s: float,
        stride_length_s: float | Sequence[float] | None,
        rate: float,
        *,
        max_frames: int,
        min_frames: int,
        cut_at_pauses: bool = True,
    ) -> Windowing:
        """transformers' ASR arguments in seconds → frames at ``rate`` (frames per second).

        ``chunk_length_s`` may span at most ``max_frames`` frames; ``stride_length_s`` is the context
        on each side, a number or a ``(left, right)`` pair (default: a sixth of the chunk), and must
        leave at least ``2 × min_frames`` frames of own span. A ValueError names the argument.
        """
        chunk = positive_seconds(chunk_length_s, "chunk_length_s")
        window_frames = round(chunk * rate)
        if window_frames > max_frames:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} is {window_frames} frames at {rate:g} fps; this model "
                f"reads at most {max_frames} frames ({max_frames / rate:.1f} s) at once"
            )
        if stride_length_s is None:
            stride_length_s = chunk * DEFAULT_STRIDE_FRACTION
        pair = stride_length_s if isinstance(stride_length_s, Sequence) else (stride_length_s,) * 2
        if len(pair) != 2:
            raise ValueError(
                f"stride_length_s must be seconds or a (left, right) pair, got {stride_length_s!r}"
            )
        left, right = (round(positive_seconds(value, "stride_length_s", zero=True) * rate) for value in pair)
        if window_frames - left - right < 2 * min_frames:
            raise ValueError(
                f"chunk_length_s={chunk_length_s} with stride_length_s={stride_length_s} leaves "
                f"{window_frames - left - right} frames per window besides the context; at least "
                f"{2 * min_frames} are needed: shorten the stride"
            )
        return cls(window_frames, left, right, cut_at_pauses=bool(cut_at_pauses))


def positive_seconds(value: Any, argument: str, *, zero: bool = False) -> float:
    """``value`` as seconds (> 0, or >= 0 with ``zero``); a ValueError naming ``argument`` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero else value > 0)
    ):
        expected = "a number of seconds >= 0" if zero else "a positive number of seconds"
        raise ValueError(f"{argument} must be {expected}, got {value!r}")
    return float(value)


def stream_windows(
    video: Any,
    *,
    rate: Fraction,
    fps: float,
    shorter_side: int | None,
    max_frames: int,
    windowing: Windowing | None,
    min_frames: int = 1,
) -> Iterator[Window]:
    """The windows of one input, decoded and resampled to ``rate`` as they are needed.

    ``fps`` times frame folders and arrays; ``shorter_side`` is the model's resize (frames are shrunk
    to it on arrival). Without ``windowing`` the whole video is one window, and a video of more than
    ``max_frames`` frames at ``rate`` is refused with a ValueError that says how long it is and how
    to translate it in windows (decoding stops there). A ValueError names the input for every
    unreadable input.
    """
    name = describe_input(video)
    stream = timed_frames(video, fps)
    frames = resampled_frames(stream, rate, shorter_side, name)
    if windowing is None:
        yield whole_video(frames, rate, max_frames, name, stream.duration_s)
        return
    cutter = WindowCutter(
        windowing.window_frames,
        windowing.left,
        windowing.right,
        rate,
        cut_at_pauses=windowing.cut_at_pauses,
        min_frames=min_frames,
    )
    count = 0
    for frame in frames:
        count += 1
        yield from cutter.push(frame)
    if count == 0:
        raise ValueError(f"{name} holds no frames")
    yield from cutter.finish()


def whole_video(
    frames: Generator[np.ndarray, None, None],
    rate: Fraction,
    max_frames: int,
    name: str,
    duration_s: float | None,
) -> Window:
    """All ``frames`` as one window; a ValueError as soon as there are more than ``max_frames``."""
    kept: list[np.ndarray] = []
    for frame in frames:
        if len(kept) == max_frames:
            frames.close()  # stops decoding and closes the file
            stated = f"it lasts {duration_s:.1f} s; " if duration_s is not None else ""
            raise ValueError(
                f"{name} is longer than this model reads at once "
                f"({max_frames} frames at {float(rate):g} fps, {float(max_frames / rate):g} s): "
                f"{stated}translate it in windows of at most that length with chunk_length_s "
                f"(scl-slt translate --chunk-length-s or --subtitles)"
            )
        kept.append(frame)
    if not kept:
        raise ValueError(f"{name} holds no frames")
    sizes = {frame.shape for frame in kept}
    if len(sizes) > 1:
        raise ValueError(f"all frames of {name} must have one size, got {sorted(sizes)}")
    return Window(frames=np.stack(kept), start=0.0, end=float(len(kept) / rate), is_last=True)
