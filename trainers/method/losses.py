"""The selective contrastive loss: symmetric InfoNCE with a learnable scale and false-negative masking.

Its inputs are UNSCALED similarity matrices in [-1, 1], exactly as returned by
:func:`modeling_scl_slt.similarity.video_text_similarity`, and the loss multiplies them by a
learnable scale (initialised to 1/0.07, clamped at 100 like CLIP). The scale is the loss's own
parameter, or — as in :class:`trainers.SclSltTrainer` — the model's ``logit_scale`` passed to
``forward``, so that it is saved, synchronised and dropped with the model's text branch. The clamp
is applied in the forward pass, so a scale above the cap gets no gradient until it comes back.

Known false negatives — pairs (video i, text j), i ≠ j, whose target texts are identical — are
removed from both softmaxes by setting their logits to −inf. The diagonal (the positives) is
never masked. The "selective" part of the method lives mostly in the batch sampler
(:class:`trainers.method.sampler.PSCurriculumBatchSampler`); this module adds the masking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .text_groups import text_group_ids


@dataclass
class ContrastiveLossOutput:
    """Named parts of the loss, for the Trainer to optimise and log.

    Attributes:
        loss: Scalar, mean of the two directions.
        loss_video_to_text: Scalar, cross-entropy of each video over the batch's texts.
        loss_text_to_video: Scalar, cross-entropy of each text over the batch's videos.
        logit_scale: Scalar, the (clamped) scale used, detached.
        num_masked_pairs: Ordered off-diagonal (video, text) pairs masked as false negatives.
    """

    loss: torch.Tensor
    loss_video_to_text: torch.Tensor
    loss_text_to_video: torch.Tensor
    logit_scale: torch.Tensor
    num_masked_pairs: int

    def to_log_dict(self, prefix: str = "") -> dict[str, float]:
        """Plain floats for ``Trainer.log``."""
        return {
            f"{prefix}loss_contrastive": float(self.loss.detach()),
            f"{prefix}loss_video_to_text": float(self.loss_video_to_text.detach()),
            f"{prefix}loss_text_to_video": float(self.loss_text_to_video.detach()),
            f"{prefix}logit_scale": float(self.logit_scale),
            f"{prefix}num_masked_pairs": float(self.num_masked_pairs),
        }


def false_negative_mask(
    batch_size: int,
    texts: Sequence[str] | None = None,
    group_ids: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """(B, B) bool, True where (video i, text j), i ≠ j, is a known false negative.

    Give at most one of ``texts`` (identical strings), ``group_ids`` ((B,), equal ids) or a
    ready ``mask`` ((B, B) bool, row = video, column = text). The diagonal is always False.
    """
    given = [
        name
        for name, value in (("texts", texts), ("group_ids", group_ids), ("mask", mask))
        if value is not None
    ]
    if len(given) > 1:
        raise ValueError(f"Give at most one of texts, group_ids and mask; got {given}.")
    if texts is not None:
        if len(texts) != batch_size:
            raise ValueError(f"texts has {len(texts)} entries for a batch of {batch_size}.")
        group_ids = text_group_ids(texts).to(device)
    if group_ids is not None:
        if group_ids.shape != (batch_size,):
            raise ValueError(f"group_ids must have shape ({batch_size},), got {tuple(group_ids.shape)}.")
        mask = group_ids[:, None] == group_ids[None, :]
    if mask is None:
        return torch.zeros(batch_size, batch_size, dtype=torch.bool, device=device)
    if mask.shape != (batch_size, batch_size):
        raise ValueError(f"mask must have shape ({batch_size}, {batch_size}), got {tuple(mask.shape)}.")
    eye = torch.eye(batch_size, dtype=torch.bool, device=mask.device)
    return mask.bool() & ~eye


class SelectiveContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over a batch of B matched (video, text) pairs.

    ``loss = ½·CE(scale·S_v2t, arange(B)) + ½·CE(scale·S_t2v, arange(B))`` where ``S_v2t`` (B, B)
    scores video i against text j and ``S_t2v`` (B, B) text j against video i (for pooled
    similarities it is ``S_v2t.T``; for CiCo the two differ).

    Args:
        logit_scale_init: Initial scale (stored as its log); paper: 1/0.07.
        max_logit_scale: Upper clamp of the scale.
        learnable_logit_scale: Train the scale (a frozen buffer otherwise).
        mask_false_negatives: Mask identical-text pairs (given to ``forward``) with −inf.
    """

    def __init__(
        self,
        logit_scale_init: float = 1 / 0.07,
        max_logit_scale: float = 100.0,
        learnable_logit_scale: bool = True,
        mask_false_negatives: bool = True,
    ):
        super().__init__()
        log_scale = torch.tensor(math.log(logit_scale_init), dtype=torch.float32)
        if learnable_logit_scale:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)
        self.max_logit_scale = max_logit_scale
        self.mask_false_negatives = mask_false_negatives

    def get_logit_scale(self, logit_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar ``min(scale, max_logit_scale)``; ``scale`` is ``logit_scale`` when given, else
        ``exp(log_logit_scale)``."""
        scale = self.log_logit_scale.exp() if logit_scale is None else logit_scale
        return scale.clamp(max=self.max_logit_scale)

    def get_logits(
        self,
        similarity_video_to_text: torch.Tensor,
        similarity_text_to_video: torch.Tensor | None = None,
        logit_scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled logits: ``logits_per_video`` (B, B) and ``logits_per_text`` (B, B)."""
        if similarity_text_to_video is None:
            similarity_text_to_video = similarity_video_to_text.transpose(0, 1)
        scale = self.get_logit_scale(logit_scale)
        return scale * similarity_video_to_text, scale * similarity_text_to_video

    def get_ground_truth(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """(B,) long: sample i's positive is at column i."""
        return torch.arange(batch_size, device=device)

    def forward(
        self,
        similarity_video_to_text: torch.Tensor,
        similarity_text_to_video: torch.Tensor | None = None,
        texts: Sequence[str] | None = None,
        group_ids: torch.Tensor | None = None,
        false_negatives: torch.Tensor | None = None,
        logit_scale: torch.Tensor | None = None,
    ) -> ContrastiveLossOutput:
        """Compute the loss.

        Args:
            similarity_video_to_text: (B, B) unscaled similarities, row = video, column = text.
            similarity_text_to_video: (B, B), row = text, column = video; default: the transpose.
            texts / group_ids / false_negatives: Optional identification of false negatives (see
                :func:`false_negative_mask`); ignored when ``mask_false_negatives`` is False.
            logit_scale: Scalar scale (before clamping) to use instead of the loss's own, e.g.
                the model's ``exp(logit_scale)``.
        """
        batch_size = similarity_video_to_text.shape[0]
        if similarity_video_to_text.shape != (batch_size, batch_size):
            raise ValueError(
                "similarity_video_to_text must be square (B, B), "
                f"got {tuple(similarity_video_to_text.shape)}."
            )
        logits_per_video, logits_per_text = self.get_logits(
            similarity_video_to_text, similarity_text_to_video, logit_scale
        )
        device = logits_per_video.device
        num_masked = 0
        if self.mask_false_negatives:
            mask = false_negative_mask(batch_size, texts, group_ids, false_negatives, device=device)
            num_masked = int(mask.sum())
            if num_masked:
                logits_per_video = logits_per_video.masked_fill(mask, float("-inf"))
                logits_per_text = logits_per_text.masked_fill(mask.transpose(0, 1), float("-inf"))
        labels = self.get_ground_truth(batch_size, device)
        loss_video_to_text = F.cross_entropy(logits_per_video, labels)
        loss_text_to_video = F.cross_entropy(logits_per_text, labels)
        return ContrastiveLossOutput(
            loss=(loss_video_to_text + loss_text_to_video) / 2,
            loss_video_to_text=loss_video_to_text,
            loss_text_to_video=loss_text_to_video,
            logit_scale=self.get_logit_scale(logit_scale).detach(),
            num_masked_pairs=num_masked,
        )
