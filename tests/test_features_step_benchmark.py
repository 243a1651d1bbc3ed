"""benchmarks/features_step.py runs both variants side by side and records time and memory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_features_step_records_both_variants(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("features_step", ROOT / "benchmarks" / "features_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    output = tmp_path / "out.jsonl"
    argv = [
        "--preset",
        "tiny",
        "--frames",
        "8",
        "--image-size",
        "32",
        "--repeats",
        "1",
        "--output",
        str(output),
    ]
    records = module.main(argv)
    assert [json.loads(line) for line in output.read_text().splitlines()] == records
    context, pixels, features, ratio = records
    trainable = context["context"]["trainable"]
    assert 0 < trainable["features"] < trainable["pixels"]  # the ResNet trains on pixels only
    assert (pixels["variant"], features["variant"]) == ("pixels", "features")
    assert pixels["seconds_median"] > 0 and features["seconds_median"] > 0
    assert ratio["features_over_pixels_time"] > 0
