"""The feature-twin experiment's results file, tables and figures, from its run directories.

Used by ``feature_twin_ablation.py``; reads finished runs only, so a partial experiment reports
what is there. Paired differences take, per difficulty, the seeds where both runs finished.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ablation_report import (
    PAPER_TRAJECTORY_SHARES,
    TRAJECTORY_CATEGORIES,
    VariantLike,
    format_interval,
    mean_std,
    read_trajectory_shares,
)

RunDir = Callable[[Path, float, int, VariantLike], Path]
METRICS = ("dev_r1", "dev_bleu4", "test_bleu4", "test_rouge_l")
METRIC_TITLES = {
    "dev_r1": "dev R@1 after scl",
    "dev_bleu4": "dev BLEU-4",
    "test_bleu4": "test BLEU-4",
    "test_rouge_l": "test ROUGE-L",
}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_feature_run(folder: Path) -> dict[str, Any] | None:
    """One run's record: the metrics of a finished run, or the dev retrieval of one stopped after scl."""
    metrics = _read_json(folder / "metrics.json")
    scl = _read_json(folder / "scl" / "DONE")
    if metrics is None and scl is None:
        return None
    retrieval = metrics["validation_retrieval_after_scl"] if metrics else scl["eval"]
    record: dict[str, Any] = {
        "dev_r1": retrieval["eval_video_to_text_r1"],
        "dev_r5": retrieval.get("eval_video_to_text_r5"),
        "dev_t2v_r1": retrieval.get("eval_text_to_video_r1"),
        "finished": "all" if metrics else "scl",
    }
    if metrics:
        record.update(
            dev_bleu4=metrics["validation"]["bleu4"],
            dev_rouge_l=metrics["validation"]["rouge_l"],
            test_bleu1=metrics["test"]["bleu1"],
            test_bleu4=metrics["test"]["bleu4"],
            test_rouge_l=metrics["test"]["rouge_l"],
        )
    stamp = _read_json(folder / "feature_twin_run.json") or {}
    record["wall_seconds"] = stamp.get("wall_seconds")
    record["code_commit"] = stamp.get("code_commit")
    return record


def collect_results(
    root: Path,
    recorded: Mapping[str, Any],
    run_dir: RunDir,
    variants: Mapping[str, VariantLike],
    reference_of: Callable[[VariantLike], VariantLike],
) -> dict[str, Any]:
    """The results file: ``recorded`` settings, corpus sizes, runs, reference runs and the oracle."""
    levels = sorted({recorded["main_difficulty"], *recorded["sweep_difficulties"]})
    runs, partial, references = [], [], []
    for level in levels:
        for seed in recorded["seeds"]:
            for variant in variants.values():
                record = read_feature_run(run_dir(root, level, seed, variant))
                if record is not None:
                    entry = {"seed": seed, "variant": variant.name, "difficulty": level, **record}
                    (runs if record["finished"] == "all" else partial).append(entry)
            for reference in {reference_of(v) for v in variants.values()}:
                folder = run_dir(root, level, seed, reference)
                if (folder / "trajectories.json").exists():
                    shares = read_trajectory_shares(folder)
                    references.append(
                        {"seed": seed, "difficulty": level, "aggregation": reference.aggregation, **shares}
                    )
    main_corpus = _read_json(root / "corpora" / f"d{recorded['main_difficulty']:.2f}" / "features.json") or {}
    splits = main_corpus.get("splits", {})
    return {
        "experiment": "feature_twin",
        "train_videos": splits.get("train"),
        "dev_videos": splits.get("validation"),
        "test_videos": splits.get("test"),
        **recorded,
        "runs": runs,
        "runs_stopped_after_scl": partial,
        "reference_runs": references,
        "trajectory_categories": list(TRAJECTORY_CATEGORIES),
        "oracle": _read_json(root / "oracle.json"),
    }


# --- tables -------------------------------------------------------------------------------------
def _by_key(runs: Sequence[dict[str, Any]]) -> dict[tuple[float, str], dict[int, dict[str, Any]]]:
    table: dict[tuple[float, str], dict[int, dict[str, Any]]] = {}
    for run in runs:
        table.setdefault((run["difficulty"], run["variant"]), {})[run["seed"]] = run
    return table


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "–"
    stats = mean_std(values)
    spread = f" ± {stats['std']:.2f}" if len(values) > 1 else ""
    return f"{stats['mean']:.2f}{spread}"


