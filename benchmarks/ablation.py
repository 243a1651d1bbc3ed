"""The selective-contrastive ablation on the duplicate-rich synthetic corpus, in one command.

    python benchmarks/ablation.py --output-dir ablation-run          # the table (about 1 h, 2 cores)
    python benchmarks/ablation.py --output-dir smoke --scale smoke   # the same path in a minute

Variants of stage ``scl`` (everything else fixed), each trained from the same reference model of
its seed and similarity, then translated and evaluated:

* ``random``: random in-batch negatives, plain CLIP loss (no masking): standard contrastive.
* ``no_duplicates``: random batches that never hold two identical sentences, selective loss.
* ``ps_log``, ``ps_linear``, ``ps_sqrt``, ``ps_easy``, ``ps_hard``: the PS curriculum with each
  schedule, selective loss, CiCo similarity.
* ``ps_log_cls``, ``ps_log_mean``: the PS curriculum (log) with CLS or mean-pooled similarity
  for the reference run, the scores and the loss (``ps_log`` is the CiCo row).

Per seed there is one corpus (shared), one initial model and one reference run per similarity
(whose snapshots give the trajectory shares and the Pair Selection scores). Metrics: dev
video→text R@1 after stage scl; dev and test BLEU-4 and test ROUGE-L after stage translate;
mean ± sample std over the seeds, and each variant's paired difference to ``random`` of the same
seed. Runs execute in ``--jobs`` worker processes with one torch
thread each (small models use two cores better as two runs than as one). Every run is a normal
recipe run directory, so an interrupted ablation resumes where it stopped.

Writes ``OUTPUT_DIR/ablation.json`` (every run's metrics and the summary) and
``OUTPUT_DIR/ablation.md`` (the tables), and prints the tables.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from datasets_scripts import DUPLICATE_RICH  # noqa: E402
from trainers.application.cli import parse_overrides  # noqa: E402
from trainers.application.demo import demo_config  # noqa: E402
from trainers.application.recipe_config import RecipeConfig, apply_override, build_dataclass  # noqa: E402

SHARED_REFERENCE_OUTPUTS = (
    "corpus",
    "tokenizer",
    "initial",
    "reference",
    "snapshots",
    "trajectories.json",
    "trajectories.png",
    "pair_scores.safetensors",
)
TRAJECTORY_CATEGORIES = ("H->L", "H->H", "L->H", "L->L")


@dataclass(frozen=True)
class Variant:
    """One row of the table: how stage scl builds its batches and which loss and similarity it uses."""

    name: str
    batch_sampler: str = "ps_curriculum"
    schedule: str = "log"
    contrastive_loss: str = "selective"
    aggregation: str = "cico"


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("random", batch_sampler="random", contrastive_loss="clip"),
        Variant("no_duplicates", batch_sampler="no_duplicates"),
        Variant("ps_log"),
        Variant("ps_linear", schedule="linear"),
        Variant("ps_sqrt", schedule="sqrt"),
        Variant("ps_easy", schedule="easy"),
        Variant("ps_hard", schedule="hard"),
        Variant("ps_log_cls", aggregation="cls"),
        Variant("ps_log_mean", aggregation="mean"),
    )
}


@dataclass(frozen=True)
class Scale:
    """Corpus size and epochs: ``full`` is the published table, ``smoke`` checks the path."""

    train_videos: int
    preset: str
    max_frames: int
    learning_rate: float
    reference_epochs: int
    snapshot_interval: int
    scl_epochs: int
    translate_epochs: int
    batch_size: int
    num_beams: int


SCALES = {
    "full": Scale(
        train_videos=400,
        preset="small",
        max_frames=64,
        learning_rate=1e-3,
        reference_epochs=4,
        snapshot_interval=2,
        scl_epochs=4,
        translate_epochs=5,
        batch_size=16,
        num_beams=4,
    ),
    "smoke": Scale(
        train_videos=24,
        preset="tiny",
        max_frames=32,
        learning_rate=1e-3,
        reference_epochs=2,
        snapshot_interval=1,
        scl_epochs=1,
        translate_epochs=1,
        batch_size=8,
        num_beams=1,
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True, help="ablation folder (resumable)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of: " + ", ".join(VARIANTS) + " (default: all)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value in every run, e.g. --set translate.epochs=10 (VALUE is YAML)",
    )
    args = parser.parse_args(argv)
    args.overrides = parse_overrides(args.set)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    args.variants = [VARIANTS[name] for name in args.variants.split(",")]
    return args


# --- configs ------------------------------------------------------------------------------------
def variant_config(
    variant: Variant, seed: int, scale: Scale, overrides: dict[str, Any] | None = None
) -> RecipeConfig:
    """The recipe config of one run; runs of one (seed, aggregation) differ only in ``scl``."""
    config = scale_config(variant, seed, scale)
    if not overrides:
        return config
    values = config.to_dict()
    for dotted, value in overrides.items():
        apply_override(values, dotted, value)
    return build_dataclass(RecipeConfig, values, "--set")


def scale_config(variant: Variant, seed: int, scale: Scale) -> RecipeConfig:
    """The demo's recipe (``trainers.application.demo.demo_config``) at one scale.

    On the duplicate-rich corpus (frames drawn at 64 × 64, resized to 32 × 32), with the variant's
    stage scl; before ``--set``.
    """
    config = demo_config()
    config.seed = seed
    config.corpus.synthetic_size = scale.train_videos
    config.corpus.synthetic_options = dict(DUPLICATE_RICH)
    config.model.preset = scale.preset
    config.model.overrides = {"similarity_aggregation": variant.aggregation}
    config.video.max_frames = scale.max_frames
    stages = (
        (config.reference, scale.reference_epochs),
        (config.scl, scale.scl_epochs),
        (config.translate, scale.translate_epochs),
    )
    for section, epochs in stages:
        section.epochs, section.batch_size, section.learning_rate = (
            epochs,
            scale.batch_size,
            scale.learning_rate,
        )
    config.reference.snapshot_interval = scale.snapshot_interval
    config.scl.schedule = variant.schedule
    config.scl.batch_sampler = variant.batch_sampler
    config.scl.contrastive_loss = variant.contrastive_loss
    config.translate.eval_every_epochs = scale.translate_epochs  # one generation-based evaluation
    config.evaluation.num_beams = scale.num_beams
    return config


def reference_key(variant: Variant) -> Variant:
    """The variant whose run directory holds the reference run that ``variant`` starts from."""
    return VARIANTS["ps_log"] if variant.aggregation == "cico" else variant


# --- running ------------------------------------------------------------------------------------
def run_job(config_dict: dict[str, Any], run_dir: str, stop_after: str | None) -> float:
    """Run (or resume) one recipe run in this worker process; returns its wall time in seconds."""
    import torch
    from transformers.utils import logging as hf_logging

    from trainers.application.recipe import run_recipe

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    config = build_dataclass(RecipeConfig, copy.deepcopy(config_dict), "ablation config")
    start = time.perf_counter()
    log_path = Path(run_dir) / ("reference.log" if stop_after else "run.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_path.open("a", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        run_recipe(config, run_dir, report=print, stop_after=stop_after)
    return time.perf_counter() - start


def make_corpus(folder: Path, config: RecipeConfig) -> None:
    """Generate the ablation's corpus once (every run links to it), as the recipe would."""
    from trainers.application.recipe import generate_synthetic_corpus

    if not (folder / "manifest.csv").exists():
        print(f"generating the duplicate-rich corpus in {folder}", flush=True)
        generate_synthetic_corpus(config.corpus, folder)


