"""Frame features as model input: the backbone's per-frame features stand in for the pixels."""

from __future__ import annotations

import pytest
import torch

from tests.test_modeling import tiny_model

LABELS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100]])
TEXT_IDS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 1, 1]])


def clips(lengths: list[int], uint8: bool, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shape = (len(lengths), max(lengths), 3, size, size)
    if uint8:
        pixels = torch.randint(0, 256, shape, generator=generator, dtype=torch.uint8)
    else:
        pixels = torch.randn(shape, generator=generator)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        pixels[row, length:] = 0
    return pixels, mask


@pytest.mark.parametrize("uint8", [False, True], ids=["normalised", "uint8-transformed-in-model"])
def test_own_backbone_features_give_the_pixel_paths_logits_and_tokens(uint8: bool) -> None:
    model = tiny_model(video_preprocessing={"size": 24, "resize": 28})
    pixels, mask = clips([20, 13], uint8)
    with torch.no_grad():
        features = model.get_frame_features(pixels, mask)
        assert features.shape == (2, 20, model.config.frame_feature_size)
        assert not features[1, 13:].any()  # padding stays zero
        from_pixels = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
        from_features = model(
            frame_features=features, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS
        )
        # The same ops on the same values: any difference would be the feature path's own.
        assert torch.equal(from_features.logits, from_pixels.logits)
        assert torch.equal(from_features.similarity_per_video, from_pixels.similarity_per_video)
        assert torch.equal(from_features.loss, from_pixels.loss)
        video_pixels, mask_pixels = model.get_video_features(pixels, mask)
        video_features, mask_features = model.get_video_features(attention_mask=mask, frame_features=features)
        assert torch.equal(video_features, video_pixels) and torch.equal(mask_features, mask_pixels)
    generated_pixels = model.generate(pixel_values=pixels, attention_mask=mask, max_new_tokens=6, num_beams=2)
    generated_features = model.generate(
        frame_features=features, attention_mask=mask, max_new_tokens=6, num_beams=2
    )
    assert generated_pixels.shape[1] > 2
    assert torch.equal(generated_features, generated_pixels)


def test_float16_stored_features_are_accepted_and_zeroed_at_padding() -> None:
    model = tiny_model()
    pixels, mask = clips([16, 8], uint8=False)
    with torch.no_grad():
        features = model.get_frame_features(pixels, mask)
        garbage = features.clone()
        garbage[1, 8:] = 7.0  # padding holds junk: the mask, not the values, says what is real
        clean = model(frame_features=features, attention_mask=mask, labels=LABELS).logits
        assert torch.equal(model(frame_features=garbage, attention_mask=mask, labels=LABELS).logits, clean)
        half = model(frame_features=features.half(), attention_mask=mask, labels=LABELS).logits
    assert half.dtype == torch.float32 and half.shape == clean.shape


def test_exactly_one_video_input() -> None:
    model = tiny_model()
    pixels, mask = clips([8], uint8=False)
    features = model.get_frame_features(pixels, mask)
    with pytest.raises(ValueError, match=r"exactly one of pixel_values .* and frame_features .*, got both"):
        model(pixel_values=pixels, frame_features=features, attention_mask=mask, labels=LABELS[:1])
    with pytest.raises(ValueError, match="got neither"):
        model(attention_mask=mask, labels=LABELS[:1])
    with pytest.raises(ValueError, match=r"frame_features must have shape \(batch, frames, 8\)"):
        model(frame_features=torch.zeros(1, 8, 5), attention_mask=mask, labels=LABELS[:1])
    with pytest.raises(ValueError, match=r"at least 4 real frames"):
        model(frame_features=features[:, :3], attention_mask=mask[:, :3], labels=LABELS[:1])
