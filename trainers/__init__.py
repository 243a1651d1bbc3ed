"""SCL-SLT training, in subpackages by job:

- ``trainers.method``: the SCL method (snapshots and similarity series, trajectories, Pair
  Selection, batch samplers, selective contrastive loss); it imports nothing below;
- ``trainers.training``: ``SclSltTrainer``, its arguments, LoRA;
- ``trainers.metrics``: BLEU-1..4 and ROUGE-L (also an offline ``evaluate`` module);
- ``trainers.application``: the recipe and its config, CLI, demo, evaluation, tokenization,
  vocabulary trimming;
- ``trainers.publishing``: model cards and Hub uploads.

Every name of ``__all__`` is importable from ``trainers`` directly. Importing this package imports
nothing heavy (the ``scl-slt`` command line starts from it): the method (torch), the Trainer, the
recipe and the metrics (which pull in ``evaluate``, ``datasets`` and the corpus loaders) load on
first access.
"""

from __future__ import annotations

import importlib

# Heavy imports resolve on first access (PEP 562): name → submodule.
_LAZY_NAMES = {
    "SIGN_TRANSLATION_METRIC_PATH": ".metrics",
    "compute_translation_metrics": ".metrics",
    "sign_translation_metric_path": ".metrics",
    "SclSltTrainer": ".training.trainer",
    "SclSltTrainingArguments": ".training.trainer",
    "RecipeConfig": ".application.recipe_config",
    "run_recipe": ".application.recipe",
    "train_tokenizer": ".application.tokenization",
    "build_model_card": ".publishing.model_card",
    "apply_lora": ".training.lora",
    "paper_lora_config": ".training.lora",
    "trim_vocabulary": ".application.vocabulary",
    "write_model_card": ".publishing.model_card",
    "config_for_tokenizer": ".application.tokenization",
}


def __getattr__(name: str):
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name], __name__), name)
    if name.startswith("__") and name != "__all__":  # probes of tools, not our names: stay light
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    method = importlib.import_module(".method", __name__)
    if name == "__all__":
        # The method's names (listed once, in trainers.method) and the lazily imported ones.
        return sorted([*method.__all__, *_LAZY_NAMES])
    if name in method.__all__:
        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
