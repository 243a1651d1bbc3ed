"""The feature-twin experiment (benchmarks.experiments.feature_twin_ablation): plan, configs, report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.experiments import feature_twin_ablation as experiment
from benchmarks.harness import module_command, module_environment

MODULE = "benchmarks.experiments.feature_twin_ablation"


def write_run(folder: Path, dev_r1: float, test_bleu4: float, test_rouge_l: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {
        "validation_retrieval_after_scl": {
            "eval_video_to_text_r1": dev_r1,
            "eval_video_to_text_r5": 2 * dev_r1,
        },
        "validation": {"bleu4": test_bleu4 - 1, "rouge_l": test_rouge_l - 1},
        "test": {"bleu1": 3 * test_bleu4, "bleu4": test_bleu4, "rouge_l": test_rouge_l},
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))


def write_trajectories(folder: Path, shares: tuple[float, float, float, float]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    report_json = {"shares": dict(zip(experiment.TRAJECTORY_CATEGORIES, shares, strict=True))}
    report_json["consistently_pushed_share"] = 0.5
    (folder / "trajectories.json").write_text(json.dumps(report_json))


def recorded_settings(seeds: list[int], sweep: list[float]) -> dict:
    return {
        "main_difficulty": 0.5,
        "sweep_difficulties": sweep,
        "seeds": seeds,
        "variants": {name: {} for name in experiment.VARIANTS},
        "machine": "test",
    }


def test_the_report_pairs_runs_of_one_seed_and_draws_the_sweep(tmp_path: Path) -> None:
    """Known metrics in run folders → the paired differences, the sweep and the files, as computed here."""
    root = tmp_path / "experiment"
    run = lambda level, seed, name: experiment.run_dir(root, level, seed, experiment.VARIANTS[name])  # noqa: E731
    # ps_log − random, test BLEU-4: +1 and +3 at difficulty 0.5; -2 and -2 at 0.8 (seed 2 has no ps_log).
    for level, seed, random_bleu, ps_bleu in (
        (0.5, 0, 10, 11),
        (0.5, 1, 12, 15),
        (0.8, 0, 5, 3),
        (0.8, 1, 6, 4),
    ):
        write_run(run(level, seed, "random"), 40 - 20 * level + seed, random_bleu, 30)
        write_run(run(level, seed, "ps_log"), 41 - 20 * level, ps_bleu, 31)
        write_trajectories(run(level, seed, "ps_log"), (0.4, 0.3, 0.2, 0.1))
    write_run(run(0.5, 2, "random"), 35, 9, 30)
    (root / "corpora" / "d0.50").mkdir(parents=True)
    (root / "corpora" / "d0.50" / "features.json").write_text(
        json.dumps({"splits": {"train": 7096, "validation": 519, "test": 642}})
    )
    results = experiment.collect_results(
        root,
        recorded_settings([0, 1, 2], [0.8]),
        experiment.run_dir,
        experiment.VARIANTS,
        experiment.reference_of,
    )
    assert results["train_videos"] == 7096
    assert len(results["runs"]) == 9
    assert {"seed", "variant", "difficulty", "dev_r1", "dev_bleu4", "test_bleu4", "test_rouge_l"} <= set(
        results["runs"][0]
    )
    points = {point["difficulty"]: point for point in experiment.sweep_points(results)}
    assert points[0.5]["paired_seeds"] == [0, 1]
    assert points[0.5]["delta_test_bleu4"]["mean"] == pytest.approx(2.0)
    # 95 % t-interval with 1 degree of freedom: 12.706 * std / sqrt(2), std = sqrt(2).
    assert points[0.5]["delta_test_bleu4"]["ci95"] == pytest.approx(12.706)
    assert points[0.8]["delta_test_bleu4"]["mean"] == pytest.approx(-2.0)
    assert points[0.5]["random_dev_r1"]["mean"] == pytest.approx((30 + 31 + 35) / 3)
    text = experiment.write_report(results, root, experiment.run_dir, experiment.VARIANTS)
    assert "| ps_log | 2 | +0.50 [-5.85, +6.85] | " in text and "+2.00 [-10.71, +14.71]" in text
    assert "| 0.80 |" in text and "-2.00" in text
    assert "| cico | 2 | 40.00 ± 0.00 % |" in text
    assert (root / "sweep.png").stat().st_size > 0 and (root / "report.md").read_text() == text


def test_the_sweep_figure_draws_levels_of_one_seed_without_an_interval(tmp_path: Path) -> None:
    """A level with one paired seed has NaN spreads; the figure still draws it (hollow, unjoined)."""
    nan = float("nan")
    points = [
        {
            "difficulty": 0.7,
            "random_dev_r1": {"mean": 40.0, "std": 2.0, "n": 5},
            "delta_test_bleu4": {"mean": 0.3, "std": 0.5, "ci95": 0.6, "n": 5},
            "paired_seeds": [0, 1, 2, 3, 4],
        },
        {
            "difficulty": 0.9,
            "random_dev_r1": {"mean": 29.0, "std": nan, "n": 1},
            "delta_test_bleu4": {"mean": 0.7, "std": nan, "ci95": nan, "n": 1},
            "paired_seeds": [0],
        },
    ]
    path = experiment.plot_sweep(points, tmp_path)
    assert path == tmp_path / "sweep.png" and path.stat().st_size > 0
    assert experiment.plot_sweep([{**points[1], "delta_test_bleu4": None}], tmp_path / "none") is None


def test_the_plan_runs_the_main_table_first_then_seeds_oracle_and_sweep(tmp_path: Path) -> None:
    args = experiment.parse_args(
        [
            "--output-dir",
            str(tmp_path),
            "--seeds",
            "0",
            "1",
            "--difficulty",
            "0.5",
            "--sweep",
            "0.3",
            "0.5",
            "0.8",
        ]
    )
    assert args.sweep == [0.3, 0.8]  # the main difficulty is not repeated
    keys = [job.key for job in experiment.plan_jobs(args, experiment.SCALES["full"])]
    seed0 = ["corpus/d0.50"] + [f"d0.50/seed0/{name}/reference" for name in ("ps_log", "ps_log_mean")]
    seed0 += [f"d0.50/seed0/{name}" for name in experiment.VARIANTS]
    assert keys[: len(seed0)] == seed0
    assert keys[len(seed0)] == "d0.50/seed1/ps_log/reference"
    oracle = keys.index("oracle")
    assert all(key.startswith(("d0.50/", "corpus/d0.50")) for key in keys[:oracle])
    sweep = [
        f"d{level}/seed{seed}/{name}"
        for seed in (0, 1)
        for level in ("0.30", "0.80")
        for name in ("ps_log/reference", "random", "ps_log")
    ]
    sweep.insert(sweep.index("d0.30/seed0/ps_log/reference"), "corpus/d0.30")
    sweep.insert(sweep.index("d0.80/seed0/ps_log/reference"), "corpus/d0.80")
    assert keys[oracle + 1 :] == sweep
    jobs = {job.key: job for job in experiment.plan_jobs(args, experiment.SCALES["full"])}
    assert jobs["d0.80/seed1/random"].needs == "d0.80/seed1/ps_log/reference"
    assert jobs["d0.80/seed1/ps_log/reference"].needs == "corpus/d0.80"
    assert jobs["d0.50/seed0/ps_log_mean"].needs == "d0.50/seed0/ps_log_mean/reference"


def test_runs_of_one_seed_differ_only_in_what_their_variant_sets(tmp_path: Path) -> None:
    """Same seed and difficulty: only stage scl (and the similarity) differ between variants."""
    scale = experiment.SCALES["full"]
    configs = {
        name: experiment.variant_config(variant, 3, 0.7, scale, tmp_path, {}).to_dict()
        for name, variant in experiment.VARIANTS.items()
    }
    reference = configs["ps_log"]
    for name, config in configs.items():
        differing = {key for key in config if config[key] != reference[key]}
        assert differing <= {"scl", "model"}, name
        assert config["model"]["overrides"]["similarity_aggregation"] == experiment.VARIANTS[name].aggregation
    assert reference["video"]["features"] == str((tmp_path / "corpora" / "d0.70").resolve())
    assert reference["seed"] == 3 and reference["scl"]["init_from"] == "reference"
    assert configs["baseline"]["scl"]["contrastive_weight"] == 0.0
    assert configs["baseline"]["scl"]["init_from"] == "initial"
    assert configs["random"]["scl"]["contrastive_loss"] == "clip"
    assert configs["ps_hard"]["scl"]["schedule"] == "hard"
    overridden = experiment.variant_config(
        experiment.VARIANTS["random"], 0, 0.7, scale, tmp_path, {"scl.epochs": 2}
    )
    assert overridden.scl.epochs == 2.0
    with pytest.raises(ValueError, match="unknown key"):
        experiment.variant_config(experiment.VARIANTS["random"], 0, 0.7, scale, tmp_path, {"scl.epoch": 2})


@pytest.mark.slow
def test_smoke_experiment_runs_resumes_and_reports(tmp_path: Path) -> None:
    """The whole path at smoke scale on the real annotations: corpora, runs, results, report; a
    second call finds everything finished and trains nothing."""
    from tests._shared_data import shared_path

    annotations = shared_path("phoenix2014t")
    out = tmp_path / "experiment"
    options = ["--output-dir", str(out), "--scale", "smoke", "--seeds", "0", "1", "--difficulty", "0.5"]
    options += ["--variants", "baseline,random,ps_log", "--sweep", "0.9", "--no-oracle", "--jobs", "2"]
    command = module_command(MODULE, [*options, "--annotations", str(annotations)])
    how = {"capture_output": True, "text": True, "timeout": 900, "cwd": tmp_path, "env": module_environment()}
    finished = subprocess.run(command, **how)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads((out / "feature_twin.json").read_text())
    assert results["train_videos"] == 24 and results["dev_videos"] == 6
    keys = {(run["seed"], run["variant"], run["difficulty"]) for run in results["runs"]}
    main = {(seed, name, 0.5) for seed in (0, 1) for name in ("baseline", "random", "ps_log")}
    assert keys == main | {(seed, name, 0.9) for seed in (0, 1) for name in ("random", "ps_log")}
    for run in results["runs"]:
        assert all(0.0 <= run[key] <= 100.0 for key in ("dev_r1", "dev_bleu4", "test_bleu4", "test_rouge_l"))
        assert run["code_commit"] and run["wall_seconds"] > 0
    assert results["config"]["video"]["features"].endswith("d0.50")
    assert {r["aggregation"] for r in results["reference_runs"]} == {"cico"}
    report_text = (out / "report.md").read_text()
    assert "| random | 2 |" in report_text and "| 0.90 |" in report_text
    assert (out / "sweep.png").exists() and (out / "curves.png").exists()
    # The variants trained differently from one shared reference model.
    run_dirs = {name: out / "d0.50" / "seed0" / name for name in ("random", "ps_log")}
    assert (run_dirs["random"] / "reference").resolve() == (run_dirs["ps_log"] / "reference").resolve()
    weights = {n: (d / "scl" / "model" / "model.safetensors").read_bytes() for n, d in run_dirs.items()}
    assert weights["random"] != weights["ps_log"]
    again = subprocess.run(command, **how)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "started:" not in again.stdout
