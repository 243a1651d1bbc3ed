"""Translation metrics: the plain function and the path of the offline ``evaluate`` module."""

from __future__ import annotations

from pathlib import Path

from .sign_translation_metric import compute_translation_metrics, rouge_l_sentence

SIGN_TRANSLATION_METRIC_PATH = Path(__file__).with_name("sign_translation_metric.py")


def sign_translation_metric_path() -> str:
    """Path to give ``evaluate.load`` (works offline, unlike ``evaluate.load("sacrebleu")``)."""
    return str(SIGN_TRANSLATION_METRIC_PATH)


__all__ = [
    "SIGN_TRANSLATION_METRIC_PATH",
    "compute_translation_metrics",
    "rouge_l_sentence",
    "sign_translation_metric_path",
]
