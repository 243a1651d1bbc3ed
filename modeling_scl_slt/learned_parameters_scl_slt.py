"""The two learned tensors of SCL-SLT that are not layers: the logit scale and the [CLS] token.

Each is a small module rather than a bare ``nn.Parameter``, so that peft's ``modules_to_save``
can train it next to a LoRA adapter (peft saves whole modules only).

This file travels to the Hub with the weights (``trust_remote_code``): stdlib and torch only.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LogitScale(nn.Module):
    """The learnable contrastive scale, stored as its log (as in CLIP).

    ``forward()`` → ``exp(log_scale)``, shape ().
    """

    def __init__(self, init_value: float) -> None:
        super().__init__()
        self.init_value = init_value
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_value)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.log_scale, math.log(self.init_value))

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp()


class ClsToken(nn.Module):
    """A learned [CLS] video token: ``forward(batch_size)`` → (batch_size, 1, d_model)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, 1, d_model))

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embedding.expand(batch_size, -1, -1)
