"""The video transform shared by training, evaluation and the ``sign-language-translation`` pipeline.

This file travels to the Hub with the model (the pipeline uses it): it imports only stdlib,
numpy, torch and transformers; PIL images are accepted but PIL is imported only when present.

A clip goes through, in order:

1. **Temporal subsampling** to at most ``max_frames`` frames. Clips that are short enough are
   kept whole; longer ones keep frame ``floor((i + 0.5) * T / max_frames)`` for
   ``i = 0 … max_frames - 1`` — the middle frame of ``max_frames`` equal bins. The choice is
   deterministic (the same in training and evaluation), spreads evenly over the clip and
   never repeats a frame (see :func:`uniform_frame_indices`).
2. **Resize** the shorter side to ``resize`` pixels (bilinear, antialiased, aspect ratio
   kept), the whole clip in one tensor operation.
3. **Crop** a ``size`` × ``size`` square: random position in training, centre otherwise; one
   position for the whole clip.
4. **Clip-consistent augmentation** (training only, ``augment=True``): one random rotation,
   scale and translation drawn per clip and applied to every frame with ``affine_grid`` /
   ``grid_sample``, so motion between frames is preserved.
5. **ImageNet normalisation**: ``(x / 255 - mean) / std`` per channel.

Randomness comes from the ``generator`` argument when one is given (or from ``seed``), else
from torch's global generator, which ``transformers.set_seed`` and DataLoader workers seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "VideoTransform", "clip_to_tensor", "uniform_frame_indices"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# PIL images are recognised without importing PIL here: this file travels to the Hub, where
# only torch, transformers and numpy can be assumed.
Clip = Sequence[Any] | np.ndarray | torch.Tensor


def uniform_frame_indices(num_frames: int, max_frames: int) -> torch.Tensor:
    """Indices of the frames kept from a clip of ``num_frames``: all, or ``max_frames`` evenly spread.

    Beyond ``max_frames``, index ``i`` is ``floor((i + 0.5) * num_frames / max_frames)``, the
    middle frame of the i-th of ``max_frames`` equal bins. Returns a strictly increasing long
    tensor of shape (min(num_frames, max_frames),).
    """
    if num_frames < 1:
        raise ValueError(f"a clip needs at least one frame, got num_frames={num_frames}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if num_frames <= max_frames:
        return torch.arange(num_frames)
    bin_centres = (torch.arange(max_frames, dtype=torch.float64) + 0.5) * num_frames / max_frames
    return bin_centres.floor().long()


def clip_to_tensor(frames: Clip, indices: torch.Tensor | None = None) -> torch.Tensor:
    """Stack a clip as a uint8 tensor (T, 3, H, W), keeping only ``indices`` when given.

    ``frames``: a sequence of PIL images (any mode; converted to RGB), or a uint8 array or tensor
    of shape (T, H, W, 3). Frames are selected before conversion so skipped frames cost nothing.
    """
    if isinstance(frames, np.ndarray | torch.Tensor):
        array = torch.as_tensor(frames)
        if array.ndim != 4 or array.shape[-1] != 3:
            raise ValueError(f"a video array must have shape (T, H, W, 3), got {tuple(array.shape)}")
        if array.dtype != torch.uint8:
            raise ValueError(f"a video array must hold uint8 pixel values, got dtype {array.dtype}")
        if indices is not None:
            array = array[indices]
        return array.permute(0, 3, 1, 2)
    if not isinstance(frames, Sequence) or not all(_is_pil_image(frame) for frame in frames):
        raise TypeError(
            "frames must be a list of PIL images or a uint8 array of shape (T, H, W, 3), "
            f"got {type(frames).__name__}"
        )
    chosen = [frames[i] for i in indices.tolist()] if indices is not None else list(frames)
    sizes = {frame.size for frame in chosen}
    if len(sizes) > 1:
        raise ValueError(f"all frames of a clip must have the same size, got sizes {sorted(sizes)}")
    array = np.stack([np.asarray(frame.convert("RGB")) for frame in chosen])  # (T, H, W, 3)
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def _is_pil_image(value: Any) -> bool:
    """Whether ``value`` is a PIL image (False when PIL is not installed)."""
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(value, Image.Image)


def _num_frames(frames: Clip) -> int:
    return int(frames.shape[0]) if isinstance(frames, np.ndarray | torch.Tensor) else len(frames)


@dataclass
class VideoTransform:
    """Clip → normalised model input: (T, H, W, 3) uint8 or PIL frames → (T', 3, size, size) float32.

    Args:
        size: side of the square crop, in pixels.
        resize: the shorter side is resized to this many pixels before cropping; ``None`` skips
            resizing (the frames must then be at least ``size`` on each side).
        max_frames: clips longer than this are uniformly subsampled to it (:func:`uniform_frame_indices`).
        train: random crop and augmentation when True; centre crop and no augmentation otherwise.
        augment: apply the clip-consistent random affine augmentation in training.
        max_rotation: largest rotation, in degrees (drawn uniformly in ±max_rotation).
        scale_range: zoom factor range (> 1 zooms in), drawn uniformly.
        max_translation: largest shift along each axis, as a fraction of the crop side.
        padding_mode: how ``grid_sample`` fills pixels that come from outside the frame.
        mean, std: per-channel normalisation of pixel values in [0, 1]; ``normalize=False`` skips it.
    """

    size: int = 224
    resize: int | None = 256
    max_frames: int = 300
    train: bool = False
    augment: bool = True
    max_rotation: float = 10.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_translation: float = 0.1
    padding_mode: Literal["zeros", "border", "reflection"] = "border"
    normalize: bool = True
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {self.size}")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"resize ({self.resize}) must be at least the crop size ({self.size})")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {self.max_frames}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")

    def __call__(
        self, frames: Clip, *, generator: torch.Generator | None = None, seed: int | None = None
    ) -> torch.Tensor:
        """Transform one clip. Returns float32 (min(T, max_frames), 3, size, size).

        ``seed`` builds a fresh ``torch.Generator`` when no ``generator`` is given.
        """
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        indices = uniform_frame_indices(_num_frames(frames), self.max_frames)
        clip = clip_to_tensor(frames, indices).float()  # (T, 3, H, W), values 0..255
        clip = self._resize(clip)
        clip = self._crop(clip, generator)  # (T, 3, size, size)
        if self.train and self.augment:
            clip = self._augment(clip, generator)
        clip = clip / 255.0
        if self.normalize:
            mean = torch.tensor(self.mean).view(1, 3, 1, 1)
            std = torch.tensor(self.std).view(1, 3, 1, 1)
            clip = (clip - mean) / std
        return clip.contiguous()

    def _resize(self, clip: torch.Tensor) -> torch.Tensor:
        """Shorter side → ``resize``, aspect ratio kept. (T, 3, H, W) → (T, 3, H', W')."""
        height, width = clip.shape[-2:]
        if self.resize is None or min(height, width) == self.resize:
            return clip
        scale = self.resize / min(height, width)
        new_size = (max(self.resize, round(height * scale)), max(self.resize, round(width * scale)))
        # Antialiasing matters when shrinking (e.g. 512 → 256); rounding keeps values in range.
        resized = F.interpolate(clip, size=new_size, mode="bilinear", align_corners=False, antialias=True)
        return resized.clamp(0.0, 255.0)

    def _crop(self, clip: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A ``size`` square, random in training, centred otherwise. (T, 3, H, W) → (T, 3, size, size)."""
        height, width = clip.shape[-2:]
        if height < self.size or width < self.size:
            raise ValueError(
                f"frames of {width}x{height} pixels are smaller than the crop size {self.size}; "
                "set resize to at least the crop size"
            )
        if self.train:
            top = int(torch.randint(0, height - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.size + 1, (1,), generator=generator))
        else:
            top, left = (height - self.size) // 2, (width - self.size) // 2
        return clip[..., top : top + self.size, left : left + self.size]

    def _augment(self, clip: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """One random rotation, zoom and shift for the whole clip. (T, 3, S, S) → (T, 3, S, S)."""
        uniform = torch.rand(4, generator=generator, dtype=torch.float64)  # angle, scale, dx, dy in [0, 1)
        angle = math.radians((2 * float(uniform[0]) - 1) * self.max_rotation)
        low, high = self.scale_range
        scale = low + float(uniform[1]) * (high - low)
        # affine_grid works in [-1, 1] coordinates: a shift of f × the side is 2f there.
        shift_x, shift_y = ((2 * float(u) - 1) * self.max_translation * 2 for u in uniform[2:])
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # Maps output coordinates to input coordinates: zooming in by s samples a 1/s region.
        theta = torch.tensor([[cos, -sin, shift_x], [sin, cos, shift_y]], dtype=clip.dtype)
        grid = F.affine_grid(theta.expand(clip.shape[0], 2, 3), list(clip.shape), align_corners=False)
        return F.grid_sample(clip, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)


def pad_clips(clips: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero-pad clips (T_i, 3, H, W) in time.

    Returns ``pixel_values`` (B, T_max, 3, H, W) and ``attention_mask`` (B, T_max) long, 1 = real frame.
    """
    frame_shapes = {tuple(clip.shape[1:]) for clip in clips}
    if len(frame_shapes) > 1:
        raise ValueError(
            f"all clips of a batch need the same frame shape (3, H, W), got {sorted(frame_shapes)}"
        )
    max_frames = max(clip.shape[0] for clip in clips)
    pixel_values = clips[0].new_zeros((len(clips), max_frames, *clips[0].shape[1:]))
    attention_mask = torch.zeros((len(clips), max_frames), dtype=torch.long)
    for row, clip in enumerate(clips):
        pixel_values[row, : clip.shape[0]] = clip
        attention_mask[row, : clip.shape[0]] = 1
    return {"pixel_values": pixel_values, "attention_mask": attention_mask}
