"""The SCL-SLT model: configuration, model and similarity functions (the code that travels to the Hub).

Importing this package registers ``scl_slt`` with ``AutoConfig``, ``AutoModel`` and
``AutoModelForSeq2SeqLM`` and marks the classes for remote-code saving.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

from .configuration_scl_slt import PRESETS, SclSltConfig
from .modeling_scl_slt import (
    SclSltEncoderOutput,
    SclSltForSignTranslation,
    SclSltOutput,
    SclSltPreTrainedModel,
    translation_loss,
)
from .similarity import cico_similarity, pooled_similarity, video_text_similarity

AutoConfig.register(SclSltConfig.model_type, SclSltConfig, exist_ok=True)
AutoModel.register(SclSltConfig, SclSltForSignTranslation, exist_ok=True)
AutoModelForSeq2SeqLM.register(SclSltConfig, SclSltForSignTranslation, exist_ok=True)
SclSltConfig.register_for_auto_class()
SclSltForSignTranslation.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "PRESETS",
    "SclSltConfig",
    "SclSltEncoderOutput",
    "SclSltForSignTranslation",
    "SclSltOutput",
    "SclSltPreTrainedModel",
    "cico_similarity",
    "pooled_similarity",
    "translation_loss",
    "video_text_similarity",
]
