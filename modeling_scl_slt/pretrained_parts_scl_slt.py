"""Building SCL-SLT from a pretrained ResNet and a pretrained mBART.

The public entry point is [`SclSltForSignTranslation.from_pretrained_parts`], which imports this
file lazily (through ``from .x import y``, so that saving still ships it). This file travels to the
Hub with the weights (``trust_remote_code``): it imports only stdlib, torch, transformers and its
sibling files, through ``from .x import y``.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import PreTrainedModel

from .configuration_scl_slt import SclSltConfig
from .modeling_scl_slt import SclSltForSignTranslation, _load_part


def build_from_pretrained_parts(
    model_class: type[SclSltForSignTranslation],
    backbone: str | os.PathLike | PreTrainedModel,
    text_model: str | os.PathLike | PreTrainedModel,
    /,
    **config_overrides: Any,
) -> SclSltForSignTranslation:
    """The body of [`SclSltForSignTranslation.from_pretrained_parts`]; ``model_class`` is its ``cls``.

    The ResNet initialises the backbone; the mBART encoder initialises both the visual encoder
    (without its token table) and the text encoder; the mBART decoder and LM head initialise the
    decoder. ``config_overrides`` set other [`SclSltConfig`] fields.
    """
    resnet = _load_part(backbone, "ResNetModel")
    mbart = _load_part(text_model, "MBartForConditionalGeneration")
    resnet_model = getattr(resnet, "resnet", resnet)
    text_config = mbart.config.to_dict()
    if "decoder_start_token_id" in config_overrides:
        text_config["decoder_start_token_id"] = config_overrides.pop("decoder_start_token_id")
    config = SclSltConfig(
        backbone_config=resnet_model.config.to_dict(), text_config=text_config, **config_overrides
    )
    model = model_class(config)
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
