"""Time one training step and one generation of SclSltForSignTranslation on random frames.

One command, side by side on one machine:
    python -m benchmarks.model_step --preset small --device cpu
    python -m benchmarks.model_step --preset paper --device cuda --bf16

Reports, per preset: training step time (translation loss + a plain symmetric contrastive
loss through the text branch, AdamW update) and frames/s; the same step with frame counts
[F, F // 3] vs [F, F] (padding must cost no backbone compute); greedy and beam-4 generation
latency for one clip; peak memory. Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.harness import device_name, time_interleaved
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "gfslt", "paper"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument(
        "--frames", type=int, default=112, help="frames of the long clip (PHOENIX median: 112)"
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--target-length", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=30)
    return parser.parse_args()


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call."""
    return statistics.median(time_interleaved({"call": fn}, device, repeats)["call"])


def make_batch(frame_counts: list[int], args: argparse.Namespace, config: SclSltConfig, device: torch.device):
    batch, longest = len(frame_counts), max(frame_counts)
    pixels = torch.randn(batch, longest, 3, args.image_size, args.image_size, device=device)
    mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
    for row, count in enumerate(frame_counts):
        mask[row, :count] = 1
    vocab = config.text_config.vocab_size
    labels = torch.randint(4, vocab - 1, (batch, args.target_length), device=device)
    labels[:, -1] = config.eos_token_id
    return {
        "pixel_values": pixels,
        "attention_mask": mask,
        "labels": labels,
        "text_input_ids": labels.clone(),
        "text_attention_mask": torch.ones_like(labels),
    }


def training_step(model, optimizer, batch: dict, autocast) -> None:
    with autocast():
        out = model(**batch)
        targets = torch.arange(out.similarity_per_video.shape[0], device=out.logits.device)
        contrastive = F.cross_entropy(out.similarity_per_video / 0.07, targets)
        contrastive = (contrastive + F.cross_entropy(out.similarity_per_text / 0.07, targets)) / 2
        loss = out.loss + contrastive
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return None


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = SclSltConfig.from_preset(args.preset)
    model = SclSltForSignTranslation(config).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def autocast():
        if args.bf16:
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    context = {
        "preset": args.preset,
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "bf16": args.bf16,
        "image_size": args.image_size,
        "torch": torch.__version__,
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }
    print(json.dumps({"context": context}))

    model.train()
    short = max(4, args.frames // 3)
    for counts in ([args.frames, args.frames], [args.frames, short]):
        batch = make_batch(counts, args, config, device)
        step = lambda batch=batch: training_step(model, optimizer, batch, autocast)  # noqa: E731
        seconds = timed(step, device, args.repeats)
        print(
            json.dumps(
                {
                    "measure": "train_step",
                    "frame_counts": counts,
                    "seconds": round(seconds, 4),
                    "frames_per_s": round(sum(counts) / seconds, 1),
                    "samples_per_s": round(len(counts) / seconds, 2),
                    "peak_gib": peak_memory_gib(device),
                }
            )
        )

    model.eval()
    clip = make_batch([args.frames], args, config, device)
    for beams in (1, 4):

        def generate(beams=beams):
            with torch.inference_mode(), autocast():
                model.generate(
                    pixel_values=clip["pixel_values"],
                    attention_mask=clip["attention_mask"],
                    num_beams=beams,
                    max_new_tokens=args.max_new_tokens,
                    min_new_tokens=args.max_new_tokens,
                )

        seconds = timed(generate, device, args.repeats)
        print(
            json.dumps(
                {
                    "measure": "generate_one_clip",
                    "frames": args.frames,
                    "num_beams": beams,
                    "new_tokens": args.max_new_tokens,
                    "seconds": round(seconds, 4),
                    "peak_gib": peak_memory_gib(device),
                }
            )
        )


if __name__ == "__main__":
    main()
