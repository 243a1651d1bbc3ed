"""Is loading the bottleneck? Loader frames/s, old and new path, vs. what a training step consumes.

Builds a PHOENIX-2014T-layout corpus of PNG frames at the release's size (210 wide × 260 high),
loads it with `load_phoenix2014t`, and times, in one run:

* iterating a DataLoader with the collator on both paths, with 0 and 2 worker processes:
  - **old**: the loader runs the whole training transform (resize 256, random crop 224,
    clip-consistent augmentation, normalisation) and collates float32 clips;
  - **new** (``transform_in_model``): the loader only decodes and picks frames and collates
    uint8 clips; the model transforms them batched on its device;
  frames/s, frames/s per loader core (the 0-worker loop runs with one torch thread, so it uses one
  core; 2 workers use two) and the new/old ratio;
* the device-side transform (``VideoTransform.apply``, training mode) on a collated uint8 batch,
  on ``--device``;
* one training step (forward, backward, AdamW) of the `small` and `paper` presets on a batch of
  the same shape, and the transform's share of step + transform.

    python -m benchmarks.data_loading --clips 16 --frames 112 --output results.json

Prints one JSON object per measurement (``--output`` also writes them, with the machine, to one
JSON file). Frames are the synthetic corpus's renderer upscaled, plus mild noise (real camera
frames compress worse than flat drawings); the mean PNG size is reported next to the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from benchmarks.harness import load_average, machine_info, time_call, time_interleaved
from benchmarks.workloads import HEIGHT, WIDTH, phoenix_frames
from datasets_scripts import SignTranslationCollator, load_phoenix2014t
from datasets_scripts.synthetic import sample_sentence
from modeling_scl_slt import SclSltForSignTranslation, VideoTransform
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

HEADER = "name|video|start|end|speaker|orth|translation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=112, help="frames per clip (PHOENIX median: 112)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the device transform")
    parser.add_argument("--output", type=Path, help="also write every record to this JSON file")
    return parser.parse_args(argv)


def write_corpus(root: Path, clips: int, frames: int) -> tuple[Path, list[str], float]:
    """PHOENIX release layout with ``clips`` training clips; returns root, texts, mean PNG kB."""
    rng = np.random.default_rng(0)
    corpus = root / "PHOENIX-2014-T"
    annotations = corpus / "annotations" / "manual"
    annotations.mkdir(parents=True)
    rows, texts, sizes = [], [], []
    for clip in range(clips):
        name = f"clip{clip:03d}"
        text = sample_sentence(rng).text
        folder = corpus / "features" / "fullFrame-210x260px" / "train" / name
        folder.mkdir(parents=True)
        for index, frame in enumerate(phoenix_frames(rng, frames), start=1):
            path = folder / f"images{index:04d}.png"
            Image.fromarray(frame).save(path)
            sizes.append(path.stat().st_size)
        rows.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|GLOSS|{text}")
        texts.append(text)
    (annotations / "PHOENIX-2014-T.train.corpus.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root, texts, statistics.mean(sizes) / 1024


def loader_frames_per_second(dataset, collator, batch_size: int, workers: int) -> tuple[float, int]:
    """Frames/s of iterating the whole dataset, and the bytes of ``pixel_values`` per real frame."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, num_workers=workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 0 workers: the loop is one core, as each worker is
    try:
        start = time.perf_counter()
        frames = nbytes = 0
        for batch in loader:
            frames += int(batch["attention_mask"].sum())
            nbytes += batch["pixel_values"].untyped_storage().nbytes()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return frames / seconds, round(nbytes / frames)


def device_transform_seconds(batch: dict, device: torch.device, repeats: int) -> float:
    """Median seconds of the training-mode device transform on one collated uint8 batch."""
    transform = VideoTransform(train=True)
    pixels, mask = batch["pixel_values"].to(device), batch["attention_mask"].to(device)
    times = time_interleaved({"apply": lambda: transform.apply(pixels, mask)}, device, repeats)  # 1 warm-up
    return statistics.median(times["apply"])


