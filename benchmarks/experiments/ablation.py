"""The selective-contrastive ablation, in one command, on the synthetic corpus or the PHOENIX twin.

    python -m benchmarks.experiments.ablation --output-dir ablation-run   # synthetic (about 30 min)
    python -m benchmarks.experiments.ablation --output-dir twin-run --scale twin --seeds 0 1 2 3 4
    python -m benchmarks.experiments.ablation --output-dir smoke --scale smoke  # the same path in a minute

Corpora: the duplicate-rich synthetic corpus (``full``, ``smoke``), or the PHOENIX-2014T twin
(``twin``, ``twin-smoke``): the real annotations of ``../shared/data/phoenix2014t`` rendered by
``datasets_scripts.make_gloss_rendered_corpus``, a subset of the train split and the real dev and
test splits, trained with ``configs/phoenix2014t_twin.yaml`` at the scale's epochs.

Variants of stage ``scl`` (everything else fixed), each trained from the same reference model of
its seed and similarity, then translated and evaluated:

* ``random``: random in-batch negatives, plain CLIP loss (no masking): standard contrastive.
* ``no_duplicates``: random batches that never hold two identical sentences, selective loss.
* ``ps_log``, ``ps_linear``, ``ps_sqrt``, ``ps_easy``, ``ps_hard``: the PS curriculum with each
  schedule, selective loss, CiCo similarity.
* ``ps_log_cls``, ``ps_log_mean``: the PS curriculum (log) with CLS or mean-pooled similarity
  for the reference run, the scores and the loss (``ps_log`` is the CiCo row).

Per seed there is one corpus (shared), one initial model and one reference run per similarity
(plain CLIP loss; its snapshots give the trajectory shares and the Pair Selection scores).
Metrics: dev video→text R@1 after stage scl; dev and test BLEU-4 and test ROUGE-L after stage
translate; mean ± sample std over the seeds, and each variant's paired difference to ``random``
of the same seed with its 95 % t-interval. Seeds run one after another (each seed's runs in
``--jobs`` worker processes with one torch thread each), and the tables are rewritten after
every finished seed, so an interrupted ablation has the finished seeds' tables. Every run is a
normal recipe run directory, so a second call resumes where the first stopped.

``--earlier-results ablation.json`` continues an ablation whose run folder is gone: the seeds
that file finished keep its metrics and trajectory shares. This call reruns the ``random`` run
of the first of them (with its reference run), whose metrics must equal the file's (the
reproduction check, recorded in the summary), and the reference runs of seeds whose shares the
file lacks (older files did not keep them per seed).

Writes ``OUTPUT_DIR/ablation.json`` (every run's metrics and the summary) and
``OUTPUT_DIR/ablation.md`` (the tables), and prints the tables.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmarks.experiments.ablation_report import EarlierRuns, finished_seeds, markdown, read_run, summarise
from benchmarks.experiments.recipe_jobs import SHARED_REFERENCE_OUTPUTS, link_outputs, run_job
from benchmarks.harness import REPO_ROOT as REPO
from datasets_scripts import DUPLICATE_RICH
from trainers.application.cli import parse_overrides
from trainers.application.demo import demo_config
from trainers.application.recipe_config import RecipeConfig, apply_override, build_dataclass

TWIN_CONFIG = REPO / "configs" / "phoenix2014t_twin.yaml"
PHOENIX_ANNOTATIONS = REPO.parent / "shared" / "data" / "phoenix2014t"
# A pixel variant also shares the corpus its reference run reads (the feature twin's runs name their
# feature corpus by its path instead).
PIXEL_SHARED_OUTPUTS = ("corpus", *SHARED_REFERENCE_OUTPUTS)


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
    """Corpus and epochs: ``full`` / ``twin`` are the published tables, the smoke scales check the path.

    ``train_videos`` is the synthetic corpus's train size, or the first that many videos of the
    twin's train split (its dev and test splits stay whole unless ``eval_videos`` cuts them).
    """

    corpus: Literal["synthetic", "twin"]
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
    eval_videos: int | None = None
    default_variants: tuple[str, ...] = tuple(VARIANTS)


TWIN_VARIANTS = ("random", "no_duplicates", "ps_log", "ps_easy", "ps_hard", "ps_log_mean")
SCALES = {
    "full": Scale("synthetic", 400, "small", 64, 1e-3, 4, 2, 4, 5, 16, 4),
    "smoke": Scale("synthetic", 24, "tiny", 32, 1e-3, 2, 1, 1, 1, 8, 1),
    "twin": Scale("twin", 1500, "small", 64, 1e-3, 4, 2, 4, 5, 16, 4, default_variants=TWIN_VARIANTS),
    "twin-smoke": Scale(
        "twin", 24, "tiny", 16, 1e-3, 2, 1, 1, 1, 8, 1, eval_videos=6, default_variants=TWIN_VARIANTS
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
        default=None,
        help="comma-separated subset of: " + ", ".join(VARIANTS) + " (default: the scale's)",
    )
    parser.add_argument(
        "--annotations",
        type=Path,
        default=PHOENIX_ANNOTATIONS,
        help="twin scales: the gloss annotations to render (default: ../shared/data/phoenix2014t)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one torch thread each")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value in every run, e.g. --set translate.epochs=10 (VALUE is YAML)",
    )
    parser.add_argument(
        "--earlier-results",
        type=Path,
        default=None,
        help="an ablation.json of this scale whose finished seeds are taken from it, not retrained",
    )
    args = parser.parse_args(argv)
    args.overrides = parse_overrides(args.set)
    names = args.variants.split(",") if args.variants else list(SCALES[args.scale].default_variants)
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    args.variants = [VARIANTS[name] for name in names]
    return args


# --- configs ------------------------------------------------------------------------------------
def variant_config(
    variant: Variant,
    seed: int,
    scale: Scale,
    overrides: dict[str, Any] | None = None,
    root: Path = Path("ablation"),
) -> RecipeConfig:
    """The recipe config of one run; runs of one (seed, aggregation) differ only in ``scl``."""
    config = scale_config(variant, seed, scale, root)
    if not overrides:
        return config
    values = config.to_dict()
    for dotted, value in overrides.items():
        apply_override(values, dotted, value)
    return build_dataclass(RecipeConfig, values, "--set")


def base_config(scale: Scale, root: Path) -> RecipeConfig:
    """The demo's recipe on the duplicate-rich corpus, or the twin's on the rendered corpus in ``root``.

    Synthetic: frames drawn at 64 × 64, resized to 32 × 32. Twin: ``configs/phoenix2014t_twin.yaml``
    reading the corpus that :func:`make_corpus` renders once into ``root/corpus``.
    """
    if scale.corpus == "synthetic":
        config = demo_config()
        config.corpus.synthetic_size = scale.train_videos
        config.corpus.synthetic_options = dict(DUPLICATE_RICH)
        return config
    values = yaml.safe_load(TWIN_CONFIG.read_text(encoding="utf-8"))
    manifest = (root / "corpus" / "manifest.csv").resolve()
    values["corpus"] = {"kind": "manifest", "path": str(manifest), "language": values["corpus"]["language"]}
    tokenizer = values["model"].get("tokenizer")
    if tokenizer:
        values["model"]["tokenizer"] = str((REPO / tokenizer).resolve())
    return build_dataclass(RecipeConfig, values, str(TWIN_CONFIG))


def scale_config(variant: Variant, seed: int, scale: Scale, root: Path) -> RecipeConfig:
    """The base recipe at one scale, with the variant's stage scl; before ``--set``."""
    config = base_config(scale, root)
    config.seed = seed
    config.model.preset = scale.preset
    config.model.overrides = {**config.model.overrides, "similarity_aggregation": variant.aggregation}
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
def make_corpus(folder: Path, config: RecipeConfig, scale: Scale, annotations: Path) -> None:
    """Generate the ablation's corpus once (every run links to or reads it)."""
    if (folder / "manifest.csv").exists():
        return
    if scale.corpus == "synthetic":
        from trainers.application.run_setup import generate_synthetic_corpus

        print(f"generating the duplicate-rich corpus in {folder}", flush=True)
        generate_synthetic_corpus(config.corpus, folder)
        return
    from datasets_scripts import make_gloss_rendered_corpus, read_gloss_annotations

    print(f"rendering the twin of {annotations} in {folder}", flush=True)
    rows = read_gloss_annotations(annotations)
    if scale.eval_videos is not None:
        rows = {
            split: split_rows[: scale.eval_videos] if split != "train" else split_rows
            for split, split_rows in rows.items()
        }
    rendering = yaml.safe_load(TWIN_CONFIG.read_text(encoding="utf-8"))["corpus"]["rendering_options"]
    make_gloss_rendered_corpus(
        rows,
        folder,
        **rendering,
        max_train_videos=scale.train_videos,
        num_workers=2,
        seed=config.corpus.synthetic_seed,
    )


