"""Configuration of the SCL-SLT sign language translation model."""

from __future__ import annotations

import copy
from typing import Any

from transformers import MBartConfig, PretrainedConfig, ResNetConfig
from transformers.utils.versions import require_version

from .similarity import AGGREGATIONS

# The oldest transformers this code is tested with (the floor of pyproject.toml, proven by CI's
# minimum-versions run). A model folder's code runs in its user's environment: refuse older
# releases with one clear message rather than fail somewhere deep inside them.
MIN_TRANSFORMERS_VERSION = "5.17.0"
require_version(
    f"transformers>={MIN_TRANSFORMERS_VERSION}",
    f"SCL-SLT models need transformers {MIN_TRANSFORMERS_VERSION} or newer: pip install -U transformers",
)

PIPELINE_TASK = "sign-language-translation"

# ResNet-18: what the paper's frame backbone (ImageNet-pretrained ResNet-18) looks like.
RESNET18 = {
    "embedding_size": 64,
    "hidden_sizes": [64, 128, 256, 512],
    "depths": [2, 2, 2, 2],
    "layer_type": "basic",
    "downsample_in_first_stage": False,
}

# mBART-large-50 (facebook/mbart-large-50): the paper's visual encoder, text encoder and decoder.
MBART_LARGE_50 = {
    "vocab_size": 250054,
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "max_position_embeddings": 1024,
    "scale_embedding": True,
    "activation_function": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "forced_eos_token_id": 2,
}

# Named sizes. Token ids follow the mBART convention (<s>=0, <pad>=1, </s>=2, <unk>=3); the
# small presets put the target-language token last. A real tokenizer overrides these ids.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "backbone_config": {
            "embedding_size": 4,
            "hidden_sizes": [4, 8],
            "depths": [1, 1],
            "layer_type": "basic",
        },
        "text_config": {
            "vocab_size": 32,
            "d_model": 16,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 32,
            "decoder_ffn_dim": 32,
            "max_position_embeddings": 64,
            "dropout": 0.0,
            "attention_dropout": 0.0,
            "decoder_start_token_id": 31,
        },
        "projection_dim": 8,
        "temporal_hidden_size": 16,
    },
    "small": {
        "backbone_config": {
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
        },
        "text_config": {
            "vocab_size": 1000,
            "d_model": 128,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 256,
            "decoder_ffn_dim": 256,
            "max_position_embeddings": 256,
            "dropout": 0.1,
            "decoder_start_token_id": 999,
        },
        "projection_dim": 128,
        "temporal_hidden_size": 128,
    },
    "gfslt": {
        "backbone_config": RESNET18,
        "text_config": {
            **MBART_LARGE_50,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "decoder_start_token_id": 250003,
        },
    },
    "paper": {
        "backbone_config": RESNET18,
        "text_config": {**MBART_LARGE_50, "decoder_start_token_id": 250003},
    },
}


