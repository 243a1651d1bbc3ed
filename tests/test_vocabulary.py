"""Vocabulary trimming: identical tokenisation, identical logits at new positions, consistent ids."""

from __future__ import annotations

import copy
import random

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from modeling_scl_slt import SclSltForSignTranslation
from trainers.application.tokenization import config_for_tokenizer
from trainers.application.vocabulary import trim_vocabulary

WORDS = [
    *("rain", "sun", "snow", "wind", "fog", "north", "south", "east", "west", "coast", "mountains"),
    *("valleys", "tonight", "tomorrow", "morning", "strong", "weak", "warm", "dry", "cold", "cloudy"),
    *("sunny", "showers", "thunder", "heavy", "light", "Regen", "Schnee", "Nebel", "Küste"),
]
LANGUAGE_CODES = ["de_DE", "zh_CN", "en_XX"]
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", *LANGUAGE_CODES]


def sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(count)]


def wrap(backend: Tokenizer) -> PreTrainedTokenizerFast:
    """mBART-like: the sentence then ``</s>``; language codes are extra special tokens."""
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", backend.token_to_id("</s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        extra_special_tokens=LANGUAGE_CODES,
    )


def sentencepiece_style(backend: Tokenizer) -> Tokenizer:
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    return backend


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    backend = sentencepiece_style(Tokenizer(models.Unigram()))
    trainer = trainers.UnigramTrainer(vocab_size=150, special_tokens=SPECIAL_TOKENS, unk_token="<unk>")
    backend.train_from_iterator(sentences(40, seed=0), trainer=trainer)
    return wrap(backend)


# A few training sentences, unseen word combinations and a character the tokenizer has never seen.
CORPUS = [*sentences(40, seed=0)[:6], *sentences(4, seed=1), "Schnee ☃ an der Küste"]


def tiny_model(tokenizer: PreTrainedTokenizerFast) -> SclSltForSignTranslation:
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config_for_tokenizer("tiny", tokenizer, "de_DE")).eval()
    with torch.no_grad():  # larger logits than the 0.02 init, so that equality is not trivial
        model.lm_head.weight.normal_()
    return model


@pytest.fixture(scope="module")
def trimmed(tokenizer):
    model = tiny_model(tokenizer)
    original = copy.deepcopy(model)
    result = trim_vocabulary(model, tokenizer, CORPUS, keep_tokens=["en_XX"])
    return original, result


def test_corpus_tokenisation_is_identical(tokenizer, trimmed) -> None:
    _, result = trimmed
    new = result.tokenizer
    assert len(new) < len(tokenizer)
    unknown = tokenizer.unk_token_id
    assert unknown in tokenizer(CORPUS[-1])["input_ids"], "the corpus should exercise unknown characters"
    for text in CORPUS:
        assert new.tokenize(text) == tokenizer.tokenize(text)
        old_ids, new_ids = tokenizer(text)["input_ids"], new(text)["input_ids"]
        assert result.kept_ids[new_ids].tolist() == old_ids
        assert new.decode(new_ids) == tokenizer.decode(old_ids)
        assert new.decode(new_ids, skip_special_tokens=True) == tokenizer.decode(
            old_ids, skip_special_tokens=True
        )


def test_special_tokens_and_language_codes(trimmed) -> None:
    _, result = trimmed
    vocab = result.tokenizer.get_vocab()
    assert {"<s>", "<pad>", "</s>", "<unk>", "de_DE", "en_XX"} <= set(vocab)
    assert "zh_CN" not in vocab  # neither the target language nor asked for
    assert result.tokenizer.pad_token == "<pad>" and result.tokenizer.eos_token == "</s>"
    assert set(result.tokenizer.all_special_tokens) >= {"de_DE", "en_XX"}


def test_config_ids_follow_the_new_vocabulary(trimmed) -> None:
    _, result = trimmed
    model, new = result.model, result.tokenizer
    start = new.convert_tokens_to_ids("de_DE")
    assert model.config.decoder_start_token_id == start == model.config.text_config.decoder_start_token_id
    assert model.generation_config.decoder_start_token_id == start
    for config in (model.config, model.config.text_config, model.generation_config):
        assert config.pad_token_id == new.pad_token_id
        assert config.eos_token_id == new.eos_token_id
        assert config.bos_token_id == new.bos_token_id
    assert model.config.text_config.forced_eos_token_id == new.eos_token_id
    assert model.config.text_config.vocab_size == len(new)
    assert model.decoder.embed_tokens.num_embeddings == len(new)
    assert model.decoder.embed_tokens.padding_idx == new.pad_token_id
    assert model.lm_head.weight is model.decoder.embed_tokens.weight
    assert model.text_encoder.embed_tokens.weight.shape == (len(new), model.config.text_config.d_model)
    assert not model.text_encoder.embed_tokens.weight.requires_grad  # the text encoder stays frozen