def run_seed(
    args: argparse.Namespace, seed: int, variants: list[Variant], references: list[Variant]
) -> dict[tuple[int, str], float]:
    """One seed: the ``references`` runs (one per similarity), then ``variants``; returns wall times."""
    scale, root = SCALES[args.scale], args.output_dir
    for reference in references:
        link_outputs(root, run_dir(root, seed, reference), ("corpus",))
    reference_jobs = [
        (seed, ref, variant_config(ref, seed, scale, args.overrides, root), "reference") for ref in references
    ]
    times = run_parallel(root, reference_jobs, args.jobs)
    for variant in variants:
        link_outputs(
            run_dir(root, seed, reference_key(variant)),
            run_dir(root, seed, variant),
            PIXEL_SHARED_OUTPUTS,
        )
    variant_jobs = [
        (seed, variant, variant_config(variant, seed, scale, args.overrides, root), None)
        for variant in variants
    ]
    times.update(run_parallel(root, variant_jobs, args.jobs))
    return times


def runs_of_seed(
    seed: int, variants: list[Variant], earlier: EarlierRuns, reproduction_seed: int | None
) -> tuple[list[Variant], list[Variant]]:
    """The variant and reference runs that ``seed`` needs, given what ``earlier`` holds.

    A new seed runs everything. A seed from ``earlier`` reruns only the reference runs whose
    trajectory shares ``earlier`` lacks, and, if it is ``reproduction_seed``, its ``random`` run
    with that run's reference.
    """
    references = sorted({reference_key(v) for v in variants}, key=lambda v: v.name)
    if not earlier.has_seed(seed, variants):
        return variants, references
    rerun = [VARIANTS["random"]] if seed == reproduction_seed else []
    needed = {reference_key(v) for v in rerun} | {
        r for r in references if not earlier.has_trajectories(seed, r.aggregation)
    }
    return rerun, sorted(needed, key=lambda v: v.name)


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


