"""The CiCo-style fine-grained similarity and the pooled alternatives, against direct loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_scl_slt.similarity import cico_similarity, video_text_similarity


def naive_cico(video: list[torch.Tensor], text: list[torch.Tensor], tau: float) -> tuple[list, list]:
    """method.md's formula with explicit loops over pairs and tokens (no padding at all)."""
    v2t = [[0.0] * len(text) for _ in video]
    t2v = [[0.0] * len(video) for _ in text]
    for a, v in enumerate(video):
        for b, t in enumerate(text):
            c = [[float(v[i] @ t[j]) for j in range(len(t))] for i in range(len(v))]
            per_video_token = []
            for row in c:
                weights = [math.exp(x / tau) for x in row]
                per_video_token.append(sum(w * x for w, x in zip(weights, row, strict=True)) / sum(weights))
            per_text_token = []
            for j in range(len(t)):
                column = [c[i][j] for i in range(len(v))]
                weights = [math.exp(x / tau) for x in column]
                per_text_token.append(sum(w * x for w, x in zip(weights, column, strict=True)) / sum(weights))
            v2t[a][b] = sum(per_video_token) / len(per_video_token)
            t2v[b][a] = sum(per_text_token) / len(per_text_token)
    return v2t, t2v


def padded(sequences: list[torch.Tensor], garbage: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length token sequences, filling padding with garbage that must be ignored."""
    length = max(len(s) for s in sequences)
    tokens = torch.full((len(sequences), length, sequences[0].shape[-1]), garbage, dtype=sequences[0].dtype)
    mask = torch.zeros(len(sequences), length, dtype=torch.bool)
    for row, seq in enumerate(sequences):
        tokens[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return tokens, mask


def random_tokens(lengths: list[int], dim: int = 6, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [
        F.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=-1) for n in lengths
    ]


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_cico_matches_the_formula_and_ignores_padding(tau: float) -> None:
    video = random_tokens([5, 3, 4], seed=1)
    text = random_tokens([2, 6], seed=2)
    expected_v2t, expected_t2v = naive_cico(video, text, tau)
    video_tokens, video_mask = padded(video)
    text_tokens, text_mask = padded(text)
    v2t, t2v = cico_similarity(video_tokens, video_mask, text_tokens, text_mask, temperature=tau)
    assert v2t.shape == (3, 2) and t2v.shape == (2, 3)
    assert torch.allclose(v2t, torch.tensor(expected_v2t, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(t2v, torch.tensor(expected_t2v, dtype=torch.float64), atol=1e-10)


def test_cico_directions_differ_in_general() -> None:
    video_tokens, video_mask = padded(random_tokens([5, 3], seed=3))
    text_tokens, text_mask = padded(random_tokens([2, 6], seed=4))
    v2t, t2v = cico_similarity(video_tokens, video_mask, text_tokens, text_mask)
    assert not torch.allclose(v2t, t2v.T)


def test_mean_pooling_is_cosine_of_masked_means() -> None:
    video, text = random_tokens([4, 2], seed=5), random_tokens([3], seed=6)
    video_tokens, video_mask = padded(video)
    text_tokens, text_mask = padded(text)
    v2t, t2v = video_text_similarity(video_tokens, video_mask, text_tokens, text_mask, aggregation="mean")
    for a, v in enumerate(video):
        expected = F.cosine_similarity(v.mean(0), text[0].mean(0), dim=0)
        assert torch.allclose(v2t[a, 0], expected)
    assert torch.equal(t2v, v2t.T)


def test_cls_uses_first_video_token_and_last_real_text_token() -> None:
    video, text = random_tokens([4, 2], seed=7), random_tokens([3, 5], seed=8)
    video_tokens, video_mask = padded(video)
    text_tokens, text_mask = padded(text)
    v2t, _ = video_text_similarity(video_tokens, video_mask, text_tokens, text_mask, aggregation="cls")
    for a, v in enumerate(video):
        for b, t in enumerate(text):
            assert torch.allclose(v2t[a, b], v[0] @ t[-1])


def test_unknown_aggregation_is_named() -> None:
    tokens, mask = padded(random_tokens([2]))
    with pytest.raises(ValueError, match="'max'"):
        video_text_similarity(tokens, mask, tokens, mask, aggregation="max")
