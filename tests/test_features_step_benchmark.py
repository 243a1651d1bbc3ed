"""benchmarks.features_step runs both variants side by side and records time and memory."""

from __future__ import annotations

from pathlib import Path

from benchmarks import features_step
from benchmarks.harness import read_records


def test_features_step_records_both_variants(tmp_path: Path) -> None:
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
    records = features_step.main(argv)
    written = read_records(output)
    assert [
        {key: record[key] for key in returned} for record, returned in zip(written, records, strict=True)
    ] == records
    setup, pixels, features, ratio = records
    assert (
        0 < setup["trainable"]["features"] < setup["trainable"]["pixels"]
    )  # the ResNet trains on pixels only
    assert (pixels["variant"], features["variant"]) == ("pixels", "features")
    assert pixels["seconds_median"] > 0 and features["seconds_median"] > 0
    assert pixels["step_peak_gib"] >= 0 and features["step_peak_gib"] >= 0
    assert ratio["features_over_pixels_time"] > 0
    assert "machine" in written[0] and "load_average" in written[0]
