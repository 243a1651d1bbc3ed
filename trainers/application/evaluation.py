"""Translate a corpus split with a trained model and score it (recipe and `scl-slt evaluate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerBase

from datasets_scripts import SignTranslationCollator
from modeling_scl_slt import SclSltForSignTranslation, decode_generated

from ..method.atomic_files import write_text_atomically
from ..metrics import compute_translation_metrics
from ..training.progress import task_bar

VIDEO_INPUTS = ("pixel_values", "frame_features", "attention_mask")


@torch.inference_mode()
def translate_split(
    model: SclSltForSignTranslation,
    split: Any,
    collator: SignTranslationCollator,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 16,
    num_workers: int = 0,
    bf16: bool = False,
    progress: str | None = None,
) -> list[str]:
    """Generated translations of every sample of ``split``, in order, with the model's
    generation config (beams, length). ``progress`` labels a bar over the batches (shown where
    :func:`~trainers.training.progress.progress_enabled`)."""
    loader = DataLoader(split, batch_size=batch_size, collate_fn=collator, num_workers=num_workers)
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16)
    hypotheses: list[str] = []
    batches = task_bar(loader, progress, total=len(loader)) if progress else loader
    for batch in batches:
        with autocast:
            # pixel_values, or the frame_features of a features corpus, with the frame mask
            video = {key: value.to(model.device) for key, value in batch.items() if key in VIDEO_INPUTS}
            generated = model.generate(**video)
        hypotheses.extend(decode_generated(tokenizer, generated, model.generation_config))
    return hypotheses


def evaluate_split(
    model: SclSltForSignTranslation,
    split: Any,
    collator: SignTranslationCollator,
    tokenizer: PreTrainedTokenizerBase,
    language: str,
    **translate_options: Any,
) -> tuple[dict[str, float], list[str]]:
    """BLEU-1..4 and ROUGE-L (×100) of the model's translations of ``split``, and the translations."""
    hypotheses = translate_split(model, split, collator, tokenizer, **translate_options)
    metrics = compute_translation_metrics(hypotheses, list(split["text"]), language=language)
    return metrics, hypotheses


def set_generation_defaults(model: SclSltForSignTranslation, num_beams: int, max_new_tokens: int) -> None:
    """Beam size and length that ``generate()`` (and the saved generation config) use by default.

    The length is ``max_new_tokens`` alone: a ``max_length`` beside it makes every ``generate()``
    warn that both are set.
    """
    model.generation_config.num_beams = num_beams
    model.generation_config.max_new_tokens = max_new_tokens
    model.generation_config.max_length = None


def set_trainer_generation_defaults(
    model: SclSltForSignTranslation, num_beams: int, max_new_tokens: int
) -> None:
    """Beam size and length for the evaluations of a ``Seq2SeqTrainer`` during training.

    The length is given as ``max_length`` alone (the start token plus ``max_new_tokens``: the same
    translations). After its first evaluation batch the ``Seq2SeqTrainer`` fills transformers'
    generic defaults, ``max_length=20`` among them, into the model's generation config; beside a
    ``max_new_tokens`` that would make every later batch warn that both are set. Call
    :func:`set_generation_defaults` again before saving the model.
    """
    model.generation_config.num_beams = num_beams
    model.generation_config.max_new_tokens = None
    model.generation_config.max_length = max_new_tokens + 1


def write_predictions(path: Path, split: Any, hypotheses: list[str]) -> None:
    """One JSON line per sample: name, reference and hypothesis."""
    rows = zip(split["name"], split["text"], hypotheses, strict=True)
    lines = [json.dumps({"name": n, "reference": ref, "hypothesis": hyp}) + "\n" for n, ref, hyp in rows]
    write_text_atomically(path, "".join(lines), "predictions")
