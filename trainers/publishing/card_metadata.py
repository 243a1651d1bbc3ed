"""The model card's YAML metadata: tags, languages, base model and the model-index results."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCardData

from ..metrics.sign_translation_metric import (
    CHARACTER_TOKENIZERS,
    bleu_tokenizer,
    compute_translation_metrics,
)
from .card_io import section, split_scores

# The Hub's task for this model. The Hub accepts only its own task names, and no
# "sign-language-translation" or "video-to-text" is among them. "translation" is wrong: the Hub
# defines it as text in, text out (its widget and inference API would send text). The Hub's only task
# with video in and text out is "video-text-to-text"; our model reads the video alone (the prompt is
# fixed: the target-language token), which that task covers. The model-index keeps task type
# "translation" with the name "Sign Language Translation": there it names the benchmark, not the I/O.
PIPELINE_TAG = "video-text-to-text"
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
SIGN_LANGUAGES = {  # corpus kind → (ISO 639-3 code, name)
    "phoenix2014t": ("gsg", "German Sign Language (DGS)"),
    "csl_daily": ("csl", "Chinese Sign Language (CSL)"),
}
ROUGE_BETA = inspect.signature(compute_translation_metrics).parameters["rouge_beta"].default


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
