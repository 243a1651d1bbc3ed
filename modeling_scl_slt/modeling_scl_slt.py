"""SCL-SLT: frames → ResNet → temporal convolutions → mBART encoder → mBART decoder, with an
optional contrastive text branch (a second mBART encoder and token projections).

Read top-down: the learned tensors that are not layers, the video encoder, the outputs and the
translation loss, then the model (translation, text branch, construction from pretrained parts).

This file travels to the Hub with the weights (``trust_remote_code``): it imports only stdlib,
torch, transformers and its sibling files, through ``from .x import y``. It imports the pipeline
file so that ``save_pretrained`` ships it (transformers copies every file reached that way).
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.models.mbart.modeling_mbart import MBartDecoder, MBartEncoder
from transformers.models.resnet.modeling_resnet import ResNetModel

from .configuration_scl_slt import PIPELINE_TASK, SclSltConfig
from .pipeline_scl_slt import custom_pipeline_entry
from .similarity import video_text_similarity
from .video_processing import model_pixel_values

AUTO_MAP = {
    "AutoConfig": "configuration_scl_slt.SclSltConfig",
    "AutoModel": "modeling_scl_slt.SclSltForSignTranslation",
    "AutoModelForSeq2SeqLM": "modeling_scl_slt.SclSltForSignTranslation",
}


def _cache_field_name() -> str:
    """The name the installed transformers gives the decoder cache in its seq2seq outputs.

    It was ``past_key_values`` up to 5.23 and is ``cache`` from 5.24 on. It is read off
    ``Seq2SeqLMOutput`` (the one field typed as a ``Cache``), so a later rename needs no change here.
    """
    for field in dataclasses.fields(Seq2SeqLMOutput):
        hint = field.type
        if isinstance(hint, str):
            if "Cache" in hint:
                return field.name
            continue
        if any(isinstance(arg, type) and issubclass(arg, Cache) for arg in (*typing.get_args(hint), hint)):
            return field.name
    raise RuntimeError("transformers' Seq2SeqLMOutput declares no Cache field")


CACHE_FIELD = _cache_field_name()


# --- learned tensors that are not layers ------------------------------------------------------
class LogitScale(nn.Module):
    """The learnable contrastive scale, stored as its log (as in CLIP).

    ``forward()`` → ``exp(log_scale)``, shape ().
    """

    def __init__(self, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_value)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.log_scale, math.log(self.init_value))

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp()


class ClsToken(nn.Module):
    """A learned [CLS] video token: ``forward(batch_size)`` → (batch_size, 1, d_model)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, 1, d_model))

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embedding.expand(batch_size, -1, -1)


