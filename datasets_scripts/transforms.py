"""The video transform shared by training, evaluation and the pipeline (re-exported).

The code lives in :mod:`modeling_scl_slt.video_processing`, which travels to the Hub with the
model so that the ``sign-language-translation`` pipeline preprocesses clips exactly as
training and evaluation do. This module keeps the ``datasets_scripts.transforms`` imports working.
"""

from __future__ import annotations

from modeling_scl_slt.video_processing import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Clip,
    VideoTransform,
    clip_to_tensor,
    uniform_frame_indices,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Clip",
    "VideoTransform",
    "clip_to_tensor",
    "uniform_frame_indices",
]
