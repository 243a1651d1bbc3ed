"""Translating a long video into subtitles: peak memory, real-time factor and CPU use.

One command (CPU default; ``--device cuda`` where a GPU is at hand):

    python -m benchmarks.long_video                      # 5 minutes of 1280×720 at 25 fps
    python -m benchmarks.long_video --device cuda --models small paper

The video is generated once with PyAV (H.264, ``--width`` × ``--height``, ``--fps``,
``--seconds``): a bright square moving over a dark background in bursts with still pauses, so
that decoding does the work of a real recording of that size. The model is saved with random
weights and loaded by the pipeline, as ``scl-slt translate MODEL VIDEO --subtitles out.vtt``
runs it: the video is decoded as a stream, resampled to the model's 25 fps, frames shrunk to
the shorter side of 256 as they arrive, cut into windows of the longest length the model reads
(``max_frames`` and its positions; with ``--chunk-length-s`` that length) with context strides of
a sixth and cuts at pauses, each window translated (greedy, ``--new-tokens`` exactly, so random
weights give comparable lengths), and WebVTT written.

Models (``--models``): ``small`` (preset ``small``: the CPU demo's size) and ``paper`` (ResNet-18 +
mBART-large-50 shape: the frame and sequence cost of the paper's model, without its 250k-token
vocabulary), both with ``video_preprocessing`` size 224, resize 256,
max_frames 300 (the ``VideoTransform`` defaults) and the benchmark's word-level tokenizer (205 tokens).

Each model runs in a fresh process, so that its peak RSS (``ru_maxrss``) is its own: loading the
pipeline, then translating. Measured: wall seconds, real-time factor (wall / video duration;
below 1 is faster than real time), CPU seconds (user + system of the process) and mean cores
busy (CPU / wall), peak RSS, and on a GPU ``torch.cuda.max_memory_allocated``. ``decode``: the
same stream without the model (decoding, resampling, shrinking, windows), the input side's share.

Every measurement is printed as one JSON object and appended to
``benchmarks/results/long_video_<device>.jsonl`` with machine information.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import REPO_ROOT, RESULTS_DIR, emit, machine_info, module_command, module_environment

PREPROCESSING = {"size": 224, "resize": 256, "max_frames": 300}
PRESETS = ("small", "paper")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(PRESETS), default=["small"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--seconds", type=int, default=300, help="video length (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens generated per window")
    parser.add_argument("--chunk-length-s", type=float, help="window length (default: the longest)")
    parser.add_argument("--video", help="reuse this video file instead of generating one")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--output", help="JSONL file to append to (default: results/long_video_<device>.jsonl)"
    )
    parser.add_argument("--run", nargs=2, metavar=("MODEL_DIR", "VIDEO"), help=argparse.SUPPRESS)
    parser.add_argument("--decode-only", metavar="VIDEO", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_video(path: Path, seconds: int, width: int, height: int, fps: int) -> Path:
    """H.264 video (about 1 Mbit/s at 720p) of a square that moves for 4 s, rests for 1 s, and so on,
    over a fixed textured background."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rows = np.linspace(30, 90, height, dtype=np.float32)[:, None, None]
        texture = np.random.default_rng(0).integers(0, 16, (height, width, 3)).astype(np.float32)
        background = (rows + texture).astype(np.uint8)
        side, x = height // 6, 0
        for index in range(seconds * fps):
            if (index // fps) % 5 != 4:  # moving 4 s of every 5
                x = (x + width // 100) % (width - side)
            frame = background.copy()
            frame[height // 3 : height // 3 + side, x : x + side] = 220
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def save_model(folder: Path, name: str, new_tokens: int) -> Path:
    """A model of preset ``name`` with random weights and a word-level tokenizer, saved to ``folder``."""
    from modeling_scl_slt import SclSltForSignTranslation
    from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

    sentences = [f"word{index} rain sun wind snow" for index in range(200)]
    tokenizer = train_tokenizer(sentences, tgt_lang="en_XX", model="wordlevel")
    config = config_for_tokenizer(name, tokenizer, "en_XX", video_preprocessing=PREPROCESSING)
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config).eval()
    model.drop_text_branch()
    model.generation_config.max_new_tokens = model.generation_config.min_new_tokens = new_tokens
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run_translation(model_dir: str, video: str, device: str, chunk_length_s: float | None) -> dict[str, Any]:
    """In a fresh process: the pipeline loads, then translates ``video`` into WebVTT."""
    from transformers import pipeline

    import modeling_scl_slt
    from trainers.application.subtitles import write_subtitles

    translate = pipeline(modeling_scl_slt.PIPELINE_TASK, model=model_dir, device=device)
    chunk = chunk_length_s or translate.max_frames / translate.frame_rate
    loaded_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    windows = translate(video, chunk_length_s=chunk, return_timestamps=True)
    with tempfile.TemporaryDirectory() as folder:
        write_subtitles(Path(folder) / "out.vtt", windows)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    record = {
        "windows": len(windows),
        "chunk_length_s": round(chunk, 3),
        "covered_s": windows[-1]["timestamp"][1],
        "wall_s": round(wall, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "peak_rss_gib": round(after.ru_maxrss * 1024 / 2**30, 3),
        "rss_after_loading_gib": round(loaded_rss / 2**30, 3),
    }
    if device.startswith("cuda"):
        record["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return record


def run_decode_only(video: str) -> dict[str, Any]:
    """The input side alone: decode, resample to 25 fps, shrink, cut 300-frame windows."""
    from modeling_scl_slt.video_windows import Windowing, stream_windows

    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    windowing = Windowing(window_frames=300, left=50, right=50, cut_at_pauses=True)
    windows = stream_windows(
        video, rate=Fraction(25), fps=25, shorter_side=256, max_frames=300, windowing=windowing
    )
    count = sum(1 for _ in windows)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "windows": count,
        "wall_s": round(time.perf_counter() - start, 2),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "peak_rss_gib": round(after.ru_maxrss * 1024 / 2**30, 3),
    }


def child(arguments: list[str]) -> dict[str, Any]:
    """Run this benchmark with ``arguments`` in a fresh process; its last stdout line as JSON."""
    result = subprocess.run(
        module_command("benchmarks.long_video", arguments),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=module_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:  # one model, in its own process
        print(json.dumps(run_translation(*args.run, args.device, args.chunk_length_s)))
        return
    if args.decode_only:
        print(json.dumps(run_decode_only(args.decode_only)))
        return
    output = Path(args.output) if args.output else RESULTS_DIR / f"long_video_{args.device}.jsonl"
    machine = machine_info(torch.device(args.device))
    with tempfile.TemporaryDirectory(prefix="bench-long-video-") as scratch:
        folder = Path(scratch)
        if args.video:
            video = Path(args.video)
        else:
            start = time.perf_counter()
            video = write_video(folder / "talk.mp4", args.seconds, args.width, args.height, args.fps)
            print(f"wrote {video} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        info = {
            "video": f"{args.width}x{args.height} H.264, {args.fps} fps, {args.seconds} s",
            "video_mb": round(video.stat().st_size / 1e6, 2),
        }
        decode = child(
            ["--decode-only", str(video), *(["--threads", str(args.threads)] if args.threads else [])]
        )
        emit({"benchmark": "long_video", "measure": "decode", **info, **decode}, output, machine)
        for name in args.models:
            model_dir = save_model(folder / name, name, args.new_tokens)
            extra = ["--chunk-length-s", str(args.chunk_length_s)] if args.chunk_length_s else []
            extra += ["--threads", str(args.threads)] if args.threads else []
            record = child(["--run", str(model_dir), str(video), "--device", args.device, *extra])
            record["real_time_factor"] = round(record["wall_s"] / args.seconds, 3)
            record["cores_busy"] = round(record["cpu_s"] / record["wall_s"], 2)
            emit(
                {"benchmark": "long_video", "measure": "translate", "model": name, **info, **record},
                output,
                machine,
            )


if __name__ == "__main__":
    main()
