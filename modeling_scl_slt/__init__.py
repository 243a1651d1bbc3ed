"""The SCL-SLT model: configuration, model, similarity functions, video preprocessing and the
``sign-language-translation`` pipeline (the code that travels to the Hub).

Importing this package registers ``scl_slt`` with ``AutoConfig``, ``AutoModel`` and
``AutoModelForSeq2SeqLM``, marks the classes for remote-code saving and registers the
``sign-language-translation`` pipeline task.
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_scl_slt import PIPELINE_TASK, PRESETS, SclSltConfig
from .modeling_scl_slt import (
    SclSltEncoderOutput,
    SclSltForSignTranslation,
    SclSltOutput,
    SclSltPreTrainedModel,
    translation_loss,
)
from .pipeline_scl_slt import SignLanguageTranslationPipeline, decode_generated
from .similarity import cico_similarity, pooled_similarity, video_text_similarity
from .video_processing import IMAGENET_MEAN, IMAGENET_STD, VideoTransform, uniform_frame_indices

AutoConfig.register(SclSltConfig.model_type, SclSltConfig, exist_ok=True)
AutoModel.register(SclSltConfig, SclSltForSignTranslation, exist_ok=True)
AutoModelForSeq2SeqLM.register(SclSltConfig, SclSltForSignTranslation, exist_ok=True)
SclSltConfig.register_for_auto_class()
SclSltForSignTranslation.register_for_auto_class("AutoModelForSeq2SeqLM")
# pt_model must be a transformers class: it is saved by name and looked up in transformers on loading.
PIPELINE_REGISTRY.register_pipeline(
    PIPELINE_TASK,
    pipeline_class=SignLanguageTranslationPipeline,
    pt_model=AutoModelForSeq2SeqLM,
    type="multimodal",
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PIPELINE_TASK",
    "PRESETS",
    "SclSltConfig",
    "SclSltEncoderOutput",
    "SclSltForSignTranslation",
    "SclSltOutput",
    "SclSltPreTrainedModel",
    "SignLanguageTranslationPipeline",
    "VideoTransform",
    "cico_similarity",
    "decode_generated",
    "pooled_similarity",
    "translation_loss",
    "uniform_frame_indices",
    "video_text_similarity",
]
