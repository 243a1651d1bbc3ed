"""Video–text similarity functions used by the contrastive branch and by Pair Selection.

All functions take token embeddings that are already L2-normalised along the last axis and
boolean masks (``True`` = real token). They return two matrices: ``video_to_text`` of shape
``(num_videos, num_texts)`` and ``text_to_video`` of shape ``(num_texts, num_videos)``. For the
pooled aggregations the second is the transpose of the first; for CiCo they differ.

Every sample must have at least one real token: an all-padding row has no similarity.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch
import torch.nn.functional as F

Aggregation = Literal["cico", "cls", "mean"]
AGGREGATIONS: tuple[str, ...] = typing.get_args(Aggregation)


def masked_mean_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real tokens. ``tokens`` (N, L, D), ``mask`` (N, L) → (N, D)."""
    weights = mask.to(tokens.dtype).unsqueeze(-1)  # (N, L, 1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def last_token_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token of every row. ``tokens`` (N, L, D), ``mask`` (N, L) → (N, D)."""
    last = mask.long().sum(dim=1).clamp(min=1) - 1  # (N,)
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), last]


def pool_video_tokens(tokens: torch.Tensor, mask: torch.Tensor, aggregation: str) -> torch.Tensor:
    """One normalised vector per video: the [CLS] token (position 0) or the masked mean.

    ``tokens`` (N, L, D), ``mask`` (N, L) → (N, D).
    """
    pooled = tokens[:, 0] if aggregation == "cls" else masked_mean_pool(tokens, mask)
    return F.normalize(pooled, dim=-1)


def pool_text_tokens(tokens: torch.Tensor, mask: torch.Tensor, aggregation: str) -> torch.Tensor:
    """One normalised vector per text: the sentence token (last real token, ``</s>``) or the masked mean."""
    pooled = last_token_pool(tokens, mask) if aggregation == "cls" else masked_mean_pool(tokens, mask)
    return F.normalize(pooled, dim=-1)


def cico_similarity(
    video_tokens: torch.Tensor,
    video_mask: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    temperature: float = 0.07,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CiCo-style fine-grained similarity of every video with every text.

    With ``c_ij = cos(v_i, t_j)``: video→text averages, over real visual tokens ``i``, the
    softmax(``c_ij / temperature``)-weighted mean of ``c_ij`` over real text tokens ``j``;
    text→video does the same with the roles swapped.

    Args:
        video_tokens: (Nv, Lv, D) normalised visual tokens.
        video_mask: (Nv, Lv) bool, True for real tokens.
        text_tokens: (Nt, Lt, D) normalised text tokens.
        text_mask: (Nt, Lt) bool.
        temperature: softmax temperature ``tau_f`` of the token matching.

    Returns:
        ``video_to_text`` (Nv, Nt) and ``text_to_video`` (Nt, Nv), both in [-1, 1].
        Memory is O(Nv · Nt · Lv · Lt): callers with many samples compute it in blocks.
    """
    video_mask = video_mask.bool()
    text_mask = text_mask.bool()
    cosine = torch.einsum("aid,bjd->abij", video_tokens, text_tokens)  # (Nv, Nt, Lv, Lt)
    text_valid = text_mask[None, :, None, :]  # (1, Nt, 1, Lt)
    video_valid = video_mask[:, None, :, None]  # (Nv, 1, Lv, 1)
    pair_valid = text_valid & video_valid
    cosine = cosine.masked_fill(~pair_valid, 0.0)
    logits = (cosine / temperature).masked_fill(~pair_valid, float("-inf"))

    # Rows that are all padding give NaN in the softmax; they carry zero weight below.
    over_text = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # (Nv, Nt, Lv, Lt)
    per_video_token = (over_text * cosine).sum(dim=-1)  # (Nv, Nt, Lv)
    video_weights = video_mask.to(cosine.dtype)[:, None, :]  # (Nv, 1, Lv)
    video_to_text = (per_video_token * video_weights).sum(-1) / video_weights.sum(-1)  # (Nv, Nt)

    over_video = torch.softmax(logits, dim=-2).nan_to_num(0.0)  # (Nv, Nt, Lv, Lt)
    per_text_token = (over_video * cosine).sum(dim=-2)  # (Nv, Nt, Lt)
    text_weights = text_mask.to(cosine.dtype)[None, :, :]  # (1, Nt, Lt)
    text_to_video = (per_text_token * text_weights).sum(-1) / text_weights.sum(-1)  # (Nv, Nt)
    return video_to_text, text_to_video.transpose(0, 1)


def pooled_similarity(
    video_pooled: torch.Tensor, text_pooled: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarity of pooled, normalised vectors. (Nv, D), (Nt, D) → (Nv, Nt), (Nt, Nv)."""
    video_to_text = video_pooled @ text_pooled.transpose(0, 1)
    return video_to_text, video_to_text.transpose(0, 1)


def video_text_similarity(
    video_tokens: torch.Tensor,
    video_mask: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    aggregation: str = "cico",
    temperature: float = 0.07,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Similarity under the configured aggregation (``"cico"``, ``"cls"`` or ``"mean"``), unscaled.

    Shapes as in :func:`cico_similarity`. For ``"cls"`` the video's [CLS] token must sit at
    position 0 (the model puts it there) and the text's sentence token is its last real token.
    """
    if aggregation == "cico":
        return cico_similarity(video_tokens, video_mask, text_tokens, text_mask, temperature)
    if aggregation in ("cls", "mean"):
        return pooled_similarity(
            pool_video_tokens(video_tokens, video_mask, aggregation),
            pool_text_tokens(text_tokens, text_mask, aggregation),
        )
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
