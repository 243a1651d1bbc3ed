"""The real reference data in ``../shared/data`` (beside the clone): present for developers and CI.

A user's clone does not have it, so the tests that read it skip with the reason. CI sets
``SCL_SLT_REQUIRE_SHARED_DATA=1``, which turns a missing folder into a failure instead of a skip.
``SCL_SLT_SHARED_DATA`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("SCL_SLT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)
PHOENIX_SPLITS = ("train", "validation", "test")


def shared_path(relative: str) -> Path:
    """``SHARED_DATA / relative``; skips the calling test (or fails it under CI) when absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        reason = f"needs the shared reference data {path} (not part of a user's clone)"
        if os.environ.get("SCL_SLT_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def phoenix_rows(split: str) -> list[dict]:
    """The real PHOENIX-2014T annotation rows of one split (name, gloss, text, num_frames)."""
    path = shared_path(f"phoenix2014t/{split}.jsonl")
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]
