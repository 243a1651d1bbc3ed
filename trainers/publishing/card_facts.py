"""The model card's prose facts: corpus, preprocessing, recipe, results and trajectory summaries."""

from __future__ import annotations

import contextlib
from importlib import metadata
from pathlib import Path
from typing import Any

from ..metrics.sign_translation_metric import bleu_tokenizer
from .card_io import BLEU_ORDERS, SPLITS, is_number, read_optional_json, section, split_scores
from .card_metadata import CORPUS_NAMES, ROUGE_BETA, SIGN_LANGUAGES, corpus_name, rouge_token_unit
from .card_model import model_facts

LOCAL_PLACEHOLDER = "path/to/model"  # snippets without a repo_id (never the run's absolute path)
CORPUS_DOMAINS = {
    "synthetic": "generated weather-report sentences",
    "phoenix2014t": "German TV weather forecasts",
    "csl_daily": "Chinese daily-life sentences",
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
CITATION = """@inproceedings{lai2026sclslt,
  title         = {Selective Contrastive Learning for Gloss-free Sign Language Translation},
  author        = {Lai, Changhao and Zhao, Rui and Zhong, Xuewen and Su, Jinsong and Chen, Yidong},
  booktitle     = {Annual Meeting of the Association for Computational Linguistics (ACL)},
  year          = {2026},
  eprint        = {2604.22374},
  archivePrefix = {arXiv},
  note          = {arXiv:2604.22374}
}"""


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
        "features": features_facts(video),
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


def features_facts(video: dict[str, Any]) -> dict[str, Any] | None:
    """How a run on stored frame features (``video.features``) trained the frame encoder; None for
    a run on pixels. Reads the features folder's ``features.json`` where it is still there."""
    folder = video.get("features")
    if not folder:
        return None
    info = read_optional_json(Path(folder) / "features.json") or {}
    backbone = info.get("backbone") if isinstance(info.get("backbone"), dict) else {}
    synthetic = backbone.get("kind") == "synthetic"
    source = backbone.get("source")
    made_by = (
        f"generated straight in feature space ({source or 'a feature-level twin'}), "
        "not by this model's ResNet"
        if synthetic
        else f"computed once by this model's ResNet{f' ({source})' if source else ''}, which stayed frozen"
    )
    return {
        "summary": f"every stage trained on stored per-frame features ({made_by}); the ResNet was not "
        "run or updated in training",
        "synthetic": synthetic,
    }


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
