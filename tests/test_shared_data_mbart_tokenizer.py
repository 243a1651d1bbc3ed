"""A real mBART tokenizer (sentencepiece model only, no tokenizer.json) on real PHOENIX-2014T text.

Reads ``../shared/data`` (see ``tests/_shared_data.py``): skipped where it is absent.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoTokenizer

from modeling_scl_slt import SclSltForSignTranslation
from tests._shared_data import PHOENIX_SPLITS, phoenix_rows, shared_path
from trainers.application.tokenization import config_for_tokenizer
from trainers.application.vocabulary import trim_vocabulary


@pytest.fixture(scope="module")
def mbart_tokenizer():
    folder = shared_path("mbart-cc25-trimmed-de")
    assert not (folder / "tokenizer.json").exists(), "the folder should hold the sentencepiece model only"
    return AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def phoenix_texts() -> list[str]:
    texts = [row["text"] for split in PHOENIX_SPLITS for row in phoenix_rows(split)]
    assert len(texts) == 7096 + 519 + 642
    return texts


def test_shared_data_mbart_sentencepiece_folder_loads(mbart_tokenizer) -> None:
    assert len(mbart_tokenizer) == 2454
    assert mbart_tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    ids = mbart_tokenizer("und nun die wettervorhersage")["input_ids"]
    assert ids[-2:] == [mbart_tokenizer.eos_token_id, mbart_tokenizer.convert_tokens_to_ids("de_DE")]


def test_shared_data_phoenix_sentences_have_no_unknown_pieces(mbart_tokenizer) -> None:
    """Train and dev tokenise without ``<unk>``; so does the test split but for one known sentence.

    The tokenizer was trimmed (by its authors) to the training texts. One test sentence needs the
    lone piece ``x`` (in "teletext"), which no training text uses, and it becomes ``<unk>``.
    """
    unknown = mbart_tokenizer.unk_token_id
    with_unknown = {split: [] for split in PHOENIX_SPLITS}
    for split in PHOENIX_SPLITS:
        texts = [row["text"] for row in phoenix_rows(split)]
        for text, ids in zip(texts, mbart_tokenizer(texts)["input_ids"], strict=True):
            if unknown in ids:
                with_unknown[split].append(text)
    assert with_unknown == {
        "train": [],
        "validation": [],
        "test": ["entweder über den teletext oder auch über das internet"],
    }
    assert mbart_tokenizer.tokenize("teletext").count("x") == 1


def test_shared_data_trimming_keeps_tokenisation_and_logits(mbart_tokenizer, phoenix_texts) -> None:
    torch.manual_seed(0)
    model = SclSltForSignTranslation(config_for_tokenizer("tiny", mbart_tokenizer, "de_DE")).eval()
    with torch.no_grad():  # larger logits than the 0.02 init, so that equality is not trivial
        model.lm_head.weight.normal_()
    original = copy.deepcopy(model)
    result = trim_vocabulary(model, mbart_tokenizer, phoenix_texts)
    kept = result.kept_ids
    assert len(result.tokenizer) == len(kept) < len(mbart_tokenizer)

    old_batch = mbart_tokenizer(phoenix_texts)["input_ids"]
    new_batch = result.tokenizer(phoenix_texts)["input_ids"]
    pairs = zip(phoenix_texts, old_batch, new_batch, strict=True)
    changed = [text for text, old, new in pairs if kept[new].tolist() != old]
    assert changed == []

    pixels = torch.randn(2, 8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    old_ids = torch.tensor([old_batch[0][:8], old_batch[1][:8]])
    old_to_new = {old: new for new, old in enumerate(kept.tolist())}
    new_ids = old_ids.clone().apply_(old_to_new.__getitem__)
    with torch.no_grad():
        old_logits = original(pixel_values=pixels, decoder_input_ids=old_ids).logits
        new_logits = result.model(pixel_values=pixels, decoder_input_ids=new_ids).logits
    assert torch.allclose(new_logits, old_logits[..., kept], rtol=0, atol=1e-6)
    assert old_logits[..., kept].std() > 0.1
