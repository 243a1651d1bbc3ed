"""Model cards for recipe runs: metadata, model-index results and prose from a run directory.

:func:`write_model_card` writes ``README.md`` into a run's final model folder; it reads only small
files (``recipe.yaml`` and ``trajectories.json`` with ``yaml.safe_load`` / ``json``, ``metrics.json``,
the model's ``config.json`` and the safetensors headers), so no code runs and no weights load.
The card renders ``model_cards/scl_slt_translation.md`` with ``huggingface_hub.ModelCard.from_template``.

Metadata decisions:

* ``pipeline_tag: translation`` (parameter): the Hub accepts only its own task names, and
  ``sign-language-translation`` is not one of them; ``translation`` is the task this model does
  (model-index results use the same task type). Pass ``pipeline_tag=None`` to leave it out.
* ``license``: the metadata licence must cover the *weights*, which inherit the terms of the
  corpus they were trained on. Default ``None`` resolves to ``apache-2.0`` (the licence of
  scl-slt's code and synthetic corpus) for synthetic-corpus runs and to ``unknown`` for every other
  corpus, with a sentence on the card saying so; pass the right identifier to publish.
* Model-index: one result per metric (BLEU-1..4, ROUGE-L) per split (``validation``, ``test``),
  values exactly as in ``metrics.json`` (×100); ``metric_name`` and ``metric_args`` state the
  BLEU tokenizer and the ROUGE-L β.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from model_cards import TRANSLATION_TEMPLATE, read_template

from ..metrics.sign_translation_metric import (
    CHARACTER_TOKENIZERS,
    bleu_tokenizer,
    compute_translation_metrics,
)

CARD_FILE = "README.md"
LOCAL_PLACEHOLDER = "path/to/model"  # snippets without a repo_id (never the run's absolute path)
SPLITS = {"validation": "dev (validation)", "test": "test"}
BLEU_ORDERS = (1, 2, 3, 4)
BASE_TAGS = [
    "sign-language-translation",
    "sign-language",
    "gloss-free",
    "scl-slt",
    "contrastive-learning",
    "video",
]
CORPUS_NAMES = {
    "synthetic": "scl-slt synthetic sign language (generated weather reports)",
    "phoenix2014t": "RWTH-PHOENIX-Weather 2014 T",
    "csl_daily": "CSL-Daily",
    "manifest": "a manifest corpus",
}
CORPUS_DOMAINS = {
    "synthetic": "generated weather-report sentences",
    "phoenix2014t": "German TV weather forecasts",
    "csl_daily": "Chinese daily-life sentences",
}
SIGN_LANGUAGES = {  # corpus kind → (ISO 639-3 code, name)
    "phoenix2014t": ("gsg", "German Sign Language (DGS)"),
    "csl_daily": ("csl", "Chinese Sign Language (CSL)"),
}
SPOKEN_LANGUAGES = {"de": "German", "en": "English", "zh": "Chinese"}
PAPER_TEST_RESULTS = {  # method.md: SCL-SLT two stage, test sets (the paper's numbers, not ours)
    "phoenix2014t": "BLEU-4 26.00, ROUGE-L 47.02",
    "csl_daily": "BLEU-4 23.25, ROUGE-L 51.08",
}
TRAJECTORY_MEANINGS = {
    "H->L": "pushed apart (easy)",
    "H->H": "stays similar (likely false negative)",
    "L->H": "drifts together (hard negative)",
    "L->L": "stays dissimilar",
}
BATCH_NORM_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
ROUGE_BETA = inspect.signature(compute_translation_metrics).parameters["rouge_beta"].default
CITATION = """@inproceedings{lai2026sclslt,
  title         = {Selective Contrastive Learning for Gloss-free Sign Language Translation},
  author        = {Lai, Changhao and Zhao, Rui and Zhong, Xuewen and Su, Jinsong and Chen, Yidong},
  booktitle     = {Annual Meeting of the Association for Computational Linguistics (ACL)},
  year          = {2026},
  eprint        = {2604.22374},
  archivePrefix = {arXiv},
  note          = {arXiv:2604.22374}
}"""


# --- public API -------------------------------------------------------------------------------
def build_model_card(
    run_dir: str | Path,
    *,
    repo_id: str | None = None,
    license: str | None = None,
    datasets: list[str] | None = None,
    base_model: str | list[str] | None = None,
    pipeline_tag: str | None = "translation",
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
    card.save(path)
    return path


# --- reading the run --------------------------------------------------------------------------
def require_file(path: Path, holds: str) -> None:
    """Raise a FileNotFoundError naming ``path`` unless it is a file."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: a model card needs {holds}; "
            "run the recipe to the end or pass the right run_dir"
        )


