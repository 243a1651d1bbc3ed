"""Batching corpus examples into model inputs.

Target convention (shared with the model): ``labels`` are the sentence's tokens followed by the
tokenizer's eos token — no bos and no language-code token, because the model starts decoding
from the target-language token itself. ``text_input_ids`` (the contrastive text branch) are the
same tokens, so the last real token of every row is eos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from modeling_scl_slt.video_processing import VideoTransform, pad_clips, uniform_frame_indices

__all__ = ["LABEL_PAD_ID", "MIN_FRAMES", "SignTranslationCollator", "pad_frame_features"]

LABEL_PAD_ID = -100  # ignored by the cross-entropy loss
MIN_FRAMES = 4  # the default model's temporal module downsamples ×4 (config.temporal_downsampling)


@dataclass
class SignTranslationCollator:
    """Collate corpus examples into a padded batch for the SCL-SLT model.

    Each example is a mapping with ``frames`` (PIL images or a (T, H, W, 3) uint8 array, passed
    through ``transform``), ``pixel_values`` (an already transformed (T, 3, H, W) float
    tensor) or ``features`` (the backbone's per-frame features (T, D), a frame-features corpus
    row: only ``transform.max_frames`` applies, by the same frame selection), and ``text`` (the
    target sentence; optional at inference — then no label keys are returned). ``name`` is used
    in error messages when present.

    With ``transform_in_model`` the collator only picks the frames (``transform.select_frames``)
    and returns them as uint8: the model resizes, crops, augments (in training mode) and
    normalises them batched on its own device (``modeling_scl_slt.video_processing``), with the
    same maths. Loader workers then do a fraction of the work and move 4× fewer bytes.

    Returns a dict of tensors:
        ``pixel_values`` (B, T_max, 3, H, W) float32, zero-padded in time; with
        ``transform_in_model`` (B, T_max, 3, H_frame, W_frame) uint8 (channels-last strides);
        or, for ``features``, ``frame_features`` (B, T_max, D) in the stored dtype, zero-padded;
        ``attention_mask`` (B, T_max) long, 1 for real frames;
        ``labels`` (B, L) long, tokens + eos, padded with -100;
        ``text_input_ids`` / ``text_attention_mask`` (B, L) long, the same tokens + eos padded with
        the tokenizer's pad id (only when ``include_text``).

    Args:
        tokenizer: any ``transformers`` tokenizer with an eos token (and a pad token when
            ``include_text``).
        transform: applied to ``frames``; defaults to an evaluation-mode :class:`VideoTransform`.
            With ``transform_in_model`` only its ``max_frames`` (frame selection) applies, unless
            a batch falls back to the full transform (below).
        max_target_length: the longest target in tokens, eos included; longer ones are cut and
            keep their final eos.
        include_text: also return the text branch's inputs.
        min_frames: clips shorter than this (after the transform) are refused; pass the model's
            ``config.temporal_downsampling`` (the default is that of the default model).
        transform_in_model: leave steps 2–5 of the transform to the model (uint8 output). The
            model uses its ``config.video_preprocessing``: give ``transform`` the same settings.
            A batch that cannot be one uint8 tensor (clips of different frame sizes, or examples
            with float ``pixel_values``) is transformed here instead, with ``transform``.
    """

    tokenizer: PreTrainedTokenizerBase
    transform: VideoTransform = field(default_factory=VideoTransform)
    max_target_length: int = 128
    include_text: bool = True
    min_frames: int = MIN_FRAMES
    transform_in_model: bool = False

    def __post_init__(self) -> None:
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token: targets must end with eos")
        if self.include_text and self.tokenizer.pad_token_id is None:
            raise ValueError(
                "the tokenizer has no pad token, needed to pad text_input_ids (include_text=True)"
            )
        if self.max_target_length < 2:
            raise ValueError(
                f"max_target_length must leave room for a token and eos, got {self.max_target_length}"
            )

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("cannot collate an empty list of examples")
        with_features = ["features" in example for example in examples]
        if any(with_features) and not all(with_features):
            raise ValueError(
                "some examples have frame 'features' and others do not: a batch is one or the other"
            )
        if all(with_features):
            batch = pad_frame_features(
                [self._frame_features(example, index) for index, example in enumerate(examples)]
            )
        else:
            clips = [self._pixel_values(example, index) for index, example in enumerate(examples)]
            if self.transform_in_model and not _stack_as_uint8(clips):
                clips = [
                    self.transform.apply(clip[None])[0] if clip.dtype == torch.uint8 else clip
                    for clip in clips
                ]
            batch = pad_clips(clips)
        texts = [example.get("text") for example in examples]
        if all(text is None for text in texts):
            return batch
        missing = [_sample_name(examples[i], i) for i, text in enumerate(texts) if not isinstance(text, str)]
        if missing:
            raise ValueError(
                f"some examples have a text and others do not: no str 'text' in {', '.join(missing)}"
            )
        token_ids = [self.target_token_ids(text) for text in texts]
        batch["labels"] = _pad_sequences(token_ids, LABEL_PAD_ID)[0]
        if self.include_text:
            batch["text_input_ids"], batch["text_attention_mask"] = _pad_sequences(
                token_ids, self.tokenizer.pad_token_id
            )
        return batch

    def target_token_ids(self, text: str) -> list[int]:
        """The sentence's tokens (no special tokens) + eos, cut to ``max_target_length``."""
        tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return [*tokens[: self.max_target_length - 1], self.tokenizer.eos_token_id]

    def _frame_features(self, example: Mapping[str, Any], index: int) -> torch.Tensor:
        """One clip's backbone features (T', D), the frames kept by ``transform.max_frames``
        (:func:`uniform_frame_indices`, as for pixels), in their stored dtype."""
        features = torch.as_tensor(np.asarray(example["features"]))
        if features.ndim != 2 or features.shape[0] < 1:
            raise ValueError(
                f"features of {_sample_name(example, index)} must have shape (T, D), "
                f"got {tuple(features.shape)}"
            )
        features = features[uniform_frame_indices(features.shape[0], self.transform.max_frames)]
        self._check_length(features.shape[0], example, index)
        return features

    def _check_length(self, num_frames: int, example: Mapping[str, Any], index: int) -> None:
        if num_frames < self.min_frames:
            raise ValueError(
                f"{_sample_name(example, index)} has {num_frames} frames; at least {self.min_frames} "
                f"are needed (the model's temporal module downsamples time ×{self.min_frames})"
            )

    def _pixel_values(self, example: Mapping[str, Any], index: int) -> torch.Tensor:
        """One clip (T, 3, H, W): transformed from ``frames`` (float; uint8 frames only selected with
        ``transform_in_model``) or taken from ``pixel_values`` (float)."""
        if "pixel_values" in example:
            clip = torch.as_tensor(example["pixel_values"], dtype=torch.float32)
            if clip.ndim != 4 or clip.shape[1] != 3:
                raise ValueError(
                    f"pixel_values of {_sample_name(example, index)} must have shape (T, 3, H, W), "
                    f"got {tuple(clip.shape)}"
                )
        elif "frames" in example and self.transform_in_model:
            clip = self.transform.select_frames(example["frames"])
        elif "frames" in example:
            clip = self.transform(example["frames"])
        else:
            raise KeyError(f"{_sample_name(example, index)} has neither 'frames' nor 'pixel_values'")
        self._check_length(clip.shape[0], example, index)
        return clip


