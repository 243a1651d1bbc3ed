"""The ablation command (``python -m benchmarks.experiments.ablation``): its configs and, at smoke
scale, the whole path."""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
from safetensors.torch import load_file

from benchmarks.experiments import ablation
from benchmarks.harness import module_command, module_environment

MODULE = "benchmarks.experiments.ablation"


def test_runs_sharing_a_reference_run_differ_only_in_stage_scl() -> None:
    scale = ablation.SCALES["full"]
    for variant in ablation.VARIANTS.values():
        reference = ablation.reference_key(variant)
        config = ablation.variant_config(variant, 1, scale).to_dict()
        shared = ablation.variant_config(reference, 1, scale).to_dict()
        assert {k: v for k, v in config.items() if k != "scl"} == {
            k: v for k, v in shared.items() if k != "scl"
        }, variant.name
        assert config["model"]["overrides"]["similarity_aggregation"] == variant.aggregation
    assert ablation.variant_config(ablation.VARIANTS["random"], 0, scale).scl.contrastive_loss == "clip"


def test_overrides_reach_every_run_and_bad_ones_are_refused() -> None:
    scale = ablation.SCALES["smoke"]
    config = ablation.variant_config(ablation.VARIANTS["ps_sqrt"], 0, scale, {"translate.epochs": 3})
    assert config.translate.epochs == 3.0 and config.scl.schedule == "sqrt"
    with pytest.raises(ValueError, match="unknown key"):
        ablation.variant_config(ablation.VARIANTS["ps_sqrt"], 0, scale, {"scl.epoch": 3})
    assert dataclasses.asdict(scale)["translate_epochs"] == 1


@pytest.mark.slow
def test_smoke_ablation_writes_the_table_from_real_runs(tmp_path) -> None:
    out = tmp_path / "ablation"
    options = ["--output-dir", str(out), "--scale", "smoke", "--seeds", "0", "1"]
    command = module_command(MODULE, [*options, "--variants", "random,ps_hard,ps_log_mean", "--jobs", "2"])
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=module_environment()
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    summary = json.loads((out / "ablation.json").read_text())
    assert set(summary["runs"]) == {"random", "ps_hard", "ps_log_mean"}
    for per_seed in summary["runs"].values():
        for metrics in per_seed.values():
            assert all(0.0 <= value <= 100.0 for value in metrics.values())
    assert summary["table"]["random"]["test_bleu4"]["n"] == 2
    assert set(summary["trajectories"]) == {"cico", "mean"}
    table = (out / "ablation.md").read_text()
    assert "| ps_hard | ps_curriculum (hard) | selective | cico |" in table
    assert set(summary["paired_vs_random"]) == {"ps_hard", "ps_log_mean"} and "Paired differences" in table
    # The variants really trained differently from one shared reference model.
    weights = {
        v: load_file(out / "seed0" / v / "scl" / "model" / "model.safetensors") for v in ("random", "ps_hard")
    }
    reference = load_file(out / "seed0" / "ps_log" / "reference" / "model" / "model.safetensors")
    assert (out / "seed0" / "ps_hard" / "reference").resolve() == (
        out / "seed0" / "ps_log" / "reference"
    ).resolve()
    name = "decoder.layers.0.self_attn.q_proj.weight"
    assert not (weights["random"][name] == weights["ps_hard"][name]).all()
    assert not (weights["random"][name] == reference[name]).all()

    # A second call in a new folder continues from the first one's results: seeds 0 and 1 keep
    # their metrics and trajectory shares; seed 0's random run is rerun (with its reference run),
    # and so is the one reference run whose shares the file lacks; seed 2 is new.
    first = json.loads((out / "ablation.json").read_text())
    del first["trajectory_runs"]["mean"]["1"]
    earlier_file = tmp_path / "earlier.json"
    earlier_file.write_text(json.dumps(first))
    again = tmp_path / "continued"
    command = [
        *module_command(MODULE, []),
        "--output-dir",
        str(again),
        "--scale",
        "smoke",
        "--seeds",
        "0",
        "1",
    ]
    command += [
        "2",
        "--variants",
        "random,ps_hard,ps_log_mean",
        "--earlier-results",
        str(earlier_file),
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=module_environment()
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    continued = json.loads((again / "ablation.json").read_text())
    earlier = continued["settings"]["earlier_results"]
    assert earlier["seeds_taken_from_it"] == [0, 1]
    assert earlier["reproduction_check"]["seed0"]["largest_difference"] == 0.0
    assert not (again / "seed1" / "random" / "metrics.json").exists()
    assert (again / "seed0" / "ps_log" / "trajectories.json").exists()
    assert not (again / "seed0" / "ps_log_mean" / "trajectories.json").exists()
    assert not (again / "seed1" / "ps_log" / "trajectories.json").exists()
    assert (again / "seed1" / "ps_log_mean" / "trajectories.json").exists()
    assert continued["runs"]["ps_hard"]["1"] == summary["runs"]["ps_hard"]["1"]
    assert continued["trajectory_runs"]["cico"]["1"] == summary["trajectory_runs"]["cico"]["1"]
    # The rerun reference run reproduces the shares the file had before they were removed.
    assert continued["trajectory_runs"]["mean"]["1"] == summary["trajectory_runs"]["mean"]["1"]
    assert (again / "seed2" / "ps_hard" / "metrics.json").exists()
    assert continued["table"]["random"]["test_bleu4"]["n"] == 3
    assert set(continued["trajectory_runs"]["cico"]) == {"0", "1", "2"}


def test_earlier_results_are_checked_against_this_config_and_read(tmp_path) -> None:
    scale = ablation.SCALES["smoke"]
    recorded = ablation.variant_config(ablation.VARIANTS["ps_log"], 0, scale).to_dict()
    recorded["scl"]["epochs"] = 7.0
    del recorded["translate"]["epochs"]  # an older file lacks newer keys: not a difference
    earlier = tmp_path / "ablation.json"
    settings = {"scale": "smoke", "seeds_finished": [0], "config_of_ps_log_seed0": recorded}
    earlier.write_text(json.dumps({"settings": settings, "runs": {}}))
    args = ablation.parse_args(
        ["--output-dir", str(tmp_path), "--scale", "smoke", "--earlier-results", str(earlier)]
    )
    with pytest.raises(SystemExit, match=r"scl\.epochs: 7\.0 then, 1 now"):
        ablation.read_earlier_results(args)
    recorded["scl"]["epochs"] = 1.0
    shares = {"H->L": 50.0}
    earlier.write_text(
        json.dumps(
            {
                "settings": settings,
                "runs": {"random": {"0": {"test_bleu4": 1.0}}},
                "trajectory_runs": {"cico": {"0": shares}},
            }
        )
    )
    read = ablation.read_earlier_results(args)
    assert read.metrics == {"random": {0: {"test_bleu4": 1.0}}}
    assert read.trajectories == {"cico": {0: shares}}
