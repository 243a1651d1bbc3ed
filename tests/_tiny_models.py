"""A tiny saved model whose translations depend on the video, and clips it can tell apart.

The `tiny` preset with a word-level tokenizer trained on a few sentences at test time. Its weights
are re-drawn variance-preserving (and the output projection untied and widened), so the video
reaches the decoder: different clips give different translations, which an untrained model with
the default small initialisation does not.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modeling_scl_slt import SclSltForSignTranslation
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

SENTENCES = ("the rain comes", "sun in the north", "wind from the east strong", "cold night snow ice")
# Frames read at 16 x 16 (resized to 20 first), at most 24 per window.
SMALL_FRAMES = {"size": 16, "resize": 20, "max_frames": 24}


def save_video_dependent_model(
    folder: Path,
    video_preprocessing: dict[str, Any],
    *,
    max_new_tokens: int = 6,
    **config_overrides: Any,
) -> Path:
    """Save the tiny model and its tokenizer into `folder` and return `folder`.

    `video_preprocessing` goes into the config (what the pipeline reads: `size`, `resize`,
    `max_frames`); `max_new_tokens` into its generation config, which the pipeline follows;
    `config_overrides` (e.g. `frame_rate`) into `config_for_tokenizer`. Seeded: the same
    arguments give the same weights.
    """
    tokenizer = train_tokenizer(list(SENTENCES), tgt_lang="en_XX", model="wordlevel")
    config = config_for_tokenizer(
        "tiny",
        tokenizer,
        "en_XX",
        tie_word_embeddings=False,
        video_preprocessing=video_preprocessing,
        **config_overrides,
    )
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() >= 2:  # variance-preserving weights: the video reaches the decoder
                parameter.normal_(std=1.0 / math.sqrt(parameter[0].numel()))
        model.lm_head.weight.normal_(std=1.0)
    model.generation_config.max_new_tokens = max_new_tokens
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def random_clip(num_frames: int, seed: int) -> np.ndarray:
    """(T, 24, 21, 3) uint8 frames of 3x3 random colour blocks (coarse enough to survive the CNN)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (num_frames, 3, 3, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=1), 7, axis=2)
