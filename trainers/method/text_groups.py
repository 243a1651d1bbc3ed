"""The two rules about identical texts that the samplers, the loss and the Trainer share.

* **Identical texts form a group** (:func:`text_group_ids`): their pairs are false negatives, so
  they never share a batch (samplers) and are masked in the loss.
* **A text is tight** (:func:`tight_threshold`) when it has at least as many unused copies as
  there are batches left in the epoch, the open batch included: the open batch must then take
  one of its copies, or the last batches would be left with nothing but copies of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def text_group_ids(texts: Sequence[str] | torch.Tensor) -> torch.Tensor:
    """(N,) long group ids: equal exactly when the texts are identical.

    ``texts`` are N strings (exact match, no normalisation; ids in order of first appearance) or
    an (N, L) tensor of token rows, e.g. the labels of a batch (identical rows share an id).
    """
    if isinstance(texts, torch.Tensor):
        if texts.dim() != 2:
            raise ValueError(f"token rows must have shape (N, L), got {tuple(texts.shape)}")
        _, group_ids = torch.unique(texts, dim=0, return_inverse=True)
        return group_ids
    ids: dict[str, int] = {}
    return torch.tensor([ids.setdefault(text, len(ids)) for text in texts], dtype=torch.long)


def tight_threshold(num_unused: int, batch_size: int) -> int | None:
    """Unused copies from which a text is tight: the batches left (open one included).

    ``None`` when at most one batch is left: then no text is tight (the last batch takes every
    remaining sample anyway).
    """
    batches_left = math.ceil(num_unused / batch_size)
    return batches_left if batches_left > 1 else None
