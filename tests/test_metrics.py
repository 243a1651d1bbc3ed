"""Translation metrics against hand-computed BLEU and ROUGE-L, and the offline evaluate route."""

from __future__ import annotations

import math

import evaluate
import pytest

from trainers.metrics import compute_translation_metrics, rouge_l_sentence, sign_translation_metric_path
from trainers.metrics.sign_translation_metric import longest_common_subsequence

PREDICTIONS = ["the cat sat on the mat", "a dog runs"]
REFERENCES = ["the cat sat on a mat", "a dog runs fast"]

# Hand computation (13a leaves these lowercase words as they are):
# lengths: hypothesis 6 + 3 = 9, reference 6 + 4 = 10 → BP = exp(1 − 10/9)
# 1-grams: sentence 1 matches the(1, clipped), cat, sat, on, mat = 5/6; sentence 2: 3/3 → p1 = 8/9
# 2-grams: "the cat", "cat sat", "sat on" match of 5; "a dog", "dog runs" of 2 → p2 = 5/7
# 3-grams: "the cat sat", "cat sat on" of 4; "a dog runs" of 1 → p3 = 3/5
# 4-grams: "the cat sat on" of 3; none in sentence 2 → p4 = 1/3
BREVITY_PENALTY = math.exp(1 - 10 / 9)
PRECISIONS = [8 / 9, 5 / 7, 3 / 5, 1 / 3]


def hand_bleu(order: int) -> float:
    log_mean = sum(math.log(p) for p in PRECISIONS[:order]) / order
    return 100 * BREVITY_PENALTY * math.exp(log_mean)


def test_bleu_1_to_4_match_the_hand_computation() -> None:
    results = compute_translation_metrics(PREDICTIONS, REFERENCES, language="de")
    for order in range(1, 5):
        assert results[f"bleu{order}"] == pytest.approx(hand_bleu(order), abs=1e-6)
    assert results["bleu4"] == pytest.approx(53.4174, abs=1e-3)


def test_rouge_l_matches_the_hand_computation() -> None:
    # sentence 1: LCS "the cat sat on mat" = 5, P = R = 5/6 → F = 5/6 for any beta
    # sentence 2: LCS = 3, P = 3/3, R = 3/4 → F = (1 + 1.44)·1·0.75 / (0.75 + 1.44·1) = 1.83 / 2.19
    expected = 100 * (5 / 6 + 1.83 / 2.19) / 2
    results = compute_translation_metrics(PREDICTIONS, REFERENCES)
    assert results["rouge_l"] == pytest.approx(expected)
    f1 = compute_translation_metrics(PREDICTIONS, REFERENCES, rouge_beta=1.0)["rouge_l"]
    assert f1 == pytest.approx(100 * (5 / 6 + 2 * 0.75 / 1.75) / 2)


def test_longest_common_subsequence_by_hand() -> None:
    # "a b c d e" vs "a c e b": a, c, e in order → 3
    assert longest_common_subsequence(["a", "b", "c", "d", "e"], ["a", "c", "e", "b"]) == 3
    assert longest_common_subsequence([], ["x"]) == 0
    assert rouge_l_sentence([], ["x"]) == 0.0
    assert rouge_l_sentence(["x", "y"], ["x", "y"]) == pytest.approx(1.0)


def test_chinese_is_scored_at_character_level() -> None:
    # hypothesis 今天天气很好 (6 chars), reference 今天天气好 (5 chars): BP = 1
    # 1-grams 5/6; 2-grams 今天 天天 天气 match, 气很 很好 do not → 3/5 → BLEU-2 = sqrt(5/6 · 3/5)
    # ROUGE-L: LCS 今天天气好 = 5, P = 5/6, R = 1 → F = 2.44·(5/6) / (1 + 1.44·5/6)
    results = compute_translation_metrics(["今天天气很好"], ["今天 天气 好"], language="zh")
    assert results["bleu1"] == pytest.approx(100 * 5 / 6)
    assert results["bleu2"] == pytest.approx(100 * math.sqrt(5 / 6 * 3 / 5))
    assert results["rouge_l"] == pytest.approx(100 * 2.44 * (5 / 6) / (1 + 1.44 * 5 / 6))
    word_level = compute_translation_metrics(["今天天气很好"], ["今天 天气 好"], language="de")
    assert word_level["bleu1"] == 0.0


def test_evaluate_loads_the_module_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(sign_translation_metric_path())
    results = metric.compute(predictions=PREDICTIONS, references=REFERENCES, language="en")
    assert results == pytest.approx(compute_translation_metrics(PREDICTIONS, REFERENCES))
    assert set(results) == {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        compute_translation_metrics(PREDICTIONS, REFERENCES[:1])
    with pytest.raises(ValueError, match="empty corpus"):
        compute_translation_metrics([], [])
