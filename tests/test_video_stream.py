"""Videos in the wild → the model's frames: frame rates, windows, pause cuts and odd files.

Frames spell their own time code (``tests._wild_videos``) and are encoded losslessly, so every test
reads back exactly which source frame reached the model.
"""

from __future__ import annotations

import logging
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_scl_slt.video_processing import resize_shorter_side
from modeling_scl_slt.video_stream import FrameRateResampler, shrink_frame
from modeling_scl_slt.video_windows import PauseSignal, WindowCutter, Windowing, stream_windows
from tests._wild_videos import (
    decode_all,
    read_time_code,
    time_code_frame,
    write_audio_only,
    write_time_coded_video,
    write_timed_video,
)

RATE = Fraction(25)


def whole(
    video: object, fps: float = 25, shorter_side: int | None = None, max_frames: int = 10_000
) -> np.ndarray:
    """The frames of ``video`` at 25 fps as one window, (T, H, W, 3) uint8."""
    (window,) = stream_windows(
        video, rate=RATE, fps=fps, shorter_side=shorter_side, max_frames=max_frames, windowing=None
    )
    return window.frames


def codes(frames: np.ndarray) -> list[int]:
    return [read_time_code(frame) for frame in frames]


# --- frame rate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [25, 30, 50, 60])
def test_the_same_signing_at_any_frame_rate_reaches_the_model_at_25_fps(tmp_path: Path, fps: int) -> None:
    video = write_time_coded_video(tmp_path / f"signing-{fps}.mp4", fps, seconds=2.0)
    shown = codes(whole(video))
    assert len(shown) == 50  # 2 s at the model's 25 fps, whatever the recording's rate
    wanted = [40 * k for k in range(50)]
    if fps in (25, 50):  # multiples of 25 fps: exactly the frames a 25 fps recording has
        assert shown == wanted
    else:  # the source frame nearest to each 40 ms step (within half a source frame)
        nearest = [round(round(t * fps / 1000) * 1000 / fps) for t in wanted]
        assert shown == nearest
        assert all(abs(s - t) <= 500 / fps + 1 for s, t in zip(shown, wanted, strict=True))


def test_a_variable_frame_rate_file_is_resampled_by_its_time_stamps(tmp_path: Path) -> None:
    stamps = [0, 33, 50, 90, 130, 200, 210, 260, 330, 400]  # ms: irregular, as phones record
    times = [Fraction(ms, 1000) for ms in stamps]
    video = write_timed_video(tmp_path / "vfr.mkv", [time_code_frame(ms) for ms in stamps], times)
    # Steps k × 40 ms up to the last frame's end (400 + 70 ms), each the nearest frame.
    assert codes(whole(video)) == [0, 33, 90, 130, 130, 200, 260, 260, 330, 330, 400, 400]


@pytest.mark.parametrize(("fps", "kept"), [(25, list(range(20))), (50, list(range(0, 20, 2))), (12.5, None)])
def test_arrays_and_frame_folders_are_timed_by_fps(
    tmp_path: Path, fps: float, kept: list[int] | None
) -> None:
    array = np.stack([time_code_frame(index) for index in range(20)])  # frame i spells i
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(array):
        Image.fromarray(frame).save(folder / f"images{index + 1:04d}.png")
    expected = kept if kept is not None else [index // 2 for index in range(40)]  # 12.5 → 25: each twice
    assert codes(whole(array, fps=fps)) == expected
    assert codes(whole(torch.from_numpy(array), fps=fps)) == expected
    assert codes(whole(folder, fps=fps)) == expected


def test_resampler_keeps_the_earlier_frame_on_a_tie_and_ends_with_the_last_frame() -> None:
    resampler = FrameRateResampler(Fraction(10))  # steps of 100 ms
    settled = []
    for ms, name in ((0, "a"), (200, "b"), (250, "c")):  # 100 ms lies midway between a and b
        settled += resampler.push(Fraction(ms, 1000), name)
    assert settled + resampler.finish() == ["a", "a", "b"]  # c lasts until 300 ms: k = 0, 1, 2


def test_a_frame_without_a_later_time_stamp_is_counted_not_placed() -> None:
    resampler = FrameRateResampler(Fraction(25))
    for ms in (0, 40, 40, 80):
        resampler.push(Fraction(ms, 1000), ms)
    assert resampler.skipped == 1


# --- shrinking and what the model sees ------------------------------------------------------------


def test_large_frames_are_shrunk_on_arrival_as_the_model_would_resize_them(tmp_path: Path) -> None:
    rows = np.linspace(0, 255, 2160, dtype=np.float32)[:, None, None]
    columns = np.linspace(0, 255, 3840, dtype=np.float32)[None, :, None]
    big = np.broadcast_to((rows + columns) / 2, (2160, 3840, 3)).astype(np.uint8)  # a 4K gradient
    video = write_timed_video(tmp_path / "uhd.mp4", [big, big[::-1].copy()], [Fraction(0), Fraction(1, 25)])
    frames = whole(video, shorter_side=256)
    assert frames.shape == (2, 256, 455, 3)
    source = decode_all(video)
    for got, frame in zip(frames, source, strict=True):
        pixels = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
        reference = resize_shorter_side(pixels, 256)[0].permute(1, 2, 0)  # the model's own resize
        assert np.abs(got.astype(np.float32) - reference.numpy()).max() <= 0.5 + 1e-3  # rounding only


def test_frames_no_larger_than_the_resize_are_kept_as_they_are() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (260, 210, 3), dtype=np.uint8)
    assert shrink_frame(frame, 256) is frame
    assert shrink_frame(frame, None) is frame