def link_reference_outputs(
    source: Path, target: Path, names: tuple[str, ...] = SHARED_REFERENCE_OUTPUTS
) -> None:
    """Make ``target`` start from the corpus, initial model and reference run in ``source``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = target / name
        if not link.exists() and (source / name).exists():
            link.symlink_to(os.path.relpath(source / name, target))


def run_all(args: argparse.Namespace) -> dict[tuple[int, str], float]:
    """Reference runs first (one per seed and similarity), then every variant; returns wall times."""
    scale = SCALES[args.scale]
    root: Path = args.output_dir
    make_corpus(root / "corpus", variant_config(VARIANTS["ps_log"], 0, scale, args.overrides))
    references = {reference_key(variant) for variant in args.variants}
    for seed in args.seeds:
        for reference in references:
            link_reference_outputs(root, run_dir(root, seed, reference), names=("corpus",))
    reference_jobs = [
        (seed, ref, variant_config(ref, seed, scale, args.overrides), "reference")
        for seed in args.seeds
        for ref in references
    ]
    times = run_parallel(root, reference_jobs, args.jobs)
    for seed in args.seeds:
        for variant in args.variants:
            link_reference_outputs(run_dir(root, seed, reference_key(variant)), run_dir(root, seed, variant))
    variant_jobs = [
        (seed, variant, variant_config(variant, seed, scale, args.overrides), None)
        for seed in args.seeds
        for variant in args.variants
    ]
    times.update(run_parallel(root, variant_jobs, args.jobs))
    return times


def run_dir(root: Path, seed: int, variant: Variant) -> Path:
    return root / f"seed{seed}" / variant.name


def run_parallel(
    root: Path, jobs: Iterable[tuple[int, Variant, RecipeConfig, str | None]], workers: int
) -> dict[tuple[int, str], float]:
    """Run the jobs on ``workers`` processes; a failed job stops the ablation with its log's path."""
    times: dict[tuple[int, str], float] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(run_job, config.to_dict(), str(run_dir(root, seed, variant)), stop_after): (
                seed,
                variant,
                stop_after,
            )
            for seed, variant, config, stop_after in jobs
        }
        for future in as_completed(futures):
            seed, variant, stop_after = futures[future]
            what = f"seed {seed} {variant.name}" + (" (reference run)" if stop_after else "")
            try:
                seconds = future.result()
            except Exception as error:
                raise SystemExit(
                    f"{what} failed: {error!r}; see the log in {run_dir(root, seed, variant)}"
                ) from error
            times[(seed, variant.name + ("/reference" if stop_after else ""))] = seconds
            print(f"{time.strftime('%H:%M:%S')} done: {what} in {seconds:.0f} s", flush=True)
    return times