def read_json_file(path: Path, holds: str) -> dict[str, Any]:
    """A JSON object from ``path`` (one clear error when it is missing or not a JSON object)."""
    require_file(path, holds)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def read_yaml_file(path: Path, holds: str) -> dict[str, Any]:
    """A YAML mapping from ``path``, read with ``yaml.safe_load`` (no code runs)."""
    require_file(path, holds)
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(value).__name__}")
    return value


def section(recipe: dict[str, Any], name: str) -> dict[str, Any]:
    """One section of the recorded config ({} when absent: older runs lack newer sections)."""
    value = recipe.get(name)
    return value if isinstance(value, dict) else {}


def split_scores(metrics: dict[str, Any], source: str | Path = "metrics.json") -> dict[str, dict[str, float]]:
    """Per split present in ``metrics.json`` (read from ``source``): its numeric BLEU-1..4 and
    ROUGE-L scores."""
    names = [f"bleu{n}" for n in BLEU_ORDERS] + ["rouge_l"]
    scores = {}
    for split in SPLITS:
        values = metrics.get(split)
        if isinstance(values, dict):
            scores[split] = {name: values[name] for name in names if is_number(values.get(name))}
    if not any(scores.values()):
        raise ValueError(f"{source} holds no BLEU / ROUGE-L scores under 'validation' or 'test'")
    return scores


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- metadata ---------------------------------------------------------------------------------
def card_metadata(
    recipe: dict[str, Any],
    metrics: dict[str, Any],
    repo_id: str | None,
    license: str,
    datasets: list[str] | None,
    base_model: str | list[str] | None,
    pipeline_tag: str | None,
) -> ModelCardData:
    """The card's YAML metadata, with one model-index result per metric and split."""
    corpus = section(recipe, "corpus")
    kind = str(corpus.get("kind", "manifest"))
    return ModelCardData(
        model_name=repo_id.split("/")[-1] if repo_id else f"scl-slt-{kind}",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=BASE_TAGS + ([f"{kind}-corpus"] if kind == "synthetic" else [kind]),
        language=languages(corpus),
        license=license,
        datasets=datasets or None,
        base_model=base_model or pretrained_text_model(section(recipe, "model")),
        eval_results=eval_results(metrics, corpus, datasets),
    )


def languages(corpus: dict[str, Any]) -> list[str]:
    """The spoken target language, then the sign language's ISO 639-3 code when known."""
    spoken = [str(corpus.get("language", "de"))]
    sign = SIGN_LANGUAGES.get(str(corpus.get("kind")))
    return [*spoken, sign[0]] if sign else spoken


def pretrained_text_model(model: dict[str, Any]) -> str | None:
    """``model.text_model`` when it looks like a Hub id (``owner/name``).

    Only the text model: the Hub reads a list of base models as a merge, and the ResNet backbone
    is a small part of the model.
    """
    text_model = model.get("text_model")
    return text_model if isinstance(text_model, str) and looks_like_hub_id(text_model) else None


def looks_like_hub_id(value: str) -> bool:
    """``owner/name`` that is not a local folder."""
    return (
        bool(re.fullmatch(r"[\w.-]+/[\w.-]+", value))
        and not value.startswith(".")
        and not Path(value).exists()
    )


def eval_results(
    metrics: dict[str, Any], corpus: dict[str, Any], datasets: list[str] | None
) -> list[EvalResult]:
    """One ``EvalResult`` per metric per split, values exactly as in ``metrics.json``."""
    kind = str(corpus.get("kind", "manifest"))
    tokenizer = bleu_tokenizer(str(corpus.get("language", "de")))
    common = {
        "task_type": "translation",
        "task_name": "Sign Language Translation",
        "dataset_type": datasets[0] if datasets else kind,
        "dataset_name": corpus_name(corpus),
    }
    results = []
    for split, scores in split_scores(metrics).items():
        for name, value in scores.items():
            results.append(
                EvalResult(
                    **common, dataset_split=split, metric_value=value, **metric_fields(name, tokenizer)
                )
            )
    return results


