"""Worker threads for videos: decoding a manifest's videos and rendering the gloss twin, 1 against N.

`load_sign_corpus(num_workers=…)` decodes videos and `make_gloss_rendered_corpus(num_workers=…)`
renders and writes them in threads (`datasets_scripts/workers.py`), on the grounds that FFmpeg,
Pillow's encoders and numpy release the GIL. This measures whether threads pay, in one run:

* **decode**: ``--videos`` H.264 videos at PHOENIX-2014T's frame size (210 wide × 260 high,
  ``--frames`` each: `benchmarks.workloads.phoenix_frames`, the synthetic renderer's frames
  upscaled with mild noise) loaded with `load_sign_corpus` into a fresh cache: decoded,
  every frame encoded as PNG, written as arrow;
* **render**: ``--glosses-videos`` made-up gloss annotations rendered and written as PNG frame
  folders by `make_gloss_rendered_corpus` (``--image-size``, every frame).

Each ``--workers`` count runs ``--repeats`` times, the counts alternating call by call, after one
untimed round. Records: median seconds per count and the speed-up over the first count.

    python -m benchmarks.video_workers --workers 1 2 --output benchmarks/results/video_workers_cpu.jsonl
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from benchmarks.harness import emit, machine_info, time_interleaved
from benchmarks.workloads import HEIGHT, WIDTH, phoenix_frames
from datasets_scripts import GlossRow, load_sign_corpus, make_gloss_rendered_corpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--videos", type=int, default=16, help="videos to decode")
    parser.add_argument("--frames", type=int, default=112, help="frames per video (PHOENIX median: 112)")
    parser.add_argument("--glosses-videos", type=int, default=64, help="gloss annotations to render")
    parser.add_argument("--image-size", type=int, default=64, help="rendered frame size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, help="also append every record to this JSONL file")
    return parser.parse_args(argv)


def write_videos(folder: Path, count: int, frames: int) -> Path:
    """``count`` H.264 (yuv420p, crf 23) videos of PHOENIX frames and their manifest."""
    rng = np.random.default_rng(0)
    rows = ["video,text"]
    for index in range(count):
        path = folder / f"clip{index:03d}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            for frame in phoenix_frames(rng, frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        rows.append(f"{path.name},sentence {index}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def gloss_rows(count: int) -> dict[str, list[GlossRow]]:
    """``count`` train rows of made-up glosses, PHOENIX-like lengths (60–160 frames)."""
    rng = np.random.default_rng(0)
    vocabulary = [f"GLOSS{index}" for index in range(200)]
    rows = [
        GlossRow(
            name=f"video{index:04d}",
            glosses=tuple(rng.choice(vocabulary, size=int(rng.integers(3, 10)))),
            text=f"sentence {index}",
            num_frames=int(rng.integers(60, 161)),
            signer=f"Signer0{index % 9 + 1}",
        )
        for index in range(count)
    ]
    return {"train": rows}


def fresh(root: Path) -> Path:
    """A new empty folder under ``root`` (a fresh cache or output for each timed call)."""
    return Path(tempfile.mkdtemp(dir=root))


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    machine = machine_info(torch.device("cpu"))
    records: list[dict] = []
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        (root / "videos").mkdir()
        manifest = write_videos(root / "videos", args.videos, args.frames)
        annotations = gloss_rows(args.glosses_videos)
        jobs: dict[str, dict[int, Callable[[], object]]] = {
            "decode": {
                workers: lambda workers=workers: load_sign_corpus(
                    manifest, num_workers=workers, cache_dir=fresh(root)
                )
                for workers in args.workers
            },
            "render": {
                workers: lambda workers=workers: make_gloss_rendered_corpus(
                    annotations, fresh(root), image_size=args.image_size, num_workers=workers
                )
                for workers in args.workers
            },
        }
        sizes = {
            "decode": {"videos": args.videos, "frames": args.frames, "frame_size": f"{WIDTH}x{HEIGHT}"},
            "render": {"videos": args.glosses_videos, "image_size": args.image_size},
        }
        for task, calls in jobs.items():
            times = time_interleaved(calls, torch.device("cpu"), args.repeats)
            medians = {workers: statistics.median(seconds) for workers, seconds in times.items()}
            first = args.workers[0]
            for workers, median in medians.items():
                record = {
                    "benchmark": "video_workers",
                    "task": task,
                    **sizes[task],
                    "workers": workers,
                    "seconds": round(median, 4),
                    "all_seconds": [round(value, 4) for value in times[workers]],
                    "speedup": round(medians[first] / median, 2),
                }
                records.append(record)
                emit(record, args.output, machine)
    return records


if __name__ == "__main__":
    main()