def paired(
    runs: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]], metric: str
) -> tuple[dict[str, float] | None, list[int]]:
    """Mean, std and 95 % half-width of ``run − baseline`` over the seeds both have."""
    seeds = sorted(set(runs) & set(baseline))
    if not seeds:
        return None, seeds
    return mean_std([runs[s][metric] - baseline[s][metric] for s in seeds]), seeds


def _interval(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "–"
    if stats["n"] < 2:
        return f"{stats['mean']:+.2f} (1 seed)"
    return format_interval(stats)


def main_tables(results: dict[str, Any], variants: Sequence[str]) -> list[str]:
    level = results["main_difficulty"]
    table = _by_key(results["runs"])
    lines = [
        f"### Main difficulty {level:.2f}: the paper's table in shape",
        "",
        "Mean ± sample std over the finished seeds (n).",
        "",
        "| variant | n | " + " | ".join(METRIC_TITLES[m] for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for name in variants:
        per_seed = table.get((level, name), {})
        cells = [_cell([run[m] for run in per_seed.values()]) for m in METRICS]
        lines.append(f"| {name} | {len(per_seed)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences, variant − random of the same seed: mean [95 % t-interval over seeds].",
        "",
        "| variant | seeds | " + " | ".join(f"Δ {METRIC_TITLES[m]}" for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    random = table.get((level, "random"), {})
    for name in variants:
        if name == "random":
            continue
        per_seed = table.get((level, name), {})
        stats = [paired(per_seed, random, m) for m in METRICS]
        lines.append(f"| {name} | {len(stats[0][1])} | " + " | ".join(_interval(s) for s, _ in stats) + " |")
    return lines


def trajectory_table(results: dict[str, Any]) -> list[str]:
    level = results["main_difficulty"]
    columns = [*TRAJECTORY_CATEGORIES, "consistently pushed away"]
    lines = [
        "",
        f"Trajectory shares of the reference runs at difficulty {level:.2f} (mean ± std over seeds):",
        "",
        "| reference run similarity | n | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for aggregation in ("cico", "mean"):
        rows = [
            r
            for r in results["reference_runs"]
            if r["difficulty"] == level and r["aggregation"] == aggregation
        ]
        if rows:
            cells = [_cell([r[c] for r in rows]) + " %" for c in columns]
            lines.append(f"| {aggregation} | {len(rows)} | " + " | ".join(cells) + " |")
    paper = [f"{PAPER_TRAJECTORY_SHARES[c]} %" for c in TRAJECTORY_CATEGORIES]
    lines.append("| the paper (PHOENIX-2014T; L→L is the remainder) | – | " + " | ".join(paper) + " | – |")
    return lines


def sweep_points(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per difficulty: random's dev R@1 and Δ (ps_log − random) of test BLEU-4 and ROUGE-L."""
    table = _by_key(results["runs"])
    partial = _by_key(results["runs_stopped_after_scl"])
    levels = sorted({results["main_difficulty"], *results["sweep_difficulties"]})
    points = []
    for level in levels:
        random = table.get((level, "random"), {})
        calibration = {**partial.get((level, "random"), {}), **random}
        bleu, seeds = paired(table.get((level, "ps_log"), {}), random, "test_bleu4")
        rouge, _ = paired(table.get((level, "ps_log"), {}), random, "test_rouge_l")
        r1 = mean_std([run["dev_r1"] for run in calibration.values()]) if calibration else None
        points.append(
            {
                "difficulty": level,
                "random_dev_r1": r1,
                "random_test_bleu4": mean_std([r["test_bleu4"] for r in random.values()]) if random else None,
                "delta_test_bleu4": bleu,
                "delta_test_rouge_l": rouge,
                "paired_seeds": seeds,
            }
        )
    return points


def sweep_table(points: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "### The difficulty knob and when Pair Selection helps",
        "",
        "| difficulty | random: dev R@1 after scl (n) | random: test BLEU-4 "
        "| Δ test BLEU-4, ps_log − random | Δ test ROUGE-L | paired seeds |",
        "|---|---|---|---|---|---|",
    ]
    for point in points:
        r1 = point["random_dev_r1"]
        r1_cell = "–" if r1 is None else f"{r1['mean']:.2f} ± {r1['std']:.2f} ({r1['n']})"
        if r1 is not None and r1["n"] < 2:
            r1_cell = f"{r1['mean']:.2f} (1)"
        bleu = point["random_test_bleu4"]
        bleu_cell = "–" if bleu is None else f"{bleu['mean']:.2f}"
        deltas = f"{_interval(point['delta_test_bleu4'])} | {_interval(point['delta_test_rouge_l'])}"
        seeds = len(point["paired_seeds"])
        lines.append(f"| {point['difficulty']:.2f} | {r1_cell} | {bleu_cell} | {deltas} | {seeds} |")
    return lines


def oracle_lines(results: dict[str, Any]) -> list[str]:
    oracle = results.get("oracle")
    if not oracle:
        return []
    return [
        "",
        f"Gloss oracle (gold glosses → text, the same decoder family, {oracle['train_rows']} train rows, "
        f"{oracle['settings']['epochs']:g} epochs): dev BLEU-4 {oracle['validation']['bleu4']:.2f}, "
        f"test BLEU-4 {oracle['test']['bleu4']:.2f}, test ROUGE-L {oracle['test']['rouge_l']:.2f}.",
    ]


# --- figures ------------------------------------------------------------------------------------
def _log_history(stage_dir: Path) -> list[dict[str, Any]]:
    """The Trainer's log history of a stage: from its last checkpoint's trainer_state.json."""
    checkpoints = sorted(stage_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for checkpoint in reversed(checkpoints):
        state = _read_json(checkpoint / "trainer_state.json")
        if state is not None:
            return state.get("log_history", [])
    return []


def plot_curves(
    results: dict[str, Any], root: Path, run_dir: RunDir, variants: Mapping[str, VariantLike]
) -> Path | None:
    """Training loss per epoch of every stage, first seed, main difficulty: ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level, seed = results["main_difficulty"], results["seeds"][0]
    stages = ("reference", "scl", "translate")
    figure, axes = plt.subplots(1, len(stages), figsize=(15, 4))
    drawn = False
    for axis, stage in zip(axes, stages, strict=True):
        for variant in variants.values():
            if stage == "reference" and variant.name not in ("ps_log", "ps_log_mean"):
                continue
            history = [e for e in _log_history(run_dir(root, level, seed, variant) / stage) if "loss" in e]
            if history:
                axis.plot([e["epoch"] for e in history], [e["loss"] for e in history], label=variant.name)
                drawn = True
        axis.set_title(f"stage {stage}")
        axis.set_xlabel("epoch")
        axis.set_ylabel("training loss")
        if axis.lines:
            axis.legend(fontsize=7)
    if not drawn:
        plt.close(figure)
        return None
    figure.suptitle(f"feature twin, difficulty {level:.2f}, seed {seed}")
    figure.tight_layout()
    path = root / "curves.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_sweep(points: list[dict[str, Any]], root: Path) -> Path | None:
    """Δ test BLEU-4 (ps_log − random, 95 % interval) against random's dev R@1: ``sweep.png``."""
    drawable = [p for p in points if p["delta_test_bleu4"] is not None and p["random_dev_r1"] is not None]
    if not drawable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    x = [p["random_dev_r1"]["mean"] for p in drawable]
    y = [p["delta_test_bleu4"]["mean"] for p in drawable]
    yerr = [
        0 if math.isnan(p["delta_test_bleu4"]["ci95"]) else p["delta_test_bleu4"]["ci95"] for p in drawable
    ]
    xerr = [0 if math.isnan(p["random_dev_r1"]["std"]) else p["random_dev_r1"]["std"] for p in drawable]
    axis.errorbar(x, y, yerr=yerr, xerr=xerr, fmt="o-", capsize=4)
    for p, xi, yi in zip(drawable, x, y, strict=True):
        axis.annotate(
            f"d={p['difficulty']:.2f}", (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8
        )
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xlabel("random-batch dev video→text R@1 after scl (%)")
    axis.set_ylabel("Δ test BLEU-4, ps_log − random")
    axis.set_title("When does Pair Selection help? (feature twin, 95 % intervals)")
    figure.tight_layout()
    path = root / "sweep.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(
    results: dict[str, Any], root: Path, run_dir: RunDir, variants: Mapping[str, VariantLike]
) -> str:
    """Write ``report.md`` with the tables and the figures beside it; returns the markdown."""
    points = sweep_points(results)
    lines = [
        "## Feature twin: results so far",
        "",
        f"{results.get('train_videos')} train, {results.get('dev_videos')} dev, {results.get('test_videos')} "
        f"test videos; {len(results['runs'])} finished runs. Machine: {results.get('machine')}.",
        "",
        *main_tables(results, [name for name in variants if name in results["variants"]]),
        *trajectory_table(results),
        *oracle_lines(results),
        *sweep_table(points),
    ]
    curves = plot_curves(results, root, run_dir, variants)
    sweep = plot_sweep(points, root)
    lines += ["", *(f"![{p.stem}]({p.name})" for p in (curves, sweep) if p is not None)]
    text = "\n".join(lines) + "\n"
    (root / "report.md").write_text(text, encoding="utf-8")
    return text
