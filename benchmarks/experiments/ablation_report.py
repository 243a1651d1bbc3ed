"""The ablation's summary: per-run metrics, mean ± std, paired differences with 95 % intervals.

Used by ``benchmarks.experiments.ablation``; reads finished recipe run directories only, so a
partial ablation (some seeds finished) summarises what is there.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

TRAJECTORY_CATEGORIES = ("H->L", "H->H", "L->H", "L->L")
# The paper's trajectory shares on PHOENIX-2014T (method.md); L→L is the remainder.
PAPER_TRAJECTORY_SHARES = {"H->L": 35.9, "H->H": 31.9, "L->H": 17.8, "L->L": 14.4}
METRICS = ("dev_r1_after_scl", "dev_bleu4", "test_bleu4", "test_rouge_l")
# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
T_QUANTILES_95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


class VariantLike(Protocol):
    name: str
    batch_sampler: str
    schedule: str
    contrastive_loss: str
    aggregation: str


RunDir = Callable[[Path, int, VariantLike], Path]


@dataclass
class EarlierRuns:
    """What an earlier call finished: run metrics and the reference runs' trajectory shares."""

    metrics: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """variant name → seed → metric → value."""
    trajectories: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)
    """similarity aggregation → seed → category → share in % (absent from older files)."""

    def has_seed(self, seed: int, variants: Sequence[VariantLike]) -> bool:
        """Whether every one of ``variants`` has metrics for ``seed``."""
        return all(seed in self.metrics.get(v.name, {}) for v in variants)

    def has_trajectories(self, seed: int, aggregation: str) -> bool:
        return seed in self.trajectories.get(aggregation, {})


def read_run(path: Path) -> dict[str, float]:
    """The ablation's metrics of one finished run directory."""
    metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    retrieval = metrics["validation_retrieval_after_scl"]
    return {
        "dev_r1_after_scl": retrieval["eval_video_to_text_r1"],
        "dev_bleu4": metrics["validation"]["bleu4"],
        "test_bleu4": metrics["test"]["bleu4"],
        "test_rouge_l": metrics["test"]["rouge_l"],
    }


def read_trajectory_shares(path: Path) -> dict[str, float]:
    """Category shares (in %) and the share consistently pushed away, from a trajectories.json."""
    report = json.loads((path / "trajectories.json").read_text(encoding="utf-8"))
    shares = {name: 100.0 * report["shares"][name] for name in TRAJECTORY_CATEGORIES}
    shares["consistently pushed away"] = 100.0 * report["consistently_pushed_share"]
    return shares


def t_quantile_95(degrees_of_freedom: int) -> float:
    """The two-sided 95 % quantile of Student's t (nan without degrees of freedom)."""
    if degrees_of_freedom < 1:
        return float("nan")
    return T_QUANTILES_95[degrees_of_freedom - 1] if degrees_of_freedom <= 30 else 1.96


def mean_std(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample std, count and the half-width of the mean's 95 % t-interval."""
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    half_width = (
        t_quantile_95(len(values) - 1) * std / math.sqrt(len(values)) if len(values) > 1 else math.nan
    )
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "ci95": half_width}


def finished_seeds(
    root: Path,
    seeds: Sequence[int],
    variants: Sequence[VariantLike],
    run_dir: RunDir,
    earlier: EarlierRuns | None = None,
    reference_key: Callable[[VariantLike], VariantLike] | None = None,
) -> list[int]:
    """The seeds whose every variant run has finished (wrote metrics.json).

    A seed whose metrics come from ``earlier`` is finished once the trajectory shares of its
    reference runs (``reference_key`` names them) are known: from ``earlier`` or from a rerun.
    """
    earlier = earlier or EarlierRuns()

    def has_trajectories(seed: int, reference: VariantLike) -> bool:
        return earlier.has_trajectories(seed, reference.aggregation) or (
            (run_dir(root, seed, reference) / "trajectories.json").exists()
        )

    def finished(seed: int) -> bool:
        if earlier.has_seed(seed, variants) and reference_key is not None:
            return all(has_trajectories(seed, reference_key(v)) for v in variants)
        return all((run_dir(root, seed, v) / "metrics.json").exists() for v in variants)

    return [seed for seed in seeds if finished(seed)]