class SclSltConfig(PretrainedConfig):
    r"""Configuration of [`SclSltForSignTranslation`].

    The model reads frames with a ResNet (``backbone_config``), downsamples time with a
    temporal module, encodes the result with an mBART encoder (the *visual encoder*) and
    translates with an mBART decoder. All mBART parts share ``text_config``. The optional text
    branch (a second mBART encoder over the target sentence plus token projections) serves the
    contrastive stages and can be dropped for translation-only checkpoints.

    Defaults give the paper's shape (ResNet-18 + mBART-large-50); :meth:`from_preset` gives
    named sizes.

    Args:
        backbone_config (`ResNetConfig` or `dict`, *optional*):
            The per-frame CNN. Defaults to ResNet-18 (basic blocks, widths 64-128-256-512).
        text_config (`MBartConfig` or `dict`, *optional*):
            Shape of the visual encoder, text encoder and decoder, plus the vocabulary and the
            special token ids. Defaults to mBART-large-50. ``text_config.decoder_start_token_id``
            must be the id of the target-language token (``tgt_lang``): decoding starts from it.
        temporal_hidden_size (`int`, *optional*):
            Channels of the first temporal convolution. The last one always outputs
            ``text_config.d_model``. Defaults to ``d_model``.
        temporal_kernel_size (`int`, *optional*, defaults to 5):
            Kernel size of every temporal ``Conv1d`` (odd, so that padding keeps the length).
        temporal_num_blocks (`int`, *optional*, defaults to 2):
            Number of (Conv1d + BatchNorm + ReLU + MaxPool1d(2)) blocks; time is downsampled by
            ``2 ** temporal_num_blocks`` and a clip needs at least that many frames.
        projection_dim (`int`, *optional*, defaults to 256):
            Size of the token-level projections of the visual and text tokens in which the
            contrastive similarity is computed.
        similarity_aggregation (`str`, *optional*, defaults to `"cico"`):
            How token similarities become one video–text score: ``"cico"`` (fine-grained,
            softmax-weighted token matching), ``"cls"`` (a learned [CLS] token prepended to the
            visual encoder input vs. the text's sentence token ``</s>``) or ``"mean"`` (masked
            mean pooling on both sides).
        similarity_temperature (`float`, *optional*, defaults to 0.07):
            Softmax temperature ``tau_f`` of the CiCo token matching (unused by cls/mean).
        logit_scale_init_value (`float`, *optional*, defaults to 1/0.07):
            Initial value of the learnable scale that turns similarities into contrastive
            logits (stored as its log, part of the text branch; the loss clamps it at 100).
        tgt_lang (`str`, *optional*, defaults to `"de_DE"`):
            Code of the target language (an mBART-50 language code such as ``de_DE`` or
            ``zh_CN``, or the language token of a corpus tokenizer). Informational: the id used
            for decoding is ``text_config.decoder_start_token_id``.
        use_text_branch (`bool`, *optional*, defaults to `True`):
            Whether the model has the text encoder and the projections (needed by the
            contrastive stages; stage-2 translation checkpoints drop them).
        freeze_text_encoder (`bool`, *optional*, defaults to `True`):
            Keep the text encoder's weights fixed (and the encoder in eval mode) during training,
            as in the paper. The projections stay trainable.
        freeze_batch_norm (`bool`, *optional*, defaults to `False`):
            Keep every BatchNorm (backbone and temporal module) in eval mode while training, so
            that it normalises with its running statistics. Useful for tiny batches; it also makes
            gradient accumulation exactly equivalent to a larger batch.
        video_preprocessing (`dict`, *optional*):
            ``VideoTransform`` keyword arguments the model was trained with (``size``, ``resize``,
            ``max_frames``, ``mean``, ``std``, ``augment``). The model applies them to uint8
            ``pixel_values`` (random crop and augmentation in training mode) and the pipeline to
            its clips. ``None``: the ``VideoTransform`` defaults (224, 256, 300, ImageNet mean/std).
        frame_rate (`float`, *optional*, defaults to 25.0):
            Frames per second of the training clips; the pipeline resamples every input to it.
        backbone_chunk_size (`int`, *optional*):
            Frames per call of the ResNet: the real frames of a batch are split into chunks of this
            many frames, run one after the other and concatenated. ``None`` (the default) runs all of
            them in one call. Results are the same up to floating-point summation order. Chunking
            bounds the backbone's activation memory in inference; in training it bounds it together
            with gradient checkpointing, which then checkpoints the backbone chunk by chunk
            (``model.gradient_checkpointing_enable()``, the Trainer's ``gradient_checkpointing``: the
            backbone's training memory grows with the chunk, not with the clips, for about one extra
            backbone forward). Chunks and checkpointing need the backbone's BatchNorm in eval mode
            while training (``freeze_batch_norm=True``): in training mode every chunk would be
            normalised with its own batch statistics and recomputation would update the running
            statistics twice, so a training-mode forward refuses them. Can be changed on a loaded model.
        backbone_inplace_relu (`bool`, *optional*, defaults to `True`):
            Make the ResNet's ReLUs in-place. Results and gradients are identical (each ReLU follows a
            BatchNorm or a residual sum, whose backward does not need the overwritten values); it saves
            one activation tensor per ReLU. ``False`` keeps
            transformers' out-of-place ReLUs (e.g. for forward hooks that read pre-activation values).
        backbone_channels_last (`bool`, *optional*, defaults to `False`):
            Keep the backbone's weights and input frames in ``channels_last`` (NHWC) memory format,
            for cuDNN (bf16 above all). Results are equal up to floating-point summation order. Off by
            default; the recipe's ``auto`` turns it on with CUDA. On a loaded model: set it, then
            ``model.video_encoder.apply_backbone_memory_format()``.
    """

    model_type = "scl_slt"
    sub_configs = {"backbone_config": ResNetConfig, "text_config": MBartConfig}

    def __init__(
        self,
        backbone_config: ResNetConfig | dict | None = None,
        text_config: MBartConfig | dict | None = None,
        temporal_hidden_size: int | None = None,
        temporal_kernel_size: int = 5,
        temporal_num_blocks: int = 2,
        projection_dim: int = 256,
        similarity_aggregation: str = "cico",
        similarity_temperature: float = 0.07,
        logit_scale_init_value: float = 1 / 0.07,
        tgt_lang: str = "de_DE",
        use_text_branch: bool = True,
        freeze_text_encoder: bool = True,
        freeze_batch_norm: bool = False,
        video_preprocessing: dict[str, Any] | None = None,
        frame_rate: float = 25.0,
        backbone_chunk_size: int | None = None,
        backbone_inplace_relu: bool = True,
        backbone_channels_last: bool = False,
        **kwargs: Any,
    ) -> None:
        self.backbone_config = _as_config(backbone_config, ResNetConfig, RESNET18)
        self.text_config = _as_config(
            text_config, MBartConfig, {**MBART_LARGE_50, "decoder_start_token_id": 250003}
        )
        self.temporal_hidden_size = temporal_hidden_size or self.text_config.d_model
        self.temporal_kernel_size = temporal_kernel_size
        self.temporal_num_blocks = temporal_num_blocks
        self.projection_dim = projection_dim
        self.similarity_aggregation = similarity_aggregation
        self.similarity_temperature = similarity_temperature
        self.logit_scale_init_value = logit_scale_init_value
        self.tgt_lang = tgt_lang
        self.use_text_branch = use_text_branch
        self.freeze_text_encoder = freeze_text_encoder
        self.freeze_batch_norm = freeze_batch_norm
        self.video_preprocessing = video_preprocessing
        self.frame_rate = frame_rate
        self.backbone_chunk_size = backbone_chunk_size
        self.backbone_inplace_relu = backbone_inplace_relu
        self.backbone_channels_last = backbone_channels_last
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            kwargs.setdefault(name, getattr(self.text_config, name))
        kwargs.setdefault("is_encoder_decoder", True)
        kwargs.setdefault("tie_word_embeddings", self.text_config.tie_word_embeddings)
        super().__init__(**kwargs)
        self._defer_pipeline_to_registry()
        self._validate()

    def _defer_pipeline_to_registry(self) -> None:
        """Drop our task from ``custom_pipelines`` when this process has it registered.

        A folder's config declares the pipeline (``custom_pipelines``) for processes that load it
        as remote code; transformers then demands ``trust_remote_code=True`` even where the
        installed package registered the very same task. Where it is registered (after
        ``import modeling_scl_slt``), the registry's class serves the task instead. The model's
        ``save_pretrained`` writes the entry back into every saved folder.
        """
        custom = getattr(self, "custom_pipelines", None)
        if not custom or PIPELINE_TASK not in custom:
            return
        from transformers.pipelines import PIPELINE_REGISTRY

        if PIPELINE_TASK in PIPELINE_REGISTRY.get_supported_tasks():
            self.custom_pipelines = {task: entry for task, entry in custom.items() if task != PIPELINE_TASK}

    def _validate(self) -> None:
        if self.similarity_aggregation not in AGGREGATIONS:
            raise ValueError(
                f"similarity_aggregation must be one of {AGGREGATIONS}, got {self.similarity_aggregation!r}"
            )
        if self.temporal_kernel_size % 2 != 1:
            raise ValueError(f"temporal_kernel_size must be odd, got {self.temporal_kernel_size}")
        if self.temporal_num_blocks < 0:
            raise ValueError(f"temporal_num_blocks must be >= 0, got {self.temporal_num_blocks}")
        chunk = self.backbone_chunk_size
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
            raise ValueError(
                f"backbone_chunk_size must be a positive number of frames or None, got {chunk!r}"
            )
        if not isinstance(self.backbone_channels_last, bool):
            raise ValueError(
                f"backbone_channels_last must be True or False, got {self.backbone_channels_last!r}"
            )
        if self.text_config.decoder_start_token_id is None:
            raise ValueError("text_config.decoder_start_token_id must be the id of the target-language token")

    @property
    def temporal_downsampling(self) -> int:
        """Frames per visual token: ``2 ** temporal_num_blocks``."""
        return 2**self.temporal_num_blocks

    @property
    def max_clip_frames(self) -> int:
        """The most frames one clip may have: the visual encoder's position table holds
        ``text_config.max_position_embeddings`` tokens (one of them the [CLS] token with
        ``similarity_aggregation="cls"``), each made of ``temporal_downsampling`` frames."""
        tokens = self.text_config.max_position_embeddings - (self.similarity_aggregation == "cls")
        return tokens * self.temporal_downsampling

    @property
    def frame_feature_size(self) -> int:
        """Size of one frame's backbone feature (the last ResNet stage's width)."""
        return self.backbone_config.hidden_sizes[-1]

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SclSltConfig:
        """A named size: ``tiny`` (tests), ``small`` (the CPU demo), ``gfslt`` (the GFSLT-VLP
        baseline: 3-layer encoder and decoder, d_model 1024) or ``paper`` (ResNet-18 +
        mBART-large-50). ``overrides`` replace top-level fields; ``backbone_config`` /
        ``text_config`` given as dicts are merged into the preset's.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        fields = copy.deepcopy(PRESETS[name])
        for key in ("backbone_config", "text_config"):
            if isinstance(overrides.get(key), dict):
                fields[key] = {**fields[key], **overrides.pop(key)}
        fields.update(overrides)
        return cls(**fields)


def _as_config(value: Any, config_class: type, defaults: dict[str, Any]) -> Any:
    """A sub-config from a config object, a dict merged over ``defaults``, or ``None`` (defaults)."""
    if value is None:
        return config_class(**defaults)
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if key != "model_type"}
        return config_class(**{**defaults, **value})
    if isinstance(value, PretrainedConfig):
        return value
    raise TypeError(f"expected a {config_class.__name__} or a dict, got {type(value).__name__}")