# --- the video encoder --------------------------------------------------------------------------
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
        # Set by transformers' gradient_checkpointing_enable() / _disable(), with the function to call.
        self.gradient_checkpointing = False

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
        """Pooled ResNet features (n, C) of ``frames`` (n, 3, H, W).

        The frames go through the ResNet in chunks of ``config.backbone_chunk_size`` (all at once when
        None). With gradient checkpointing on (``model.gradient_checkpointing_enable()``, the Trainer's
        ``gradient_checkpointing``), in training mode with gradients enabled, each chunk is
        checkpointed: only its frames and pooled features are kept for backward, and its activations
        are recomputed there. Both need the backbone's BatchNorm in eval mode while training.
        """
        chunk_size = self.config.backbone_chunk_size
        checkpointed = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        if chunk_size is None and not checkpointed:
            return self._pooled(frames)
        self._require_eval_mode_batch_norm()
        chunks = frames.split(chunk_size or max(1, frames.shape[0]))
        if checkpointed:
            # Non-reentrant whatever gradient_checkpointing_kwargs say: gradients reach the weights even
            # though the frames need none.
            checkpoint = self._gradient_checkpointing_func
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

    def frame_inputs(
        self,
        pixel_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        frame_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame backbone features (B, T, C), zero at padding, and the bool frame mask (B, T).

        Exactly one input: ``pixel_values`` run through the backbone (uint8 clips are transformed
        first, see the class docstring); ``frame_features`` (B, T, C) skip it, like
        ``inputs_embeds`` skip a token table. Features taken from this backbone in eval mode
        (:meth:`frame_features`) give the tokens that their pixels give in eval mode.
        """
        if (pixel_values is None) == (frame_features is None):
            raise ValueError(
                "pass exactly one of pixel_values (B, T, 3, H, W) and frame_features (B, T, C), got "
                + ("both" if pixel_values is not None else "neither")
            )
        min_frames = self.config.temporal_downsampling
        if frame_features is not None:
            size = self.config.frame_feature_size
            if frame_features.dim() != 3 or frame_features.shape[2] != size:
                raise ValueError(
                    f"frame_features must have shape (batch, frames, {size}) (config.frame_feature_size), "
                    f"got {tuple(frame_features.shape)}"
                )
            frame_mask = validated_frame_mask(frame_features, attention_mask, min_frames)
            dtype = self.temporal.blocks[0].conv.weight.dtype
            return frame_features.to(dtype) * frame_mask[..., None].to(dtype), frame_mask
        if pixel_values.dim() != 5 or pixel_values.shape[2] != 3:
            raise ValueError(
                "pixel_values must have shape (batch, frames, 3, height, width), "
                f"got {tuple(pixel_values.shape)}"
            )
        frame_mask = validated_frame_mask(pixel_values, attention_mask, min_frames)
        # uint8 clips are resized, cropped (randomly in training) and normalised here, on their device
        pixel_values = model_pixel_values(
            pixel_values,
            attention_mask,
            self.config.video_preprocessing,
            train=self.training,
            dtype=self.backbone.dtype,
        )
        return self.frame_features(pixel_values, frame_mask), frame_mask

    def _require_eval_mode_batch_norm(self) -> None:
        if any(m.training for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            raise ValueError(
                "backbone_chunk_size and gradient checkpointing of the backbone need its BatchNorm in eval "
                "mode while training: set freeze_batch_norm=True (in training mode each chunk would be "
                "normalised with its own batch statistics, and recomputation would update the running "
                "statistics twice), or set model.video_encoder.gradient_checkpointing = False to "
                "checkpoint the mBART layers only"
            )

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        frame_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SclSltEncoderOutput:
        """Visual tokens of a batch given as ``pixel_values`` (B, T, 3, H, W) or as the backbone's
        ``frame_features`` (B, T, C), exactly one of the two; ``attention_mask`` (B, T) over frames."""
        clip = pixel_values if pixel_values is not None else frame_features
        if clip is not None and clip.dim() > 1 and clip.shape[1] > self.config.max_clip_frames:
            raise ValueError(  # checked before the backbone runs; else an IndexError deep in mBART
                f"clips of {clip.shape[1]} frames are longer than the visual encoder's "
                f"{self.config.text_config.max_position_embeddings} positions allow "
                f"({self.config.max_clip_frames} frames); translate long videos in windows "
                "(the pipeline's chunk_length_s)"
            )
        frames, frame_mask = self.frame_inputs(pixel_values, attention_mask, frame_features)  # (B, T, C)
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
    video: torch.Tensor, attention_mask: torch.Tensor | None, min_frames: int
) -> torch.Tensor:
    """The frame mask (B, T) of a video batch (pixels or frame features, frames on dim 1) as bool,
    checked; ``None`` means all real."""
    batch, num_frames = video.shape[:2]
    if attention_mask is None:
        return torch.ones(batch, num_frames, dtype=torch.bool, device=video.device)
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


def downsample_frame_mask(frame_mask: torch.Tensor, config: SclSltConfig, num_tokens: int) -> torch.Tensor:
    """The visual-token mask (B, num_tokens) that a frame mask (B, T) becomes in the video encoder."""
    lengths = frame_mask.long().sum(dim=1) // config.temporal_downsampling
    if config.similarity_aggregation == "cls":
        lengths = lengths + 1
    return (torch.arange(num_tokens, device=frame_mask.device) < lengths[:, None]).long()


# --- outputs and the translation loss -------------------------------------------------------------
@dataclass
class SclSltOutput(Seq2SeqLMOutput):
    """Output of [`SclSltForSignTranslation.forward`]: a `Seq2SeqLMOutput` plus the text branch.

    The fields of `Seq2SeqLMOutput` are inherited, so the decoder cache (``use_cache``) is the
    field the installed transformers defines (:data:`CACHE_FIELD`: ``past_key_values`` before
    5.24, ``cache`` since).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Translation cross-entropy (mean over label tokens, or sum / ``num_items_in_batch``),
            returned when ``labels`` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, target_length, vocab_size)`):
            Next-token scores of the decoder.
        encoder_last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_tokens, d_model)`):
            Visual encoder output.
        encoder_attention_mask (`torch.LongTensor` of shape `(batch_size, num_tokens)`):
            Mask of the visual tokens (the frame mask downsampled by the temporal module).
        video_embeds (`torch.FloatTensor` of shape `(batch_size, num_tokens, projection_dim)`, *optional*):
            L2-normalised projected visual tokens, when the text branch ran.
        text_embeds (`torch.FloatTensor` of shape `(batch_size, text_length, projection_dim)`, *optional*):
            L2-normalised projected text tokens, when the text branch ran.
        text_attention_mask (`torch.LongTensor` of shape `(batch_size, text_length)`, *optional*):
            Mask of the text tokens.
        similarity_per_video (`torch.FloatTensor` of shape `(batch_size, batch_size)`, *optional*):
            Video→text similarity of every video with every text of the batch, unscaled (cosine
            based, in [-1, 1]). These are not logits: CLIP's ``logits_per_image`` corresponds to
            ``logit_scale * similarity_per_video``, which the contrastive loss forms (it clamps the
            scale first).
        similarity_per_text (`torch.FloatTensor` of shape `(batch_size, batch_size)`, *optional*):
            Text→video similarity (rows are texts). For ``cls``/``mean`` it is the transpose of
            ``similarity_per_video``; for ``cico`` it is computed separately.
        logit_scale (`torch.FloatTensor` of shape `()`, *optional*):
            The learnable scale ``model.logit_scale()`` (unclamped) that the contrastive loss
            multiplies the similarities by, when the text branch ran.
        decoder_hidden_states, decoder_attentions, cross_attentions, encoder_hidden_states,
        encoder_attentions: as in `Seq2SeqLMOutput`, when requested.
    """

    encoder_attention_mask: torch.LongTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_attention_mask: torch.LongTensor | None = None
    similarity_per_video: torch.FloatTensor | None = None
    similarity_per_text: torch.FloatTensor | None = None
    logit_scale: torch.FloatTensor | None = None


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: ``[start, y_0, …, y_{L-2}]`` with -100 replaced by padding."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def declare_tied_copies_unsaved(model: PreTrainedModel) -> None:
    """List the tied copies (``lm_head.weight`` when tied) among the keys that are not saved.

    ``save_pretrained`` stores a tied tensor once, under its source's name, so a checkpoint never
    holds ``lm_head.weight``. ``from_pretrained`` knows that from ``_tied_weights_keys``; the
    Trainer reloads checkpoints (``load_best_model_at_end``, resuming) with ``load_state_dict``
    and treats a missing key as a problem unless the model declares it unsaved: then it re-ties
    the weights instead of reporting ``lm_head.weight`` missing.
    """
    tied = getattr(model, "all_tied_weights_keys", None) or {}  # {target: source}, empty when untied
    model._keys_to_ignore_on_save = set(model._keys_to_ignore_on_save or ()) | set(tied)


def translation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Token cross-entropy, ignoring -100. ``logits`` (B, L, V), ``labels`` (B, L).

    Mean over label tokens, or the sum divided by ``num_items_in_batch`` (the Trainer's count of
    label tokens over all accumulated micro-batches, which makes gradient accumulation exact).
    """
    flat_logits = logits.float().reshape(-1, logits.shape[-1])
    flat_labels = labels.to(logits.device).reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(flat_logits, flat_labels, ignore_index=-100, label_smoothing=label_smoothing)
    total = F.cross_entropy(
        flat_logits, flat_labels, ignore_index=-100, reduction="sum", label_smoothing=label_smoothing
    )
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


