"""Translating videos people have: the model's frame rate, windows with timestamps, subtitles, the CLI.

A tiny model whose weights are re-drawn so that translations depend on the frames (as in
``test_pipeline``); windows are compared with translating their frames alone.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import pipeline

import modeling_scl_slt
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation, SignLanguageTranslationPipeline
from modeling_scl_slt.video_stream import shrink_frame
from tests._tiny_models import SMALL_FRAMES, random_clip, save_video_dependent_model
from tests._wild_videos import write_audio_only, write_time_coded_video
from trainers.application.cli import main
from trainers.application.recipe import corpus_frame_rate
from trainers.application.recipe_config import CorpusSection
from trainers.application.subtitles import render_subtitles

TASK = modeling_scl_slt.PIPELINE_TASK
ONE_GIB = 1024**3


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_video_dependent_model(tmp_path_factory.mktemp("windows") / "model", SMALL_FRAMES)


@pytest.fixture(scope="module")
def translator(model_dir: Path) -> SignLanguageTranslationPipeline:
    return pipeline(TASK, model=str(model_dir))


# --- the model's frame rate -----------------------------------------------------------------------


def test_the_config_records_the_frame_rate_and_the_pipeline_refuses_nonsense(tmp_path: Path) -> None:
    config = SclSltConfig.from_preset("tiny", frame_rate=30.0)
    config.save_pretrained(tmp_path)
    assert SclSltConfig.from_pretrained(tmp_path).frame_rate == 30.0
    assert SclSltConfig.from_preset("tiny").frame_rate == 25.0
    folder = save_video_dependent_model(tmp_path / "model", SMALL_FRAMES, frame_rate=0)
    with pytest.raises(
        ValueError, match=r"config\.frame_rate must be a positive number of frames per second"
    ):
        pipeline(TASK, model=str(folder))


@pytest.mark.parametrize(
    ("corpus", "rate"),
    [
        (CorpusSection(kind="synthetic"), 25.0),
        (CorpusSection(kind="phoenix2014t", path="p"), 25.0),
        (CorpusSection(kind="csl_daily", path="c"), 30.0),
        (CorpusSection(kind="gloss_rendered", path="g", rendering_options={"frame_step": 4}), 6.25),
        (CorpusSection(kind="manifest", path="m.csv"), 25.0),
        (CorpusSection(kind="manifest", path="m.csv", frame_rate=29.97), 29.97),
    ],
)
def test_the_recipe_takes_the_frame_rate_from_the_corpus(corpus: CorpusSection, rate: float) -> None:
    assert corpus_frame_rate(corpus) == rate


def test_the_pipeline_reads_inputs_at_the_models_frame_rate(tmp_path: Path) -> None:
    folder = save_video_dependent_model(tmp_path / "model", SMALL_FRAMES, frame_rate=12.5)
    translate = pipeline(TASK, model=str(folder))
    clip = random_clip(24, seed=3)
    assert translate.frame_rate == 12.5
    # An array is taken at the model's rate unless fps says otherwise: at 25 fps every other frame.
    (window,) = translate.preprocess(clip, fps=25)
    expected = np.stack([shrink_frame(frame, SMALL_FRAMES["resize"]) for frame in clip[::2]])  # 24x21 → 23x20
    assert np.array_equal(window["pixel_values"][0].permute(0, 2, 3, 1).numpy(), expected)
    assert translate(clip, fps=25) == translate(clip[::2])
    (window,) = translate.preprocess(clip)  # at the model's 12.5 fps: every frame
    assert window["pixel_values"].shape[1] == 24


def test_the_same_signing_at_25_and_50_fps_translates_the_same(translator, tmp_path: Path) -> None:
    at_25 = write_time_coded_video(tmp_path / "signing-25.mp4", 25, seconds=0.8)
    at_50 = write_time_coded_video(tmp_path / "signing-50.mp4", 50, seconds=0.8)
    assert translator(at_50) == translator(at_25)
    assert translator(at_50, return_timestamps=True)[0]["timestamp"] == (0.0, 0.8)


# --- windows --------------------------------------------------------------------------------------


def test_each_window_translates_as_its_frames_alone(translator: SignLanguageTranslationPipeline) -> None:
    clip = random_clip(60, seed=1)  # 2.4 s at 25 fps; max_frames 24 (0.96 s)
    windows = translator(
        clip, chunk_length_s=0.96, stride_length_s=(0.12, 0.2), cut_at_pauses=False, return_timestamps=True
    )
    spans = [window["timestamp"] for window in windows]
    assert spans == [(0.0, 0.64), (0.64, 1.28), (1.28, 1.92), (1.92, 2.4)]  # steps of 16 frames
    for window, (start, end) in zip(windows, spans, strict=True):
        first, last = max(0, round(start * 25) - 3), min(60, round(end * 25) + 5)  # plus the context
        assert window["translation_text"] == translator(clip[first:last])[0]["translation_text"]
    assert len({window["translation_text"] for window in windows}) > 1  # the check can fail


def test_windows_of_several_videos_batch_like_one_at_a_time(
    translator: SignLanguageTranslationPipeline,
) -> None:
    videos = [random_clip(60, seed=4), random_clip(30, seed=5), random_clip(10, seed=6)]
    options = {"chunk_length_s": 0.96, "return_timestamps": True}
    one_by_one = [translator(video, **options) for video in videos]
    assert translator(videos, batch_size=3, **options) == one_by_one
    assert [len(result) for result in one_by_one][2] == 1  # a short video is one window


def test_a_video_longer_than_the_model_reads_is_refused_with_how_to_window_it(
    translator: SignLanguageTranslationPipeline,
) -> None:
    with pytest.raises(ValueError) as caught:
        translator(random_clip(25, seed=0))
    assert "24 frames at 25 fps, 0.96 s" in str(caught.value) and "chunk_length_s" in str(caught.value)
    assert caught.value.__cause__ is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_length_s": 2.0}, "is 50 frames at 25 fps; this model reads at most 24 frames"),
        ({"chunk_length_s": 0.96, "stride_length_s": 0.4}, "leaves 4 frames per window besides the context"),
        ({"chunk_length_s": -1}, "chunk_length_s must be a positive number of seconds"),
        ({"stride_length_s": 0.1}, "stride_length_s needs chunk_length_s"),
        ({"chunk_length_s": 0.96, "num_return_sequences": 2, "num_beams": 2}, "num_return_sequences cannot"),
        ({"fps": 0}, "fps must be a positive number of frames per second"),
    ],
)
def test_bad_window_arguments_are_one_clear_error(
    translator: SignLanguageTranslationPipeline, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        translator(random_clip(8, seed=0), **options)


def test_the_model_itself_refuses_a_clip_beyond_its_positions(model_dir: Path) -> None:
    model = SclSltForSignTranslation.from_pretrained(model_dir).eval()
    too_long = model.config.max_clip_frames + model.config.temporal_downsampling  # 64 positions × 4 + 4
    pixel_values = torch.zeros(1, too_long, 3, 16, 16)
    with pytest.raises(
        ValueError, match=r"clips of 260 frames are longer than the visual encoder's 64 positions"
    ):
        model.generate(pixel_values=pixel_values, max_new_tokens=2)


# --- subtitles and the CLI ------------------------------------------------------------------------


def test_subtitles_render_as_webvtt_and_srt() -> None:
    windows = [
        {"translation_text": "rain\nin the north", "timestamp": (0.0, 3.52)},
        {"translation_text": "a --> b", "timestamp": (3.52, 3725.004)},
    ]
    assert render_subtitles(windows, ".vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:03.520\nrain in the north\n\n"
        "00:00:03.520 --> 01:02:05.004\na --&gt; b\n"
    )
    assert render_subtitles(windows, ".srt") == (
        "1\n00:00:00,000 --> 00:00:03,520\nrain in the north\n\n2\n00:00:03,520 --> 01:02:05,004\na --> b\n"
    )


CUE = re.compile(r"^(\d\d):(\d\d):(\d\d)[.,](\d\d\d) --> (\d\d):(\d\d):(\d\d)[.,](\d\d\d)$")


def cue_spans(text: str) -> list[tuple[float, float]]:
    """The (start, end) seconds of every cue of a WebVTT or SubRip text."""
    spans = []
    for line in text.splitlines():
        match = CUE.match(line)
        if match:
            h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, match.groups())
            spans.append((h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000))
    return spans


@pytest.mark.parametrize("suffix", [".vtt", ".srt"])
def test_translate_writes_subtitles_that_cover_the_video(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    video = write_time_coded_video(tmp_path / "talk.mp4", 30, seconds=3.0)  # 30 fps, resampled to 25
    subtitles = tmp_path / f"talk{suffix}"
    output = tmp_path / "talk.jsonl"
    assert (
        main(
            ["translate", str(model_dir), str(video), "--subtitles", str(subtitles), "--output", str(output)]
        )
        == 0
    )
    spans = cue_spans(subtitles.read_text(encoding="utf-8"))
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(3.0)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1)) and len(spans) >= 4
    (record,) = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    windows = [bound for w in record["windows"] for bound in (w["start"], w["end"])]
    assert windows == pytest.approx([bound for span in spans for bound in span])
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == len(spans) and printed[0].startswith(f"{video}\t0.00-")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("scl-slt ")]
    assert len(errors) == 1 and err.endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


def test_translate_refuses_odd_inputs_in_one_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = write_audio_only(tmp_path / "voice.wav")
    assert main(["translate", str(model_dir), str(audio)]) == 2
    assert "has no video stream" in one_error_line(capsys)
    long_video = write_time_coded_video(tmp_path / "long.mp4", 25, seconds=2.0)
    assert main(["translate", str(model_dir), str(long_video)]) == 2
    assert "--chunk-length-s" in one_error_line(capsys)
    assert main(["translate", str(model_dir), str(long_video), "--subtitles", str(tmp_path / "x.txt")]) == 2
    assert "expected a file name ending in .vtt (WebVTT) or .srt (SubRip)" in one_error_line(capsys)
    assert main(["translate", str(model_dir), str(long_video), str(audio), "--subtitles", "a.vtt"]) == 2
    assert "one INPUT" in one_error_line(capsys)


# --- the acceptance run: 3 minutes of 640x480 video → WebVTT under 1.5 GiB ------------------------

ACCEPTANCE = textwrap.dedent(
    """
    import resource, sys
    import torch
    from trainers.application.cli import main

    # One intra-op thread: the per-frame work is small, and on a busy machine idle threads spin.
    torch.set_num_threads(1)

    status = main(["translate", sys.argv[1], sys.argv[2], "--subtitles", sys.argv[3]])
    print("peak_rss_bytes", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    sys.exit(status)
    """
)


def write_talk(path: Path, seconds: int, width: int = 640, height: int = 480, fps: int = 25) -> Path:
    """``seconds`` of 640×480 H.264 video: a bright square moving over a dark background."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = np.full((height, width, 3), 30, dtype=np.uint8)
        for index in range(seconds * fps):
            frame[:] = 30
            x = (index * 7) % (width - 80)
            frame[200:280, x : x + 80] = 230
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.mark.slow
def test_three_minutes_of_640x480_become_webvtt_under_1_5_gib(tmp_path: Path) -> None:
    # The model reads real-sized frames (resize 256, crop 224), 256 frames (its 64 positions) a window.
    folder = save_video_dependent_model(tmp_path / "model", {"size": 224, "resize": 256, "max_frames": 300})
    video = write_talk(tmp_path / "talk.mp4", seconds=180)
    subtitles = tmp_path / "talk.vtt"
    result = subprocess.run(
        [sys.executable, "-c", ACCEPTANCE, str(folder), str(video), str(subtitles)],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(result.stdout.split("peak_rss_bytes")[-1])
    assert peak < 1.5 * ONE_GIB, f"peak RSS {peak / ONE_GIB:.2f} GiB"
    spans = cue_spans(subtitles.read_text(encoding="utf-8"))
    assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(180.0)
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert all(end - start <= 10.24 for start, end in spans)  # 256 frames at 25 fps