def step_seconds(preset: str, tokenizer, batch: dict, device: torch.device) -> tuple[float, float]:
    """Seconds of one training step of ``preset`` on ``batch`` and its parameter count (millions)."""
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config_for_tokenizer(preset, tokenizer, "de_DE")).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = {key: value.to(device) for key, value in batch.items()}

    def step() -> None:
        out = model(**batch)
        targets = torch.arange(out.similarity_per_video.shape[0], device=device)
        contrastive = torch.nn.functional.cross_entropy(out.logit_scale * out.similarity_per_video, targets)
        (out.loss + contrastive).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = [time_call(step, device) for _ in range(2)]  # a warm-up step, then the timed one
    return times[-1], sum(p.numel() for p in model.parameters()) / 1e6


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    device = torch.device(args.device)
    records: list[dict] = []

    def emit(record: dict) -> None:
        records.append(record)
        print(json.dumps(record), flush=True)

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        root, texts, png_kb = write_corpus(Path(folder), args.clips, args.frames)
        emit(
            {
                "measure": "write_corpus",
                "clips": args.clips,
                "frames_per_clip": args.frames,
                "frame_size": f"{WIDTH}x{HEIGHT}",
                "mean_png_kb": round(png_kb, 1),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        start = time.perf_counter()
        dataset = load_phoenix2014t(root, splits=["train"])["train"]
        emit({"measure": "load_phoenix2014t", "seconds": round(time.perf_counter() - start, 2)})
        tokenizer = train_tokenizer(texts, tgt_lang="de_DE", model="wordlevel")
        collators = {
            "old": SignTranslationCollator(tokenizer, VideoTransform(train=True)),
            "new": SignTranslationCollator(tokenizer, VideoTransform(train=True), transform_in_model=True),
        }
        for workers in args.workers:
            rates = {}
            for path, collator in collators.items():  # side by side, same corpus, same run
                rate, bytes_per_frame = loader_frames_per_second(dataset, collator, args.batch_size, workers)
                rates[path] = rate
                emit(
                    {
                        "measure": "loader",
                        "path": path,
                        "workers": workers,
                        "frames_per_s": round(rate, 1),
                        "frames_per_s_per_core": round(rate / max(workers, 1), 1),
                        "pixel_bytes_per_frame": bytes_per_frame,
                    }
                )
            emit(
                {
                    "measure": "loader_ratio",
                    "workers": workers,
                    "new_over_old": round(rates["new"] / rates["old"], 2),
                }
            )
        examples = [dataset[i] for i in range(args.batch_size)]
        uint8_batch = collators["new"](examples)
        float_batch = collators["old"](examples)
        frames = int(uint8_batch["attention_mask"].sum())
        transform_s = device_transform_seconds(uint8_batch, device, args.repeats)
        emit(
            {
                "measure": "device_transform",
                "device": str(device),
                "frames": frames,
                "seconds": round(transform_s, 4),
                "ms_per_frame": round(1000 * transform_s / frames, 3),
                "frames_per_s": round(frames / transform_s, 1),
            }
        )
        for preset in args.presets:
            step_s, params = step_seconds(preset, tokenizer, float_batch, device)
            emit(
                {
                    "measure": "train_step",
                    "preset": preset,
                    "device": str(device),
                    "params_m": round(params, 1),
                    "frames_per_s": round(frames / step_s, 1),
                    "step_seconds": round(step_s, 3),
                    "transform_share_of_step": round(transform_s / (transform_s + step_s), 4),
                    "torch_threads": torch.get_num_threads(),
                }
            )
    if args.output:
        command = " ".join(sys.argv[1:] if argv is None else argv)
        summary = {"command": f"python -m benchmarks.data_loading {command}"}
        machine = {**machine_info(device), "load_average_1_5_15_min": load_average()}
        payload = {**summary, "machine": machine, "records": records}
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return records


if __name__ == "__main__":
    main()
