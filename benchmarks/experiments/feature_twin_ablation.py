"""The paper's ablation on the feature-level PHOENIX-2014T twin, and when Pair Selection helps.

    python -m benchmarks.experiments.feature_twin_ablation --output-dir ft-run   # the full experiment
    python -m benchmarks.experiments.feature_twin_ablation --output-dir ft-run --report-only
    python -m benchmarks.experiments.feature_twin_ablation --output-dir smoke --scale smoke  # minutes

Corpus: ``datasets_scripts.synthetic.feature_twin`` renders the real annotations of
``../shared/data/phoenix2014t`` (all 7,096 train videos, the real dev and test splits, real
lengths) straight into frame features, once per difficulty, into ``OUTPUT_DIR/corpora/d<level>``
(a job of its own, run before the first run of that difficulty).
The recipe trains on them in features mode (``video.features``): no backbone runs.

Runs, one recipe run directory each, ``OUTPUT_DIR/d<level>/seed<seed>/<variant>``:

* at the main difficulty (``--difficulty``), every variant of :data:`VARIANTS` for every seed:
  ``baseline`` (no contrastive loss: stage scl trains translation only, from the initial model,
  the paper's end-to-end baseline), ``random`` (random batches, plain CLIP loss), ``no_duplicates``,
  ``ps_log``, ``ps_easy``, ``ps_hard`` and ``ps_log_mean`` (as in ``benchmarks.experiments.ablation``);
* the difficulty sweep: ``random`` and ``ps_log`` at every ``--sweep`` level, every seed;
* the gloss oracle (``benchmarks.experiments.gloss_oracle``) at the same size and decoder budget.

A seed's variants start from one initial model and the reference run of their similarity (the
``ps_log`` and ``ps_log_mean`` directories hold them; the others link to them). Order: every
variant of the first seed at the main difficulty, then the further seeds, then the oracle, then
the sweep seed by seed; ``--jobs`` workers (one torch thread each) take the next job whose
reference run is done. Every run resumes where it stopped, so calling the same command again
continues the experiment; a failed run is reported with its log and the others go on.

As runs finish, ``OUTPUT_DIR/feature_twin.json`` is rewritten (or ``--results``): ``train_videos``,
a ``runs`` list (``seed``, ``variant``, ``difficulty``, ``dev_r1`` = dev video→text R@1 after
stage scl in %, ``dev_bleu4``, ``test_bleu4``, ``test_rouge_l``, more metrics, the run's wall time
and code commit), the reference runs' trajectory shares, the oracle, the exact config and the
generator's parameters. ``--report-only`` (and every finished group) writes ``report.md`` (tables:
variants, paired differences vs ``random`` with 95 % t-intervals, trajectory shares against the
paper's, the knob against ``random``'s dev R@1, the sweep) and the figures ``curves.png`` and
``sweep.png`` (Δ test BLEU-4 of ``ps_log`` − ``random`` against ``random``'s dev R@1).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from benchmarks.experiments.ablation_report import (
    PAPER_TRAJECTORY_SHARES,
    TRAJECTORY_CATEGORIES,
    format_interval,
    mean_std,
    read_trajectory_shares,
)
from benchmarks.experiments.recipe_jobs import SHARED_REFERENCE_OUTPUTS, link_outputs, run_job
from benchmarks.harness import REPO_ROOT as REPO
from benchmarks.harness import module_command, module_environment
from datasets_scripts.synthetic.feature_twin import FeatureTwinParameters, make_feature_twin
from trainers.application.cli import parse_overrides
from trainers.application.recipe_config import RecipeConfig, apply_override, build_dataclass

TWIN_CONFIG = REPO / "configs" / "phoenix2014t_feature_twin.yaml"
PHOENIX_ANNOTATIONS = REPO.parent / "shared" / "data" / "phoenix2014t"


@dataclass(frozen=True)
class Variant:
    """A row of the table: how stage scl builds its batches, its loss, similarity and start.

    ``contrastive_weight`` 0 with ``init_from="initial"`` is the end-to-end baseline: stage scl
    then trains translation only, from the initial model.
    """

    name: str
    batch_sampler: str = "ps_curriculum"
    schedule: str = "log"
    contrastive_loss: str = "selective"
    aggregation: str = "cico"
    contrastive_weight: float = 1.0
    init_from: str = "reference"


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("baseline", "random", contrastive_loss="clip", contrastive_weight=0.0, init_from="initial"),
        Variant("random", "random", contrastive_loss="clip"),
        Variant("no_duplicates", "no_duplicates"),
        Variant("ps_log"),
        Variant("ps_easy", schedule="easy"),
        Variant("ps_hard", schedule="hard"),
        Variant("ps_log_mean", aggregation="mean"),
    )
}
SWEEP_VARIANTS = ("random", "ps_log")


@dataclass(frozen=True)
class Scale:
    """Corpus size, generator shape and the recipe values the experiment sets.

    ``train_videos``/``eval_videos``: the first that many train / dev and test rows (None: all).
    ``model_overrides`` are merged into the config's ``model.overrides``. Epochs per stage;
    stage translate evaluates dev BLEU every ``translate_eval_every`` epochs (its curve).
    """

    train_videos: int | None
    eval_videos: int | None
    feature_dim: int
    sign_rank: int
    preset: str
    model_overrides: dict[str, Any]
    reference_epochs: int
    snapshot_interval: int
    scl_epochs: int
    translate_epochs: int
    translate_eval_every: int
    num_beams: int


SCALES = {
    "full": Scale(None, None, 512, 64, "small", {}, 4, 2, 4, 16, 4, 4),
    "smoke": Scale(24, 6, 16, 8, "tiny", {"backbone_config": {"hidden_sizes": [4, 16]}}, 2, 1, 1, 1, 1, 1),
}


def difficulty_name(level: float) -> str:
    return f"d{level:.2f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True, help="experiment folder (resumable)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--difficulty",
        type=float,
        default=0.7,
        help="the main difficulty level in [0, 1] (default 0.7: random batches reach dev R@1 of about 40 %%)",
    )
    parser.add_argument(
        "--sweep",
        type=float,
        nargs="*",
        default=[0.5, 0.9, 1.0],
        help="further difficulty levels for random vs ps_log (default 0.5 0.9 1.0; none: --sweep)",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated subset of: " + ", ".join(VARIANTS) + " (default: all)",
    )
    parser.add_argument("--no-oracle", action="store_true", help="skip the gloss oracle")
    parser.add_argument(
        "--stop-after",
        choices=("scl",),
        default=None,
        help="stop every run after stage scl (dev R@1 only; for calibrating the knob)",
    )
    parser.add_argument("--annotations", type=Path, default=PHOENIX_ANNOTATIONS)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe value"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="results JSON (default OUTPUT_DIR/feature_twin.json)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the results, tables and figures; run nothing"
    )
    args = parser.parse_args(argv)
    args.overrides = parse_overrides(args.set)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    args.variants = [VARIANTS[name] for name in names]
    for level in [args.difficulty, *args.sweep]:
        if not 0 <= level <= 1:
            parser.error(f"difficulty levels must lie in [0, 1], got {level}")
    args.sweep = [level for level in dict.fromkeys(args.sweep) if level != args.difficulty]
    args.results = args.results or args.output_dir / "feature_twin.json"
    return args


METRICS = ("dev_r1", "dev_bleu4", "test_bleu4", "test_rouge_l")
METRIC_TITLES = {
    "dev_r1": "dev R@1 after scl",
    "dev_bleu4": "dev BLEU-4",
    "test_bleu4": "test BLEU-4",
    "test_rouge_l": "test ROUGE-L",
}


# --- configs ------------------------------------------------------------------------------------
def generator_parameters(scale: Scale, level: float) -> FeatureTwinParameters:
    return FeatureTwinParameters(difficulty=level, feature_dim=scale.feature_dim, sign_rank=scale.sign_rank)


def corpus_dir(root: Path, level: float) -> Path:
    return root / "corpora" / difficulty_name(level)


def run_dir(root: Path, level: float, seed: int, variant: Variant) -> Path:
    return root / difficulty_name(level) / f"seed{seed}" / variant.name


def reference_of(variant: Variant) -> Variant:
    """The variant whose directory holds the reference run that ``variant`` starts from."""
    return VARIANTS["ps_log_mean"] if variant.aggregation == "mean" else VARIANTS["ps_log"]


def variant_config(
    variant: Variant, seed: int, level: float, scale: Scale, root: Path, overrides: dict[str, Any]
) -> RecipeConfig:
    """The recipe config of one run: ``configs/phoenix2014t_feature_twin.yaml`` at the scale."""
    values = yaml.safe_load(TWIN_CONFIG.read_text(encoding="utf-8"))
    values["seed"] = seed
    values["video"]["features"] = str(corpus_dir(root, level).resolve())
    values["model"]["tokenizer"] = str((REPO / values["model"]["tokenizer"]).resolve())
    values["model"]["preset"] = scale.preset
    values["model"]["overrides"] = {
        **values["model"].get("overrides", {}),
        **scale.model_overrides,
        "similarity_aggregation": variant.aggregation,
    }
    for stage, epochs in (
        ("reference", scale.reference_epochs),
        ("scl", scale.scl_epochs),
        ("translate", scale.translate_epochs),
    ):
        values[stage]["epochs"] = epochs
    values["reference"]["snapshot_interval"] = scale.snapshot_interval
    values["translate"]["eval_every_epochs"] = scale.translate_eval_every
    values["evaluation"]["num_beams"] = scale.num_beams
    values["scl"].update(
        schedule=variant.schedule,
        batch_sampler=variant.batch_sampler,
        contrastive_loss=variant.contrastive_loss,
        contrastive_weight=variant.contrastive_weight,
        init_from=variant.init_from,
    )
    for dotted, value in overrides.items():
        apply_override(values, dotted, value)
    return build_dataclass(RecipeConfig, values, str(TWIN_CONFIG))


# --- the job list -------------------------------------------------------------------------------
@dataclass
class Job:
    """One run (or reference run, or the oracle), with the job it waits for."""

    key: str
    run: partial  # a module-level function and its arguments: it runs in a spawned worker
    finished: Callable[[], bool]
    needs: str | None = None
    log: Path | None = None


def plan_jobs(args: argparse.Namespace, scale: Scale) -> list[Job]:
    """Every job in the order of the experiment (see the module docstring)."""
    root, jobs = args.output_dir, []
    stop_after = args.stop_after
    commit = code_commit()  # of this call: later edits of the checkout do not reach its runs

    def group(level: float, seed: int, variants: list[Variant]) -> None:
        corpus = corpus_dir(root, level)
        if not any(job.key == f"corpus/{difficulty_name(level)}" for job in jobs):
            jobs.append(
                Job(
                    f"corpus/{difficulty_name(level)}",
                    partial(
                        write_corpus, args.annotations, corpus, generator_parameters(scale, level), scale
                    ),
                    lambda f=corpus: (f / "features.json").exists(),
                    log=root / "corpora.log",
                )
            )
        references = sorted({reference_of(v) for v in variants}, key=lambda v: v.name)
        for reference in references:
            folder = run_dir(root, level, seed, reference)
            config = variant_config(reference, seed, level, scale, root, args.overrides).to_dict()
            jobs.append(
                Job(
                    f"{difficulty_name(level)}/seed{seed}/{reference.name}/reference",
                    partial(run_job, config, str(folder), "reference"),
                    lambda f=folder: (
                        (f / "pair_scores.safetensors").exists() and (f / "trajectories.json").exists()
                    ),
                    needs=f"corpus/{difficulty_name(level)}",
                    log=folder / "reference.log",
                )
            )
        for variant in variants:
            folder = run_dir(root, level, seed, variant)
            source = run_dir(root, level, seed, reference_of(variant))
            config = variant_config(variant, seed, level, scale, root, args.overrides).to_dict()
            done = folder / ("scl/DONE" if stop_after else "metrics.json")
            jobs.append(
                Job(
                    f"{difficulty_name(level)}/seed{seed}/{variant.name}",
                    partial(_run_variant, config, folder, source, stop_after, commit),
                    lambda d=done: d.exists(),
                    needs=f"{difficulty_name(level)}/seed{seed}/{reference_of(variant).name}/reference",
                    log=folder / "run.log",
                )
            )

    for seed in args.seeds:
        group(args.difficulty, seed, args.variants)
    if not args.no_oracle and not stop_after:
        jobs.append(_oracle_job(args, scale))
    sweep_variants = [VARIANTS[name] for name in SWEEP_VARIANTS]
    for seed in args.seeds:
        for level in args.sweep:
            group(level, seed, sweep_variants)
    return jobs


def _run_variant(
    config: dict[str, Any], folder: Path, source: Path, stop_after: str | None, commit: str
) -> float:
    """Link the reference run's outputs, run the variant and stamp its folder with time and code."""
    if folder != source:
        link_outputs(source, folder, SHARED_REFERENCE_OUTPUTS)
    seconds = run_job(config, str(folder), stop_after)
    stamp = {
        "wall_seconds": seconds,
        "code_commit": commit,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (folder / "feature_twin_run.json").write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return seconds


def _oracle_job(args: argparse.Namespace, scale: Scale) -> Job:
    output = args.output_dir / "oracle.json"
    epochs = scale.scl_epochs + scale.translate_epochs
    options = ["--output", str(output), "--annotations", str(args.annotations), "--epochs", str(epochs)]
    if scale.train_videos is not None:
        options += ["--train-videos", str(scale.train_videos)]
    command = module_command("benchmarks.experiments.gloss_oracle", options)
    log = args.output_dir / "oracle.log"

    return Job("oracle", partial(_run_command, command, log), output.exists, log=log)


def _run_command(command: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, env=_one_thread_env())


def _one_thread_env() -> dict[str, str]:
    return {
        **module_environment(),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }


def code_commit() -> str:
    """``git rev-parse HEAD`` of the repository, with ``+dirty`` when tracked files differ."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


# --- running ------------------------------------------------------------------------------------
def run_jobs(jobs: list[Job], workers: int, on_finished: Callable[[Job], None]) -> list[str]:
    """Run the unfinished jobs in order on ``workers`` processes; returns the keys that failed.

    A job starts once the job it needs has finished; a failure is printed with the job's log and
    the jobs that need it are skipped.
    """
    done = {job.key for job in jobs if job.finished()}
    pending = [job for job in jobs if job.key not in done]
    failed: list[str] = []
    running: dict[Future, Job] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        while pending or running:
            for job in list(pending):
                if len(running) >= workers:
                    break
                if job.needs in failed:
                    pending.remove(job)
                    failed.append(job.key)
                    print(
                        f"{time.strftime('%H:%M:%S')} skipped: {job.key} (its {job.needs} failed)", flush=True
                    )
                elif job.needs is None or job.needs in done:
                    pending.remove(job)
                    running[pool.submit(job.run)] = job
                    print(f"{time.strftime('%H:%M:%S')} started: {job.key}", flush=True)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    future.result()
                except Exception as error:  # one failed run must not stop the others
                    failed.append(job.key)
                    print(
                        f"{time.strftime('%H:%M:%S')} FAILED: {job.key}: {error!r}; see {job.log}", flush=True
                    )
                    continue
                done.add(job.key)
                print(f"{time.strftime('%H:%M:%S')} done: {job.key}", flush=True)
                on_finished(job)
    return failed


def write_corpus(annotations: Path, folder: Path, parameters: FeatureTwinParameters, scale: Scale) -> None:
    """Write (or finish) the feature corpus of one difficulty level, logging its time to corpora.log."""
    from datasets_scripts import read_gloss_annotations

    rows = read_gloss_annotations(annotations)
    if scale.eval_videos is not None:
        rows = {split: r if split == "train" else r[: scale.eval_videos] for split, r in rows.items()}
    start = time.perf_counter()
    make_feature_twin(rows, folder, parameters, max_train_videos=scale.train_videos)
    with (folder.parent.parent / "corpora.log").open("a", encoding="utf-8") as log:
        print(f"{time.strftime('%H:%M:%S')} {folder}: {time.perf_counter() - start:.0f} s", file=log)


def settings(args: argparse.Namespace, scale: Scale) -> dict[str, Any]:
    """What the results file records about the experiment besides the runs."""
    main = variant_config(
        VARIANTS["ps_log"], args.seeds[0], args.difficulty, scale, args.output_dir, args.overrides
    )
    return {
        "scale": args.scale,
        "scale_values": dataclasses.asdict(scale),
        "main_difficulty": args.difficulty,
        "sweep_difficulties": args.sweep,
        "seeds": args.seeds,
        "variants": {v.name: dataclasses.asdict(v) for v in args.variants},
        "sweep_variants": list(SWEEP_VARIANTS),
        "generator": {
            difficulty_name(level): dataclasses.asdict(generator_parameters(scale, level))
            for level in [args.difficulty, *args.sweep]
        },
        "config": main.to_dict(),
        "config_note": "the config of ps_log, first seed, main difficulty; the other runs differ in seed, "
        "video.features (the difficulty's corpus), model.overrides.similarity_aggregation and scl "
        "(the variant's fields)",
        "code_commit_of_this_call": code_commit(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "jobs": args.jobs,
        "annotations": str(args.annotations),
    }


# --- results, tables and figures ----------------------------------------------------------------
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
    run_dir: Callable[[Path, float, int, Variant], Path],
    variants: Mapping[str, Variant],
    reference_of: Callable[[Variant], Variant],
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
    """The Trainer's log history of a stage: its ``trainer_state.json``, else its last
    checkpoint's (which ends at that checkpoint)."""
    candidates = [stage_dir / "trainer_state.json"]
    checkpoints = sorted(stage_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    candidates += [checkpoint / "trainer_state.json" for checkpoint in reversed(checkpoints)]
    for path in candidates:
        state = _read_json(path)
        if state is not None:
            return state.get("log_history", [])
    return []


def plot_curves(
    results: dict[str, Any],
    root: Path,
    run_dir: Callable[[Path, float, int, Variant], Path],
    variants: Mapping[str, Variant],
) -> Path | None:
    """Training loss per epoch of every stage and stage translate's dev BLEU-4 (greedy, at each of
    its evaluations), first seed, main difficulty: ``curves.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    level, seed = results["main_difficulty"], results["seeds"][0]
    panels = (("reference", "loss"), ("scl", "loss"), ("translate", "loss"), ("translate", "eval_bleu4"))
    figure, axes = plt.subplots(1, len(panels), figsize=(20, 4))
    drawn = False
    for axis, (stage, key) in zip(axes, panels, strict=True):
        for variant in variants.values():
            if stage == "reference" and variant.name not in ("ps_log", "ps_log_mean"):
                continue
            history = [e for e in _log_history(run_dir(root, level, seed, variant) / stage) if key in e]
            if history:
                axis.plot(
                    [e["epoch"] for e in history],
                    [e[key] for e in history],
                    label=variant.name,
                    marker="o" if key != "loss" else None,
                )
                drawn = True
        axis.set_title(f"stage {stage}" if key == "loss" else f"stage {stage}: dev BLEU-4 (greedy)")
        axis.set_xlabel("epoch")
        axis.set_ylabel("training loss" if key == "loss" else "dev BLEU-4")
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
    """Δ test BLEU-4 (ps_log − random, 95 % interval) against random's dev R@1: ``sweep.png``.

    Levels with one paired seed have no interval: hollow markers, not joined to the curve.
    """
    drawable = [p for p in points if p["delta_test_bleu4"] is not None and p["random_dev_r1"] is not None]
    if not drawable:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    with_interval = [p for p in drawable if len(p["paired_seeds"]) >= 2]
    if with_interval:
        axis.errorbar(
            [p["random_dev_r1"]["mean"] for p in with_interval],
            [p["delta_test_bleu4"]["mean"] for p in with_interval],
            yerr=[p["delta_test_bleu4"]["ci95"] for p in with_interval],
            xerr=[p["random_dev_r1"]["std"] for p in with_interval],
            fmt="o-",
            capsize=4,
            color="C0",
        )
    single = [p for p in drawable if len(p["paired_seeds"]) < 2]
    if single:
        axis.plot(
            [p["random_dev_r1"]["mean"] for p in single],
            [p["delta_test_bleu4"]["mean"] for p in single],
            "o",
            markerfacecolor="none",
            color="C0",
        )
    for p in drawable:
        seeds = len(p["paired_seeds"])
        axis.annotate(
            f"d={p['difficulty']:.2f}, {seeds} seed{'s' if seeds > 1 else ''}",
            (p["random_dev_r1"]["mean"], p["delta_test_bleu4"]["mean"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    axis.axhline(0.0, color="grey", linewidth=0.8)
    axis.set_xlabel("random-batch dev video→text R@1 after scl (%)")
    axis.set_ylabel("Δ test BLEU-4, ps_log − random")
    axis.set_title(
        "When does Pair Selection help? (feature twin)\n95 % intervals; hollow: one seed, no interval",
        fontsize=10,
    )
    figure.tight_layout()
    path = root / "sweep.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_report(
    results: dict[str, Any],
    root: Path,
    run_dir: Callable[[Path, float, int, Variant], Path],
    variants: Mapping[str, Variant],
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    scale = SCALES[args.scale]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    recorded = settings(args, scale)

    def refresh(_: Job | None = None) -> None:
        results = collect_results(args.output_dir, recorded, run_dir, VARIANTS, reference_of)
        temporary = args.results.with_name(args.results.name + ".tmp")
        temporary.write_text(json.dumps(results, indent=2), encoding="utf-8")
        os.replace(temporary, args.results)
        write_report(results, args.output_dir, run_dir, VARIANTS)

    if args.report_only:
        refresh()
        print(f"results: {args.results}; report: {args.output_dir / 'report.md'}")
        return
    start = time.perf_counter()
    failed = run_jobs(plan_jobs(args, scale), args.jobs, refresh)
    refresh()
    print(f"wall time of this call: {(time.perf_counter() - start) / 60:.1f} min; results in {args.results}")
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed or were skipped: {', '.join(failed)}")


if __name__ == "__main__":
    main()