def metric_fields(name: str, tokenizer: str) -> dict[str, Any]:
    """``metric_type``, ``metric_name`` and ``metric_args`` stating exactly what was computed."""
    if name == "rouge_l":
        tokens = rouge_token_unit(tokenizer)
        return {
            "metric_type": "rouge",
            "metric_name": (
                f"ROUGE-L (sentence-level LCS F-measure, beta {ROUGE_BETA:g}, {tokens}, corpus mean)"
            ),
            "metric_args": {"variant": "rouge-l", "beta": ROUGE_BETA, "level": "sentence", "tokens": tokens},
        }
    order = int(name.removeprefix("bleu"))
    return {
        "metric_type": "bleu",
        "metric_name": f"BLEU-{order} (sacrebleu corpus BLEU, tokenize {tokenizer})",
        "metric_args": {"max_ngram_order": order, "tokenize": tokenizer, "implementation": "sacrebleu"},
    }


def rouge_token_unit(tokenizer: str) -> str:
    """What ROUGE-L counts: characters for Chinese, words otherwise."""
    return "characters" if tokenizer in CHARACTER_TOKENIZERS else "words"


def corpus_name(corpus: dict[str, Any]) -> str:
    """A readable corpus name (a manifest corpus is named after its file)."""
    kind = str(corpus.get("kind", "manifest"))
    if kind == "manifest" and corpus.get("path"):
        return f"manifest corpus {Path(str(corpus['path'])).name}"
    return CORPUS_NAMES.get(kind, kind)


# --- prose facts ------------------------------------------------------------------------------
def card_facts(
    recipe: dict[str, Any],
    metrics: dict[str, Any],
    trajectories: dict[str, Any],
    model_dir: Path,
    repo_id: str | None,
    license: str,
) -> dict[str, Any]:
    """Everything the template writes besides the metadata, as plain strings, lists and dicts."""
    corpus = section(recipe, "corpus")
    video = section(recipe, "video")
    kind = str(corpus.get("kind", "manifest"))
    repo = repo_id or LOCAL_PLACEHOLDER
    model = model_facts(model_dir)
    frame_size = int(video.get("image_size", 224))
    return {
        "title": f"SCL-SLT sign language translation: {corpus_name(corpus)}",
        "repo": repo,
        "tokenizer": tokenizer_source(model["has_tokenizer"], section(recipe, "model"), repo),
        "corpus": corpus_facts(corpus),
        "model": model,
        "video": video_summary(video),
        "inference_video": inference_video_summary(video),
        "frame_size": frame_size,
        "example_frames": min(int(video.get("max_frames", 64)), 64),
        "recipe": recipe_facts(recipe),
        "trajectories": trajectory_facts(trajectories) if trajectories else None,
        "metrics": metric_descriptions(str(corpus.get("language", "de"))),
        "results": result_rows(metrics),
        "retrieval": retrieval_rows(metrics.get("validation_retrieval_after_scl")),
        "paper_results": PAPER_TEST_RESULTS.get(kind),
        "license_note": license_note(license, kind),
        "versions": versions(model_dir),
        "citation": CITATION,
    }


def tokenizer_source(has_tokenizer: bool, model: dict[str, Any], repo: str) -> str:
    """Where the snippet loads the tokenizer: the model folder, else the recipe's tokenizer."""
    return repo if has_tokenizer else str(model.get("tokenizer") or repo)


def corpus_facts(corpus: dict[str, Any]) -> dict[str, Any]:
    """Name, languages, domain and size of the training corpus."""
    kind = str(corpus.get("kind", "manifest"))
    language = str(corpus.get("language", "de"))
    sign = SIGN_LANGUAGES.get(kind)
    return {
        "kind": kind,
        "name": corpus_name(corpus),
        "is_synthetic": kind == "synthetic",
        "size": corpus.get("synthetic_size") if kind == "synthetic" else None,
        "sign_language": sign[1] if sign else None,
        "spoken_language": SPOKEN_LANGUAGES.get(language.split("_")[0].lower(), f"`{language}`"),
        "domain": CORPUS_DOMAINS.get(kind, "the domain of its manifest corpus"),
    }


