"""Inference latency and batched throughput of the ``sign-language-translation`` pipeline.

One command (CPU default, or a GPU where bf16 autocast is measured too):

    python -m benchmarks.inference
    python -m benchmarks.inference --device cuda --bf16

What is timed: ``pipeline("sign-language-translation", model=<saved folder>)`` called on a random
uint8 clip of shape (112, H, W, 3) (112 frames: the PHOENIX-2014T median) — the whole call:
preprocessing with the model's saved ``video_preprocessing`` (resize, centre crop, normalise),
the video encoder, generation of exactly ``--new-tokens`` tokens (``min_new_tokens =
max_new_tokens``, so that random weights give comparable lengths), decoding. Greedy and beam 4.

Models (``--models``), saved with random weights to a temporary folder as a final translation
checkpoint (text branch dropped, as the recipe's translate stage saves it) and loaded by the
pipeline from there:

* ``small``: what ``scl-slt demo`` saves: preset ``small``, the demo's word-level tokenizer and its
  ``video_preprocessing`` (size 32, resize 32, max_frames 64: its clips are cut to 64 frames, the
  most it reads in one window; the pipeline refuses longer clips instead of subsampling them).
  Input frames 64 × 64 (the synthetic corpus's size).
* ``paper``: preset ``paper`` (ResNet-18 + mBART-large-50 shape, the full 250,054-token vocabulary
  with a stand-in word-level tokenizer of that size), ``video_preprocessing`` size 224, resize 256
  (the ``VideoTransform`` defaults). Input frames 260 × 210 (PHOENIX-2014T's size). The saved
  folder (about 2.5 GB) is removed afterwards.

Measurements, each the median over ``--repeats`` calls after one warm-up call, variants of one
group alternating call by call:

* ``latency``: one clip (batch 1), greedy and beam 4, under ``torch.no_grad`` (the transformers
  ``Pipeline`` default) and ``torch.inference_mode`` (what this project's pipeline uses), and with
  ``--bf16`` also under bf16 autocast. ``preprocess``: the pipeline's preprocessing of one clip
  alone; ``video_encoder``: the video encoder alone (ResNet, temporal module, visual encoder) on
  the preprocessed clip, so that a call splits into preprocessing, encoding and decoding.
* ``throughput``: ``pipe([clip] * B, batch_size=B)`` for the batch sizes of the sweep: clips/s
  and input frames/s (batch 1 is the latency measurement), greedy and beam 4 (the paper model on a
  CPU: greedy only, ``--throughput-beams``).

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` over the variant's calls; on the CPU the
``ru_maxrss`` of the measuring process so far (a fresh process per model that only loads the
pipeline and runs it, so it includes the loaded weights).

Every measurement is printed as one JSON object and appended to
``benchmarks/results/inference_<device>.jsonl`` with machine information.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import (
    emit,
    load_average,
    machine_info,
    parse_int_list,
    peak_memory,
    reset_peak_memory,
    run_module,
    synchronize,
    time_interleaved,
)
from benchmarks.workloads import (
    base_config,
    demo_tokenizer,
    demo_video_preprocessing,
    model_benchmark_parser,
    output_path,
    parse_model_benchmark_args,
)

# Input clips: (frames, height, width) of the raw video the pipeline receives.
CLIP_SHAPES = {"small": (64, 64), "paper": (260, 210)}
PAPER_VIDEO_PREPROCESSING = {"size": 224, "resize": 256, "max_frames": 300}
DEFAULT_BATCH_SIZES: dict[tuple[str, str], list[int]] = {
    ("small", "cpu"): [1, 4, 8],
    ("small", "cuda"): [1, 4, 8, 16],
    ("paper", "cpu"): [1, 4],
    ("paper", "cuda"): [1, 4, 8, 16],
}
DEFAULT_REPEATS: dict[tuple[str, str], int] = {
    ("small", "cpu"): 5,
    ("small", "cuda"): 10,
    ("paper", "cpu"): 2,
    ("paper", "cuda"): 10,
}
# Beam widths of the batched-throughput sweep. Paper on a CPU: greedy only (a batch of 4 clips
# with beam 4 takes several minutes per call there).
DEFAULT_THROUGHPUT_BEAMS: dict[tuple[str, str], list[int]] = {
    ("small", "cpu"): [1, 4],
    ("small", "cuda"): [1, 4],
    ("paper", "cpu"): [1],
    ("paper", "cuda"): [1, 4],
}
CONTEXTS: dict[str, Callable[[], Any]] = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}


# --- saving the model ----------------------------------------------------------------------
def full_vocabulary_tokenizer(vocab_size: int, tgt_lang: str, tgt_lang_id: int) -> Any:
    """A word-level stand-in for the mBART-50 tokenizer: same size, same special-token ids.

    Decoding ids is all the pipeline asks of it; the real tokenizer cannot be downloaded here.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from trainers.application.tokenization import SPECIAL_TOKENS

    tokens = [f"w{index}" for index in range(vocab_size)]
    tokens[: len(SPECIAL_TOKENS)] = SPECIAL_TOKENS
    tokens[tgt_lang_id] = tgt_lang
    backend = Tokenizer(models.WordLevel({token: i for i, token in enumerate(tokens)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=[tgt_lang],
    )


def save_model(name: str, folder: Path) -> None:
    """Save a random-weight translation checkpoint of ``name`` with its tokenizer to ``folder``."""
    from modeling_scl_slt import SclSltForSignTranslation

    torch.manual_seed(0)
    config = base_config(name)
    if name == "small":
        tokenizer = demo_tokenizer()
        config.video_preprocessing = demo_video_preprocessing()
    else:
        text = config.text_config
        tokenizer = full_vocabulary_tokenizer(text.vocab_size, config.tgt_lang, text.decoder_start_token_id)
        config.video_preprocessing = dict(PAPER_VIDEO_PREPROCESSING)
    model = SclSltForSignTranslation(config)
    model.drop_text_branch()  # a final (translate-stage) checkpoint
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


# --- measuring -------------------------------------------------------------------------------
class Variant:
    """One way of calling the pipeline: batch size, beams, autograd context, autocast."""

    def __init__(
        self, pipe: Any, clips: list[np.ndarray], beams: int, context: str, bf16: bool, new_tokens: int
    ) -> None:
        self.pipe, self.clips, self.beams, self.context, self.bf16 = pipe, clips, beams, context, bf16
        self.new_tokens = new_tokens
        self.peak: dict[str, Any] = {}

    def __call__(self) -> None:
        device = self.pipe.device
        self.pipe.get_inference_context = lambda: CONTEXTS[self.context]  # instance override
        autocast = (
            torch.autocast(device_type=device.type, dtype=torch.bfloat16)
            if self.bf16
            else contextlib.nullcontext()
        )
        inputs = self.clips[0] if len(self.clips) == 1 else self.clips
        reset_peak_memory(device)
        with autocast:
            outputs = self.pipe(
                inputs,
                batch_size=len(self.clips),
                num_beams=self.beams,
                max_new_tokens=self.new_tokens,
                min_new_tokens=self.new_tokens,
            )
        if len(self.clips) == 1:
            outputs = [outputs]
        assert len(outputs) == len(self.clips), "one translation per clip"
        synchronize(device)
        memory = peak_memory(device)
        if memory["peak_memory_gib"] >= self.peak.get("peak_memory_gib", 0.0):
            self.peak = memory

    def describe(self) -> dict[str, Any]:
        """The variant's fields of a record."""
        return {
            "batch_size": len(self.clips),
            "num_beams": self.beams,
            "inference_context": self.context,
            "precision": precision_name(self.bf16),
            "new_tokens": self.new_tokens,
        }


def variant_record(
    measure: str, name: str, variant: Variant, seconds: list[float], frames: int, kept: int
) -> dict[str, Any]:
    """The record of one timed variant."""
    median, batch = statistics.median(seconds), len(variant.clips)
    return {
        "benchmark": "inference",
        "measure": measure,
        "model": name,
        **variant.describe(),
        "input_frames": frames,
        "frames_after_preprocessing": kept,
        "seconds_median": round(median, 4),
        "seconds_min": round(min(seconds), 4),
        "seconds_all": [round(value, 4) for value in seconds],
        "clips_per_s": round(batch / median, 3),
        "input_frames_per_s": round(batch * frames / median, 1),
        **variant.peak,
    }


def precisions(args: argparse.Namespace) -> list[bool]:
    """fp32, and bf16 autocast with ``--bf16``."""
    return [False, True] if args.bf16 else [False]


def measure_latency(pipe: Any, clip: np.ndarray, args: argparse.Namespace, report: Callable) -> None:
    """Batch 1: greedy and beam 4, each under no_grad / inference_mode (/ bf16 autocast)."""
    for beams in (1, 4):
        variants = {
            (context, bf16): Variant(pipe, [clip], beams, context, bf16, args.new_tokens)
            for bf16 in precisions(args)
            for context in CONTEXTS
        }
        times = time_interleaved(variants, pipe.device, args.repeats_resolved)
        for key, variant in variants.items():
            report("latency", variant, times[key])
            if key[0] == pipe_default_context(pipe):
                report("throughput", variant, times[key])


def measure_throughput(pipe: Any, clip: np.ndarray, args: argparse.Namespace, report: Callable) -> None:
    """Batches of B copies of the clip, the pipeline's own context, greedy and beam 4."""
    context = pipe_default_context(pipe)
    for batch_size in [size for size in args.batch_sizes_resolved if size > 1]:
        for beams in args.throughput_beams_resolved:
            variants = {
                bf16: Variant(pipe, [clip] * batch_size, beams, context, bf16, args.new_tokens)
                for bf16 in precisions(args)
            }
            times = time_interleaved(variants, pipe.device, args.repeats_resolved)
            for key, variant in variants.items():
                report("throughput", variant, times[key])


def pipe_default_context(pipe: Any) -> str:
    """Name of the autograd context the pipeline class itself uses."""
    own = type(pipe).get_inference_context(pipe)
    return next(name for name, context in CONTEXTS.items() if context is own)


def measure_preprocess(pipe: Any, clip: np.ndarray, repeats: int) -> tuple[float, int]:
    """Median seconds of the pipeline's preprocessing of one clip, and the frames it keeps."""
    times, kept = [], 0
    for index in range(repeats + 1):
        start = time.perf_counter()
        (window,) = pipe.preprocess(clip)  # one window
        kept = window["pixel_values"].shape[1]
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times), kept


def precision_name(bf16: bool) -> str:
    """How records name the precision."""
    return "bf16 autocast" if bf16 else "fp32"


def measure_encoder(pipe: Any, clip: np.ndarray, args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds of the video encoder alone (ResNet, temporal module, visual encoder) on one clip.

    Keyed by precision; with the pipeline's latency it splits a call into preprocessing, encoding
    and decoding.
    """
    (inputs,) = pipe.preprocess(clip)  # one window
    pixel_values = inputs["pixel_values"].to(pipe.device)
    mask = inputs["attention_mask"].to(pipe.device)
    encoder = pipe.model.get_encoder()

    def encode(bf16: bool) -> None:
        autocast = (
            torch.autocast(device_type=pipe.device.type, dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            encoder(pixel_values, mask)

    calls = {precision_name(bf16): (lambda bf16=bf16: encode(bf16)) for bf16 in precisions(args)}
    return time_interleaved(calls, pipe.device, args.repeats_resolved)


def run_measure(args: argparse.Namespace, folder: Path, output: Path | None) -> None:
    """Load the pipeline from ``folder`` and time it (a fresh process: its own peak memory)."""
    from transformers import pipeline

    import modeling_scl_slt  # noqa: F401  (registers the task)

    name, device = args.worker, torch.device(args.device)
    machine = machine_info(device)
    start = time.perf_counter()
    pipe = pipeline("sign-language-translation", model=str(folder), device=device)
    load_seconds = time.perf_counter() - start
    height, width = CLIP_SHAPES[name]
    # At most what the pipeline reads in one window (it refuses longer clips; it used to subsample them).
    frames = min(args.frames, pipe.max_frames)
    clip = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    preprocess_seconds, kept = measure_preprocess(pipe, clip, max(args.repeats_resolved, 3))
    params = sum(p.numel() for p in pipe.model.parameters())
    context = {"model": name, "params_m": round(params / 1e6, 2), "repeats": args.repeats_resolved}
    load = {"benchmark": "inference", "measure": "load_pipeline", "seconds": round(load_seconds, 2)}
    emit({**load, **context, **peak_memory(device)}, output, machine)
    emit(
        {
            "benchmark": "inference",
            "measure": "preprocess",
            **context,
            "clip_shape": list(clip.shape),
            "frames_after_preprocessing": kept,
            "video_preprocessing": pipe.model.config.video_preprocessing,
            "seconds_median": round(preprocess_seconds, 4),
        },
        output,
        machine,
    )

    def report(measure: str, variant: Variant, seconds: list[float]) -> None:
        record = variant_record(measure, name, variant, seconds, frames, kept)
        emit({**record, **context}, output, machine)

    for precision, seconds in measure_encoder(pipe, clip, args).items():
        encoder = {"benchmark": "inference", "measure": "video_encoder", **context, "batch_size": 1}
        timing = {
            "seconds_median": round(statistics.median(seconds), 4),
            "seconds_min": round(min(seconds), 4),
        }
        extra = {"precision": precision, "inference_context": "inference_mode", "frames": kept}
        emit({**encoder, **extra, **timing, **peak_memory(pipe.device)}, output, machine)
    measure_latency(pipe, clip, args, report)
    measure_throughput(pipe, clip, args, report)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = model_benchmark_parser("inference", __doc__, "calls", ("1,4,8", "1,4"))
    parser.add_argument("--bf16", action="store_true", help="also measure bf16 autocast (GPU)")
    parser.add_argument(
        "--throughput-beams",
        default=None,
        help="beam widths of the batch sweep (default 1,4; paper on CPU: 1)",
    )
    parser.add_argument("--new-tokens", type=int, default=30, help="tokens generated per clip")
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--save-only", action="store_true", help=argparse.SUPPRESS)
    return parse_model_benchmark_args(parser, argv, CLIP_SHAPES)


def resolve_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``repeats_resolved`` and ``batch_sizes_resolved`` for the worker's model and device."""
    key = (args.worker, args.device)
    given = args.small_batch_sizes if args.worker == "small" else args.paper_batch_sizes
    args.repeats_resolved = args.repeats or DEFAULT_REPEATS[key]
    args.batch_sizes_resolved = parse_int_list(given) if given else DEFAULT_BATCH_SIZES[key]
    beams = args.throughput_beams
    args.throughput_beams_resolved = parse_int_list(beams) if beams else DEFAULT_THROUGHPUT_BEAMS[key]
    return args


def run_model(argv: list[str], model: str, in_process: bool) -> None:
    """Save ``model`` to a temporary folder, measure it in a fresh process, remove the folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"bench_inference_{model}_"))
    try:
        for extra in (["--save-only"], []):
            worker_argv = [*argv, "--worker", model, "--folder", str(folder), *extra]
            if in_process:
                main(worker_argv)
            else:
                run_module(__spec__.name, worker_argv)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Per model: save it (one process), then time the pipeline (another process)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker and args.save_only:
        save_model(args.worker, Path(args.folder))
    elif args.worker:
        run_measure(resolve_defaults(args), Path(args.folder), output_path(args, "inference"))
    else:
        print(f"# load average before: {load_average()}", file=sys.stderr)
        for model in args.models.split(","):
            run_model(argv, model, args.in_process)
        print(f"# load average after: {load_average()}", file=sys.stderr)


if __name__ == "__main__":
    main()
