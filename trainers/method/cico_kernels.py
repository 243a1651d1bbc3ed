"""CiCo similarity kernels on tiles of (a videos) × (b texts): a fused one and the reference one.

With ``c_pq = cos(v_p, t_q)`` for video tokens ``p`` and text tokens ``q`` of one pair
``(V_i, T_j)`` and the token-matching temperature ``τ``:

* video→text: ``s_vt(i, j) = mean_p Σ_q softmax_q(c_pq / τ) · c_pq`` (mean over real video
  tokens, softmax over real text tokens);
* text→video: ``s_tv(i, j) = mean_q Σ_p softmax_p(c_pq / τ) · c_pq``;
* ``s(V_i, T_j)`` is one of them or their mean ``½(s_vt + s_tv)``, chosen by ``direction``.

:func:`reference_cico_tile` computes this with
:func:`~modeling_scl_slt.similarity.cico_similarity` (einsum and two masked softmaxes, as the
model does). :func:`fused_cico_logits` computes it with one GEMM on augmented token rows
(:func:`augment_video_tokens`, :func:`augment_text_tokens`) that also applies the padding mask,
then one ``exp2``, one product and one reduction per direction, with the means folded into
weights (:func:`mean_weights`). The two agree within float32 rounding.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch

from modeling_scl_slt.similarity import cico_similarity

Direction = Literal["both", "video_to_text", "text_to_video"]
DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)

FUSED_MIN_TEMPERATURE = 0.015  # below, exp(1/τ) summed over tokens could overflow float32
PADDING_LOGIT = -1.0e4  # times 1/τ ≥ 1: exp2 underflows to exactly 0 in float32
LOG2_E = 1.4426950408889634  # log₂(e): base-2 logits, so that exp2 replaces exp


def augment_video_tokens(tokens: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(a, Lv, D) → (a, Lv, D + 2) float32 rows ``[v·log₂e / τ, 1, pad]`` (pad: 0 real, PADDING_LOGIT padded).

    The ``log₂e`` factor makes the GEMM yield base-2 logits: ``exp2`` is several times cheaper
    than ``exp`` on the CPU and gives the same softmax weights.
    """
    pad = torch.where(mask, 0.0, PADDING_LOGIT).unsqueeze(-1)  # (a, Lv, 1)
    return torch.cat([tokens * (LOG2_E / temperature), torch.ones_like(pad), pad], dim=-1)


