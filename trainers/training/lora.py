"""LoRA for SCL-SLT through peft: the paper's setup (rank 16, alpha 32 on the visual encoder and decoder).

What trains under :func:`paper_lora_config` (a documented choice; the paper names only the LoRA part):

* **LoRA** (``r`` / ``alpha``) on every attention projection (``q_proj``, ``k_proj``, ``v_proj``,
  ``out_proj``) of the visual encoder (self-attention) and of the decoder (self- and
  cross-attention). The mBART weights under them stay frozen.
* **Fully trained** (peft ``modules_to_save``: a trainable copy saved with the adapter): the parts
  that mBART-50 does not provide and that therefore cannot be adapted from a pretrained state —
  the temporal module (``video_encoder.temporal``), the contrastive projections
  (``video_projection``, ``text_projection``), the learnable logit scale (``logit_scale``), the
  [CLS] video token (``video_encoder.cls_token``, ``cls`` aggregation only) and, with
  ``train_backbone=True`` (default), the ResNet frame backbone (``video_encoder.backbone``; the
  paper says only that it is ImageNet-pretrained, so training it end to end is our default).
  ``train_backbone=False`` keeps the ResNet frozen (less memory and compute: no backbone
  gradients). Names missing from a model (a stage-2 model without the text branch) are skipped by
  peft. The logit scale and the [CLS] token are small modules (``LogitScale``, ``ClsToken``) so
  that this works: peft saves whole modules only.
* **Frozen**: the text encoder (the model freezes it itself), token and position embeddings,
  ``lm_head`` (tied to the decoder embeddings), layer norms and feed-forward layers.
"""

from __future__ import annotations

import peft
from torch import nn

# Attention projections of the visual encoder (self-attention only) and of the decoder (self- and
# cross-attention). peft full-matches a string against module names: the text encoder
# (``text_encoder.layers.N.self_attn.*``) and ``lm_head`` never match.
ATTENTION_PROJECTIONS = (
    r"(video_encoder\.visual_encoder\.layers\.\d+\.self_attn"
    r"|decoder\.layers\.\d+\.(self_attn|encoder_attn))"
    r"\.(q_proj|k_proj|v_proj|out_proj)"
)
# Parts without a pretrained mBART counterpart, trained in full next to the adapter.
NEW_MODULES = (
    "video_encoder.temporal",
    "video_projection",
    "text_projection",
    "logit_scale",
    "video_encoder.cls_token",
)
BACKBONE = "video_encoder.backbone"


def paper_lora_config(
    r: int = 16, alpha: int = 32, dropout: float = 0.05, train_backbone: bool = True
) -> peft.LoraConfig:
    """The paper's LoRA setup: rank ``r``, scaling ``alpha / r`` on the attention projections.

    ``dropout`` is the LoRA dropout (not given by the paper). ``train_backbone`` adds the ResNet to
    the fully trained modules (see the module docstring for everything that trains).
    """
    modules_to_save = [*NEW_MODULES, BACKBONE] if train_backbone else list(NEW_MODULES)
    return peft.LoraConfig(
        task_type="SEQ_2_SEQ_LM",
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=ATTENTION_PROJECTIONS,
        modules_to_save=modules_to_save,
        bias="none",
    )


def apply_lora(model: nn.Module, config: peft.LoraConfig | None = None) -> peft.PeftModel:
    """Wrap ``model`` (an ``SclSltForSignTranslation``) with LoRA; ``config`` defaults to the paper's.

    The model is modified in place (peft injects the LoRA layers into it): save a base checkpoint
    first if you need one. The text encoder stays frozen (peft freezes every base weight). Trim the
    vocabulary (``trainers.application.vocabulary``) before this, not after. Before publishing the
    adapter, set ``lora_model.peft_config["default"].base_model_name_or_path`` to the base model's
    Hub id (peft fills it only for a model loaded with ``from_pretrained``).
    """
    config = config if config is not None else paper_lora_config()
    return peft.get_peft_model(model, config)


def lora_module_names(model: nn.Module) -> set[str]:
    """Names (in the base model) of the modules that carry a LoRA adapter."""
    base = model.get_base_model() if isinstance(model, peft.PeftModel) else model
    return {name for name, module in base.named_modules() if isinstance(module, peft.tuners.lora.LoraLayer)}
