"""Training throughput of stage ``scl``: frames/s and samples/s of one optimiser step.

One command (CPU default, or a GPU with bf16 autocast):

    python benchmarks/bench_training_throughput.py
    python benchmarks/bench_training_throughput.py --device cuda --bf16

What one step is: the real training code path, ``SclSltTrainer.training_step`` with
``SclSltTrainingArguments(stage="scl")`` — ``compute_loss`` (selective contrastive loss through the
text branch + translation cross-entropy, normalised by the batch's label-token count as the
training loop passes it), backward through the accelerator, then what the Trainer's loop does
after it: gradient clipping (``max_grad_norm`` 1.0), the Trainer's AdamW step, ``zero_grad``. The
model and optimiser go through ``accelerator.prepare`` as in ``Trainer.train`` (that is where
``--bf16`` autocast is applied). Random frames, random 24-token targets, all distinct (no false
negatives); clips of ``--frames`` (112, the PHOENIX-2014T median) frames.

Models (``--models``):

* ``small``: what ``scl-slt demo`` trains (``trainers.application.demo.demo_config()``): preset ``small`` with
  the vocabulary of a word-level tokenizer trained on synthetic sentences, frames 32 × 32, full
  fine-tuning (text encoder frozen, as always).
* ``paper``: preset ``paper`` (ResNet-18 + mBART-large-50 shape, 250,054-token vocabulary) wrapped
  with LoRA by ``trainers.training.lora.apply_lora(model, paper_lora_config())`` (rank 16 on the attention
  projections; ResNet, temporal module and projections fully trained), frames 224 × 224.

Measured per model: parameters (base / total after LoRA / trainable), and for each batch size of
the sweep the median (and minimum) step time over ``--repeats`` steps after one warm-up step (the
paper model on a CPU: one warm-up step before its first batch size only), frames/s, samples/s and
peak memory. In the same run, at batch size 2, a batch whose frame counts are
[112, 40] against one of [112, 112], alternating step by step: the ResNet runs on real frames
only, so the ratio of step times should approach (112 + 40) / (112 + 112) = 0.68 where the CNN
dominates the step.

Peak memory: on a GPU ``torch.cuda.max_memory_allocated`` since a reset before each measurement;
on the CPU the ``ru_maxrss`` of the process so far. Each model runs in a fresh subprocess, and
batch sizes are swept in increasing order, so the CPU figure is the peak up to and including that
batch size (model, optimiser state and imports included).

``--memory-knobs`` measures something else, side by side (variants alternating): the video encoder's
forward + backward, and its forward under ``no_grad``, on one batch of clips [``--frames``,
``--short-frames``] at ``--knob-image-size`` (ResNet-18 backbone, the tiny preset's text side,
frozen BatchNorm) for the ``SclSltConfig`` memory knobs: one backbone call (the default), chunks of
``--knob-chunk-size`` frames, chunks with checkpointing, and out-of-place ReLUs. Per variant: step
time, the peak memory above the memory in use at the start of the call (CPU: ``VmHWM`` reset through
``/proc/self/clear_refs`` minus ``VmRSS``, after ``malloc_trim``; GPU: ``max_memory_allocated``) and the
activations autograd keeps for backward (saved-tensor hooks, parameters excluded). Records go to
``results/memory_knobs_<device>.jsonl``.

``--switches`` compares the speed switches side by side in one interleaved run: the step as the
GFSLT-VLP baseline's code runs it (padded frames through the CNN, NCHW, out-of-place ReLUs, plain
AdamW), ours, and ours with each switch flipped (channels_last, fused / plain / foreach AdamW,
in-place ReLUs, the padding-free CNN, frozen BatchNorm with and without chunks; on CUDA also bf16
autocast, ``cudnn.benchmark`` and a compiled backbone), then plain against ours at
``--large-batch-size`` clips. See ``throughput_switches.py``; the records go to one JSON document,
``results/training_throughput_switches_<device>.json``. As run on the CPU box (a CNN-dominated model
for the switches, the paper model at 16 clips of few frames), and at full shapes on a GPU:

    python benchmarks/bench_training_throughput.py --switches --threads 1 --switch-model resnet18 \
        --switch-image-size 112 --switch-frame-counts 48,16 --large-batch-model paper \
        --large-batch-size 16 --large-batch-frame-counts 8,4 --repeats 4 --large-batch-repeats 2
    python benchmarks/bench_training_throughput.py --switches --device cuda --switch-model paper \
        --switch-batch-size 8 --large-batch-size 16 --repeats 10

Every measurement is printed as one JSON object and appended to
``benchmarks/results/training_throughput_<device>.jsonl`` together with machine information
(platform, CPU model, torch version, threads, load average at the time of the measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation  # noqa: E402

# Batch sizes swept by default: (model, device type) → sizes. Paper on a CPU: a 112-frame
# 224² clip through ResNet-18 is ~200 GFLOPs forward, ~3× that with backward.
DEFAULT_BATCH_SIZES: dict[tuple[str, str], list[int]] = {
    ("small", "cpu"): [1, 2, 4, 8, 16],
    ("small", "cuda"): [1, 2, 4, 8, 16, 32],
    ("paper", "cpu"): [1, 2],
    ("paper", "cuda"): [1, 2, 4, 8, 16],
}
DEFAULT_REPEATS: dict[tuple[str, str], int] = {
    ("small", "cpu"): 5,
    ("small", "cuda"): 10,
    ("paper", "cpu"): 2,
    ("paper", "cuda"): 10,
}


@dataclass(frozen=True)
class ModelSpec:
    """How one benchmarked model is built."""

    preset: str
    image_size: int
    lora: bool
    description: str


MODEL_SPECS: dict[str, ModelSpec] = {
    "small": ModelSpec("small", 32, False, "scl-slt demo model: preset small, demo tokenizer, 32x32 frames"),
    "paper": ModelSpec("paper", 224, True, "preset paper (ResNet-18 + mBART-large-50 shape) + paper LoRA"),
}


# --- machine and device helpers (shared with bench_inference.py) -------------------------------
def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: torch.device) -> dict[str, Any]:
    """Platform, CPU, accelerator, library versions and thread count."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device_name(device),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new GPU peak-memory window (the CPU's ``ru_maxrss`` cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak memory in GiB: GPU allocations since the last reset, or this process's max RSS."""
    if device.type == "cuda":
        gib = torch.cuda.max_memory_allocated(device) / 2**30
        return {"peak_memory_gib": round(gib, 3), "peak_memory_kind": "cuda max_memory_allocated"}
    gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"peak_memory_gib": round(gib, 3), "peak_memory_kind": "ru_maxrss of the process so far"}