def video_summary(video: dict[str, Any]) -> str:
    """The frame preprocessing in one line."""
    size = video.get("image_size", 224)
    resize = video.get("resize")
    crop = f"resize {resize}, crop {size}" if resize else f"resize to {size}"
    augment = "random crop and augmentation in training" if video.get("augment", True) else "no augmentation"
    return (
        f"{crop} (centre crop at inference), at most {video.get('max_frames', 300)} frames "
        f"(uniformly subsampled beyond), {augment}"
    )


def inference_video_summary(video: dict[str, Any]) -> str:
    """The frame preprocessing the model expects at inference."""
    size = video.get("image_size", 224)
    resize = video.get("resize")
    crop = f"resize {resize}, centre crop {size}" if resize else f"resize to {size}"
    return f"{crop}, at most {video.get('max_frames', 300)} frames, uniformly subsampled beyond"


def metric_descriptions(language: str) -> dict[str, str]:
    """How BLEU and ROUGE-L were computed, in words."""
    tokenizer = bleu_tokenizer(language)
    return {
        "bleu": (
            f"sacrebleu corpus BLEU, tokenize `{tokenizer}`, uniform n-gram weights, exp smoothing, cased"
        ),
        "rouge": (
            f"sentence-level LCS F-measure with β = {ROUGE_BETA:g} over {rouge_token_unit(tokenizer)}, "
            "averaged over the corpus"
        ),
    }


