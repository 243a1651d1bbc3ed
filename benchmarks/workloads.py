"""The models, batches and trainer the training and inference benchmarks measure; frames for the rest.

* ``small``: what ``scl-slt demo`` trains (``trainers.application.demo.demo_config()``): preset
  ``small`` with the vocabulary of a word-level tokenizer trained on synthetic sentences, frames
  32 × 32, full fine-tuning (text encoder frozen, as always).
* ``paper``: preset ``paper`` (ResNet-18 + mBART-large-50 shape, 250,054-token vocabulary) wrapped
  with LoRA by ``trainers.training.lora.apply_lora(model, paper_lora_config())`` (rank 16 on the
  attention projections; ResNet, temporal module and projections fully trained), frames 224 × 224.

A batch is collator-shaped (``pixel_values`` (B, T, 3, H, W) zero-padded, ``attention_mask`` (B, T),
``labels`` / ``text_input_ids`` / ``text_attention_mask`` (B, L)); weights are random and seeded.

The data benchmarks' frames: :func:`phoenix_frames`, PHOENIX-2014T-sized (``WIDTH`` × ``HEIGHT``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.harness import RESULTS_DIR
from datasets_scripts.synthetic import make_signers, render_clip, sample_sentence
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation


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
    from trainers.training.arguments import SclSltTrainingArguments
    from trainers.training.trainer import SclSltTrainer

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


def model_benchmark_parser(
    name: str, description: str, timed: str, batch_examples: tuple[str, str]
) -> argparse.ArgumentParser:
    """The options ``training_throughput`` and ``inference`` share; ``name`` names the output file.

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


def output_path(args: argparse.Namespace, name: str) -> Path:
    """Where records are appended: ``--output``, or ``results/<name>_<device>.jsonl``."""
    return Path(args.output) if args.output else RESULTS_DIR / f"{name}_{args.device}.jsonl"


WIDTH, HEIGHT = 210, 260  # PHOENIX-2014T's frames


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