def test_a_read_only_frame_is_shrunk_without_a_warning() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    frame.setflags(write=False)  # as PIL's np.asarray and some decoders hand them out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shrunk = shrink_frame(frame, 32)
    reference = resize_shorter_side(torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float(), 32)
    assert np.array_equal(shrunk, reference[0].round().to(torch.uint8).permute(1, 2, 0).numpy())


# --- odd files ------------------------------------------------------------------------------------


def test_a_portrait_phone_video_is_turned_upright_by_its_rotation(tmp_path: Path) -> None:
    upright = np.zeros((40, 24, 3), dtype=np.uint8)  # portrait: 24 wide, 40 high
    upright[:20, :12] = 255
    upright[20:, 12:, 1] = 200
    stored = np.ascontiguousarray(np.rot90(upright, k=-1))  # as the camera stores it: landscape
    times = [Fraction(index, 25) for index in range(4)]
    video = write_timed_video(tmp_path / "portrait.mp4", [stored] * 4, times, rotation=90)
    assert decode_all(video)[0].shape == (24, 40, 3)  # what decoding alone gives
    frames = whole(video)
    assert frames.shape == (4, 40, 24, 3)
    assert all(np.array_equal(frame, upright) for frame in frames)


def test_real_phoenix_sized_png_frames_reach_the_model_unchanged(tmp_path: Path) -> None:
    # PHOENIX-2014T's layout and size: features/fullFrame-210x260px/<split>/<name>/images0001.png,
    # 210 wide × 260 high, 25 fps; never shrunk (the shorter side is below the resize of 256).
    folder = tmp_path / "fullFrame-210x260px" / "test" / "25October_2010_Monday_tagesschau-17"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = rng.integers(0, 256, (12, 260, 210, 3), dtype=np.uint8)
    for index, frame in enumerate(written):
        Image.fromarray(frame).save(folder / f"images{index + 1:04d}.png")
    frames = whole(folder, shorter_side=256)
    assert frames.shape == (12, 260, 210, 3)
    assert np.array_equal(frames, written)


def test_an_audio_only_file_is_refused_in_one_line(tmp_path: Path) -> None:
    audio = write_audio_only(tmp_path / "voice.wav")
    with pytest.raises(ValueError, match=r"voice\.wav' has no video stream \(its streams: audio\)"):
        whole(audio)


def test_a_truncated_mp4_is_refused_in_one_line(tmp_path: Path) -> None:
    video = write_time_coded_video(tmp_path / "full.mp4", 25, seconds=4.0)
    truncated = tmp_path / "download.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # its index (moov) is at the end
    with pytest.raises(ValueError, match=r"download\.mp4' cannot be decoded") as caught:
        whole(truncated)
    assert "\n" not in str(caught.value)


def test_a_truncated_mkv_is_translated_as_far_as_it_goes_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = write_time_coded_video(tmp_path / "full.mkv", 25, seconds=4.0)
    truncated = tmp_path / "download.mkv"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        frames = whole(truncated)
    assert 0 < len(frames) < 100
    assert codes(frames) == [40 * k for k in range(len(frames))]  # the frames that are there, in order
    assert "download.mkv" in caplog.text and "of the 4.00 s its container states" in caplog.text


def test_garbage_inside_a_video_container_is_refused_in_one_line(tmp_path: Path) -> None:
    noise = tmp_path / "noise.mov"
    noise.write_bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"noise\.mov' cannot be decoded"):
        whole(noise)


def test_a_video_longer_than_the_model_reads_is_refused_before_it_is_decoded_whole(tmp_path: Path) -> None:
    video = write_time_coded_video(tmp_path / "talk.mp4", 25, seconds=4.0)
    with pytest.raises(ValueError) as caught:
        whole(video, max_frames=50)
    message = str(caught.value)
    for fragment in ("talk.mp4", "50 frames at 25 fps, 2 s", "it lasts 4.0 s", "with chunk_length_s"):
        assert fragment in message


