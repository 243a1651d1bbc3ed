"""Generated ids become sentences without the tokens that started decoding, at every decoding site.

With the real mBART tokenizer the language codes are not special tokens under transformers 5, so
``skip_special_tokens`` alone kept ``de_DE`` at the start of every hypothesis.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GenerationConfig
from transformers.trainer_utils import EvalPrediction

from modeling_scl_slt import SignLanguageTranslationPipeline
from modeling_scl_slt.pipeline_scl_slt import decode_generated, start_token_ids, strip_start_tokens
from tests._shared_data import shared_path
from trainers.application.evaluation import translate_split
from trainers.training.trainer import TranslationMetrics

SENTENCE = "morgen regen im norden"


@pytest.fixture(scope="module")
def mbart_tokenizer():
    return AutoTokenizer.from_pretrained(shared_path("mbart-cc25-trimmed-de"))


@pytest.fixture(scope="module")
def generated(mbart_tokenizer) -> torch.Tensor:
    """What generate() returns for one sentence, mBART-cc25 style: de_DE, the pieces, </s>, padding."""
    pieces = mbart_tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]
    start = mbart_tokenizer.convert_tokens_to_ids("de_DE")
    eos, pad = mbart_tokenizer.eos_token_id, mbart_tokenizer.pad_token_id
    return torch.tensor([[start, *pieces, eos, pad]])


def cc25_config(tokenizer) -> GenerationConfig:
    return GenerationConfig(decoder_start_token_id=tokenizer.convert_tokens_to_ids("de_DE"))


def test_the_trap_skip_special_tokens_keeps_the_language_code(mbart_tokenizer, generated) -> None:
    assert mbart_tokenizer.batch_decode(generated, skip_special_tokens=True)[0].startswith("de_DE")


def test_decoding_drops_the_decoder_start_token(mbart_tokenizer, generated) -> None:
    assert decode_generated(mbart_tokenizer, generated, cc25_config(mbart_tokenizer)) == [SENTENCE]


def test_decoding_drops_a_forced_first_token_after_the_start(mbart_tokenizer, generated) -> None:
    """mBART-50 style: decoding starts from </s>, the language code is forced as the first token."""
    eos, start = mbart_tokenizer.eos_token_id, int(generated[0, 0])
    config = GenerationConfig(decoder_start_token_id=eos, forced_bos_token_id=start)
    sequences = torch.cat([torch.tensor([[eos]]), generated], dim=1)
    assert decode_generated(mbart_tokenizer, sequences, config) == [SENTENCE]


def test_only_leading_start_tokens_go_and_padding_may_be_negative() -> None:
    assert strip_start_tokens([5, 5, 5, 7], {5}) == [5, 7]  # at most decoder start + forced first
    assert strip_start_tokens([7, 5], {5}) == [7, 5]
    assert start_token_ids(None) == frozenset()
    tokenizer = SimpleNamespace(pad_token_id=1, batch_decode=lambda rows, skip_special_tokens: [str(rows)])
    assert decode_generated(
        tokenizer, np.array([[9, 4, -100]]), SimpleNamespace(decoder_start_token_id=9)
    ) == ["[[4, 1]]"]


def test_every_decoding_site_drops_it(mbart_tokenizer, generated) -> None:
    config = cc25_config(mbart_tokenizer)
    # the Trainer's generation metrics
    metrics = TranslationMetrics(mbart_tokenizer, "de", config)
    labels = generated[:, 1:].numpy().copy()
    labels[labels == mbart_tokenizer.pad_token_id] = -100
    scores = metrics(EvalPrediction(predictions=generated.numpy(), label_ids=labels))
    assert scores["bleu4"] == pytest.approx(100.0)
    # the recipe's evaluation
    model = SimpleNamespace(
        device=torch.device("cpu"), generation_config=config, generate=lambda **inputs: generated
    )
    batch = {"pixel_values": torch.zeros(1, 4, 3, 8, 8), "attention_mask": torch.ones(1, 4)}
    split = [batch]
    hypotheses = translate_split(model, split, lambda rows: rows[0], mbart_tokenizer, batch_size=1)
    assert hypotheses == [SENTENCE]
    # the pipeline
    pipeline = SimpleNamespace(tokenizer=mbart_tokenizer, model=SimpleNamespace(generation_config=config))
    window = {"sequences": generated[None], "timestamp": torch.tensor([[0.0, 1.6]])}  # one window
    outputs = SignLanguageTranslationPipeline.postprocess(pipeline, [window])
    assert outputs == [{"translation_text": SENTENCE}]
