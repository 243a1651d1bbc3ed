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

Step 1 is :meth:`VideoTransform.select_frames`, the share of a data loader's workers: it only
picks frames and stacks them as uint8. Steps 2–5 are :meth:`VideoTransform.apply`, one batched
computation over padded uint8 clips on whatever device they are on. Calling the transform on one
clip runs both, so the per-clip and the batched transform are the same code. The model accepts
uint8 ``pixel_values`` and applies steps 2–5 itself (:func:`model_pixel_values`, with its
``config.video_preprocessing``; training mode draws crops and augmentation): loaders then move
uint8 clips, 4× smaller than floats, and training, evaluation, retrieval and the pipeline all
preprocess through this one function.

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

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VideoTransform",
    "clip_to_tensor",
    "model_pixel_values",
    "pad_clips",
    "transform_from_settings",
    "uniform_frame_indices",
]

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

        The same as :meth:`select_frames` then :meth:`apply` on a batch of one clip. ``seed``
        builds a fresh ``torch.Generator`` when no ``generator`` is given.
        """
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        return self.apply(self.select_frames(frames)[None], generator=generator)[0]

    def select_frames(self, frames: Clip) -> torch.Tensor:
        """Step 1 only, the loader's share: the kept frames as uint8 (T', 3, H, W), no pixel maths.

        The result is a view of a (T', H, W, 3) array (channels-last strides), as decoders give it.
        """
        return clip_to_tensor(frames, uniform_frame_indices(_num_frames(frames), self.max_frames))

    def apply(
        self,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Steps 2–5 on a batch of padded clips, on their device: uint8 → float32 (B, T, 3, size, size).

        ``pixel_values``: (B, T, 3, H, W) uint8 (values 0..255; any strides); ``attention_mask``:
        (B, T), 1 for real frames (``None``: all real). Only real frames are computed; padded ones
        come out as zeros, as :func:`pad_clips` pads transformed clips. Random draws (training)
        are made per clip in batch order, crop position then augmentation, from ``generator`` (a
        CPU generator, else torch's global one): a batch gets exactly the draws that transforming
        its clips one after another with the same generator gets. The pixel maths runs clip by
        clip, which bounds the transient memory to one clip's resized frames.
        """
        if pixel_values.dim() != 5 or pixel_values.shape[2] != 3:
            raise ValueError(
                f"clips must have shape (batch, frames, 3, height, width), got {tuple(pixel_values.shape)}"
            )
        batch, num_frames, _, height, width = pixel_values.shape
        if attention_mask is None:
            mask = torch.ones(batch, num_frames, dtype=torch.bool, device=pixel_values.device)
        else:
            mask = attention_mask.to(device=pixel_values.device, dtype=torch.bool)
        self.check_frame_size(height, width)
        crops, matrices = self._draws(batch, *resized_size(height, width, self.resize), generator)
        if batch == 1 and bool(mask.all()):  # one unpadded clip (the pipeline's): no batch copy
            return self._transform_frames(
                pixel_values[0], crops[0], None if matrices is None else matrices[0]
            )[None]
        out = torch.zeros(
            batch, num_frames, 3, self.size, self.size, dtype=torch.float32, device=pixel_values.device
        )
        for row in range(batch):
            matrix = None if matrices is None else matrices[row]
            out[row][mask[row]] = self._transform_frames(pixel_values[row][mask[row]], crops[row], matrix)
        return out

    def _transform_frames(
        self, frames: torch.Tensor, crop: tuple[int, int], matrix: torch.Tensor | None
    ) -> torch.Tensor:
        """Steps 2–5 for the frames of one clip: uint8 (t, 3, H, W) → float32 (t, 3, size, size)."""
        top, left = crop
        if resized_size(*frames.shape[-2:], self.resize) == tuple(frames.shape[-2:]):
            # No resize (e.g. frames the pipeline shrank on arrival): crop before converting, so
            # that only the crop is copied as floats. The same numbers as converting first.
            crop_pixels = frames[..., top : top + self.size, left : left + self.size].contiguous()
            frames = crop_pixels.to(torch.float32, copy=True)  # a copy even of float input
        else:
            # Contiguous before float: interpolation kernels are slower on channels-last floats.
            frames = resize_shorter_side(frames.contiguous().float(), self.resize)  # values 0..255
            frames = frames[..., top : top + self.size, left : left + self.size]
        if matrix is not None:
            frames = warp(frames, matrix.to(frames.device), self.padding_mode)
        # frames is this function's own tensor (a copy, a resize or a warp): scaled and normalised in
        # place, without clip-sized temporaries.
        frames.div_(255.0)
        if self.normalize:
            mean = torch.tensor(self.mean, device=frames.device).view(1, 3, 1, 1)
            std = torch.tensor(self.std, device=frames.device).view(1, 3, 1, 1)
            frames.sub_(mean).div_(std)
        return frames

    def check_frame_size(self, height: int, width: int) -> None:
        """Refuse frames of ``height`` × ``width`` pixels that would be smaller than the crop."""
        if self.resize is None and (height < self.size or width < self.size):
            raise ValueError(
                f"frames of {width}x{height} pixels are smaller than the crop size {self.size}; "
                "set resize to at least the crop size"
            )

    def _draws(
        self, batch: int, height: int, width: int, generator: torch.Generator | None
    ) -> tuple[list[tuple[int, int]], torch.Tensor | None]:
        """Per clip: the crop's (top, left) in the resized frames and, when augmenting, the affine
        matrices (batch, 2, 3)."""
        if not self.train:
            return [((height - self.size) // 2, (width - self.size) // 2)] * batch, None
        crops, matrices = [], []
        for _ in range(batch):  # per clip: crop position, then augmentation (the order of one clip)
            top = int(torch.randint(0, height - self.size + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - self.size + 1, (1,), generator=generator))
            crops.append((top, left))
            if self.augment:
                matrices.append(self._augmentation_matrix(generator))
        return crops, torch.stack(matrices) if matrices else None

    def _augmentation_matrix(self, generator: torch.Generator | None) -> torch.Tensor:
        """One random rotation, zoom and shift as an ``affine_grid`` matrix (2, 3) float32."""
        uniform = torch.rand(4, generator=generator, dtype=torch.float64)  # angle, scale, dx, dy in [0, 1)
        angle = math.radians((2 * float(uniform[0]) - 1) * self.max_rotation)
        low, high = self.scale_range
        scale = low + float(uniform[1]) * (high - low)
        # affine_grid works in [-1, 1] coordinates: a shift of f × the side is 2f there.
        shift_x, shift_y = ((2 * float(u) - 1) * self.max_translation * 2 for u in uniform[2:])
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # Maps output coordinates to input coordinates: zooming in by s samples a 1/s region.
        return torch.tensor([[cos, -sin, shift_x], [sin, cos, shift_y]], dtype=torch.float32)


def resized_size(height: int, width: int, resize: int | None) -> tuple[int, int]:
    """The frame size after :func:`resize_shorter_side`."""
    if resize is None or min(height, width) == resize:
        return height, width
    scale = resize / min(height, width)
    return max(resize, round(height * scale)), max(resize, round(width * scale))


def resize_shorter_side(frames: torch.Tensor, resize: int | None) -> torch.Tensor:
    """Shorter side → ``resize`` (bilinear, antialiased, aspect ratio kept). (N, 3, H, W) → (N, 3, H', W')."""
    new_size = resized_size(*frames.shape[-2:], resize)
    if new_size == tuple(frames.shape[-2:]):
        return frames
    # Antialiasing matters when shrinking (e.g. 512 → 256); clamping keeps values in range.
    resized = F.interpolate(frames, size=new_size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0.0, 255.0)


def warp(frames: torch.Tensor, matrix: torch.Tensor, padding_mode: str) -> torch.Tensor:
    """Apply one ``affine_grid`` matrix (2, 3) to every frame: (n, 3, S, S) → (n, 3, S, S)."""
    theta = matrix.to(frames.dtype).expand(frames.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def transform_from_settings(settings: dict[str, Any] | None, *, train: bool) -> VideoTransform:
    """``VideoTransform(train=train, **settings)`` for ``settings = config.video_preprocessing``."""
    # JSON turns the mean/std tuples into lists.
    settings = {key: tuple(v) if isinstance(v, list) else v for key, v in (settings or {}).items()}
    settings.pop("train", None)
    try:
        return VideoTransform(train=train, **settings)
    except TypeError as error:
        raise ValueError(
            f"config.video_preprocessing {settings} does not fit VideoTransform: {error}"
        ) from None


def model_pixel_values(
    pixel_values: torch.Tensor,
    attention_mask: torch.Tensor | None,
    settings: dict[str, Any] | None,
    *,
    train: bool,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """What the model's backbone reads: uint8 clips transformed on their device, floats unchanged.

    ``pixel_values`` (B, T, 3, H, W): uint8 clips go through :meth:`VideoTransform.apply` with
    ``settings`` (``config.video_preprocessing``; training draws crops and augmentation when
    ``train``) and come out as ``dtype`` (B, T, 3, size, size); other dtypes are taken as already
    transformed and returned as they are.
    """
    if pixel_values.dtype != torch.uint8:
        return pixel_values
    transform = transform_from_settings(settings, train=train)
    return transform.apply(pixel_values, attention_mask).to(dtype)


def pad_clips(clips: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero-pad clips (T_i, 3, H, W) in time (float clips, or uint8 ones for the device transform).

    Returns ``pixel_values`` (B, T_max, 3, H, W) of the clips' dtype (uint8: channels-last
    strides) and ``attention_mask`` (B, T_max) long, 1 = real frame.
    """
    frame_shapes = {tuple(clip.shape[1:]) for clip in clips}
    if len(frame_shapes) > 1:
        raise ValueError(
            f"all clips of a batch need the same frame shape (3, H, W), got {sorted(frame_shapes)}"
        )
    dtypes = {clip.dtype for clip in clips}
    if len(dtypes) > 1:
        raise ValueError(f"all clips of a batch need the same dtype, got {sorted(map(str, dtypes))}")
    max_frames = max(clip.shape[0] for clip in clips)
    channels, height, width = clips[0].shape[1:]
    attention_mask = torch.zeros((len(clips), max_frames), dtype=torch.long)
    if clips[0].dtype == torch.uint8:
        # Decoded frames are (H, W, 3) in memory: copying them as they lie is a plain memcpy, while
        # rearranging them to (3, H, W) costs more than decoding. The batch is a (B, T, 3, H, W)
        # view of a (B, T, H, W, 3) buffer; the device transform makes it contiguous.
        buffer = clips[0].new_zeros((len(clips), max_frames, height, width, channels))
        for row, clip in enumerate(clips):
            buffer[row, : clip.shape[0]] = clip.permute(0, 2, 3, 1)
            attention_mask[row, : clip.shape[0]] = 1
        return {"pixel_values": buffer.permute(0, 1, 4, 2, 3), "attention_mask": attention_mask}
    pixel_values = clips[0].new_zeros((len(clips), max_frames, channels, height, width))
    for row, clip in enumerate(clips):
        pixel_values[row, : clip.shape[0]] = clip
        attention_mask[row, : clip.shape[0]] = 1
    return {"pixel_values": pixel_values, "attention_mask": attention_mask}
