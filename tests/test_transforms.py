"""Tests of the shared video transform: subsampling, resize/crop, augmentation, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_scl_slt import IMAGENET_MEAN, IMAGENET_STD, VideoTransform, uniform_frame_indices


def random_clip(num_frames: int = 6, height: int = 40, width: int = 30, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def frame_index_clip(num_frames: int, side: int = 8) -> np.ndarray:
    """Frame t is filled with the value t, so the output tells which frames were kept."""
    return np.broadcast_to(
        np.arange(num_frames, dtype=np.uint8)[:, None, None, None], (num_frames, side, side, 3)
    ).copy()


def test_uniform_frame_indices_keeps_short_clips_whole() -> None:
    assert uniform_frame_indices(5, 300).tolist() == [0, 1, 2, 3, 4]


def test_uniform_frame_indices_takes_bin_middles_beyond_max_frames() -> None:
    assert uniform_frame_indices(10, 4).tolist() == [1, 3, 6, 8]  # floor((i + 0.5) * 2.5)
    indices = uniform_frame_indices(1000, 300)
    assert len(indices) == 300
    assert bool((indices[1:] > indices[:-1]).all())
    assert (int(indices[0]), int(indices[-1])) == (1, 998)  # floor(0.5 * 10 / 3), floor(299.5 * 10 / 3)


def test_uniform_frame_indices_rejects_empty_clip() -> None:
    with pytest.raises(ValueError, match="num_frames=0"):
        uniform_frame_indices(0, 4)


def test_subsampling_keeps_the_documented_frames() -> None:
    transform = VideoTransform(size=8, resize=None, max_frames=4, normalize=False)
    out = transform(frame_index_clip(10))
    assert out.shape == (4, 3, 8, 8)
    kept = (out[:, 0, 0, 0] * 255).round().long().tolist()
    assert kept == [1, 3, 6, 8]


def test_output_shape_and_dtype_after_resize_and_crop() -> None:
    out = VideoTransform(size=16, resize=20)(random_clip(num_frames=7, height=40, width=30))
    assert out.shape == (7, 3, 16, 16)
    assert out.dtype == torch.float32


def test_pil_frames_and_array_give_the_same_result() -> None:
    clip = random_clip()
    transform = VideoTransform(size=16, resize=20)
    from_pil = transform([Image.fromarray(frame) for frame in clip])
    assert torch.equal(from_pil, transform(clip))


def test_centre_crop_is_deterministic_and_centred() -> None:
    clip = random_clip(height=12, width=10)
    transform = VideoTransform(size=6, resize=None, normalize=False)
    first, second = transform(clip), transform(clip)
    assert torch.equal(first, second)
    expected = torch.from_numpy(clip[:, 3:9, 2:8]).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(first, expected)


def test_random_crop_follows_the_seed() -> None:
    clip = random_clip(height=24, width=24)
    transform = VideoTransform(size=8, resize=None, train=True, augment=False)
    assert torch.equal(transform(clip, seed=3), transform(clip, seed=3))
    crops = {transform(clip, seed=seed).sum().item() for seed in range(8)}
    assert len(crops) > 1


def test_generator_argument_drives_the_randomness() -> None:
    clip = random_clip(height=24, width=24)
    transform = VideoTransform(size=16, resize=None, train=True)
    first = transform(clip, generator=torch.Generator().manual_seed(5))
    second = transform(clip, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


def test_augmentation_is_the_same_for_every_frame() -> None:
    # An off-centre square makes any rotation, zoom or shift visible.
    frame = np.full((32, 32, 3), 30, dtype=np.uint8)
    frame[4:14, 18:28] = 220
    clip = np.repeat(frame[None], 5, axis=0)
    transform = VideoTransform(size=32, resize=None, train=True, max_rotation=30.0, max_translation=0.2)
    out = transform(clip, seed=0)
    assert all(torch.equal(out[0], out[t]) for t in range(1, 5))
    untouched = VideoTransform(size=32, resize=None)(clip)
    assert not torch.allclose(out[0], untouched[0], atol=1e-3)


def test_augmentation_is_off_in_evaluation() -> None:
    clip = random_clip(height=16, width=16)
    transform = VideoTransform(size=16, resize=None, train=False, max_rotation=45.0)
    assert torch.equal(transform(clip, seed=0), transform(clip, seed=1))


def test_imagenet_normalisation_values() -> None:
    clip = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    clip[1] = 255
    out = VideoTransform(size=8, resize=None)(clip)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], -mean / std)
    assert torch.allclose(out[1, :, 0, 0], (1 - mean) / std)


def test_resize_keeps_aspect_ratio_on_the_shorter_side() -> None:
    transform = VideoTransform(size=10, resize=10, normalize=False)
    clip = np.zeros((4, 40, 20, 3), dtype=np.uint8)
    clip[:, :20] = 255  # top half white: after resize to 20x10 the centre crop rows 5..14 straddle it
    out = transform(clip)
    assert out.shape == (4, 3, 10, 10)
    assert out[0, 0, 0, 5].item() == pytest.approx(1.0, abs=1e-3)
    assert out[0, 0, -1, 5].item() == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 32, "resize": 16}, "resize"),
        ({"max_frames": 0}, "max_frames"),
        ({"scale_range": (1.2, 1.0)}, "scale"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VideoTransform(**kwargs)


def test_bad_inputs_name_what_was_expected() -> None:
    transform = VideoTransform(size=8, resize=None)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        transform(np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        transform(np.zeros((4, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="smaller than the crop size"):
        transform(np.zeros((4, 6, 6, 3), dtype=np.uint8))
