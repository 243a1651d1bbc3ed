"""Generated ids → sentences, one way everywhere: evaluation, the Trainer's metrics, the pipeline.

``generate()`` returns every sequence with the tokens that started decoding: the decoder start
token (mBART-cc25 style: the target-language code, e.g. ``de_DE``) and, where the generation
config forces a first token, that one too (mBART-50 style: ``</s>`` then the language code).
The mBART tokenizers under transformers 5 do not count the language codes as special tokens,
so ``decode(..., skip_special_tokens=True)`` would keep them and every hypothesis would start
with ``de_DE``. :func:`decode_generated` drops those leading tokens first.

This file travels to the Hub with the model: it imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["decode_generated", "start_token_ids", "strip_start_tokens"]


def start_token_ids(generation_config: Any) -> frozenset[int]:
    """The ids a generated sequence may start with: decoder start and forced first token."""
    candidates = (
        getattr(generation_config, "decoder_start_token_id", None),
        getattr(generation_config, "forced_bos_token_id", None),
    )
    return frozenset(token for token in candidates if isinstance(token, int))


def strip_start_tokens(sequence: Sequence[int], start_ids: Iterable[int]) -> list[int]:
    """``sequence`` without its leading start tokens (at most two: decoder start, forced first)."""
    start_ids = frozenset(start_ids)
    sequence = list(sequence)
    skipped = 0
    while skipped < min(2, len(sequence)) and sequence[skipped] in start_ids:
        skipped += 1
    return sequence[skipped:]


def decode_generated(tokenizer: Any, sequences: Any, generation_config: Any) -> list[str]:
    """Sentences of (N, L) generated ids (a tensor, an array or lists; negative ids are padding).

    The start tokens of ``generation_config`` are dropped from the front of each sequence, special
    tokens are skipped and whitespace is stripped.
    """
    rows = sequences.tolist() if hasattr(sequences, "tolist") else [list(row) for row in sequences]
    start_ids = start_token_ids(generation_config)
    pad = tokenizer.pad_token_id
    cleaned = [[pad if token < 0 else token for token in strip_start_tokens(row, start_ids)] for row in rows]
    return [text.strip() for text in tokenizer.batch_decode(cleaned, skip_special_tokens=True)]
