"""SCL-SLT: frames → ResNet → temporal convolutions → mBART encoder → mBART decoder.

This file travels to the Hub with the weights (``trust_remote_code``): it imports only
stdlib, torch, transformers and its sibling files, through ``from .x import y``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.models.mbart.modeling_mbart import MBartDecoder, MBartEncoder

from .configuration_scl_slt import PIPELINE_TASK, SclSltConfig
from .learned_parameters_scl_slt import ClsToken, LogitScale
from .text_branch_scl_slt import SclSltTextBranchMixin
from .video_encoder_scl_slt import MaskedBatchNorm1d as MaskedBatchNorm1d
from .video_encoder_scl_slt import SclSltEncoderOutput, SclSltVideoEncoder, downsample_frame_mask
from .video_encoder_scl_slt import TemporalBlock as TemporalBlock
from .video_encoder_scl_slt import TemporalModule as TemporalModule
from .video_encoder_scl_slt import validated_frame_mask as validated_frame_mask

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


class SclSltForSignTranslation(SclSltPreTrainedModel, GenerationMixin, SclSltTextBranchMixin):
    """Gloss-free sign language translation with an optional contrastive text branch.

    Inputs: ``pixel_values`` (B, T, 3, H, W) float, ImageNet-normalised frames, or uint8 decoded
    frames that the model transforms itself (:class:`SclSltVideoEncoder`); ``attention_mask``
    (B, T) over frames (real frames first); ``labels`` (B, L) target token ids (the sentence then
    ``</s>``, padding -100); ``text_input_ids`` / ``text_attention_mask`` (B, Lt) for the text branch.
    Decoding starts from ``config.decoder_start_token_id``, the target-language token.
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
        file it reaches by relative imports, the pipeline's included (imported below).
        """
        # Imported here: loading the model does not need the pipeline, but transformers copies the
        # files of relative imports found anywhere in this file, so saving ships the pipeline too.
        from .pipeline_scl_slt import custom_pipeline_entry

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
        from .pretrained_parts_scl_slt import build_from_pretrained_parts

        return build_from_pretrained_parts(cls, backbone, text_model, **config_overrides)


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


def _load_part(source: str | os.PathLike | PreTrainedModel, class_name: str) -> PreTrainedModel:
    if isinstance(source, PreTrainedModel):
        return source
    import transformers

    return getattr(transformers, class_name).from_pretrained(source)