def time_interleaved(
    calls: dict[str, Callable[[], Any]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds of each call: ``warmup`` untimed rounds, then ``repeats`` rounds, the calls alternating.

    Alternating the calls spreads a shared machine's load changes evenly over the variants.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def emit(record: dict[str, Any], output: Path | None, machine: dict[str, Any]) -> None:
    """Print one measurement as JSON and append it (with machine info) to ``output``."""
    record = {
        **record,
        "load_average": load_average(),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine,
    }
    line = json.dumps(record)
    print(line, flush=True)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def parse_int_list(text: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def run_per_model_subprocesses(script: str, argv: Sequence[str], models: Sequence[str]) -> None:
    """Run ``script --worker MODEL argv…`` for each model in a fresh process (own peak memory)."""
    for model in models:
        command = [sys.executable, script, *argv, "--worker", model]
        print(f"# {model}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True)


# --- models -------------------------------------------------------------------------------
def demo_tokenizer(num_sentences: int = 800) -> Any:
    """A word-level tokenizer like the demo's: trained on synthetic training sentences."""
    from datasets_scripts.synthetic import sample_sentence
    from trainers.application.demo import demo_config
    from trainers.application.tokenization import train_tokenizer

    model_section = demo_config().model
    rng = np.random.default_rng(0)
    texts = [sample_sentence(rng).text for _ in range(num_sentences)]
    return train_tokenizer(
        texts,
        tgt_lang=model_section.tgt_lang,
        vocab_size=model_section.vocab_size,
        model=model_section.tokenizer_model,
    )


def demo_video_preprocessing() -> dict[str, Any]:
    """``config.video_preprocessing`` as the demo saves it."""
    from trainers.application.demo import demo_config

    video = demo_config().video
    return {"size": video.image_size, "resize": video.resize, "max_frames": video.max_frames}


def base_config(name: str) -> SclSltConfig:
    """The config of a benchmarked model (random weights)."""
    if name == "small":
        from trainers.application.demo import demo_config
        from trainers.application.tokenization import config_for_tokenizer

        section = demo_config().model
        return config_for_tokenizer(section.preset, demo_tokenizer(), section.tgt_lang, **section.overrides)
    return SclSltConfig.from_preset(MODEL_SPECS[name].preset)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def build_training_model(name: str) -> tuple[torch.nn.Module, SclSltConfig, dict[str, Any]]:
    """The model to train (LoRA-wrapped for ``paper``), its config and its parameter counts."""
    torch.manual_seed(0)
    config = base_config(name)
    model: torch.nn.Module = SclSltForSignTranslation(config)
    base_total, _ = count_parameters(model)
    if MODEL_SPECS[name].lora:
        from trainers.training.lora import apply_lora, paper_lora_config

        model = apply_lora(model, paper_lora_config())
    total, trainable = count_parameters(model)
    params = {
        "params_base_m": round(base_total / 1e6, 2),
        "params_total_m": round(total / 1e6, 2),
        "params_trainable_m": round(trainable / 1e6, 2),
    }
    return model, config, params


# --- the training step ------------------------------------------------------------------------
def make_batch(
    frame_counts: Sequence[int],
    image_size: int,
    target_length: int,
    config: SclSltConfig,
    device: torch.device,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """A collator-shaped scl batch: zero-padded random frames, distinct random targets."""
    generator = torch.Generator().manual_seed(seed)
    batch, longest = len(frame_counts), max(frame_counts)
    pixels = torch.zeros(batch, longest, 3, image_size, image_size)
    mask = torch.zeros(batch, longest, dtype=torch.long)
    for row, count in enumerate(frame_counts):
        pixels[row, :count] = torch.randn(count, 3, image_size, image_size, generator=generator)
        mask[row, :count] = 1
    first_piece = 5  # past <s> <pad> </s> <unk> and the small presets' language token
    vocab = config.text_config.vocab_size
    labels = torch.randint(first_piece, vocab - 1, (batch, target_length), generator=generator)
    labels[:, -1] = config.eos_token_id
    batch_dict = {
        "pixel_values": pixels,
        "attention_mask": mask,
        "labels": labels,
        "text_input_ids": labels.clone(),
        "text_attention_mask": torch.ones_like(labels),
    }
    return {key: value.to(device) for key, value in batch_dict.items()}


def build_trainer(model: torch.nn.Module, args: argparse.Namespace, output_dir: str) -> Any:
    """An ``SclSltTrainer`` (stage scl) with its AdamW, model and optimiser prepared as in ``train()``."""
    from trainers.training.trainer import SclSltTrainer, SclSltTrainingArguments

    training_args = SclSltTrainingArguments(
        output_dir=output_dir,
        stage="scl",
        learning_rate=1e-4,
        max_grad_norm=1.0,
        use_cpu=args.device == "cpu",
        bf16=args.bf16,
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    trainer = SclSltTrainer(model=model, args=training_args)
    trainer.create_optimizer()
    trainer.model_wrapped, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
    trainer.current_gradient_accumulation_steps = 1  # set per step by the training loop
    return trainer


def training_step(trainer: Any, batch: dict[str, torch.Tensor]) -> None:
    """One optimiser step exactly as ``Trainer.train`` runs it (no accumulation, no scheduler)."""
    model = trainer.model_wrapped
    num_items = (batch["labels"] != -100).sum()
    trainer.training_step(model, batch, num_items)
    trainer.accelerator.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
    trainer.optimizer.step()
    model.zero_grad()


def step_record(
    name: str, frame_counts: Sequence[int], seconds: list[float], device: torch.device
) -> dict[str, Any]:
    """The measurement record of one batch shape."""
    median = statistics.median(seconds)
    return {
        "benchmark": "training_throughput",
        "measure": "train_step",
        "model": name,
        "batch_size": len(frame_counts),
        "frame_counts": list(frame_counts),
        "step_s_median": round(median, 4),
        "step_s_min": round(min(seconds), 4),
        "step_s_all": [round(value, 4) for value in seconds],
        "frames_per_s": round(sum(frame_counts) / median, 1),
        "samples_per_s": round(len(frame_counts) / median, 3),
        **peak_memory(device),
    }


def measure_batch_size(
    trainer: Any,
    config: SclSltConfig,
    batch_size: int,
    args: argparse.Namespace,
    device: torch.device,
    warmup: int,
) -> dict[str, list[float]]:
    """Step times of full clips at ``batch_size``; at batch size 2 also of [frames, short] (interleaved).

    ``warmup`` untimed rounds of every shape come first.
    """
    spec = MODEL_SPECS[args.worker]
    shapes = {"full": [args.frames] * batch_size}
    if batch_size == 2:
        shapes["padded"] = [args.frames, args.short_frames]
    batches = {
        key: make_batch(counts, spec.image_size, args.target_length, config, device)
        for key, counts in shapes.items()
    }
    calls = {key: (lambda batch=batch: training_step(trainer, batch)) for key, batch in batches.items()}
    reset_peak_memory(device)
    return time_interleaved(calls, device, repeats_for(args), warmup)


def padding_record(name: str, args: argparse.Namespace, times: dict[str, list[float]]) -> dict[str, Any]:
    """Measured vs expected step-time ratio of [frames, short] against [frames, frames]."""
    padded, full = statistics.median(times["padded"]), statistics.median(times["full"])
    expected = (args.frames + args.short_frames) / (2 * args.frames)
    ratio_of_minima = min(times["padded"]) / min(times["full"])
    return {
        "benchmark": "training_throughput",
        "measure": "padding_cost",
        "model": name,
        "frame_counts": [[args.frames, args.frames], [args.frames, args.short_frames]],
        "step_s_median": [round(full, 4), round(padded, 4)],
        "ratio_measured": round(padded / full, 3),
        "ratio_of_minima": round(ratio_of_minima, 3),
        "ratio_expected_if_free": round(expected, 3),
        "ratio_per_repeat": [round(p / f, 3) for p, f in zip(times["padded"], times["full"], strict=True)],
    }


def warmup_for(args: argparse.Namespace, sweep_index: int) -> int:
    """Untimed steps before a batch size: 1, except the paper model on a CPU after its first size.

    A paper step on a CPU takes tens of seconds; the one-off costs (optimiser state, allocator,
    kernel selection) are paid by the first batch size's warm-up.
    """
    if args.warmup is not None:
        return args.warmup
    slow = args.worker == "paper" and args.device == "cpu"
    return 0 if slow and sweep_index > 0 else 1


def repeats_for(args: argparse.Namespace) -> int:
    """``--repeats`` or the default for this model and device."""
    return args.repeats or DEFAULT_REPEATS[(args.worker, torch.device(args.device).type)]


def batch_sizes_for(args: argparse.Namespace) -> list[int]:
    """The sweep (increasing), always including 2 for the padding comparison."""
    given = args.small_batch_sizes if args.worker == "small" else args.paper_batch_sizes
    default = DEFAULT_BATCH_SIZES[(args.worker, torch.device(args.device).type)]
    sizes = parse_int_list(given) if given else default
    return sorted({*sizes, 2})


def run_worker(args: argparse.Namespace, output: Path | None) -> None:
    """Build one model and measure its training steps over the batch-size sweep."""
    name, device = args.worker, torch.device(args.device)
    machine = machine_info(device)
    model, config, params = build_training_model(name)
    spec = MODEL_SPECS[name]
    context = {
        "model": name,
        "description": spec.description,
        "image_size": spec.image_size,
        "lora": spec.lora,
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "target_length": args.target_length,
        "repeats": repeats_for(args),
        **params,
    }
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = build_trainer(model, args, output_dir)
        model_record = {"benchmark": "training_throughput", "measure": "model", **context}
        emit({**model_record, **peak_memory(device)}, output, machine)
        for index, batch_size in enumerate(batch_sizes_for(args)):
            warmup = warmup_for(args, index)
            times = measure_batch_size(trainer, config, batch_size, args, device, warmup)
            record = step_record(name, [args.frames] * batch_size, times["full"], device)
            emit({**record, **context, "warmup": warmup}, output, machine)
            if "padded" in times:
                emit({**padding_record(name, args, times), **context, "warmup": warmup}, output, machine)
            gc.collect()


# --- memory knobs (--memory-knobs): backbone chunks, checkpointing, in-place ReLUs ---------------
# Variant → SclSltConfig fields, and "gradient_checkpointing" for transformers' switch. Every variant
# freezes BatchNorm (chunks and checkpointing need it in training), so all compute the same numbers.
KNOB_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},  # one backbone call, in-place ReLUs (the default)
    "chunked": {"backbone_chunk_size": "CHUNK"},
    "chunked+checkpointing": {"backbone_chunk_size": "CHUNK", "gradient_checkpointing": True},
    "out-of-place ReLU": {"backbone_inplace_relu": False},
}


def resolved_knobs(name: str, chunk_size: int) -> dict[str, Any]:
    """The settings of variant ``name``."""
    return {key: chunk_size if value == "CHUNK" else value for key, value in KNOB_VARIANTS[name].items()}


def knob_model(knobs: dict[str, Any], device: torch.device) -> SclSltForSignTranslation:
    """ResNet-18 frame backbone with the tiny preset's text side (the backbone dominates the step)."""
    from modeling_scl_slt.configuration_scl_slt import RESNET18

    torch.manual_seed(0)
    fields = {key: value for key, value in knobs.items() if key != "gradient_checkpointing"}
    config = SclSltConfig.from_preset("tiny", backbone_config=RESNET18, freeze_batch_norm=True, **fields)
    model = SclSltForSignTranslation(config).to(device)
    if knobs.get("gradient_checkpointing"):
        # What the Trainer's gradient_checkpointing calls (activation_checkpointing_enable from 5.24 on).
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    return model


def knob_call(model: SclSltForSignTranslation, batch: dict[str, torch.Tensor], train: bool) -> None:
    """Video encoder forward (+ backward of a scalar of its output when ``train``)."""
    model.train(train)
    if not train:
        with torch.no_grad():
            model.video_encoder(batch["pixel_values"], batch["attention_mask"])
        return
    model.zero_grad(set_to_none=True)
    out = model.video_encoder(batch["pixel_values"], batch["attention_mask"])
    out.last_hidden_state.float().square().mean().backward()


def kept_for_backward_mib(model: SclSltForSignTranslation, batch: dict[str, torch.Tensor]) -> float:
    """MiB of tensors (parameters excluded) that autograd keeps from forward for backward."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model.video_encoder(batch["pixel_values"], batch["attention_mask"])
    del out
    return sum(kept.values()) / 2**20


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS (so RSS tracks live memory)."""
    import ctypes

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def start_memory_window(device: torch.device) -> int:
    """Reset the peak and return the memory in use now (bytes): GPU allocations, or the RSS.

    On the CPU, writing 5 to ``/proc/self/clear_refs`` resets the peak RSS (``VmHWM``, Linux).
    """
    release_free_memory()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_bytes("VmRSS")


def window_peak(device: torch.device) -> int:
    """The peak (bytes) since :func:`start_memory_window`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return proc_status_bytes("VmHWM")


def proc_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def time_knob_variants(
    models: dict[str, SclSltForSignTranslation],
    batch: dict[str, torch.Tensor],
    train: bool,
    device: torch.device,
    warmup: int,
    repeats: int,
) -> dict[str, tuple[list[float], list[int]]]:
    """Seconds and peak bytes (above the start) of each variant's call, the variants alternating."""
    measured: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in models}
    for round_index in range(warmup + repeats):
        for name, model in models.items():
            start = start_memory_window(device)
            began = time.perf_counter()
            knob_call(model, batch, train)
            synchronize(device)
            elapsed = time.perf_counter() - began
            if round_index >= warmup:
                measured[name][0].append(elapsed)
                measured[name][1].append(window_peak(device) - start)
    return measured


def run_memory_knobs(args: argparse.Namespace, output: Path | None) -> None:
    """Step time and peak memory of each knob variant, training and inference, on [frames, short]."""
    device = torch.device(args.device)
    machine = machine_info(device)
    frame_counts = [args.frames, args.short_frames]
    knobs = {name: resolved_knobs(name, args.knob_chunk_size) for name in KNOB_VARIANTS}
    models = {name: knob_model(fields, device) for name, fields in knobs.items()}
    batch = make_batch(frame_counts, args.knob_image_size, 8, models["plain"].config, device)
    warmup = 1 if args.warmup is None else args.warmup
    for train in (True, False):
        measured = time_knob_variants(models, batch, train, device, warmup, args.repeats or 3)
        for name, (seconds, peaks) in measured.items():
            kept = kept_for_backward_mib(models[name], batch) if train else None
            record = {
                "benchmark": "training_throughput",
                "measure": "memory_knobs",
                "mode": "forward+backward" if train else "forward (no_grad)",
                "variant": name,
                "knobs": knobs[name],
                "frame_counts": frame_counts,
                "image_size": args.knob_image_size,
                "step_s_median": round(statistics.median(seconds), 4),
                "step_s_all": [round(value, 4) for value in seconds],
                "peak_mib_above_start_max": round(max(peaks) / 2**20, 1),
                "peak_kind": "cuda max_memory_allocated" if device.type == "cuda" else "VmHWM - VmRSS",
                "kept_for_backward_mib": None if kept is None else round(kept, 1),
                "threads": torch.get_num_threads(),
            }
            emit(record, output, machine)


def model_benchmark_parser(
    name: str, description: str, timed: str, batch_examples: tuple[str, str]
) -> argparse.ArgumentParser:
    """The options this benchmark and ``bench_inference`` share; ``name`` names the output file.

    ``timed`` names what ``--repeats`` counts; ``batch_examples`` are the help examples of
    ``--small-batch-sizes`` and ``--paper-batch-sizes``.
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--models", default="small,paper", help="comma-separated: small, paper")
    parser.add_argument(
        "--repeats", type=int, default=None, help=f"timed {timed} (default: 5 small, 2 paper on CPU)"
    )
    for model, example in zip(("small", "paper"), batch_examples, strict=True):
        parser.add_argument(
            f"--{model}-batch-sizes", default=None, help=f"e.g. {example} (default per device)"
        )
    parser.add_argument("--frames", type=int, default=112, help="frames per clip (PHOENIX-2014T median)")
    parser.add_argument("--output", default=None, help=f"jsonl file (default results/{name}_<device>.jsonl)")
    parser.add_argument("--in-process", action="store_true", help="no subprocesses (tests)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def parse_model_benchmark_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, models: Sequence[str]
) -> argparse.Namespace:
    """Parse, apply ``--threads`` and reject unknown ``--models`` or a missing GPU."""
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.models.split(",")) - set(models)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(models)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is available")
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = model_benchmark_parser("training_throughput", __doc__, "steps", ("1,2,4,8,16", "1,2"))
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per batch size (default 1)")
    parser.add_argument("--short-frames", type=int, default=40, help="second clip of the padding check")
    parser.add_argument("--target-length", type=int, default=24, help="target tokens per sample")
    parser.add_argument(
        "--memory-knobs",
        action="store_true",
        help="instead: backbone chunks, checkpointing, in-place ReLUs side by side on [frames, short-frames]",
    )
    parser.add_argument("--knob-image-size", type=int, default=112, help="frame side of --memory-knobs")
    parser.add_argument(
        "--knob-chunk-size", type=int, default=16, help="frames per chunk of --memory-knobs and --switches"
    )
    switches_module().add_switch_arguments(parser)
    return parse_model_benchmark_args(parser, argv, MODEL_SPECS)


def switches_module() -> Any:
    """``throughput_switches`` (beside this file; it imports this module, hence imported late)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import throughput_switches

    return throughput_switches


def strip_output(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--output FILE`` / ``--output=FILE`` (a subprocess gets its own)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            kept.append(arg)
    return kept


def output_path(args: argparse.Namespace, name: str) -> Path:
    """Where records are appended."""
    return Path(args.output) if args.output else RESULTS_DIR / f"{name}_{args.device}.jsonl"


def main(argv: Sequence[str] | None = None) -> None:
    """Run every model in its own subprocess (or in this process with ``--in-process``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.memory_knobs:
        run_memory_knobs(args, output_path(args, "memory_knobs"))
        return
    if args.switch_part:  # one part of --switches, in its own process
        switches_module().run_part(args, args.switch_part, Path(args.output))
        return
    if args.switches:
        default = RESULTS_DIR / f"training_throughput_switches_{args.device}.json"
        output = Path(args.output) if args.output else default
        switches_module().run_switches(args, strip_output(argv), __file__, output)
        return
    output = output_path(args, "training_throughput")
    if args.worker:
        run_worker(args, output)
    elif args.in_process:
        for model in args.models.split(","):
            run_worker(parse_args([*argv, "--worker", model]), output)
    else:
        print(f"# load average before: {load_average()}", file=sys.stderr)
        run_per_model_subprocesses(__file__, argv, args.models.split(","))
        print(f"# load average after: {load_average()}; results appended to {output}", file=sys.stderr)


if __name__ == "__main__":
    main()
