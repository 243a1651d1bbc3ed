"""Tests of SignTranslationCollator with a word-level tokenizer built at test time (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from datasets_scripts.collator import LABEL_PAD_ID, SignTranslationCollator
from modeling_scl_slt import VideoTransform

SENTENCES = [
    "tomorrow in the north strong rain and cold",
    "today in the south sun",
    "tonight the wind comes from the east",
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    word_level = Tokenizer(models.WordLevel(unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level.train_from_iterator(
        SENTENCES, trainers.WordLevelTrainer(special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def frames(num_frames: int, side: int = 8, value: int = 100) -> list[Image.Image]:
    return [Image.fromarray(np.full((side, side, 3), value, dtype=np.uint8)) for _ in range(num_frames)]


def make_collator(tokenizer: PreTrainedTokenizerFast, **kwargs) -> SignTranslationCollator:
    return SignTranslationCollator(
        tokenizer=tokenizer, transform=VideoTransform(size=8, resize=None), **kwargs
    )


def test_batch_shapes_and_frame_padding(tokenizer: PreTrainedTokenizerFast) -> None:
    examples = [{"frames": frames(6), "text": SENTENCES[0]}, {"frames": frames(4), "text": SENTENCES[1]}]
    batch = make_collator(tokenizer)(examples)
    assert batch["pixel_values"].shape == (2, 6, 3, 8, 8)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 4 + [0] * 2]
    assert batch["attention_mask"].dtype == torch.long
    assert torch.count_nonzero(batch["pixel_values"][1, 4:]) == 0
    assert torch.count_nonzero(batch["pixel_values"][1, :4]) > 0


def test_labels_are_tokens_then_eos_padded_with_minus_100(tokenizer: PreTrainedTokenizerFast) -> None:
    examples = [{"frames": frames(4), "text": SENTENCES[0]}, {"frames": frames(4), "text": SENTENCES[1]}]
    labels = make_collator(tokenizer)(examples)["labels"]
    expected_long = [*tokenizer.convert_tokens_to_ids(SENTENCES[0].split()), tokenizer.eos_token_id]
    expected_short = [*tokenizer.convert_tokens_to_ids(SENTENCES[1].split()), tokenizer.eos_token_id]
    assert labels.dtype == torch.long
    assert labels[0].tolist() == expected_long
    assert labels[1].tolist() == expected_short + [LABEL_PAD_ID] * (len(expected_long) - len(expected_short))
    assert tokenizer.bos_token_id not in labels.tolist()[0]


def test_text_branch_inputs_end_with_eos_and_use_the_pad_id(tokenizer: PreTrainedTokenizerFast) -> None:
    examples = [{"frames": frames(4), "text": SENTENCES[0]}, {"frames": frames(4), "text": SENTENCES[1]}]
    batch = make_collator(tokenizer)(examples)
    ids, mask = batch["text_input_ids"], batch["text_attention_mask"]
    assert ids.shape == mask.shape == batch["labels"].shape
    lengths = mask.sum(dim=1)
    assert lengths.tolist() == [9, 6]
    assert [ids[row, lengths[row] - 1].item() for row in range(2)] == [tokenizer.eos_token_id] * 2
    assert ids[1, 6:].tolist() == [tokenizer.pad_token_id] * 3
    assert torch.equal(ids[mask.bool()], batch["labels"][batch["labels"] != LABEL_PAD_ID])


def test_include_text_false_leaves_out_the_text_branch(tokenizer: PreTrainedTokenizerFast) -> None:
    batch = make_collator(tokenizer, include_text=False)([{"frames": frames(4), "text": SENTENCES[2]}])
    assert set(batch) == {"pixel_values", "attention_mask", "labels"}


def test_examples_without_text_give_only_video_inputs(tokenizer: PreTrainedTokenizerFast) -> None:
    batch = make_collator(tokenizer)([{"frames": frames(5)}])
    assert set(batch) == {"pixel_values", "attention_mask"}


def test_truncation_keeps_the_final_eos(tokenizer: PreTrainedTokenizerFast) -> None:
    batch = make_collator(tokenizer, max_target_length=4)([{"frames": frames(4), "text": SENTENCES[0]}])
    first_three = tokenizer.convert_tokens_to_ids(SENTENCES[0].split()[:3])
    assert batch["labels"][0].tolist() == [*first_three, tokenizer.eos_token_id]
    assert batch["text_input_ids"][0].tolist() == [*first_three, tokenizer.eos_token_id]


def test_already_transformed_pixel_values_are_padded_as_given(tokenizer: PreTrainedTokenizerFast) -> None:
    clips = [torch.randn(5, 3, 8, 8), torch.randn(7, 3, 8, 8)]
    examples = [{"pixel_values": clip, "text": text} for clip, text in zip(clips, SENTENCES, strict=False)]
    batch = make_collator(tokenizer)(examples)
    assert batch["pixel_values"].shape == (2, 7, 3, 8, 8)
    assert torch.equal(batch["pixel_values"][0, :5], clips[0])
    assert torch.equal(batch["pixel_values"][1], clips[1])


def test_the_transform_is_applied_to_frames(tokenizer: PreTrainedTokenizerFast) -> None:
    collator = SignTranslationCollator(tokenizer=tokenizer, transform=VideoTransform(size=4, resize=6))
    batch = collator([{"frames": frames(4, side=12, value=255), "text": SENTENCES[1]}])
    assert batch["pixel_values"].shape == (1, 4, 3, 4, 4)
    expected_red = (1 - 0.485) / 0.229
    assert batch["pixel_values"][0, 0, 0, 0, 0].item() == pytest.approx(expected_red, abs=1e-4)


def test_a_clip_shorter_than_four_frames_is_refused_by_name(tokenizer: PreTrainedTokenizerFast) -> None:
    examples = [
        {"frames": frames(5), "text": SENTENCES[0]},
        {"name": "clip-17", "frames": frames(3), "text": "x"},
    ]
    with pytest.raises(ValueError, match=r"'clip-17' has 3 frames; at least 4"):
        make_collator(tokenizer)(examples)


def test_mixing_examples_with_and_without_text_is_refused(tokenizer: PreTrainedTokenizerFast) -> None:
    examples = [{"frames": frames(4), "text": SENTENCES[0]}, {"name": "no-text", "frames": frames(4)}]
    with pytest.raises(ValueError, match="no-text"):
        make_collator(tokenizer)(examples)


def test_an_example_without_video_is_refused_by_name(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(KeyError, match="neither 'frames' nor 'pixel_values'"):
        make_collator(tokenizer)([{"name": "empty", "text": SENTENCES[0]}])


def test_a_tokenizer_without_pad_token_is_refused_when_text_is_included() -> None:
    word_level = Tokenizer(models.WordLevel({"a": 0, "</s>": 1, "<unk>": 2}, unk_token="<unk>"))
    no_pad = PreTrainedTokenizerFast(tokenizer_object=word_level, eos_token="</s>", unk_token="<unk>")
    with pytest.raises(ValueError, match="no pad token"):
        SignTranslationCollator(tokenizer=no_pad)
    assert SignTranslationCollator(tokenizer=no_pad, include_text=False).include_text is False