def pad_frame_features(clips: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Zero-pad per-frame features (T_i, D) in time: ``frame_features`` (B, T_max, D) of the clips'
    dtype and ``attention_mask`` (B, T_max) long, 1 = real frame."""
    dims = {clip.shape[1] for clip in clips}
    if len(dims) > 1:
        raise ValueError(f"all frame features of a batch need one size D, got {sorted(dims)}")
    max_frames = max(clip.shape[0] for clip in clips)
    features = clips[0].new_zeros((len(clips), max_frames, clips[0].shape[1]))
    attention_mask = torch.zeros((len(clips), max_frames), dtype=torch.long)
    for row, clip in enumerate(clips):
        features[row, : clip.shape[0]] = clip
        attention_mask[row, : clip.shape[0]] = 1
    return {"frame_features": features, "attention_mask": attention_mask}


def _stack_as_uint8(clips: Sequence[torch.Tensor]) -> bool:
    """Whether the clips can be padded into one uint8 batch: all uint8, frames of one size."""
    return all(clip.dtype == torch.uint8 for clip in clips) and len({clip.shape[1:] for clip in clips}) == 1


def _pad_sequences(sequences: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token lists → ids (B, L_max) and mask (B, L_max), both long."""
    max_length = max(len(sequence) for sequence in sequences)
    ids = torch.full((len(sequences), max_length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), max_length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[row, : len(sequence)] = 1
    return ids, mask


def _sample_name(example: Mapping[str, Any], index: int) -> str:
    name = example.get("name")
    return f"sample {name!r}" if name is not None else f"example {index} of the batch"
