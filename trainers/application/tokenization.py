"""Tokenizers for the offline default: trained on the corpus's training texts.

The layout follows mBART so that the model's token-id conventions hold: ``<s>`` = 0,
``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3, then the target-language token (decoding starts
from it), then the learned pieces. Encoding appends ``</s>``; decoding is exact for the
Unigram/Metaspace model (sentencepiece-style ``▁`` word boundaries).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from modeling_scl_slt import SclSltConfig

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>"]


def train_tokenizer(
    texts: Iterable[str],
    tgt_lang: str,
    vocab_size: int = 1000,
    model: Literal["unigram", "wordlevel"] = "unigram",
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on ``texts`` (the training split's sentences).

    ``model="unigram"`` learns up to ``vocab_size`` pieces (fewer if the corpus is small);
    ``"wordlevel"`` keeps whole words, for tiny closed-vocabulary corpora. Training draws no
    progress bar of its own (it takes seconds; the recipe's display says what runs).
    """
    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer needs at least one training text")
    special = [*SPECIAL_TOKENS, tgt_lang]
    if model == "unigram":
        backend = Tokenizer(models.Unigram())
        trainer: Any = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=special, unk_token="<unk>", show_progress=False
        )
    elif model == "wordlevel":
        backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, special_tokens=special, show_progress=False
        )
    else:
        raise ValueError(f"model must be 'unigram' or 'wordlevel', got {model!r}")
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.train_from_iterator(texts, trainer=trainer)
    eos_id = backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        additional_special_tokens=[tgt_lang],
    )
    _check_layout(tokenizer, tgt_lang)
    return tokenizer


def _check_layout(tokenizer: PreTrainedTokenizerFast, tgt_lang: str) -> None:
    ids = tokenizer.convert_tokens_to_ids([*SPECIAL_TOKENS, tgt_lang])
    if ids != list(range(len(SPECIAL_TOKENS) + 1)):
        raise RuntimeError(f"unexpected special-token ids {ids}; the tokenizers library changed its layout")


def config_for_tokenizer(
    preset: str, tokenizer: PreTrainedTokenizerFast, tgt_lang: str, **overrides: Any
) -> SclSltConfig:
    """A preset's config with the vocabulary and special-token ids of ``tokenizer``."""
    text_config = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "forced_eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.convert_tokens_to_ids(tgt_lang),
        **overrides.pop("text_config", {}),
    }
    return SclSltConfig.from_preset(preset, text_config=text_config, tgt_lang=tgt_lang, **overrides)