def result_rows(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """One table row per split, scores rounded to two decimals ("–" where missing)."""
    rows = []
    for split, scores in split_scores(metrics).items():
        row = {"split": SPLITS[split]}
        for name in [f"bleu{n}" for n in BLEU_ORDERS] + ["rouge_l"]:
            row[name] = f"{scores[name]:.2f}" if name in scores else "–"
        rows.append(row)
    return rows


def retrieval_rows(retrieval: Any) -> list[dict[str, str]]:
    """Dev recall@1/5/10 of both directions after stage scl ([] when not recorded)."""
    if not isinstance(retrieval, dict):
        return []
    rows = []
    for key, direction in (("video_to_text", "video → text"), ("text_to_video", "text → video")):
        values = {k: retrieval.get(f"eval_{key}_{k}") for k in ("r1", "r5", "r10")}
        if all(is_number(value) for value in values.values()):
            rows.append({"direction": direction, **{k: f"{v:.1f}" for k, v in values.items()}})
    return rows


def license_note(license: str, kind: str) -> str:
    """What the metadata licence covers."""
    if kind == "synthetic":
        return (
            f"`{license}`. The synthetic corpus and the scl-slt code are Apache-2.0; no third-party data "
            "went into these weights."
        )
    return (
        f"`{license}` in the metadata. The weights were trained on "
        f"{CORPUS_NAMES.get(kind, 'a third-party corpus')}, "
        "whose terms of use also govern models trained on it (real sign language corpora are often "
        "licensed for non-commercial research only): check them before use or redistribution."
    )


def versions(model_dir: Path) -> str:
    """scl-slt and transformers versions of the run ("" when unknown)."""
    parts = []
    with contextlib.suppress(metadata.PackageNotFoundError):
        parts.append(f"scl-slt {metadata.version('scl-slt')}")
    config = read_optional_json(model_dir / "config.json")
    if config.get("transformers_version"):
        parts.append(f"saved with transformers {config['transformers_version']}")
    return ", ".join(parts)


def read_optional_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, or {} when it is missing or unreadable (card facts only)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# --- the recipe -------------------------------------------------------------------------------
def recipe_facts(recipe: dict[str, Any]) -> dict[str, Any]:
    """Stage table rows and one-line summaries of the other sections."""
    return {
        "seed": recipe.get("seed", "–"),
        "precision": recipe.get("precision", "fp32"),
        "stages": [stage_row(name, section(recipe, name)) for name in ("reference", "scl", "translate")],
        "pair_selection": pair_selection_summary(
            section(recipe, "pair_selection"), section(recipe, "reference")
        ),
        "model": model_setup_summary(section(recipe, "model")),
        "evaluation": evaluation_summary(section(recipe, "evaluation")),
    }


def stage_row(name: str, stage: dict[str, Any]) -> dict[str, Any]:
    """One stage's optimisation settings and its own settings."""
    return {
        "name": f"`{name}`",
        "epochs": format_value(stage.get("epochs")),
        "batch_size": format_value(stage.get("batch_size")),
        "accumulation": format_value(stage.get("gradient_accumulation_steps", 1)),
        "learning_rate": format_value(stage.get("learning_rate")),
        "schedule": format_value(stage.get("lr_scheduler")),
        "warmup": format_value(stage.get("warmup_ratio")),
        "weight_decay": format_value(stage.get("weight_decay")),
        "settings": stage_settings(name, stage),
    }


def stage_settings(name: str, stage: dict[str, Any]) -> str:
    """The settings only this stage has, as ``key value`` pairs."""
    keys = {
        "reference": ["snapshot_interval"],
        "scl": [
            "batch_sampler",
            "schedule",
            "log_base",
            "contrastive_loss",
            "contrastive_weight",
            "translation_weight",
            "avoid_duplicate_texts",
            "init_from",
        ],
        "translate": ["label_smoothing", "num_beams", "max_new_tokens", "eval_every_epochs"],
    }[name]
    return ", ".join(f"{key} {format_value(stage[key])}" for key in keys if key in stage) or "–"


def pair_selection_summary(selection: dict[str, Any], reference: dict[str, Any]) -> str:
    """Pair Selection scoring in one line."""
    score = selection.get("score", "delta")
    how = (
        "similarity change between the first and the last snapshot"
        if score == "delta"
        else "least-squares slope over all snapshots"
    )
    mode = selection.get("mode", "dense")
    text = f"score `{score}` ({how}), `{mode}` scores"
    if mode == "sparse":
        text += f" over {selection.get('num_candidates', '–')} candidates per sample"
    return text + f", snapshots every {reference.get('snapshot_interval', '–')} reference epochs"


def model_setup_summary(model: dict[str, Any]) -> str:
    """Preset or pretrained parts, and the tokenizer."""
    if model.get("backbone") or model.get("text_model"):
        start = f"pretrained parts `{model.get('backbone')}` (frames) and `{model.get('text_model')}` (text)"
    else:
        start = f"preset `{model.get('preset', 'small')}` trained from scratch"
    if model.get("tokenizer"):
        tokenizer = f"tokenizer `{model['tokenizer']}`"
    else:
        tokenizer = (
            f"a {model.get('tokenizer_model', 'unigram')} tokenizer trained on the training texts "
            f"(vocabulary ≤ {model.get('vocab_size', '–')})"
        )
    overrides = model.get("overrides")
    extra = f", config overrides {overrides}" if overrides else ""
    return f"{start}, {tokenizer}, target language token `{model.get('tgt_lang', '–')}`{extra}"


def evaluation_summary(evaluation: dict[str, Any]) -> str:
    """Beam size and length of the final decoding."""
    return (
        f"beam search with {evaluation.get('num_beams', '–')} beams, "
        f"at most {evaluation.get('max_new_tokens', '–')} new tokens"
    )


def format_value(value: Any) -> str:
    """A config value for a table cell."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- trajectories -----------------------------------------------------------------------------
def trajectory_facts(report: dict[str, Any]) -> dict[str, Any] | None:
    """Shares of the four trajectories and the consistently pushed share (None if unusable)."""
    shares = report.get("shares")
    if not isinstance(shares, dict) or not shares:
        return None
    rows = [
        {"category": category.replace("->", "→"), "meaning": meaning, "share": percent(shares.get(category))}
        for category, meaning in TRAJECTORY_MEANINGS.items()
    ]
    summary = (
        f"{format_count(report.get('num_pairs'))} negative pairs of "
        f"{format_count(report.get('num_samples'))} training samples, "
        f"{report.get('num_snapshots', '–')} snapshots. Rule: {report.get('threshold_rule', '–')}."
    )
    if report.get("num_identical_text_pairs"):
        summary += (
            f" {format_count(report['num_identical_text_pairs'])} pairs with identical texts (known false "
            "negatives) are left out of the shares."
        )
    return {"rows": rows, "summary": summary, "consistent": percent(report.get("consistently_pushed_share"))}


def percent(share: Any) -> str:
    """A share in [0, 1] as a percentage."""
    return f"{100 * share:.1f} %" if is_number(share) else "–"


def format_count(value: Any) -> str:
    """An integer with thousands separators."""
    return f"{value:,}" if isinstance(value, int) else "–"


# --- the model folder -------------------------------------------------------------------------
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
