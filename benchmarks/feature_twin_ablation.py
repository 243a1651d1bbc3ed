"""The paper's ablation on the feature-level PHOENIX-2014T twin, and when Pair Selection helps.

    python benchmarks/feature_twin_ablation.py --output-dir ft-run                # the full experiment
    python benchmarks/feature_twin_ablation.py --output-dir ft-run --report-only  # tables and figures
    python benchmarks/feature_twin_ablation.py --output-dir smoke --scale smoke   # the same path in minutes

Corpus: ``datasets_scripts.feature_twin`` renders the real annotations of
``../shared/data/phoenix2014t`` (all 7,096 train videos, the real dev and test splits, real
lengths) straight into frame features, once per difficulty, into ``OUTPUT_DIR/corpora/d<level>``.
The recipe trains on them in features mode (``video.features``): no backbone runs.

Runs, one recipe run directory each, ``OUTPUT_DIR/d<level>/seed<seed>/<variant>``:

* at the main difficulty (``--difficulty``), every variant of :data:`VARIANTS` for every seed:
  ``baseline`` (no contrastive loss: stage scl trains translation only, from the initial model,
  the paper's end-to-end baseline), ``random`` (random batches, plain CLIP loss), ``no_duplicates``,
  ``ps_log``, ``ps_easy``, ``ps_hard`` and ``ps_log_mean`` (as in ``benchmarks/ablation.py``);
* the difficulty sweep: ``random`` and ``ps_log`` at every ``--sweep`` level, every seed;
* the gloss oracle (``benchmarks/gloss_oracle.py``) at the same size and decoder budget.

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
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from ablation import VARIANTS as PIXEL_VARIANTS  # noqa: E402
from ablation import Variant, link_reference_outputs, run_job  # noqa: E402
from feature_twin_report import collect_results, write_report  # noqa: E402

from datasets_scripts.feature_twin import FeatureTwinParameters, make_feature_twin  # noqa: E402
from trainers.application.cli import parse_overrides  # noqa: E402
from trainers.application.recipe_config import RecipeConfig, apply_override, build_dataclass  # noqa: E402

TWIN_CONFIG = REPO / "configs" / "phoenix2014t_feature_twin.yaml"
PHOENIX_ANNOTATIONS = REPO.parent / "shared" / "data" / "phoenix2014t"


@dataclass(frozen=True)
class FeatureVariant(Variant):
    """A row of the table; ``contrastive_weight`` 0 with ``init_from="initial"`` is the baseline."""

    contrastive_weight: float = 1.0
    init_from: str = "reference"


VARIANTS = {
    "baseline": FeatureVariant(
        "baseline",
        batch_sampler="random",
        contrastive_loss="clip",
        contrastive_weight=0.0,
        init_from="initial",
    ),
    **{
        name: FeatureVariant(**dataclasses.asdict(PIXEL_VARIANTS[name]))
        for name in ("random", "no_duplicates", "ps_log", "ps_easy", "ps_hard", "ps_log_mean")
    },
}
SWEEP_VARIANTS = ("random", "ps_log")


@dataclass(frozen=True)
class Scale:
    """Corpus size, generator shape and the recipe values the experiment sets.

    ``train_videos``/``eval_videos``: the first that many train / dev and test rows (None: all).
    ``model_overrides`` are merged into the config's ``model.overrides``. Epochs per stage.
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
    num_beams: int


SCALES = {
    "full": Scale(None, None, 512, 64, "small", {}, 8, 2, 8, 8, 4),
    "smoke": Scale(24, 6, 16, 8, "tiny", {"backbone_config": {"hidden_sizes": [4, 16]}}, 2, 1, 1, 1, 1),
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
    parser.add_argument("--difficulty", type=float, default=0.5, help="the main difficulty level in [0, 1]")
    parser.add_argument(
        "--sweep", type=float, nargs="*", default=[], help="further difficulty levels for random vs ps_log"
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
    variant: FeatureVariant, seed: int, level: float, scale: Scale, root: Path, overrides: dict[str, Any]
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
    values["translate"]["eval_every_epochs"] = scale.translate_epochs  # one generation-based evaluation
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

    def group(level: float, seed: int, variants: list[FeatureVariant]) -> None:
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
                    partial(_run_variant, config, folder, source, stop_after),
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


def _run_variant(config: dict[str, Any], folder: Path, source: Path, stop_after: str | None) -> float:
    if folder != source:
        link_reference_outputs(source, folder)
    seconds = run_job(config, str(folder), stop_after)
    stamp = {
        "wall_seconds": seconds,
        "code_commit": code_commit(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (folder / "feature_twin_run.json").write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return seconds


def _oracle_job(args: argparse.Namespace, scale: Scale) -> Job:
    output = args.output_dir / "oracle.json"
    epochs = scale.scl_epochs + scale.translate_epochs
    command = [sys.executable, str(REPO / "benchmarks" / "gloss_oracle.py"), "--output", str(output)]
    command += ["--annotations", str(args.annotations), "--epochs", str(epochs)]
    if scale.train_videos is not None:
        command += ["--train-videos", str(scale.train_videos)]
    log = args.output_dir / "oracle.log"

    return Job("oracle", partial(_run_command, command, log), output.exists, log=log)


def _run_command(command: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, env=_one_thread_env())


def _one_thread_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


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


def prepare_corpora(args: argparse.Namespace, scale: Scale) -> None:
    """Write the feature corpus of every difficulty level (skipped where complete)."""
    from datasets_scripts import read_gloss_annotations

    rows = read_gloss_annotations(args.annotations)
    if scale.eval_videos is not None:
        rows = {split: r if split == "train" else r[: scale.eval_videos] for split, r in rows.items()}
    for level in [args.difficulty, *args.sweep]:
        folder = corpus_dir(args.output_dir, level)
        if (folder / "features.json").exists():
            continue
        start = time.perf_counter()
        make_feature_twin(
            rows, folder, generator_parameters(scale, level), max_train_videos=scale.train_videos
        )
        print(
            f"{time.strftime('%H:%M:%S')} feature corpus {folder}: {time.perf_counter() - start:.0f} s",
            flush=True,
        )


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
    prepare_corpora(args, scale)
    start = time.perf_counter()
    failed = run_jobs(plan_jobs(args, scale), args.jobs, refresh)
    refresh()
    print(f"wall time of this call: {(time.perf_counter() - start) / 60:.1f} min; results in {args.results}")
    if failed:
        raise SystemExit(f"{len(failed)} job(s) failed or were skipped: {', '.join(failed)}")


if __name__ == "__main__":
    main()
