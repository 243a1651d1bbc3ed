"""Smoke tests of the benchmarks with tiny settings (the small model, a few frames), and the package's
layout: modules run as ``python -m benchmarks.NAME``, share one harness, and import no other benchmark."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from benchmarks import (
    data_loading,
    gpu_check,
    inference,
    long_video,
    pair_selection,
    speed_switches,
    training_throughput,
    video_workers,
)
from benchmarks.harness import read_records

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tiny steps gain nothing from more, and a busy machine slows them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_throughput_records(tmp_path: Path) -> None:
    output = tmp_path / "train.jsonl"
    training_throughput.main(
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
    inference.main(
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
    pair_selection.main(
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
    data_loading.main(
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


def test_a_switch_variant_out_of_gpu_memory_is_recorded_and_the_others_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = speed_switches.variant_step

    def plain_runs_out(trainer, optimizer, batch, variant) -> None:
        if variant == speed_switches.PLAIN:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB")
        step(trainer, optimizer, batch, variant)

    monkeypatch.setattr(speed_switches, "variant_step", plain_runs_out)
    output = tmp_path / "switches.json"
    speed_switches.main(
        [
            *("--switch-model", "small", "--switch-image-size", "16", "--switch-frame-counts", "8,4"),
            *("--switch-variants", "plain,ours", "--switch-parts", "switches", "--repeats", "2"),
            *("--warmup", "0", "--output", str(output), "--in-process"),
        ]
    )
    records = {r["variant"]: r for r in json.loads(output.read_text())["records"] if "variant" in r}
    assert records["plain"]["error"].startswith("out of memory in round 0: CUDA out of memory")
    assert len(records["ours"]["step_s_all"]) == 2 and records["ours"]["speedup_vs_plain"] is None


# --- the GPU check, at tiny shapes on this machine's CPU --------------------------------------------
@pytest.mark.slow
def test_gpu_check_runs_every_part_at_tiny_shapes(tmp_path: Path) -> None:
    output = tmp_path / "gpu_check.json"
    gpu_check.main(["--device", "cpu", "--tiny", "--output", str(output)])
    document = json.loads(output.read_text(encoding="utf-8"))
    parts = document["parts"]
    assert list(parts) == [part.name for part in gpu_check.PARTS]
    failed = {name: part.get("output_tail") for name, part in parts.items() if part["status"] != "ok"}
    assert not failed, failed
    steps = {r["variant"]: r for r in parts["training step"]["records"] if r["measure"] == "switches"}
    assert (steps["plain"]["cnn_frames"], steps["ours"]["cnn_frames"]) == (16, 12)
    assert steps["ours"]["switches"]["bf16"] is False  # fp32 on a CPU, and the JSON says why
    assert "bf16 autocast in ours" in parts["training step"]["skipped"]
    assert "backbone compiled" in parts["training step"]["skipped"]
    large = [r for r in parts["training step, large batch"]["records"] if r["measure"] == "switches"]
    assert [r["variant"] for r in large] == ["plain", "ours"] and large[0]["frame_counts"] == [4, 4, 4]
    for name in ("plan", "plan, paper shape"):
        (record,) = parts[name]["records"]
        assert record["case"] == "tiny-test" and 0.75 <= record["ratio"] <= 1.25, record
        assert "CUDA peak" in parts[name]["skipped"]
    latency = [r for r in parts["pipeline latency"]["records"] if r["measure"] == "latency"]
    assert {r["precision"] for r in latency} == {"fp32"} and all(r["seconds_median"] > 0 for r in latency)
    assert "bf16 autocast" in parts["pipeline latency"]["skipped"]
    summary = document["summary"]
    assert summary["training step"]["ours_speedup_vs_plain"] > 0
    assert summary["plan"]["estimate_over_measured_min"] > 0
    assert summary["pipeline latency, one clip, inference_mode"]
    assert document["machine"]["torch"] == torch.__version__ and document["wall_s"] <= document["budget_s"]


def test_gpu_check_leaves_out_what_the_budget_cannot_hold(tmp_path: Path) -> None:
    output = tmp_path / "gpu_check.json"
    gpu_check.main(["--device", "cpu", "--tiny", "--budget-s", "2", "--output", str(output)])
    parts = json.loads(output.read_text(encoding="utf-8"))["parts"]
    assert {part["status"] for part in parts.values()} == {"not run"}


def test_gpu_check_kills_a_part_that_runs_past_its_time() -> None:
    command = gpu_check.module_command("benchmarks.gpu_check_missing_module", [])
    assert gpu_check.run_process(command, 60)[0] == "failed"
    status, code, _ = gpu_check.run_process(["sleep", "30"], 1)
    assert (status, code) == ("timed out", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_gpu_check_refuses_cuda_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.parse_args(["--device", "cuda"])
    assert exit_info.value.code == 2 and "--device cuda" in capsys.readouterr().err


# --- the package's layout -------------------------------------------------------------------------
SHARED = {
    "benchmarks.harness",
    "benchmarks.workloads",
    "benchmarks.experiments.ablation_report",
    "benchmarks.experiments.recipe_jobs",
}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (functions and ``TYPE_CHECKING`` blocks too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else f"<relative>.{node.module}")
    return names


def test_benchmarks_import_only_the_shared_modules_and_never_edit_the_path() -> None:
    modules = sorted(BENCHMARKS.rglob("*.py"))
    assert len(modules) > 10
    for path in modules:
        name = ".".join(path.relative_to(BENCHMARKS.parent).with_suffix("").parts)
        text = path.read_text(encoding="utf-8")
        assert "sys.path" not in text, f"{name} edits sys.path"
        ours = {m for m in imported_modules(path) if m.startswith(("benchmarks", "<relative>"))}
        assert ours <= SHARED, f"{name} imports {sorted(ours - SHARED)}"
        if name in SHARED:
            assert ours <= {"benchmarks.harness"}, f"{name}: a shared module imports only the harness"
        elif not name.endswith("__init__"):
            assert 'if __name__ == "__main__":' in text, f"{name} does not run as python -m {name}"
    experiments = {path.stem for path in (BENCHMARKS / "experiments").glob("*.py")}
    assert {"ablation", "gloss_oracle", "rehearsal_real_scale"} <= experiments


@pytest.mark.slow
def test_long_video_records(tmp_path: Path) -> None:
    output = tmp_path / "long_video.jsonl"
    long_video.main(
        [
            *("--models", "small", "--seconds", "6", "--width", "96", "--height", "64"),
            *("--new-tokens", "2", "--chunk-length-s", "2", "--output", str(output)),
        ]
    )
    decode, translate = read_records(output)
    assert decode["measure"] == "decode" and decode["windows"] >= 1
    assert translate["model"] == "small" and translate["covered_s"] == pytest.approx(6.0)
    assert translate["windows"] >= 3 and translate["real_time_factor"] > 0 and translate["peak_rss_gib"] > 0


def test_video_workers_records(tmp_path: Path) -> None:
    output = tmp_path / "video_workers.jsonl"
    video_workers.main(
        [
            *("--workers", "1", "2", "--videos", "2", "--frames", "3", "--glosses-videos", "3"),
            *("--image-size", "8", "--repeats", "1", "--output", str(output)),
        ]
    )
    records = read_records(output)
    expected = [(task, workers) for task in ("decode", "render") for workers in (1, 2)]
    assert [(r["task"], r["workers"]) for r in records] == expected
    for record in records:
        one_worker = next(r for r in records if r["task"] == record["task"] and r["workers"] == 1)
        assert record["seconds"] > 0 and record["all_seconds"] == [record["seconds"]]
        assert record["speedup"] == pytest.approx(one_worker["seconds"] / record["seconds"], rel=0.05)