# --- windows --------------------------------------------------------------------------------------


def cut(frames: np.ndarray, cutter: WindowCutter) -> list:
    windows = [window for frame in frames for window in cutter.push(frame)]
    return windows + list(cutter.finish())


def numbered(count: int) -> np.ndarray:
    return np.stack([time_code_frame(index) for index in range(count)])  # frame i spells i


@pytest.mark.parametrize("count", [1, 9, 24, 25, 100, 101, 263])
def test_fixed_windows_tile_the_video_and_read_their_context(count: int) -> None:
    cutter = WindowCutter(24, 3, 5, RATE, cut_at_pauses=False, min_frames=4)  # step 16
    windows = cut(numbered(count), cutter)
    spans = [(round(w.start * 25), round(w.end * 25)) for w in windows]
    assert spans[0][0] == 0 and spans[-1][1] == count
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))  # no gap, no overlap
    assert all(end - start <= 16 for start, end in spans[:-1])
    assert spans[-1][1] - spans[-1][0] <= (
        24 if len(spans) == 1 else 21
    )  # the last: a window less its context
    assert [w.is_last for w in windows] == [False] * (len(windows) - 1) + [True]
    for window, (start, end) in zip(windows, spans, strict=True):
        assert codes(window.frames) == list(range(max(0, start - 3), min(count, end + 5)))
        assert len(window.frames) <= 24
    if count >= 8:
        assert spans[-1][1] - spans[-1][0] >= 4  # the last window is long enough for the model
    assert (len(windows) == 1) == (count <= 24)  # a video that fits in one window is one window


def test_memory_is_bounded_by_one_window() -> None:
    cutter = WindowCutter(24, 3, 5, RATE, cut_at_pauses=True, min_frames=4)
    most = 0
    for frame in numbered(500):
        list(cutter.push(frame))
        most = max(most, len(cutter._frames))
    assert most <= 24 + cutter.lookahead


def moving_then_still(bursts: list[tuple[int, int]], count: int) -> np.ndarray:
    """Frames of a bright square that moves during ``bursts`` (frame ranges) and rests between."""
    frames = np.zeros((count, 48, 64, 3), dtype=np.uint8)
    position = 0
    for index in range(count):
        if any(start <= index < end for start, end in bursts):
            position = (position + 3) % 48
        frames[index, 10:26, position : position + 16] = 255
    return frames


def test_windows_end_where_the_signing_pauses() -> None:
    # Sentences of ~3-5 s with 0.6 s rests (15 frames) between them.
    bursts = [(0, 100), (115, 190), (205, 320), (335, 430)]
    pauses = [range(100, 116), range(190, 206), range(320, 336)]
    frames = moving_then_still(bursts, 440)
    cutter = WindowCutter(150, 0, 0, RATE, cut_at_pauses=True, min_frames=4)  # own spans 75-150 frames
    cuts = [round(w.end * 25) for w in cut(frames, cutter)][:-1]
    assert cuts and all(any(c in pause for pause in pauses) for c in cuts)
    fixed = [round(w.end * 25) for w in cut(frames, WindowCutter(150, 0, 0, RATE, cut_at_pauses=False))][:-1]
    assert not all(any(c in pause for pause in pauses) for c in fixed)  # the grid cuts through signs


def test_pause_signal_is_zero_for_a_still_picture_and_positive_for_motion() -> None:
    signal = PauseSignal(RATE)
    for frame in moving_then_still([(3, 6)], 8):
        signal.add(frame)
    assert signal.motion[:3] == [0.0, 0.0, 0.0] and min(signal.motion[3:6]) > 0 and signal.motion[7] == 0.0


def test_stream_windows_of_a_file_cover_it(tmp_path: Path) -> None:
    video = write_time_coded_video(tmp_path / "talk.mp4", 50, seconds=6.0)  # 50 fps: resampled first
    windowing = Windowing(window_frames=40, left=5, right=5, cut_at_pauses=False)
    windows = list(
        stream_windows(video, rate=RATE, fps=25, shorter_side=None, max_frames=40, windowing=windowing)
    )
    assert windows[0].start == 0 and windows[-1].end == pytest.approx(6.0)
    for window in windows:
        first = max(0.0, window.start - 0.2)
        assert codes(window.frames)[0] == round(first * 1000)  # 5 frames of context before the span


def test_too_short_a_window_for_its_strides_is_refused() -> None:
    with pytest.raises(ValueError, match="leaves 6 frames of its own; at least 8 are needed"):
        WindowCutter(16, 5, 5, RATE, min_frames=4)