def read_earlier_results(args: argparse.Namespace) -> EarlierRuns:
    """The per-seed results of ``--earlier-results`` (none without it), checked against this call.

    The file must be of this scale, and its recorded ``ps_log`` config of the first seed must
    equal this call's wherever both have a key (newer recipe fields are absent from older files).
    """
    if args.earlier_results is None:
        return EarlierRuns()
    earlier = json.loads(args.earlier_results.read_text(encoding="utf-8"))
    settings = earlier["settings"]
    if settings["scale"] != args.scale:
        raise SystemExit(f"{args.earlier_results} is of scale {settings['scale']!r}, not {args.scale!r}")
    seed = settings["seeds_finished"][0]
    ours = variant_config(VARIANTS["ps_log"], seed, SCALES[args.scale], args.overrides, args.output_dir)
    differing = config_differences(settings["config_of_ps_log_seed0"], ours.to_dict())
    if differing:
        raise SystemExit(f"{args.earlier_results} was run with another config: {differing}")

    def by_seed(table: dict[str, dict[str, Any]]) -> dict[str, dict[int, Any]]:
        return {
            name: {int(seed): value for seed, value in per_seed.items()} for name, per_seed in table.items()
        }

    return EarlierRuns(by_seed(earlier["runs"]), by_seed(earlier.get("trajectory_runs", {})))


