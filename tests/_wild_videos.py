"""Small videos as people have them, written with PyAV at test time: any frame rate, variable
frame rates, rotation metadata, audio only; and frames that carry their own time code."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_CODE_SIDE = 32


def time_code_frame(milliseconds: int, side: int = TIME_CODE_SIDE) -> np.ndarray:
    """A (side, side, 3) uint8 frame whose pixels spell ``milliseconds`` (< 65,536): the left half
    holds ``ms // 256``, the right half ``ms % 256``, in every channel (lossless codecs keep them)."""
    frame = np.empty((side, side, 3), dtype=np.uint8)
    frame[:, : side // 2] = milliseconds // 256
    frame[:, side // 2 :] = milliseconds % 256
    return frame


def read_time_code(frame: np.ndarray) -> int:
    """The milliseconds a :func:`time_code_frame` spells (read at its centre columns)."""
    side = frame.shape[1]
    return int(frame[frame.shape[0] // 2, side // 4, 0]) * 256 + int(
        frame[frame.shape[0] // 2, 3 * side // 4, 0]
    )


def write_timed_video(
    path: Path,
    frames: Sequence[np.ndarray],
    times: Sequence[Fraction],
    *,
    time_base: Fraction = Fraction(1, 1000),
    rotation: int | None = None,
    codec: str = "libx264rgb",
) -> Path:
    """Encode (H, W, 3) uint8 RGB ``frames`` shown at ``times`` (seconds, increasing) losslessly.

    ``rotation``: the display rotation (counter-clockwise degrees) written into the container, as
    phones write portrait videos. The stream's nominal rate is the first interval's.
    """
    height, width = frames[0].shape[:2]
    rate = Fraction(1) / (times[1] - times[0]) if len(times) > 1 else Fraction(25)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, options={"qp": "0", "preset": "ultrafast"})
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for pixels, time in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            frame.pts, frame.time_base = int(time / time_base), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_time_coded_video(path: Path, fps: int, seconds: float) -> Path:
    """``seconds`` of time-coded frames at a constant ``fps`` (each frame spells its own time)."""
    count = round(seconds * fps)
    times = [Fraction(index, fps) for index in range(count)]
    frames = [time_code_frame(round(time * 1000)) for time in times]
    return write_timed_video(path, frames, times, time_base=Fraction(1, 90_000))


def write_audio_only(path: Path, seconds: float = 1.0, rate: int = 16_000) -> Path:
    """A WAV file of a 440 Hz tone: a file with an audio stream and no video stream."""
    samples = (np.sin(np.arange(round(seconds * rate)) * 2 * np.pi * 440 / rate) * 8000).astype(np.int16)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
        frame.rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video file as stored (no rotation), (H, W, 3) uint8 RGB."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
