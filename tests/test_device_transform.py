"""Decode on the loader, transform on the device: the batched video transform and the uint8 path.

The loader only picks frames and collates uint8 clips; resize, crop, augmentation and
normalisation run batched wherever the clips are (``VideoTransform.apply``), called by the model
for uint8 ``pixel_values``. These tests pin that the batched transform computes what the per-clip
transform computed (``reference_transform`` is a frozen copy of the per-clip code it replaced),
with the same random draws, and that the collator, the model, the pipeline and the recipe use it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from datasets_scripts import SignTranslationCollator
from modeling_scl_slt import SclSltForSignTranslation, VideoTransform
from modeling_scl_slt.pipeline_scl_slt import SignLanguageTranslationPipeline, pad_clips_in_time
from modeling_scl_slt.video_processing import model_pixel_values, pad_clips
from trainers.application.recipe import make_collators, video_preprocessing
from trainers.application.recipe_config import RecipeConfig
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer

SETTINGS = {"size": 16, "resize": 20, "max_frames": 12}
SENTENCES = ["rain in the north", "sun in the south", "wind at the coast"]
# Bilinear resizing and grid sampling of the same numbers: equal up to float rounding.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def random_clip(num_frames: int, height: int = 30, width: int = 26, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def reference_transform(
    transform: VideoTransform, frames: np.ndarray, generator: torch.Generator | None
) -> torch.Tensor:
    """The per-clip transform as it was before the batched one (float per clip, channels-first)."""
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[: transform.max_frames]
    height, width = clip.shape[-2:]
    if transform.resize is not None and min(height, width) != transform.resize:
        scale = transform.resize / min(height, width)
        new_size = (max(transform.resize, round(height * scale)), max(transform.resize, round(width * scale)))
        clip = F.interpolate(clip, size=new_size, mode="bilinear", align_corners=False, antialias=True)
        clip = clip.clamp(0.0, 255.0)
    height, width, size = *clip.shape[-2:], transform.size
    if transform.train:
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    else:
        top, left = (height - size) // 2, (width - size) // 2
    clip = clip[..., top : top + size, left : left + size]
    if transform.train and transform.augment:
        uniform = torch.rand(4, generator=generator, dtype=torch.float64)
        angle = math.radians((2 * float(uniform[0]) - 1) * transform.max_rotation)
        low, high = transform.scale_range
        scale = low + float(uniform[1]) * (high - low)
        shift_x, shift_y = ((2 * float(u) - 1) * transform.max_translation * 2 for u in uniform[2:])
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[cos, -sin, shift_x], [sin, cos, shift_y]], dtype=clip.dtype)
        grid = F.affine_grid(theta.expand(clip.shape[0], 2, 3), list(clip.shape), align_corners=False)
        clip = F.grid_sample(
            clip, grid, mode="bilinear", padding_mode=transform.padding_mode, align_corners=False
        )
    mean = torch.tensor(transform.mean).view(1, 3, 1, 1)
    std = torch.tensor(transform.std).view(1, 3, 1, 1)
    return (clip / 255.0 - mean) / std


def padded_uint8_batch(clips: list[np.ndarray], transform: VideoTransform) -> dict[str, torch.Tensor]:
    return pad_clips([transform.select_frames(clip) for clip in clips])


# --- the transform ---------------------------------------------------------------------------------


@pytest.mark.parametrize("train", [False, True])
def test_one_clip_computes_what_the_per_clip_transform_computed(train: bool) -> None:
    transform = VideoTransform(train=train, **SETTINGS)
    clip = random_clip(9)
    expected = reference_transform(transform, clip, torch.Generator().manual_seed(4))
    assert torch.allclose(transform(clip, seed=4), expected, **TOLERANCE)


@pytest.mark.parametrize("train", [False, True])
def test_a_padded_batch_equals_the_clips_one_by_one_with_the_same_draws(train: bool) -> None:
    transform = VideoTransform(train=train, max_rotation=20.0, **SETTINGS)
    clips = [random_clip(length, seed=length) for length in (5, 9, 7)]
    batch = padded_uint8_batch(clips, transform)
    out = transform.apply(
        batch["pixel_values"], batch["attention_mask"], generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (3, 9, 3, 16, 16) and out.dtype == torch.float32
    one_by_one = torch.Generator().manual_seed(1)  # the draws continue from clip to clip
    for row, clip in enumerate(clips):
        expected = reference_transform(transform, clip, one_by_one)
        assert torch.allclose(out[row, : len(clip)], expected, **TOLERANCE)
        assert not out[row, len(clip) :].any(), "padded frames stay zero"


def test_training_draws_differ_between_clips_and_evaluation_draws_nothing() -> None:
    clip = random_clip(6)
    batch = padded_uint8_batch([clip, clip], VideoTransform(**SETTINGS))
    trained = VideoTransform(train=True, **SETTINGS).apply(batch["pixel_values"], generator=torch.Generator())
    assert not torch.allclose(trained[0], trained[1])
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    evaluated = VideoTransform(**SETTINGS).apply(batch["pixel_values"], generator=generator)
    assert torch.equal(evaluated[0], evaluated[1]) and torch.equal(generator.get_state(), state)


def test_strides_of_the_input_do_not_change_the_result() -> None:
    transform = VideoTransform(**SETTINGS)
    batch = padded_uint8_batch([random_clip(6), random_clip(4, seed=1)], transform)
    pixels = batch["pixel_values"]
    assert not pixels.is_contiguous(), "the collated batch keeps the decoder's (H, W, 3) layout"
    assert torch.equal(
        transform.apply(pixels, batch["attention_mask"]),
        transform.apply(pixels.contiguous(), batch["attention_mask"]),
    )


def test_uint8_batches_are_4x_smaller_than_the_float_batches() -> None:
    clip = random_clip(8, height=26, width=26)
    uint8 = pad_clips([VideoTransform(**SETTINGS).select_frames(clip)])["pixel_values"]
    floats = pad_clips([VideoTransform(size=26, resize=None)(clip)])["pixel_values"]
    assert uint8.shape == floats.shape
    assert uint8.untyped_storage().nbytes() * 4 == floats.untyped_storage().nbytes()


def test_bad_batches_are_refused_with_what_was_expected() -> None:
    transform = VideoTransform(size=16, resize=None)
    with pytest.raises(ValueError, match=r"\(batch, frames, 3, height, width\)"):
        transform.apply(torch.zeros(2, 4, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="smaller than the crop size"):
        transform.apply(torch.zeros(1, 4, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_transform_runs_on_the_accelerator_with_the_same_result() -> None:
    transform = VideoTransform(train=True, **SETTINGS)
    batch = padded_uint8_batch([random_clip(6), random_clip(4, seed=1)], transform)
    on_cpu = transform.apply(
        batch["pixel_values"], batch["attention_mask"], generator=torch.Generator().manual_seed(2)
    )
    on_gpu = transform.apply(
        batch["pixel_values"].cuda(),
        batch["attention_mask"].cuda(),
        generator=torch.Generator().manual_seed(2),
    )
    assert on_gpu.is_cuda
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)


# --- collator and model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


@pytest.fixture(scope="module")
def model(tokenizer) -> SclSltForSignTranslation:
    torch.manual_seed(0)
    config = config_for_tokenizer("tiny", tokenizer, "en_XX", video_preprocessing=dict(SETTINGS))
    return SclSltForSignTranslation(config).eval()


def examples(count: int = 3) -> list[dict]:
    return [
        {"frames": [Image.fromarray(frame) for frame in random_clip(4 + 2 * i, seed=i)], "text": SENTENCES[i]}
        for i in range(count)
    ]


def test_the_collator_hands_out_uint8_clips_and_the_same_text_inputs(tokenizer) -> None:
    transform = VideoTransform(**SETTINGS)
    floats = SignTranslationCollator(tokenizer, transform)(examples())
    uint8 = SignTranslationCollator(tokenizer, transform, transform_in_model=True)(examples())
    assert uint8["pixel_values"].dtype == torch.uint8 and uint8["pixel_values"].shape == (3, 8, 3, 30, 26)
    assert set(uint8) == set(floats)
    for key in ("attention_mask", "labels", "text_input_ids", "text_attention_mask"):
        assert torch.equal(uint8[key], floats[key]), key
    applied = transform.apply(uint8["pixel_values"], uint8["attention_mask"])
    assert torch.allclose(applied, floats["pixel_values"], **TOLERANCE)


def test_clips_of_different_frame_sizes_fall_back_to_the_loader_transform(tokenizer) -> None:
    batch = examples(2)
    batch[1]["frames"] = [frame.resize((40, 32)) for frame in batch[1]["frames"]]
    transform = VideoTransform(**SETTINGS)
    fallback = SignTranslationCollator(tokenizer, transform, transform_in_model=True)(batch)
    expected = SignTranslationCollator(tokenizer, transform)(batch)
    assert fallback["pixel_values"].dtype == torch.float32
    assert torch.allclose(fallback["pixel_values"], expected["pixel_values"], **TOLERANCE)


def test_the_model_transforms_uint8_pixel_values_as_the_loader_did(model, tokenizer) -> None:
    transform = VideoTransform(**SETTINGS)
    floats = SignTranslationCollator(tokenizer, transform)(examples())
    uint8 = SignTranslationCollator(tokenizer, transform, transform_in_model=True)(examples())
    with torch.no_grad():
        expected = model(**floats)
        got = model(**uint8)
        assert torch.allclose(got.logits, expected.logits, atol=1e-4)
        assert torch.allclose(got.similarity_per_video, expected.similarity_per_video, atol=1e-4)
        video, _ = model.get_video_features(uint8["pixel_values"], uint8["attention_mask"])
        assert torch.allclose(
            video, model.get_video_features(floats["pixel_values"], floats["attention_mask"])[0], atol=1e-4
        )
        generated = model.generate(
            pixel_values=uint8["pixel_values"], attention_mask=uint8["attention_mask"], max_new_tokens=5
        )
        assert torch.equal(
            generated,
            model.generate(
                pixel_values=floats["pixel_values"], attention_mask=floats["attention_mask"], max_new_tokens=5
            ),
        )


def test_training_mode_draws_the_training_transform(model, tokenizer) -> None:
    batch = SignTranslationCollator(tokenizer, VideoTransform(**SETTINGS), transform_in_model=True)(
        examples()
    )
    pixels, mask = batch["pixel_values"], batch["attention_mask"]
    model.train()
    try:
        torch.manual_seed(3)
        got = model.video_encoder(pixels, mask).last_hidden_state
        torch.manual_seed(3)  # the global generator, as the loader's transform used it
        transformed = VideoTransform(train=True, **SETTINGS).apply(pixels, mask)
        expected = model.video_encoder(transformed, mask).last_hidden_state
    finally:
        model.eval()
    assert torch.allclose(got, expected, atol=1e-5)
    torch.manual_seed(3)
    assert torch.allclose(model_pixel_values(pixels, mask, SETTINGS, train=True), transformed)


def test_float_pixel_values_pass_through_unchanged() -> None:
    floats = torch.randn(1, 4, 3, 16, 16)
    assert model_pixel_values(floats, None, SETTINGS, train=True) is floats


# --- pipeline and recipe ---------------------------------------------------------------------------


def test_the_pipeline_preprocesses_with_the_model_side_transform(model, tokenizer) -> None:
    translate = SignLanguageTranslationPipeline(model=model, tokenizer=tokenizer, max_new_tokens=5)
    clip = random_clip(SETTINGS["max_frames"])
    (inputs,) = translate.preprocess(clip)  # one window
    assert inputs["pixel_values"].dtype == torch.uint8
    # 30 x 26 frames arrive shrunk to the resize's shorter side (20): the model then only crops.
    assert inputs["pixel_values"].shape == (1, SETTINGS["max_frames"], 3, 23, 20)
    clips = [clip, random_clip(8, height=40, width=40, seed=1)]  # two frame sizes: one float batch
    collated = pad_clips_in_time([next(translate.preprocess(c)) for c in clips], translate.video_transform)
    assert collated["pixel_values"].shape == (2, SETTINGS["max_frames"], 3, 16, 16)
    assert translate(clips, batch_size=2) == [translate(c) for c in clips]


def test_the_recipe_collators_leave_the_transform_to_the_model() -> None:
    config = RecipeConfig()
    collators = make_collators(config, train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel"), 4)
    assert all(collator.transform_in_model for collator in collators.values())
    settings = video_preprocessing(config)
    assert settings["augment"] is config.video.augment
    assert collators["train"].transform == VideoTransform(train=True, **settings)
    assert collators["eval"].transform == VideoTransform(train=False, **settings)
    config.video.transform_in_model = False  # the loaders transform (float clips), e.g. on a CPU
    collators = make_collators(config, collators["train"].tokenizer, 4)
    assert not any(collator.transform_in_model for collator in collators.values())
