"""Is loading the bottleneck? Loader + transform frames/s vs. what a training step consumes.

Builds a PHOENIX-2014T-layout corpus of PNG frames at the release's size (210 wide × 260 high),
loads it with `load_phoenix2014t`, and times, in one run:

* iterating a DataLoader with the training transform (resize 256, random crop 224, clip-
  consistent augmentation, normalisation) and the collator, with 0 and 2 worker processes;
* one training step (forward, backward, AdamW) of the `small` and `paper` presets on a batch
  of the same shape.

    python benchmarks/bench_data_loading.py --clips 16 --frames 112

Prints one JSON object per measurement. Frames are the synthetic corpus's renderer upscaled,
plus mild noise (real camera frames compress worse than flat drawings); the mean PNG size is
reported next to the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from datasets_scripts import SignTranslationCollator, VideoTransform, load_phoenix2014t
from datasets_scripts.synthetic import make_signers, render_clip, sample_sentence
from modeling_scl_slt import SclSltForSignTranslation
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

WIDTH, HEIGHT = 210, 260
HEADER = "name|video|start|end|speaker|orth|translation"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=112, help="frames per clip (PHOENIX median: 112)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--presets", nargs="+", default=["small", "paper"])
    return parser.parse_args()


def phoenix_frames(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``count`` frames (260, 210, 3) uint8 from the synthetic renderer, upscaled, with noise."""
    signer = make_signers(4, seed=int(rng.integers(1 << 30)))[0]
    glosses: list[str] = []
    while len(glosses) * 4 < count:  # a sign lasts at least 4 frames
        glosses += sample_sentence(rng).glosses
    clip = render_clip(tuple(glosses), signer, rng, frame_size=HEIGHT)  # (T, 260, 260, 3)
    frames = []
    for index in range(count):
        frame = clip[index % len(clip), :, (HEIGHT - WIDTH) // 2 : (HEIGHT + WIDTH) // 2]
        noise = rng.normal(0.0, 3.0, frame.shape)
        frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return frames


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


def loader_frames_per_second(dataset, collator, batch_size: int, workers: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator, num_workers=workers)
    start = time.perf_counter()
    frames = sum(int(batch["attention_mask"].sum()) for batch in loader)
    return frames / (time.perf_counter() - start)


def step_frames_per_second(preset: str, tokenizer, batch: dict) -> tuple[float, float]:
    """Frames per second and parameter count (millions) of one training step of ``preset``."""
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config_for_tokenizer(preset, tokenizer, "de_DE")).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for _ in range(2):  # a warm-up step, then the timed one
        start = time.perf_counter()
        out = model(**batch)
        targets = torch.arange(out.similarity_per_video.shape[0])
        contrastive = torch.nn.functional.cross_entropy(out.logit_scale * out.similarity_per_video, targets)
        (out.loss + contrastive).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    frames = int(batch["attention_mask"].sum())
    return frames / times[-1], sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        root, texts, png_kb = write_corpus(Path(folder), args.clips, args.frames)
        print(
            json.dumps(
                {
                    "measure": "write_corpus",
                    "clips": args.clips,
                    "frames_per_clip": args.frames,
                    "mean_png_kb": round(png_kb, 1),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
        )
        start = time.perf_counter()
        dataset = load_phoenix2014t(root, splits=["train"])["train"]
        print(json.dumps({"measure": "load_phoenix2014t", "seconds": round(time.perf_counter() - start, 2)}))
        tokenizer = train_tokenizer(texts, tgt_lang="de_DE", model="wordlevel")
        collator = SignTranslationCollator(tokenizer, VideoTransform(train=True))
        for workers in args.workers:
            rate = loader_frames_per_second(dataset, collator, args.batch_size, workers)
            print(
                json.dumps(
                    {"measure": "loader+transform", "workers": workers, "frames_per_s": round(rate, 1)}
                )
            )
        batch = collator([dataset[i] for i in range(args.batch_size)])
        for preset in args.presets:
            rate, params = step_frames_per_second(preset, tokenizer, batch)
            print(
                json.dumps(
                    {
                        "measure": "train_step",
                        "preset": preset,
                        "params_m": round(params, 1),
                        "frames_per_s": round(rate, 1),
                        "torch_threads": torch.get_num_threads(),
                    }
                )
            )


if __name__ == "__main__":
    main()