def config_differences(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys present in both configs whose values differ (corpus paths excepted)."""
    differing = []
    for key in recorded.keys() & current.keys():
        dotted = prefix + key
        if isinstance(recorded[key], dict) and isinstance(current[key], dict):
            differing += config_differences(recorded[key], current[key], dotted + ".")
        elif recorded[key] != current[key] and dotted not in ("corpus.path", "model.tokenizer"):
            differing.append(f"{dotted}: {recorded[key]!r} then, {current[key]!r} now")
    return differing


def reproduction_check(root: Path, earlier: EarlierRuns) -> dict[str, Any]:
    """The earlier metrics of each rerun ``random`` run next to this call's, and the largest gap."""
    check: dict[str, Any] = {}
    for seed, metrics in earlier.metrics.get("random", {}).items():
        path = run_dir(root, seed, VARIANTS["random"]) / "metrics.json"
        if path.exists():
            now = read_run(path.parent)
            gap = max(abs(now[key] - metrics[key]) for key in metrics)
            check[f"seed{seed}"] = {"earlier": metrics, "now": now, "largest_difference": gap}
    return check


def write_tables(
    args: argparse.Namespace, times: dict[tuple[int, str], float], start: float, earlier: EarlierRuns
) -> str:
    """Summarise the seeds finished so far into ablation.json and ablation.md; returns the tables."""
    root = args.output_dir
    seeds = finished_seeds(root, args.seeds, args.variants, run_dir, earlier, reference_key)
    if not seeds:
        return ""
    summary = summarise(root, seeds, args.variants, run_dir, reference_key, earlier)
    summary["settings"] = {
        "scale": args.scale,
        "scale_values": dataclasses.asdict(SCALES[args.scale]),
        "seeds_asked": args.seeds,
        "seeds_finished": seeds,
        "jobs": args.jobs,
        "config_of_ps_log_seed0": variant_config(
            VARIANTS["ps_log"], args.seeds[0], SCALES[args.scale], args.overrides, root
        ).to_dict(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "wall_seconds_this_call": time.perf_counter() - start,
        "run_seconds_this_call": {f"seed{seed}/{name}": sec for (seed, name), sec in times.items()},
    }
    if args.earlier_results is not None:
        earlier_seeds = sorted(s for s in seeds if s in earlier.metrics.get("random", {}))
        summary["settings"]["earlier_results"] = {
            "file": str(args.earlier_results),
            "seeds_taken_from_it": earlier_seeds,
            "reproduction_check": reproduction_check(root, earlier),
        }
    (root / "ablation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    table = markdown(summary, args.variants, seeds)
    (root / "ablation.md").write_text(table, encoding="utf-8")
    return table


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    scale = SCALES[args.scale]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    first = variant_config(VARIANTS["ps_log"], args.seeds[0], scale, args.overrides, args.output_dir)
    make_corpus(args.output_dir / "corpus", first, scale, args.annotations)
    earlier = read_earlier_results(args)
    earlier_seeds = [s for s in args.seeds if earlier.has_seed(s, args.variants)]
    reproduction_seed = earlier_seeds[0] if earlier_seeds else None
    times: dict[tuple[int, str], float] = {}
    table = ""
    for seed in args.seeds:
        variants, references = runs_of_seed(seed, args.variants, earlier, reproduction_seed)
        times.update(run_seed(args, seed, variants, references))
        table = write_tables(args, times, start, earlier)
        print(f"{time.strftime('%H:%M:%S')} seed {seed} finished; tables in {args.output_dir}", flush=True)
    print(table)
    print(f"wall time of this call: {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