def summarise(
    root: Path,
    seeds: Sequence[int],
    variants: Sequence[VariantLike],
    run_dir: RunDir,
    reference_key: Callable[[VariantLike], VariantLike],
    earlier: EarlierRuns | None = None,
) -> dict[str, Any]:
    """Per-run metrics, their mean ± std per variant, and trajectory shares per similarity.

    A run's metrics and a reference run's trajectory shares come from ``earlier`` where it holds
    them, else from the run directories; the shares are also kept per seed.
    """
    earlier = earlier or EarlierRuns()
    runs = {
        v.name: {
            seed: earlier.metrics.get(v.name, {}).get(seed) or read_run(run_dir(root, seed, v))
            for seed in seeds
        }
        for v in variants
    }
    table = {
        name: {metric: mean_std([per_seed[s][metric] for s in seeds]) for metric in METRICS}
        for name, per_seed in runs.items()
    }
    trajectories, trajectory_runs = {}, {}
    for reference in sorted({reference_key(v) for v in variants}, key=lambda v: v.name):
        known = earlier.trajectories.get(reference.aggregation, {})
        per_seed = {
            seed: known.get(seed) or read_trajectory_shares(run_dir(root, seed, reference)) for seed in seeds
        }
        trajectory_runs[reference.aggregation] = per_seed
        trajectories[reference.aggregation] = {
            k: mean_std([p[k] for p in per_seed.values()]) for k in per_seed[seeds[0]]
        }
    summary: dict[str, Any] = {
        "runs": runs,
        "table": table,
        "trajectories": trajectories,
        "trajectory_runs": trajectory_runs,
    }
    if "random" in runs:
        summary["paired_vs_random"] = paired_differences(runs, "random", seeds)
    return summary


def paired_differences(
    runs: dict[str, dict[int, dict[str, float]]], baseline: str, seeds: Sequence[int]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and metric: mean, std and 95 % interval over seeds of (variant − baseline).

    Runs of one seed share the initial model (and, within one similarity, the reference run), so
    the paired difference removes that seed's luck from the comparison.
    """
    return {
        name: {
            metric: mean_std([per_seed[s][metric] - runs[baseline][s][metric] for s in seeds])
            for metric in METRICS
        }
        for name, per_seed in runs.items()
        if name != baseline
    }


def format_cell(cell: dict[str, float], signed: bool = False) -> str:
    return f"{cell['mean']:{'+' if signed else ''}.2f} ± {cell['std']:.2f}"


def format_interval(cell: dict[str, float]) -> str:
    """``+1.23 [−0.40, +2.86]``: the mean difference and its 95 % interval."""
    low, high = cell["mean"] - cell["ci95"], cell["mean"] + cell["ci95"]
    return f"{cell['mean']:+.2f} [{low:+.2f}, {high:+.2f}]"


def markdown(summary: dict[str, Any], variants: Sequence[VariantLike], seeds: Sequence[int]) -> str:
    """The tables: the variants' metrics, paired differences and the trajectory shares."""
    lines = [
        f"Mean ± sample std over seeds {list(seeds)}.",
        "",
        "| variant | batches | loss | similarity | dev R@1 after scl | dev BLEU-4 | test BLEU-4 "
        "| test ROUGE-L |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        row = summary["table"][v.name]
        batches = v.batch_sampler + (f" ({v.schedule})" if v.batch_sampler == "ps_curriculum" else "")
        lines.append(
            f"| {v.name} | {batches} | {v.contrastive_loss} | {v.aggregation} | "
            + " | ".join(format_cell(row[m]) for m in METRICS)
            + " |"
        )
    if "paired_vs_random" in summary:
        lines += paired_table(summary["paired_vs_random"])
    return "\n".join(lines + trajectory_table(summary["trajectories"])) + "\n"


def paired_table(paired: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown lines: each variant minus ``random`` of the same seed, with 95 % t-intervals."""
    return [
        "",
        "Paired differences, variant − random of the same seed (same initial model; the cico rows also "
        "share the reference run): mean [95 % t-interval over seeds].",
        "",
        "| variant | Δ dev R@1 after scl | Δ dev BLEU-4 | Δ test BLEU-4 | Δ test ROUGE-L |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | " + " | ".join(format_interval(row[m]) for m in METRICS) + " |"
            for name, row in paired.items()
        ),
    ]


def trajectory_table(trajectories: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown lines: the reference runs' trajectory shares next to the paper's."""
    lines = [
        "",
        "| reference run similarity | " + " | ".join(TRAJECTORY_CATEGORIES) + " | consistently pushed away |",
        "|---" * (len(TRAJECTORY_CATEGORIES) + 2) + "|",
    ]
    for aggregation, shares in trajectories.items():
        lines.append(
            f"| {aggregation} | " + " | ".join(format_cell(c) + " %" for c in shares.values()) + " |"
        )
    paper = " | ".join(
        ("~" if name == "L->L" else "") + f"{PAPER_TRAJECTORY_SHARES[name]:.1f} %"
        for name in TRAJECTORY_CATEGORIES
    )
    lines.append(f"| the paper (PHOENIX-2014T; L→L is the remainder) | {paper} | – |")
    return lines