# --- the model ----------------------------------------------------------------------------------
class SclSltPreTrainedModel(PreTrainedModel):
    config_class = SclSltConfig
    config: SclSltConfig
    base_model_prefix = "scl_slt"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["MBartEncoderLayer", "MBartDecoderLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ClsToken):
            nn.init.normal_(module.embedding, std=self.config.text_config.init_std)
        if isinstance(module, LogitScale):
            module.reset_parameters()


class SclSltForSignTranslation(SclSltPreTrainedModel, GenerationMixin):
    """Gloss-free sign language translation with an optional contrastive text branch.

    Inputs: ``pixel_values`` (B, T, 3, H, W) float, ImageNet-normalised frames, or uint8 decoded
    frames that the model transforms itself (:class:`SclSltVideoEncoder`); ``attention_mask``
    (B, T) over frames (real frames first); ``labels`` (B, L) target token ids (the sentence then
    ``</s>``, padding -100); ``text_input_ids`` / ``text_attention_mask`` (B, Lt) for the text branch.
    Decoding starts from ``config.decoder_start_token_id``, the target-language token.

    Gradient checkpointing is transformers' switch (``gradient_checkpointing_enable()``, the Trainer's
    ``gradient_checkpointing``): it checkpoints every mBART layer and the ResNet chunk by chunk
    (:meth:`SclSltVideoEncoder.backbone_features`; the backbone needs ``freeze_batch_norm=True``, or
    ``model.video_encoder.gradient_checkpointing = False`` to leave it out).
    """

    _tied_weights_keys = {"lm_head.weight": "decoder.embed_tokens.weight"}
    # forward() normalises the loss by ``num_items_in_batch`` itself when the Trainer passes it.
    accepts_loss_kwargs = True

    def __init__(self, config: SclSltConfig) -> None:
        super().__init__(config)
        text_config = config.text_config
        self.video_encoder = SclSltVideoEncoder(config)
        self.decoder = MBartDecoder(text_config)
        self.lm_head = nn.Linear(text_config.d_model, text_config.vocab_size, bias=False)
        self.text_encoder: MBartEncoder | None = None
        self.video_projection: nn.Linear | None = None
        self.text_projection: nn.Linear | None = None
        self.logit_scale: LogitScale | None = None
        if config.use_text_branch:
            self.text_encoder = MBartEncoder(text_config)
            self.video_projection = nn.Linear(text_config.d_model, config.projection_dim, bias=False)
            self.text_projection = nn.Linear(text_config.d_model, config.projection_dim, bias=False)
            self.logit_scale = LogitScale(config.logit_scale_init_value)
        self.post_init()
        declare_tied_copies_unsaved(self)
        self._apply_text_encoder_freeze()

    # --- plumbing -------------------------------------------------------------------------
    def get_encoder(self, modality: str | None = None) -> SclSltVideoEncoder:
        return self.video_encoder

    def _prepare_model_inputs(
        self, inputs: torch.Tensor | None, bos_token_id: Any, model_kwargs: dict[str, Any]
    ) -> tuple[torch.Tensor, str | None, dict[str, Any]]:
        """``generate()``'s encoder input: ``frame_features`` stand in for ``pixel_values`` (as
        ``inputs_embeds`` for ``input_ids``); without this, generate would add start ids as pixels."""
        if inputs is None and model_kwargs.get("pixel_values") is None and "frame_features" in model_kwargs:
            model_kwargs.pop("pixel_values", None)
            return model_kwargs.pop("frame_features"), "frame_features", model_kwargs
        return super()._prepare_model_inputs(inputs, bos_token_id, model_kwargs)

    def get_decoder(self) -> MBartDecoder:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.decoder.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def train(self, mode: bool = True) -> SclSltForSignTranslation:
        super().train(mode)
        # A frozen encoder stays in eval mode: no dropout noise in the targets of the contrastive loss.
        if self.text_encoder is not None and self.config.freeze_text_encoder:
            self.text_encoder.eval()
        if self.config.freeze_batch_norm:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """Save weights (safetensors), the config and the code files for remote loading.

        The config gets ``auto_map`` (AutoConfig, AutoModel, AutoModelForSeq2SeqLM) and
        ``custom_pipelines`` (the ``sign-language-translation`` task), so that every saved folder
        works with ``pipeline(..., trust_remote_code=True)``. The code files are this file and every
        file it reaches by relative imports, the pipeline's included.
        """
        kwargs.setdefault("safe_serialization", True)
        self.config.auto_map = dict(AUTO_MAP)
        custom_pipelines = dict(getattr(self.config, "custom_pipelines", None) or {})
        custom_pipelines[PIPELINE_TASK] = custom_pipeline_entry()
        self.config.custom_pipelines = custom_pipelines
        super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> SclSltForSignTranslation:
        model = super().from_pretrained(*args, **kwargs)
        model._apply_text_encoder_freeze()
        if model.config.backbone_channels_last:  # loading gave the weights the stored (NCHW) format
            model.video_encoder.apply_backbone_memory_format()
        return model

    # --- forward -----------------------------------------------------------------------------
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs: SclSltEncoderOutput | tuple | None = None,
        labels: torch.LongTensor | None = None,
        text_input_ids: torch.LongTensor | None = None,
        text_attention_mask: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        input_ids: None = None,
        inputs_embeds: None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        frame_features: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SclSltOutput:
        """Translate (and, given ``text_input_ids``, compare with the target text).

        ``attention_mask`` is the frame-level mask (B, T). ``generate()`` calls this with
        ``encoder_outputs`` and the same frame mask but no pixels; the visual-token mask is then
        derived from the frame mask. ``frame_features`` (B, T, C) replace ``pixel_values``
        (:meth:`get_frame_features`: the backbone is skipped). ``input_ids`` / ``inputs_embeds``
        exist only because generic wrappers (peft) always pass them; the model reads video, so
        they must be None.

        The decoder cache is not a named argument: ``generate()`` passes it under the name its
        transformers version uses (``past_key_values`` before 5.24, ``cache`` since), and it
        reaches the mBART decoder of the same version unchanged through ``kwargs``.
        """
        if input_ids is not None or inputs_embeds is not None:
            raise ValueError("this model reads pixel_values (B, T, 3, H, W), not input_ids or inputs_embeds")
        if encoder_outputs is None:
            encoder_outputs = self.video_encoder(pixel_values, attention_mask, frame_features=frame_features)
        encoder_states = encoder_outputs[0]  # (B, Lv, d)
        encoder_mask = self._encoder_mask(encoder_outputs, attention_mask, encoder_states)

        if labels is not None and decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(
                labels, self.config.pad_token_id, self.config.decoder_start_token_id
            )
        decoded = logits = loss = None
        # Without labels or decoder inputs there is nothing to decode (contrastive-only training).
        if decoder_input_ids is not None or decoder_inputs_embeds is not None:
            decoded = self.decoder(
                input_ids=decoder_input_ids,
                inputs_embeds=decoder_inputs_embeds,
                attention_mask=decoder_attention_mask,
                encoder_hidden_states=encoder_states,
                encoder_attention_mask=encoder_mask,
                use_cache=use_cache,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                **kwargs,
            )
            logits = self.lm_head(decoded.last_hidden_state)  # (B, L, V)
            if labels is not None:
                loss = translation_loss(logits, labels, num_items_in_batch)
        contrastive = {}
        if text_input_ids is not None:
            contrastive = self._contrastive_outputs(
                encoder_states, encoder_mask, text_input_ids, text_attention_mask
            )
        decoder_fields = {}
        if decoded is not None:
            decoder_fields = {
                CACHE_FIELD: getattr(decoded, CACHE_FIELD, None),
                "decoder_hidden_states": decoded.hidden_states,
                "decoder_attentions": decoded.attentions,
                "cross_attentions": decoded.cross_attentions,
            }
        return SclSltOutput(
            loss=loss,
            logits=logits,
            encoder_last_hidden_state=encoder_states,
            encoder_hidden_states=getattr(encoder_outputs, "hidden_states", None),
            encoder_attentions=getattr(encoder_outputs, "attentions", None),
            encoder_attention_mask=encoder_mask,
            **decoder_fields,
            **contrastive,
        )

    def get_frame_features(
        self, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The backbone's per-frame features (B, T, C), zero at padded frames, of ``pixel_values``
        (B, T, 3, H, W); what ``frame_features=`` of ``forward``, ``generate`` and
        ``get_video_features`` takes in their place. Eval mode gives the evaluation transform."""
        return self.video_encoder.frame_inputs(pixel_values, attention_mask)[0]

    def _encoder_mask(
        self, encoder_outputs: Any, frame_mask: torch.Tensor | None, encoder_states: torch.Tensor
    ) -> torch.Tensor:
        token_mask = getattr(encoder_outputs, "attention_mask", None)
        if token_mask is not None and token_mask.shape[:2] == encoder_states.shape[:2]:
            return token_mask
        if frame_mask is None:
            return torch.ones(encoder_states.shape[:2], dtype=torch.long, device=encoder_states.device)
        return downsample_frame_mask(frame_mask, self.config, encoder_states.shape[1])

    # --- text branch: freezing and dropping ----------------------------------------------------------------
    def _apply_text_encoder_freeze(self) -> None:
        if self.text_encoder is not None and self.config.freeze_text_encoder:
            self.text_encoder.requires_grad_(False)
            self.text_encoder.eval()

    def drop_text_branch(self) -> None:
        """Remove the text encoder, the projections and the logit scale (stage-2 checkpoints)."""
        self.text_encoder = None
        self.video_projection = None
        self.text_projection = None
        self.logit_scale = None
        self.config.use_text_branch = False

    # --- features and similarity ------------------------------------------------------------
    def get_video_features(
        self,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        frame_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projected visual tokens (B, Lv, P) and their mask (B, Lv), of ``pixel_values``
        (B, T, 3, H, W) or ``frame_features`` (B, T, C) (exactly one) with the frame mask (B, T)."""
        encoded = self.video_encoder(pixel_values, attention_mask, frame_features=frame_features)
        return self.project_video_tokens(encoded.last_hidden_state), encoded.attention_mask

    def project_video_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, Lv, d_model) encoder states → (B, Lv, P) normalised projections."""
        self._require_text_branch()
        return F.normalize(self.video_projection(hidden), dim=-1)

    def get_text_features(
        self, text_input_ids: torch.Tensor, text_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projected text tokens (B, Lt, P) and their mask (B, Lt)."""
        self._require_text_branch()
        if text_attention_mask is None:
            text_attention_mask = (text_input_ids != self.config.pad_token_id).long()
        frozen = not any(p.requires_grad for p in self.text_encoder.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            hidden = self.text_encoder(
                input_ids=text_input_ids, attention_mask=text_attention_mask
            ).last_hidden_state
        return F.normalize(self.text_projection(hidden), dim=-1), text_attention_mask

    def similarity(
        self,
        video_embeds: torch.Tensor,
        video_mask: torch.Tensor,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        aggregation: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unscaled video→text (Nv, Nt) and text→video (Nt, Nv) similarity of projected tokens.

        ``aggregation`` defaults to ``config.similarity_aggregation`` (``cico``, ``cls`` or ``mean``).
        """
        return video_text_similarity(
            video_embeds,
            video_mask,
            text_embeds,
            text_mask,
            aggregation=aggregation or self.config.similarity_aggregation,
            temperature=self.config.similarity_temperature,
        )

    def _require_text_branch(self) -> None:
        if self.text_encoder is None:
            raise ValueError("this model has no text branch (config.use_text_branch=False)")

    def _contrastive_outputs(
        self,
        encoder_states: torch.Tensor,
        encoder_mask: torch.Tensor,
        text_input_ids: torch.Tensor,
        text_attention_mask: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The text-branch fields of :class:`SclSltOutput`."""
        video_embeds = self.project_video_tokens(encoder_states)
        text_embeds, text_mask = self.get_text_features(text_input_ids, text_attention_mask)
        similarity_per_video, similarity_per_text = self.similarity(
            video_embeds, encoder_mask, text_embeds, text_mask
        )
        return {
            "video_embeds": video_embeds,
            "text_embeds": text_embeds,
            "text_attention_mask": text_mask,
            "similarity_per_video": similarity_per_video,
            "similarity_per_text": similarity_per_text,
            "logit_scale": self.logit_scale(),
        }

    # --- construction from pretrained parts ----------------------------------------------------
    @classmethod
    def from_pretrained_parts(
        cls,
        backbone: str | os.PathLike | PreTrainedModel,
        text_model: str | os.PathLike | PreTrainedModel,
        **config_overrides: Any,
    ) -> SclSltForSignTranslation:
        """Build the model from a pretrained ResNet and a pretrained mBART.

        ``backbone``: a ResNet checkpoint (folder or Hub id such as ``microsoft/resnet-18``) or
        model; ``text_model``: an mBART checkpoint (e.g. ``facebook/mbart-large-50``) or model.
        The mBART encoder initialises both the visual and the text encoder (the visual one
        without its token table); the mBART decoder and LM head initialise the decoder.
        ``config_overrides`` set other [`SclSltConfig`] fields (e.g. ``tgt_lang``,
        ``projection_dim``); ``decoder_start_token_id`` defaults to the mBART config's.
        """
        resnet = cls._load_part(backbone, "ResNetModel")
        mbart = cls._load_part(text_model, "MBartForConditionalGeneration")
        resnet_model = getattr(resnet, "resnet", resnet)
        text_config = mbart.config.to_dict()
        if "decoder_start_token_id" in config_overrides:
            text_config["decoder_start_token_id"] = config_overrides.pop("decoder_start_token_id")
        config = SclSltConfig(
            backbone_config=resnet_model.config.to_dict(), text_config=text_config, **config_overrides
        )
        model = cls(config)
        model.video_encoder.backbone.load_state_dict(resnet_model.state_dict())
        encoder_state = {
            k: v for k, v in mbart.model.encoder.state_dict().items() if not k.startswith("embed_tokens")
        }
        model.video_encoder.visual_encoder.load_state_dict(encoder_state)
        model.decoder.load_state_dict(mbart.model.decoder.state_dict())
        model.lm_head.weight.data.copy_(mbart.lm_head.weight.data)
        if model.text_encoder is not None:
            model.text_encoder.load_state_dict(mbart.model.encoder.state_dict())
        model._apply_text_encoder_freeze()
        return model

    @staticmethod
    def _load_part(source: str | os.PathLike | PreTrainedModel, class_name: str) -> PreTrainedModel:
        """``source`` if it is a model, else ``transformers.<class_name>.from_pretrained(source)``."""
        if isinstance(source, PreTrainedModel):
            return source
        return getattr(transformers, class_name).from_pretrained(source)
