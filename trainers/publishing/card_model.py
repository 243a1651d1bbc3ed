"""The model folder on the card: architecture from ``config.json``, parameters from safetensors headers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .card_io import read_optional_json

BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def model_facts(model_dir: Path) -> dict[str, Any]:
    """Architecture and parameter count from ``config.json`` and the safetensors headers."""
    config = read_optional_json(model_dir / "config.json")
    adapter = read_optional_json(model_dir / "adapter_config.json")
    total, parts = count_parameters(model_dir)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return {
        "is_adapter": bool(adapter),
        "adapter": adapter_summary(adapter),
        "backbone": backbone_summary(config.get("backbone_config")),
        "temporal": temporal_summary(config),
        "transformer": transformer_summary(text),
        "similarity": similarity_summary(config),
        "tgt_lang": config.get("tgt_lang", "–"),
        "parameters": format_parameters(total),
        "parts": [{"name": name, "count": format_parameters(count)} for name, count in parts.items()],
        "has_pipeline": "sign-language-translation" in (config.get("custom_pipelines") or {}),
        "has_tokenizer": (model_dir / "tokenizer_config.json").is_file(),
    }


def count_parameters(model_dir: Path) -> tuple[int | None, dict[str, int]]:
    """Parameters stored in the folder's safetensors files (headers only), total and per part.

    BatchNorm running statistics are buffers, not parameters, and are left out. A part is the
    first name component, or the first two under ``video_encoder``.
    """
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        return None, {}
    from safetensors import safe_open

    parts: dict[str, int] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if name.rsplit(".", 1)[-1] in BATCH_NORM_STATISTICS:
                    continue
                part = parameter_part(name)
                parts[part] = parts.get(part, 0) + math.prod(handle.get_slice(name).get_shape())
    return sum(parts.values()), parts


def parameter_part(name: str) -> str:
    """The model part a parameter belongs to (``video_encoder.temporal``, ``decoder``, ...)."""
    pieces = name.split(".")
    depth = 2 if pieces[0] in ("video_encoder", "base_model") and len(pieces) > 2 else 1
    return ".".join(pieces[:depth])


def format_parameters(count: int | None) -> str:
    """``1.83 M (1,834,123)``, or ``16,293`` below a million; "unknown" without safetensors files."""
    if count is None:
        return "unknown (no safetensors file in the model folder)"
    if count < 1e6:
        return f"{count:,}"
    scaled = f"{count / 1e9:.2f} B" if count >= 1e9 else f"{count / 1e6:.2f} M"
    return f"{scaled} ({count:,})"


def adapter_summary(adapter: dict[str, Any]) -> dict[str, Any]:
    """Base model, rank, alpha and target modules of a peft adapter config."""
    return {
        "base_model": adapter.get("base_model_name_or_path", "–"),
        "rank": adapter.get("r", "–"),
        "alpha": adapter.get("lora_alpha", "–"),
        "target_modules": adapter.get("target_modules", "–"),
    }


def backbone_summary(backbone: Any) -> str:
    """The frame CNN in a few words."""
    if not isinstance(backbone, dict):
        return "unknown"
    return (
        f"ResNet ({backbone.get('layer_type', 'basic')} blocks, depths {backbone.get('depths', '–')}, "
        f"widths {backbone.get('hidden_sizes', '–')}), one feature vector per real frame"
    )


def temporal_summary(config: dict[str, Any]) -> str:
    """The temporal convolution stack."""
    blocks = config.get("temporal_num_blocks", "–")
    kernel = config.get("temporal_kernel_size", "–")
    hidden = config.get("temporal_hidden_size", "–")
    reduction = f"×{2**blocks} shorter" if isinstance(blocks, int) else "shorter"
    return (
        f"{blocks} × (Conv1d kernel {kernel} + BatchNorm + ReLU + MaxPool1d(2)), width {hidden}, "
        f"the sequence {reduction}"
    )


def transformer_summary(text: dict[str, Any]) -> str:
    """The mBART encoder (over video features) and decoder sizes."""
    if not text:
        return "unknown"
    return (
        f"mBART-style, d_model {text.get('d_model', '–')}, {text.get('encoder_layers', '–')} encoder and "
        f"{text.get('decoder_layers', '–')} decoder layers, "
        f"{text.get('encoder_attention_heads', '–')} heads, "
        f"vocabulary {text.get('vocab_size', '–')}"
    )


def similarity_summary(config: dict[str, Any]) -> str:
    """How video and text were aligned, and whether the text branch ships."""
    aggregation = config.get("similarity_aggregation", "cico")
    ships = (
        "the text branch ships with this checkpoint"
        if config.get("use_text_branch")
        else "the text branch and projections were dropped for translation"
    )
    return f"`{aggregation}` video–text similarity in stage `scl` (Pair Selection batches); {ships}"