# --- summarising --------------------------------------------------------------------------------
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


def mean_std(values: list[float]) -> dict[str, float]:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return {"mean": statistics.fmean(values), "std": std, "n": len(values)}


def summarise(root: Path, seeds: list[int], variants: list[Variant]) -> dict[str, Any]:
    """Per-run metrics, their mean ± std per variant, and trajectory shares per similarity."""
    runs = {v.name: {seed: read_run(run_dir(root, seed, v)) for seed in seeds} for v in variants}
    table = {
        name: {
            metric: mean_std([per_seed[s][metric] for s in seeds]) for metric in next(iter(per_seed.values()))
        }
        for name, per_seed in runs.items()
    }
    trajectories = {}
    for reference in sorted({reference_key(v) for v in variants}, key=lambda v: v.name):
        per_seed = [read_trajectory_shares(run_dir(root, seed, reference)) for seed in seeds]
        trajectories[reference.aggregation] = {k: mean_std([p[k] for p in per_seed]) for k in per_seed[0]}
    summary = {"runs": runs, "table": table, "trajectories": trajectories}
    if "random" in runs:
        summary["paired_vs_random"] = paired_differences(runs, "random", seeds)
    return summary


def paired_differences(
    runs: dict[str, dict[int, dict[str, float]]], baseline: str, seeds: list[int]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and metric: mean ± std over seeds of (variant − baseline) of the same seed.

    Runs of one seed share the initial model (and, within one similarity, the reference run), so
    the paired difference removes that seed's luck from the comparison.
    """
    return {
        name: {
            metric: mean_std([per_seed[s][metric] - runs[baseline][s][metric] for s in seeds])
            for metric in per_seed[seeds[0]]
        }
        for name, per_seed in runs.items()
        if name != baseline
    }


def format_cell(cell: dict[str, float], signed: bool = False) -> str:
    return f"{cell['mean']:{'+' if signed else ''}.2f} ± {cell['std']:.2f}"


def markdown(summary: dict[str, Any], variants: list[Variant], seeds: list[int]) -> str:
    """The two tables: the variants' metrics and the reference runs' trajectory shares."""
    lines = [
        f"Mean ± sample std over seeds {seeds}.",
        "",
        "| variant | batches | loss | similarity | dev R@1 after scl | dev BLEU-4 | test BLEU-4 "
        "| test ROUGE-L |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in variants:
        row = summary["table"][v.name]
        batches = v.batch_sampler + (f" ({v.schedule})" if v.batch_sampler == "ps_curriculum" else "")
        cells = [row[m] for m in ("dev_r1_after_scl", "dev_bleu4", "test_bleu4", "test_rouge_l")]
        lines.append(
            f"| {v.name} | {batches} | {v.contrastive_loss} | {v.aggregation} | "
            + " | ".join(format_cell(c) for c in cells)
            + " |"
        )
    if "paired_vs_random" in summary:
        lines += paired_table(summary["paired_vs_random"])
    lines += [
        "",
        "| reference run similarity | " + " | ".join(TRAJECTORY_CATEGORIES) + " | consistently pushed away |",
    ]
    lines.append("|---" * (len(TRAJECTORY_CATEGORIES) + 2) + "|")
    for aggregation, shares in summary["trajectories"].items():
        lines.append(
            f"| {aggregation} | " + " | ".join(format_cell(c) + " %" for c in shares.values()) + " |"
        )
    return "\n".join(lines) + "\n"


def paired_table(paired: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Markdown lines: each variant minus ``random`` of the same seed."""
    metrics = ("dev_r1_after_scl", "dev_bleu4", "test_bleu4", "test_rouge_l")
    lines = [
        "",
        "Paired differences, variant − random of the same seed (same initial model; the cico rows also "
        "share the reference run):",
        "",
        "| variant | Δ dev R@1 after scl | Δ dev BLEU-4 | Δ test BLEU-4 | Δ test ROUGE-L |",
        "|---|---|---|---|---|",
    ]
    for name, row in paired.items():
        lines.append(f"| {name} | " + " | ".join(format_cell(row[m], signed=True) for m in metrics) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    times = run_all(args)
    summary = summarise(args.output_dir, args.seeds, args.variants)
    summary["settings"] = {
        "scale": args.scale,
        "seeds": args.seeds,
        "jobs": args.jobs,
        "config_of_ps_log_seed0": variant_config(
            VARIANTS["ps_log"], args.seeds[0], SCALES[args.scale]
        ).to_dict(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "wall_seconds_this_call": time.perf_counter() - start,
        "run_seconds_this_call": {f"seed{seed}/{name}": sec for (seed, name), sec in times.items()},
    }
    (args.output_dir / "ablation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    table = markdown(summary, args.variants, args.seeds)
    (args.output_dir / "ablation.md").write_text(table, encoding="utf-8")
    print(table)
    print(f"wall time of this call: {summary['settings']['wall_seconds_this_call'] / 60:.1f} min")


if __name__ == "__main__":
    main()