def augment_text_tokens(tokens: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """(b, Lt, D) → (b, Lt, D + 2) float32 rows ``[t, pad / τ, 1 / τ]``: row·row = c·log₂e/τ + pads/τ."""
    pad = torch.where(mask, 0.0, PADDING_LOGIT).unsqueeze(-1)  # (b, Lt, 1)
    return torch.cat([tokens, pad * (1.0 / temperature), torch.full_like(pad, 1.0 / temperature)], dim=-1)


def mean_weights(
    mask: torch.Tensor, temperature: float, direction: Direction, side: Literal["video", "text"]
) -> torch.Tensor | None:
    """(n, L) float32 weights of the mean over one side's real tokens, for :func:`fused_cico_logits`.

    The mean over video tokens closes the video→text direction (softmax over text tokens), the
    mean over text tokens the text→video one; ``None`` when ``direction`` leaves that one out.
    The weights also carry ``τ / log₂e``, which turns a mean of base-2 logits back into a mean
    of cosines, and the ½ of ``direction="both"``.
    """
    closes = "video_to_text" if side == "video" else "text_to_video"
    if direction not in (closes, "both"):
        return None
    scale = temperature / LOG2_E * (0.5 if direction == "both" else 1.0)
    return mask * (scale / mask.sum(1, keepdim=True).clamp_min(1))


def fused_cico_logits(
    video_rows: torch.Tensor,
    text_rows: torch.Tensor,
    video_weights: torch.Tensor | None,
    text_weights: torch.Tensor | None,
    workspace: torch.Tensor | None = None,
) -> torch.Tensor:
    """CiCo similarity of a tile with one GEMM, equal to ``cico_similarity`` within float32 rounding.

    The rows come from :func:`augment_video_tokens` and :func:`augment_text_tokens`: their two
    extra coordinates make the GEMM itself yield ``c_ij·log₂e / τ`` for real token pairs and a
    huge negative logit for any pair with a padded token (its softmax weight is then exactly 0),
    so no masked copies of the (a·Lv, b·Lt) tile are made. Since ``|c_ij| ≤ 1``, ``exp(c_ij / τ)``
    (computed as ``exp2``) cannot overflow for ``τ ≥ FUSED_MIN_TEMPERATURE`` and no max is
    subtracted. After the GEMM: one ``exp2`` and one product over the tile; the weights and the
    weighted logits lie side by side, so each direction's two softmax sums take one reduction
    (a matrix–vector product over text tokens, a sum over video tokens).

    Args:
        video_rows: (a, Lv, D + 2) augmented video tokens.
        text_rows: (b, Lt, D + 2) augmented text tokens.
        video_weights: (a, Lv) from :func:`mean_weights` (side ``"video"``), or None.
        text_weights: (b, Lt) from :func:`mean_weights` (side ``"text"``), or None.
        workspace: Optional float32 buffer of at least ``2·a·Lv·b·Lt`` elements, reused across
            calls (fresh large allocations cost page faults); allocated when missing.

    Returns:
        (a, b) float32 ``s(V_i, T_j)``.
    """
    (a, lv, _), (b, lt, _) = video_rows.shape, text_rows.shape
    size = a * lv * b * lt
    if workspace is None or workspace.numel() < 2 * size:
        workspace = torch.empty(2 * size, device=video_rows.device)
    both = workspace[: 2 * size].view(2, a * lv, b * lt)  # [exp2(logits), logits·exp2(logits)]
    weights, weighted = both.unbind(0)
    torch.mm(video_rows.reshape(a * lv, -1), text_rows.reshape(b * lt, -1).transpose(0, 1), out=weighted)
    torch.exp2(weighted, out=weights)  # = exp(c/τ); padded pairs: 0
    weighted.mul_(weights)
    result = torch.zeros(a, b, device=video_rows.device)
    if video_weights is not None:  # softmax over each text's tokens, mean over the video tokens
        sums = torch.mv(both.view(-1, lt), torch.ones(lt, device=both.device)).view(2, a, lv, b)
        per_token = sums[1].div_(sums[0].clamp_min_(1e-30))  # (a, Lv, b); padded rows: 0
        result.add_(torch.bmm(video_weights.unsqueeze(1), per_token).view(a, b))
    if text_weights is not None:  # softmax over each video's tokens, mean over the text tokens
        sums = both.view(2 * a, lv, b * lt).sum(1).view(2, a, b * lt)
        per_token = sums[1].div_(sums[0].clamp_min_(1e-30)).mul_(text_weights.view(-1))  # (a, b·Lt)
        result.add_(torch.mv(per_token.view(-1, lt), torch.ones(lt, device=both.device)).view(a, b))
    return result


def reference_cico_tile(
    video_tokens: torch.Tensor,
    video_mask: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    temperature: float,
    direction: Direction,
) -> torch.Tensor:
    """Reference-kernel CiCo of one tile → (a, b) float32, with padding trimmed to its longest sample.

    Args:
        video_tokens: (a, Lv, D) normalised video tokens (any float dtype), right-padded.
        video_mask: (a, Lv) bool.
        text_tokens: (b, Lt, D) normalised text tokens, right-padded.
        text_mask: (b, Lt) bool.
        temperature: Token-matching temperature ``τ``.
        direction: Which of ``s_vt``, ``s_tv`` or their mean gives ``s(V_i, T_j)``.
    """
    video_tokens, video_mask = trim_padding(video_tokens, video_mask)
    text_tokens, text_mask = trim_padding(text_tokens, text_mask)
    video_to_text, text_to_video = cico_similarity(
        video_tokens.float(), video_mask, text_tokens.float(), text_mask, temperature
    )
    return combine_directions(video_to_text, text_to_video.transpose(0, 1), direction)


def combine_directions(
    video_to_text: torch.Tensor, text_to_video: torch.Tensor, direction: Direction
) -> torch.Tensor:
    """``s(V_i, T_j)`` from the (a, b) video→text and (a, b) text→video matrices."""
    if direction == "video_to_text":
        return video_to_text
    if direction == "text_to_video":
        return text_to_video
    return 0.5 * (video_to_text + text_to_video)


def trim_padding(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing all-padding positions of a (n, L, D) / (n, L) batch (right padding assumed)."""
    length = max(int(mask.sum(dim=1).max()), 1)
    return tokens[:, :length], mask[:, :length]
