"""The video encoder of SCL-SLT: frames → ResNet → temporal convolutions → mBART encoder.

This file travels to the Hub with the weights (``trust_remote_code``): it imports only
stdlib, torch, transformers and its sibling files, through ``from .x import y``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.mbart.modeling_mbart import MBartEncoder
from transformers.models.resnet.modeling_resnet import ResNetModel

from .configuration_scl_slt import SclSltConfig
from .learned_parameters_scl_slt import ClsToken
from .video_processing import model_pixel_values


@dataclass
class SclSltEncoderOutput(BaseModelOutput):
    """Output of the video encoder.

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_tokens, d_model)`):
            Visual tokens after the visual encoder. ``num_tokens = num_frames // 4`` (``+ 1`` with
            a [CLS] token, which sits at position 0).
        attention_mask (`torch.LongTensor` of shape `(batch_size, num_tokens)`):
            1 for tokens made of real frames only, 0 for padding.
        hidden_states, attentions: as in `BaseModelOutput`, when requested.
    """

    attention_mask: torch.LongTensor | None = None


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over ``(B, C, T)`` whose training statistics use real time steps only.

    Padding therefore changes neither the normalisation of real steps nor the running
    statistics. In eval mode it is a plain ``BatchNorm1d`` (per-position, padding-independent).
    """

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or mask is None:
            return super().forward(hidden)
        mask = mask.bool()
        steps = hidden.transpose(1, 2)  # (B, T, C)
        real = steps[mask]  # (n_real, C)
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        normed = F.batch_norm(
            real, self.running_mean, self.running_var, self.weight, self.bias, True, momentum, self.eps
        )
        out = steps.new_zeros(steps.shape)
        out[mask] = normed
        return out.transpose(1, 2)


class TemporalBlock(nn.Module):
    """Conv1d (same length) + BatchNorm + ReLU + MaxPool1d(2). ``(B, C_in, T) → (B, C_out, T // 2)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = MaskedBatchNorm1d(out_channels)
        self.pool = nn.MaxPool1d(2)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``hidden`` (B, C_in, T) with zeros at padded steps, ``mask`` (B, T) bool, real steps first."""
        hidden = self.pool(F.relu(self.norm(self.conv(hidden), mask)))  # (B, C_out, T // 2)
        pooled_len = mask.shape[1] // 2
        # A pooled step is real iff both of its frames are: lengths become floor(L / 2) exactly.
        mask = mask[:, : 2 * pooled_len].reshape(mask.shape[0], pooled_len, 2).all(dim=-1)
        # Zero padded steps so that the next convolution sees what a lone clip's zero padding gives.
        return hidden * mask.unsqueeze(1).to(hidden.dtype), mask


class TemporalModule(nn.Module):
    """Stack of :class:`TemporalBlock`: ``(B, T, C_frame) → (B, T // 2**n, d_model)``."""

    def __init__(self, config: SclSltConfig) -> None:
        super().__init__()
        widths = [config.frame_feature_size]
        widths += [config.temporal_hidden_size] * (config.temporal_num_blocks - 1)
        widths += [config.text_config.d_model]
        self.blocks = nn.ModuleList(
            TemporalBlock(widths[i], widths[i + 1], config.temporal_kernel_size)
            for i in range(config.temporal_num_blocks)
        )

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = frames.transpose(1, 2)  # (B, C, T)
        for block in self.blocks:
            hidden, mask = block(hidden, mask)
        return hidden.transpose(1, 2), mask  # (B, T', d_model), (B, T')


class SclSltVideoEncoder(nn.Module):
    """Frames → visual tokens: ResNet per real frame, temporal module, mBART encoder.

    ``pixel_values`` are ImageNet-normalised floats, or decoded uint8 clips that are first resized,
    cropped and normalised on their device with ``config.video_preprocessing``
    (:func:`~.video_processing.model_pixel_values`; random crop and augmentation in training mode).
    Every path reaches this module (``forward``, ``get_video_features``, ``generate()`` through
    ``get_encoder()``), so none can preprocess differently.
    """

    def __init__(self, config: SclSltConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ResNetModel(config.backbone_config)
        if config.backbone_inplace_relu:
            set_relu_inplace(self.backbone)
        if config.backbone_channels_last:
            self.apply_backbone_memory_format()
        self.temporal = TemporalModule(config)
        self.visual_encoder = MBartEncoder(config.text_config)
        # The visual encoder reads inputs_embeds only: its token table would be dead weight.
        self.visual_encoder.embed_tokens = None
        d_model = config.text_config.d_model
        self.cls_token = ClsToken(d_model) if config.similarity_aggregation == "cls" else None

    def frame_features(self, pixel_values: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """ResNet features of the real frames only (padding costs no CNN compute).

        ``pixel_values`` (B, T, 3, H, W), ``frame_mask`` (B, T) bool → (B, T, C) with zeros at padding.
        """
        real_frames = pixel_values[frame_mask]  # (n_real, 3, H, W)
        pooled = self.backbone_features(real_frames)  # (n_real, C)
        features = pooled.new_zeros(*frame_mask.shape, pooled.shape[-1])
        features[frame_mask] = pooled
        return features

    def backbone_features(self, frames: torch.Tensor) -> torch.Tensor:
        """Pooled ResNet features (n, C) of ``frames`` (n, 3, H, W), in chunks and checkpointed as
        configured (``config.backbone_chunk_size``, ``config.backbone_checkpointing``)."""
        chunk_size = self.config.backbone_chunk_size
        checkpointed = self.config.backbone_checkpointing and self.training and torch.is_grad_enabled()
        if chunk_size is None and not checkpointed:
            return self._pooled(frames)
        self._require_eval_mode_batch_norm()
        chunks = frames.split(chunk_size or max(1, frames.shape[0]))
        if checkpointed:
            # Non-reentrant: gradients reach the weights even when the frames need none.
            return torch.cat([checkpoint(self._pooled, chunk, use_reentrant=False) for chunk in chunks])
        return torch.cat([self._pooled(chunk) for chunk in chunks])

    def _pooled(self, frames: torch.Tensor) -> torch.Tensor:
        if self.config.backbone_channels_last:
            frames = frames.contiguous(memory_format=torch.channels_last)  # NHWC strides, same shape
        return self.backbone(frames).pooler_output.flatten(1)  # (n, C)

    def apply_backbone_memory_format(self) -> None:
        """Put the backbone's weights in the memory format that ``config.backbone_channels_last`` asks for.

        Runs at construction and after ``from_pretrained`` (loading replaces the weight tensors);
        call it after changing the field on a loaded model, before creating an optimizer.
        """
        memory_format = torch.channels_last if self.config.backbone_channels_last else torch.contiguous_format
        self.backbone.to(memory_format=memory_format)

    def _require_eval_mode_batch_norm(self) -> None:
        if any(m.training for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            raise ValueError(
                "backbone_chunk_size and backbone_checkpointing need the backbone's BatchNorm in eval mode "
                "while training: set freeze_batch_norm=True (in training mode each chunk would be "
                "normalised with its own batch statistics, and recomputation would update the running "
                "statistics twice)"
            )

    def forward(
        self,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SclSltEncoderOutput:
        frame_mask = validated_frame_mask(pixel_values, attention_mask, self.config.temporal_downsampling)
        if pixel_values.shape[1] > max_clip_frames(self.config):  # else an IndexError deep in mBART
            raise ValueError(
                f"clips of {pixel_values.shape[1]} frames are longer than the visual encoder's "
                f"{self.config.text_config.max_position_embeddings} positions allow "
                f"({max_clip_frames(self.config)} frames); translate long videos in windows "
                "(the pipeline's chunk_length_s)"
            )
        # uint8 clips are resized, cropped (randomly in training) and normalised here, on their device
        pixel_values = model_pixel_values(
            pixel_values,
            attention_mask,
            self.config.video_preprocessing,
            train=self.training,
            dtype=self.backbone.dtype,
        )
        frames = self.frame_features(pixel_values, frame_mask)  # (B, T, C)
        tokens, token_mask = self.temporal(frames, frame_mask)  # (B, T', d), (B, T')
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token(tokens.shape[0]).to(tokens.dtype), tokens], dim=1)
            token_mask = F.pad(token_mask, (1, 0), value=True)
        token_mask = token_mask.long()
        encoded = self.visual_encoder(
            inputs_embeds=tokens,
            attention_mask=token_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        return SclSltEncoderOutput(
            last_hidden_state=encoded.last_hidden_state,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            attention_mask=token_mask,
        )


def set_relu_inplace(module: nn.Module) -> None:
    """Make every ``nn.ReLU`` inside ``module`` in-place.

    Safe in transformers' ResNet: each ReLU follows a BatchNorm or a residual sum, and neither
    backward reads the values the ReLU overwrites (ReLU's own backward reads its output).
    """
    for child in module.modules():
        if isinstance(child, nn.ReLU):
            child.inplace = True


def validated_frame_mask(
    pixel_values: torch.Tensor, attention_mask: torch.Tensor | None, min_frames: int
) -> torch.Tensor:
    """Check the video batch and return its frame mask as bool (B, T); ``None`` means all real."""
    if pixel_values.dim() != 5 or pixel_values.shape[2] != 3:
        raise ValueError(
            f"pixel_values must have shape (batch, frames, 3, height, width), got {tuple(pixel_values.shape)}"
        )
    batch, num_frames = pixel_values.shape[:2]
    if attention_mask is None:
        return torch.ones(batch, num_frames, dtype=torch.bool, device=pixel_values.device)
    if tuple(attention_mask.shape) != (batch, num_frames):
        raise ValueError(
            f"attention_mask must have shape (batch, frames) = {(batch, num_frames)}, "
            f"got {tuple(attention_mask.shape)}"
        )
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1)
    if bool((mask != (torch.arange(num_frames, device=mask.device) < lengths[:, None])).any()):
        raise ValueError("attention_mask must put the real frames first and the padding after them")
    too_short = (lengths < min_frames).nonzero().flatten().tolist()
    if too_short:
        counts = ", ".join(f"video {i}: {int(lengths[i])}" for i in too_short)
        raise ValueError(
            f"every video needs at least {min_frames} real frames (the temporal module downsamples "
            f"by {min_frames}); got {counts}"
        )
    return mask


def max_clip_frames(config: SclSltConfig) -> int:
    """The most frames one clip may have: the visual encoder's position table holds
    ``text_config.max_position_embeddings`` tokens (one of them the [CLS] token with
    ``similarity_aggregation="cls"``), each made of ``temporal_downsampling`` frames."""
    tokens = config.text_config.max_position_embeddings - (config.similarity_aggregation == "cls")
    return tokens * config.temporal_downsampling


def downsample_frame_mask(frame_mask: torch.Tensor, config: SclSltConfig, num_tokens: int) -> torch.Tensor:
    """The visual-token mask (B, num_tokens) that a frame mask (B, T) becomes in the video encoder."""
    lengths = frame_mask.long().sum(dim=1) // config.temporal_downsampling
    if config.similarity_aggregation == "cls":
        lengths = lengths + 1
    return (torch.arange(num_tokens, device=frame_mask.device) < lengths[:, None]).long()
