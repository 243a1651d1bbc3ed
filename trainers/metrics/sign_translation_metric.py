"""Sign language translation metrics: corpus BLEU-1..4 (sacrebleu) and sentence-averaged ROUGE-L.

This file is a self-contained ``evaluate`` module (it imports only ``datasets``, ``evaluate`` and
``sacrebleu``), so it loads offline::

    metric = evaluate.load("/path/to/trainers/metrics/sign_translation_metric.py")
    metric.compute(predictions=[...], references=[...], language="de")

Conventions (method.md, "Evaluation conventions"):

* BLEU-n: ``sacrebleu.metrics.BLEU(max_ngram_order=n, tokenize=...)`` corpus score, uniform
  n-gram weights, sacrebleu's default ``exp`` smoothing, one reference per prediction, no
  lowercasing unless asked. Tokenizer: ``13a`` for German/English (any language but Chinese),
  sacrebleu's ``zh`` tokenizer for Chinese (``language="zh"``): every CJK character is a token,
  runs of non-CJK characters (digits, Latin) are tokenised as by ``13a``.
* ROUGE-L: for every sentence pair the LCS F-measure of pycocoevalcap / signjoey,
  ``F = (1 + β²)·P·R / (R + β²·P)`` with ``P = LCS/len(prediction)``, ``R = LCS/len(reference)``
  and ``β = rouge_beta`` (default 1.2 as in older SLT code; ``rouge_score`` would be β = 1), 0 when
  the LCS is empty; then the mean over the corpus. Tokens: whitespace-split words, or the
  non-whitespace characters for Chinese (character-level tokenizers ``zh`` and ``char``).
* Every score is multiplied by 100; keys ``bleu1``..``bleu4`` and ``rouge_l``.
"""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate
from sacrebleu.metrics import BLEU

CHARACTER_TOKENIZERS = ("zh", "char")

_DESCRIPTION = "Corpus BLEU-1..4 (sacrebleu) and sentence-averaged ROUGE-L (LCS F-measure, beta 1.2), x100."
_KWARGS_DESCRIPTION = """
Args:
    predictions: list of str, one translation per sample.
    references: list of str, one reference per sample.
    language: "de", "en", ... (13a tokenizer, word-level ROUGE) or "zh" (zh tokenizer,
        character-level ROUGE). Default "de".
    tokenize: optional sacrebleu tokenizer name overriding the language's.
    rouge_beta: beta of the ROUGE-L F-measure. Default 1.2.
    lowercase: lowercase before scoring. Default False.
Returns:
    dict with bleu1, bleu2, bleu3, bleu4 and rouge_l, each in [0, 100].
"""
_CITATION = """\
@inproceedings{post-2018-call,
  title = "A Call for Clarity in Reporting {BLEU} Scores",
  author = "Post, Matt",
  booktitle = "Proceedings of the Third Conference on Machine Translation",
  year = "2018",
}
"""


def bleu_tokenizer(language: str, tokenize: str | None = None) -> str:
    """The sacrebleu tokenizer name for ``language`` unless ``tokenize`` overrides it."""
    if tokenize is not None:
        return tokenize
    return "zh" if language.lower().startswith("zh") else "13a"


def rouge_tokens(text: str, tokenizer: str) -> list[str]:
    """ROUGE-L tokens: characters (without spaces) for character tokenizers, else words."""
    if tokenizer in CHARACTER_TOKENIZERS:
        return [character for character in text if not character.isspace()]
    return text.split()


def longest_common_subsequence(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the LCS of two token sequences (dynamic programming, O(len·len) time)."""
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_sentence(prediction: Sequence[str], reference: Sequence[str], beta: float = 1.2) -> float:
    """LCS F-measure of one token sequence pair, in [0, 1] (0 if either is empty)."""
    lcs = longest_common_subsequence(prediction, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return (1 + beta**2) * precision * recall / (recall + beta**2 * precision)


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[str], order: int, tokenizer: str, lowercase: bool = False
) -> float:
    """Corpus BLEU with n-grams up to ``order``, in [0, 100]."""
    bleu = BLEU(max_ngram_order=order, tokenize=tokenizer, lowercase=lowercase)
    return float(bleu.corpus_score(list(predictions), [list(references)]).score)


def compute_translation_metrics(
    predictions: Sequence[str],
    references: Sequence[str],
    language: str = "de",
    tokenize: str | None = None,
    rouge_beta: float = 1.2,
    lowercase: bool = False,
) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L (×100) of ``predictions`` against one reference each (module doc)."""
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions but {len(references)} references.")
    if not predictions:
        raise ValueError("Cannot score an empty corpus.")
    tokenizer = bleu_tokenizer(language, tokenize)
    results = {f"bleu{n}": corpus_bleu(predictions, references, n, tokenizer, lowercase) for n in range(1, 5)}
    rouge_scores = []
    for prediction, reference in zip(predictions, references, strict=True):
        if lowercase:
            prediction, reference = prediction.lower(), reference.lower()
        rouge_scores.append(
            rouge_l_sentence(
                rouge_tokens(prediction, tokenizer), rouge_tokens(reference, tokenizer), rouge_beta
            )
        )
    results["rouge_l"] = 100.0 * sum(rouge_scores) / len(rouge_scores)
    return results


class SignTranslationMetric(evaluate.Metric):
    """``evaluate`` wrapper of :func:`compute_translation_metrics`."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(
        self,
        predictions: Sequence[str],
        references: Sequence[str],
        language: str = "de",
        tokenize: str | None = None,
        rouge_beta: float = 1.2,
        lowercase: bool = False,
    ) -> dict[str, float]:
        return compute_translation_metrics(predictions, references, language, tokenize, rouge_beta, lowercase)
