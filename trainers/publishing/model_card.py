"""Model cards for recipe runs: metadata, model-index results and prose from a run directory.

:func:`write_model_card` writes ``README.md`` into a run's final model folder; it reads only small
files (``recipe.yaml`` and ``trajectories.json`` with ``yaml.safe_load`` / ``json``, ``metrics.json``,
the model's ``config.json`` and the safetensors headers), so no code runs and no weights load.
The card renders ``model_cards/scl_slt_translation.md`` with ``huggingface_hub.ModelCard.from_template``.

Metadata decisions:

* ``pipeline_tag: video-text-to-text`` (parameter, :data:`~.card_metadata.PIPELINE_TAG`): the Hub
  accepts only its own task names; ``sign-language-translation`` is not one of them and
  ``translation`` means text in, text out. ``video-text-to-text`` is the Hub's task with video in and
  text out (model-index results keep task type ``translation``). ``None`` leaves it out.
* ``license``: the metadata licence must cover the *weights*, which inherit the terms of the
  corpus they were trained on. Default ``None`` resolves to ``apache-2.0`` (the licence of
  scl-slt's code and synthetic corpus) for synthetic-corpus runs and to ``unknown`` for every other
  corpus, with a sentence on the card saying so; pass the right identifier to publish.
* Model-index: one result per metric (BLEU-1..4, ROUGE-L) per split (``validation``, ``test``),
  values exactly as in ``metrics.json`` (×100); ``metric_name`` and ``metric_args`` state the
  BLEU tokenizer and the ROUGE-L β.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard

from model_cards import TRANSLATION_TEMPLATE, read_template

from ..method.atomic_files import atomic_file
from .card_facts import card_facts
from .card_io import read_json_file, read_optional_json, read_yaml_file, section, split_scores
from .card_metadata import PIPELINE_TAG, card_metadata

CARD_FILE = "README.md"


# --- public API -------------------------------------------------------------------------------
def build_model_card(
    run_dir: str | Path,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    base_model: str | list[str] | None = None,
    pipeline_tag: str | None = PIPELINE_TAG,
    model_dir: str | Path | None = None,
    template: str = TRANSLATION_TEMPLATE,
) -> ModelCard:
    """The model card of the recipe run in ``run_dir``.

    Args:
        run_dir: A recipe run directory (it must hold ``recipe.yaml`` and ``metrics.json``).
        repo_id: The Hub repository the card is for (``user/name``); used in the loading snippets
            and as the model-index name. None: snippets load from ``path/to/model``.
        license: Hub licence identifier of the weights. None: ``apache-2.0`` for the synthetic
            corpus, ``unknown`` otherwise (the corpus' terms of use decide; see the module doc).
        datasets: Hub dataset ids of the training data (metadata ``datasets``); the first one is
            also the model-index dataset type. None: not listed; the model-index uses ``corpus.kind``.
        base_model: Hub id(s) of the pretrained model(s) this one was fine-tuned from. None: the
            recipe's ``model.text_model`` when it looks like a Hub id (e.g. ``facebook/mbart-large-50``).
        pipeline_tag: Hub task; None leaves it out.
        model_dir: The model folder described by the card; default ``run_dir / "model"``.
        template: Name of the template in the ``model_cards`` package.
    """
    run_dir = Path(run_dir)
    model_dir = Path(model_dir) if model_dir is not None else run_dir / "model"
    recipe = read_yaml_file(run_dir / "recipe.yaml", "the config the run was started with")
    metrics_path = run_dir / "metrics.json"
    metrics = read_json_file(metrics_path, "the final dev and test scores")
    split_scores(metrics, metrics_path)  # fail early, naming the file
    trajectories = read_optional_json(run_dir / "trajectories.json")  # optional: {} when absent
    corpus = section(recipe, "corpus")
    kind = str(corpus.get("kind", "manifest"))
    license = license or ("apache-2.0" if kind == "synthetic" else "unknown")
    data = card_metadata(recipe, metrics, repo_id, license, datasets, base_model, pipeline_tag)
    facts = card_facts(recipe, metrics, trajectories, model_dir, repo_id, license)
    return ModelCard.from_template(data, template_str=read_template(template), card=facts)


def write_model_card(run_dir: str | Path, model_dir: str | Path | None = None, **kwargs: Any) -> Path:
    """Write the card of the run in ``run_dir`` as ``README.md`` into ``model_dir`` (default
    ``run_dir / "model"``); ``kwargs`` go to :func:`build_model_card`. Returns the file written."""
    model_dir = Path(model_dir) if model_dir is not None else Path(run_dir) / "model"
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"model folder {model_dir} does not exist: there is no model to write a card for"
        )
    card = build_model_card(run_dir, model_dir=model_dir, **kwargs)
    path = model_dir / CARD_FILE
    with atomic_file(path, "model_card") as temporary:
        card.save(temporary)
    return path
