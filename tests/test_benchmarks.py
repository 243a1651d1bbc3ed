"""Smoke tests of the benchmark scripts with tiny settings (the small model, a few frames)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tiny steps gain nothing from more, and a busy machine slows them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_throughput_records(tmp_path: Path) -> None:
    output = tmp_path / "train.jsonl"
    load_script("bench_training_throughput").main(
        [
            *("--models", "small", "--frames", "8", "--short-frames", "4", "--small-batch-sizes", "2"),
            *("--repeats", "1", "--warmup", "0", "--output", str(output), "--in-process"),
        ]
    )
    records = read_records(output)
    steps = [r for r in records if r["measure"] == "train_step"]
    assert [r["batch_size"] for r in steps] == [2]
    assert all(r["frames_per_s"] > 0 and r["machine"]["torch"] for r in steps)
    (padding,) = [r for r in records if r["measure"] == "padding_cost"]
    assert padding["ratio_expected_if_free"] == 0.75
    assert records[0]["params_trainable_m"] < records[0]["params_total_m"]  # text encoder frozen


def test_inference_records(tmp_path: Path) -> None:
    output = tmp_path / "inference.jsonl"
    load_script("bench_inference").main(
        [
            *("--models", "small", "--frames", "8", "--new-tokens", "2", "--small-batch-sizes", "1"),
            *("--repeats", "1", "--output", str(output), "--in-process"),
        ]
    )
    records = read_records(output)
    latency = [r for r in records if r["measure"] == "latency"]
    assert {(r["num_beams"], r["inference_context"]) for r in latency} == {
        (1, "no_grad"),
        (1, "inference_mode"),
        (4, "no_grad"),
        (4, "inference_mode"),
    }
    throughput = [r for r in records if r["measure"] == "throughput"]
    assert {(r["batch_size"], r["inference_context"]) for r in throughput} == {(1, "inference_mode")}
    assert all(r["frames_after_preprocessing"] == 8 for r in latency)
    (encoder,) = [r for r in records if r["measure"] == "video_encoder"]
    assert encoder["seconds_median"] > 0 and encoder["frames"] == 8


def test_pair_selection_records(tmp_path: Path) -> None:
    output = tmp_path / "pair_selection.jsonl"
    load_script("bench_pair_selection").main(
        [
            *("--parts", "dense-cico,sparse", "--num-samples", "120", "--snapshots", "3"),
            *("--num-candidates", "8", "--cico-rows", "16", "--cico-rounds", "2", "--cico-tiles", "4x8,8x8"),
            *("--cache-dir", str(tmp_path / "cache"), "--output", str(output)),
        ]
    )
    dense, sparse = read_records(output)
    assert "error" not in dense and "error" not in sparse, (dense, sparse)
    assert len(dense["rounds"]) == 2 and dense["reference"]["rows"] == 8
    for tile in ("fused_4x8", "fused_8x8"):
        assert all(
            r[tile]["rows"] == 16 and r[tile]["full_s"] > r[tile]["prepare_s"] > 0 for r in dense["rounds"]
        )
        assert dense[f"{tile}_ratio_best"] > 0 and dense[f"{tile}_ratio_median"] > 0
    assert sparse["n"] == 120 and sparse["batches"] == 120 // 16 + (120 % 16 > 0)


def test_data_loading_records(tmp_path: Path) -> None:
    output = tmp_path / "data_loading.json"
    load_script("bench_data_loading").main(
        [
            *("--clips", "2", "--frames", "4", "--workers", "0", "--presets", "small"),
            *("--repeats", "1", "--device", "cpu", "--output", str(output)),
        ]
    )
    payload = json.loads(output.read_text())
    records = {(r["measure"], r.get("path")): r for r in payload["records"]}
    old, new = records["loader", "old"], records["loader", "new"]
    assert old["pixel_bytes_per_frame"] == 3 * 224 * 224 * 4  # float32 crops
    assert new["pixel_bytes_per_frame"] == 3 * 260 * 210  # uint8 frames as decoded
    assert records["loader_ratio", None]["new_over_old"] > 0
    assert records["device_transform", None]["frames"] == 8
    assert 0 < records["train_step", None]["transform_share_of_step"] < 1
    assert payload["machine"]["torch"] == torch.__version__


@pytest.mark.slow
def test_long_video_records(tmp_path: Path) -> None:
    output = tmp_path / "long_video.jsonl"
    load_script("bench_long_video").main(
        [
            *("--models", "small", "--seconds", "6", "--width", "96", "--height", "64"),
            *("--new-tokens", "2", "--chunk-length-s", "2", "--output", str(output)),
        ]
    )
    decode, translate = read_records(output)
    assert decode["measure"] == "decode" and decode["windows"] >= 1
    assert translate["model"] == "small" and translate["covered_s"] == pytest.approx(6.0)
    assert translate["windows"] >= 3 and translate["real_time_factor"] > 0 and translate["peak_rss_gib"] > 0