def model_outputs(model, tokenizer, decoder_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder logits (B, L, V) and the text branch's video→text similarity (B, B) for fixed inputs."""
    pixels = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    text = tokenizer(CORPUS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(
            pixel_values=pixels,
            decoder_input_ids=decoder_ids,
            text_input_ids=text["input_ids"],
            text_attention_mask=text["attention_mask"],
        )
    return output.logits, output.similarity_per_video


def test_logits_of_kept_tokens_are_unchanged(tokenizer, trimmed) -> None:
    original, result = trimmed
    labels = tokenizer(CORPUS[:2], padding=True, return_tensors="pt")["input_ids"]
    old_start = original.config.decoder_start_token_id
    old_decoder_ids = torch.cat([torch.full((2, 1), old_start), labels[:, :-1]], dim=1)
    old_to_new = {old: new for new, old in enumerate(result.kept_ids.tolist())}
    new_decoder_ids = old_decoder_ids.clone().apply_(old_to_new.__getitem__)

    old_logits, old_similarity = model_outputs(original, tokenizer, old_decoder_ids)
    new_logits, new_similarity = model_outputs(result.model, result.tokenizer, new_decoder_ids)
    assert new_logits.shape[-1] == len(result.tokenizer) < old_logits.shape[-1]
    assert torch.allclose(new_logits, old_logits[..., result.kept_ids], rtol=0, atol=1e-6)
    assert old_logits[..., result.kept_ids].std() > 0.1  # the logits are not trivially equal
    assert torch.allclose(new_similarity, old_similarity, rtol=0, atol=1e-6)


def test_trimmed_model_and_tokenizer_round_trip(tmp_path, trimmed) -> None:
    _, result = trimmed
    result.model.save_pretrained(tmp_path / "model")
    result.tokenizer.save_pretrained(tmp_path / "model")
    model = SclSltForSignTranslation.from_pretrained(tmp_path / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert tokenizer.get_vocab() == result.tokenizer.get_vocab()
    assert all(tokenizer.tokenize(text) == result.tokenizer.tokenize(text) for text in CORPUS)
    assert model.config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("de_DE")
    assert model.lm_head.weight is model.decoder.embed_tokens.weight
    decoder_ids = torch.tensor([[model.config.decoder_start_token_id, 5, 6], [1, 7, 8]])
    expected, _ = model_outputs(result.model, result.tokenizer, decoder_ids)
    loaded, _ = model_outputs(model, tokenizer, decoder_ids)
    assert torch.equal(loaded, expected)
    generated = model.generate(pixel_values=torch.randn(1, 8, 3, 32, 32), max_new_tokens=3)
    assert generated[0, 0] == tokenizer.convert_tokens_to_ids("de_DE")


def test_unknown_characters_keep_their_score() -> None:
    """Without keeping the vocabulary's minimum score, trimming would segment ``abcd`` differently.

    Original: ``▁ab + cd`` (-24) beats ``▁abc + d`` (-31). Trimming removes ``d``, whose position
    then becomes an unknown character scored ``min_score - 10``; with the trimmed minimum (-12)
    ``▁abc + <unk>`` would score -23 and win, with the original minimum (-30) it scores -41.
    """
    pieces = [("▁ab", -12.0), ("cd", -12.0), ("▁abc", -1.0), ("d", -30.0), ("c", -30.0), ("▁", -30.0)]
    vocab = [(token, 0.0) for token in SPECIAL_TOKENS] + pieces
    tokenizer = wrap(sentencepiece_style(Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))))
    assert tokenizer.tokenize("abcd") == ["▁ab", "cd"]
    result = trim_vocabulary(tiny_model(tokenizer), tokenizer, ["abcd", "abc"])
    assert "d" not in result.tokenizer.get_vocab()
    assert result.tokenizer.tokenize("abcd") == ["▁ab", "cd"]


def test_word_level_tokenizers_trim_too() -> None:
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.train_from_iterator(
        sentences(20, seed=3), trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS)
    )
    tokenizer = wrap(backend)
    corpus = sentences(20, seed=3)[:3]
    result = trim_vocabulary(tiny_model(tokenizer), tokenizer, corpus)
    assert len(result.tokenizer) < len(tokenizer)
    for text in corpus:
        assert result.tokenizer.tokenize(text) == tokenizer.tokenize(text)


def test_unknown_keep_token_and_bpe_are_refused(tokenizer) -> None:
    with pytest.raises(ValueError, match="'fr_XX'"):
        trim_vocabulary(tiny_model(tokenizer), tokenizer, CORPUS, keep_tokens=["fr_XX"])
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(special_tokens=SPECIAL_TOKENS))
    bpe_tokenizer = wrap(bpe)
    with pytest.raises(ValueError, match="Unigram"):
        trim_vocabulary(tiny_model(bpe_tokenizer), bpe_tokenizer, CORPUS)
