"""A real-scale rehearsal: the recipe on 2 processes (gloo, CPU) at the real PHOENIX-2014T split sizes.

    python -m benchmarks.experiments.rehearsal_real_scale --output-dir rehearsal-run  # all 8,257 videos
    python -m benchmarks.experiments.rehearsal_real_scale --output-dir smoke --train-videos 48 \\
        --eval-videos 8 --batch-size 8                                                  # the same path, small

What runs:

1. **Corpus.** The PHOENIX-2014T twin (``datasets_scripts.make_gloss_rendered_corpus``): the real
   names, gloss sequences, sentences and frame counts of ``../shared/data/phoenix2014t``, all of
   train / dev / test (7,096 / 519 / 642) unless ``--train-videos`` / ``--eval-videos`` cut them,
   rendered at 16 × 16 keeping every 4th real frame (median 28 frames a video; a shorter step
   would not keep the shortest real video, 16 frames, at the tiny model's 4 frames). It is
   rendered once into ``OUTPUT_DIR/corpus`` and reused while its settings match.
2. **Recipe.** ``configs/phoenix2014t_twin.yaml`` reading that corpus through its manifest, with
   the ``tiny`` model preset (its text positions raised to 128: the longest real sentence is 72
   mBART pieces), 16 × 16 frames, at most 32 frames a clip, the twin's batch size (16 per
   process) and learning rates. One epoch per stage, except the reference run: 2 epochs with a
   snapshot after each, the fewest that give Pair Selection its 2 snapshots. Dense CiCo scores
   over all pairs of the train split. Stage translate evaluates dev once (its end); it and the
   final evaluation decode greedily with at most 24 new tokens (``--max-new-tokens``).
3. **Two launches of 2 processes** (``accelerate launch --multi_gpu --num_processes 2`` with no
   GPU visible: gloo on the CPU, one torch thread per process). The first runs the set-up, the
   reference run, the trajectory analysis and Pair Selection, then stage ``scl`` until optimizer
   step k (default: half the epoch's steps). There a callback makes the Trainer save
   ``scl/checkpoint-k`` and, once both processes have saved, raises out of training: the recipe
   call ends inside the epoch, the processes exit, and no ``scl/DONE`` exists. The second launch
   is the unchanged recipe call on the same run directory: it finds the finished reference
   stage and scores, resumes ``scl`` from ``checkpoint-k``, trains stage translate and runs the
   final evaluation. With ``--kill-during-save`` the first launch saves ``scl/checkpoint-j``
   (j = k/2) and then, through the kill switch ``SCL_SLT_KILL_AT``, both processes SIGKILL
   themselves in the middle of saving ``scl/checkpoint-k``: the resume must skip that incomplete
   folder and go on from ``checkpoint-j`` (the checks below then hold with j for k).

Checks (the script exits non-zero naming every failed one; the report is written either way):
both processes end every stage with the same parameters (sha256 of every parameter) and
computed the same dev metrics; the final model on disk has those parameters; the first launch
stopped at step k with the checkpoint and without ``scl/DONE``; the resumed stage started at
global step k from exactly the parameters held at the interruption, trained steps k+1 to the
epoch's end and finished.

Writes ``OUTPUT_DIR/rehearsal.json`` and ``OUTPUT_DIR/rehearsal.md``: the wall time of each
step on each process (rendering, corpus loading, reference run and its snapshots, trajectory
analysis + Pair Selection, scl before and after the interruption, translate, evaluation), the
peak RSS of each process in each launch, the sizes (videos, frames, disk, parameters, steps),
the checks, the metrics and the machine. ``OUTPUT_DIR/launch-{first,resume}.log`` hold the
launches' output. The run directory ``OUTPUT_DIR/run`` is started afresh on every call.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import REPO_ROOT as REPO
from benchmarks.harness import cpu_model, module_environment
from trainers.application.recipe_config import RecipeConfig, apply_override, build_dataclass
from trainers.application.run_paths import RunPaths
from trainers.application.stage_arguments import optimizer_steps_per_epoch
from trainers.training.checkpoints import COMPLETE_MARKER

TWIN_CONFIG = REPO / "configs" / "phoenix2014t_twin.yaml"
SHARED_DATA = Path(os.environ.get("SCL_SLT_SHARED_DATA", REPO.parent / "shared" / "data"))
NUM_PROCESSES = 2
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Rendering:
    """What the corpus is rendered from and how; the corpus folder is reused only for equal settings."""

    annotations: str
    train_videos: int | None
    eval_videos: int | None
    image_size: int
    frame_step: int
    num_signers: int
    seed: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True, help="corpus, run, logs and report")
    parser.add_argument("--annotations", type=Path, default=SHARED_DATA / "phoenix2014t")
    parser.add_argument("--tokenizer", type=Path, default=SHARED_DATA / "mbart-cc25-trimmed-de")
    parser.add_argument("--train-videos", type=int, default=None, help="the first N train videos (all)")
    parser.add_argument("--eval-videos", type=int, default=None, help="the first N dev and test videos (all)")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--frame-step", type=int, default=4)
    parser.add_argument("--max-frames", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16, help="per process, every stage")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="greedy decoding length")
    parser.add_argument(
        "--interrupt-step", type=int, default=None, help="scl optimizer step to stop at (half the epoch)"
    )
    parser.add_argument(
        "--kill-during-save",
        action="store_true",
        help="the first launch saves scl/checkpoint-j (j = k/2) and SIGKILLs itself in the middle of "
        "saving checkpoint-k; the resume must skip the incomplete checkpoint and go on from j",
    )
    parser.add_argument("--render-workers", type=int, default=2)
    parser.add_argument("--launch-timeout", type=int, default=4 * 3600, help="seconds per launch")
    # internal: the launched processes
    parser.add_argument("--worker", choices=("first", "resume"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("train_videos", "eval_videos"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    return args


# --- the corpus ---------------------------------------------------------------------------------
def render_corpus(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Render the twin into ``folder`` unless it holds one of the same settings; returns its facts."""
    from datasets_scripts import make_gloss_rendered_corpus, read_gloss_annotations

    rendering = Rendering(
        annotations=str(args.annotations.resolve()),
        train_videos=args.train_videos,
        eval_videos=args.eval_videos,
        image_size=args.image_size,
        frame_step=args.frame_step,
        num_signers=9,
        seed=0,
    )
    record = folder / "rendering.json"
    if record.exists():
        facts = json.loads(record.read_text(encoding="utf-8"))
        if facts["settings"] == asdict(rendering):
            return {**facts, "reused": True}
        print(f"{folder} was rendered with other settings: rendering it again", flush=True)
        shutil.rmtree(folder)
    elif folder.exists() and any(folder.iterdir()):
        raise SystemExit(f"{folder} holds files but no rendering.json: choose another --output-dir")
    if not args.annotations.is_dir():
        raise SystemExit(
            f"{args.annotations} does not exist: the rehearsal needs the PHOENIX-2014T annotations"
        )
    rows = read_gloss_annotations(args.annotations)
    if args.eval_videos is not None:
        rows = {split: r if split == "train" else r[: args.eval_videos] for split, r in rows.items()}
    print(f"rendering the twin of {args.annotations} in {folder}", flush=True)
    start = time.perf_counter()
    make_gloss_rendered_corpus(
        rows,
        folder,
        image_size=rendering.image_size,
        frame_step=rendering.frame_step,
        num_signers=rendering.num_signers,
        seed=rendering.seed,
        max_train_videos=rendering.train_videos,
        num_workers=args.render_workers,
        language="de",
    )
    seconds = time.perf_counter() - start
    kept = {split: r[: args.train_videos] if split == "train" else r for split, r in rows.items()}
    facts = {
        "settings": asdict(rendering),
        "seconds": seconds,
        "videos": {split: len(kept[split]) for split in SPLITS},
        "frames": {
            split: sum(-(-row.num_frames // rendering.frame_step) for row in kept[split]) for split in SPLITS
        },
        "disk_bytes": disk_usage(folder),
    }
    record.write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return {**facts, "reused": False}


def disk_usage(folder: Path) -> int:
    """Bytes the folder takes on disk (allocated blocks, as ``du``)."""
    return sum(entry.stat().st_blocks * 512 for entry in folder.rglob("*") if entry.is_file())


# --- the config ---------------------------------------------------------------------------------
def rehearsal_config(args: argparse.Namespace, manifest: Path) -> RecipeConfig:
    """The twin's recipe reading ``manifest``, with the tiny model and one epoch per stage."""
    values = yaml.safe_load(TWIN_CONFIG.read_text(encoding="utf-8"))
    values["corpus"] = {"kind": "manifest", "path": str(manifest.resolve()), "language": "de"}
    values["model"]["tokenizer"] = str(args.tokenizer.resolve())
    size, batch = args.image_size, args.batch_size
    overrides: dict[str, Any] = {
        "model.preset": "tiny",
        # the longest PHOENIX-2014T sentence is 72 pieces of the trimmed mBART tokenizer
        "model.overrides": {"text_config": {"max_position_embeddings": 128}},
        "video.image_size": size,
        "video.resize": size,
        "video.max_frames": args.max_frames,
        "reference.epochs": 2,  # the fewest with 2 snapshots
        "reference.snapshot_interval": 1,
        "scl.epochs": 1,
        "translate.epochs": 1,
        "translate.eval_every_epochs": 1,
        "translate.num_beams": 1,
        "translate.max_new_tokens": args.max_new_tokens,
        "evaluation.num_beams": 1,
        "evaluation.max_new_tokens": args.max_new_tokens,
        "distributed_timeout_minutes": 60,
    }
    for stage in ("reference", "scl", "translate"):
        overrides[f"{stage}.batch_size"] = batch
        overrides[f"{stage}.eval_batch_size"] = batch
    for dotted, value in overrides.items():
        apply_override(values, dotted, value)
    return build_dataclass(RecipeConfig, values, "rehearsal config")


def scl_steps(num_train: int, config: RecipeConfig) -> int:
    """Optimizer steps of stage scl's one epoch on the launch's processes."""
    scl = config.scl
    return optimizer_steps_per_epoch(
        num_train, scl.batch_size, scl.gradient_accumulation_steps, NUM_PROCESSES
    )


# --- the launched processes ---------------------------------------------------------------------
class Interrupted(Exception):
    """Raised out of stage scl's training once its checkpoint at the interruption step is saved."""


def parameter_digest(model: Any, buffers: bool = False) -> str:
    """sha256 over the name and bytes of every parameter (and buffer: BatchNorm statistics)."""
    model = getattr(model, "module", model)
    tensors = sorted(model.named_parameters())
    if buffers:
        tensors += sorted((f"buffer:{name}", value) for name, value in model.named_buffers())
    digest = hashlib.sha256()
    for name, value in tensors:
        digest.update(name.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def comparable_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metric values of an evaluation, without its timings (which differ between processes)."""
    return {k: v for k, v in metrics.items() if "runtime" not in k and "per_second" not in k}


def worker(args: argparse.Namespace) -> None:
    """One process of a launch: the recipe, timed and probed; writes records/{phase}-rank{r}.json."""
    import torch
    from accelerate import PartialState
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging

    from trainers.application import recipe
    from trainers.training import callbacks as training_callbacks

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    output, options = args.output_dir, args
    config = RecipeConfig.from_yaml(output / "rehearsal.yaml")
    record: dict[str, Any] = {"phase": args.worker, "timings": [], "stages": {}}

    def timed(name: Callable[..., str], function: Callable[..., Any]) -> Callable[..., Any]:
        def run(*positional: Any, **keywords: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*positional, **keywords)
            finally:
                record["timings"].append({"step": name(*positional), "seconds": time.perf_counter() - start})

        return run

    recipe.load_training_corpus = timed(lambda *a: "corpus loading", recipe.load_training_corpus)
    recipe.prepare_initial_model = timed(lambda *a: "initial model", recipe.prepare_initial_model)
    recipe.run_stage = timed(lambda stage, *a: stage, recipe.run_stage)
    recipe.analyse_reference_run = timed(lambda *a: "pair selection", recipe.analyse_reference_run)
    recipe.final_evaluation = timed(lambda *a: "evaluation", recipe.final_evaluation)
    snapshot_class = training_callbacks.ReferenceSnapshotCallback
    snapshot_class.save_snapshot = timed(lambda *a: "snapshot", snapshot_class.save_snapshot)

    class InterruptAtStep(TrainerCallback):
        """Saves a checkpoint at ``step`` and, once every process has, leaves training by raising.

        With --kill-during-save it saves checkpoints at ``step`` and at ``args.interrupt_step``,
        records the state at ``step`` and goes on: the kill switch ends the process inside the
        second save (the record is written before, as the kill leaves no time to).
        """

        def __init__(self, step: int, stage: dict[str, Any]) -> None:
            self.step, self.stage = step, stage

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step in (self.step, options.interrupt_step):
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
            if state.global_step != self.step:
                return
            self.stage["interrupted_at_step"] = state.global_step
            self.stage["parameters_at_interruption"] = parameter_digest(model)
            PartialState().wait_for_everyone()  # both have written their part of the checkpoint
            if options.kill_during_save:
                record["interrupted"] = f"killed while saving scl/checkpoint-{options.interrupt_step}"
                write_record(record, output, options.worker)
                return
            raise Interrupted(f"stage scl interrupted after step {state.global_step}")

    class StageProbe(TrainerCallback):
        """Notes where training starts (global step, parameters) and which steps it trains."""

        def __init__(self, stage: dict[str, Any]) -> None:
            self.stage = stage

        def on_train_begin(
            self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
        ) -> None:
            self.stage["start_global_step"] = state.global_step
            self.stage["parameters_at_start"] = parameter_digest(model)
            self.stage["steps_trained"] = []

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.stage["steps_trained"].append(state.global_step)

    class ProbedTrainer(recipe.SclSltTrainer):
        """The recipe's Trainer with the probes: final parameters and the metrics it computes."""

        def __init__(self, *positional: Any, callbacks: list | None = None, **keywords: Any) -> None:
            stage_name = keywords["args"].stage
            self.probe = record["stages"].setdefault(stage_name, {"evaluations": []})
            extra: list[TrainerCallback] = [StageProbe(self.probe)]
            if stage_name == "scl" and args.worker == "first":
                extra.append(InterruptAtStep(resume_step(options), self.probe))
            super().__init__(*positional, callbacks=[*(callbacks or []), *extra], **keywords)

        def train(self, *positional: Any, **keywords: Any) -> Any:
            result = super().train(*positional, **keywords)
            self.probe["end_global_step"] = self.state.global_step
            self.probe["parameters_at_end"] = parameter_digest(self.model)
            return result

        def evaluate(self, *positional: Any, **keywords: Any) -> dict[str, float]:
            metrics = super().evaluate(*positional, **keywords)
            # the model as evaluated, BatchNorm statistics included
            evaluated = {"model": parameter_digest(self.model, buffers=True)}
            self.probe["evaluations"].append({**evaluated, **comparable_metrics(metrics)})
            return metrics

    recipe.SclSltTrainer = ProbedTrainer
    try:  # the recipe makes the process group and silences the report of all but the main process
        metrics = recipe.run_recipe(config, output / "run", report=functools.partial(print, flush=True))
        record["final_metrics"] = metrics
        record["final_metrics_sha256"] = hashlib.sha256(
            json.dumps(metrics, sort_keys=True).encode()
        ).hexdigest()
    except Interrupted as stop:
        record["interrupted"] = str(stop)
    write_record(record, output, args.worker)
    PartialState().wait_for_everyone()


def write_record(record: dict[str, Any], output: Path, phase: str) -> None:
    """This process's record (with its peak RSS so far) as records/{phase}-rank{r}.json."""
    from accelerate import PartialState

    state = PartialState()
    record["rank"], record["world_size"] = state.process_index, state.num_processes
    record["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    records = output / "records"
    records.mkdir(exist_ok=True)
    (records / f"{phase}-rank{record['rank']}.json").write_text(json.dumps(record, indent=2))


def resume_step(args: argparse.Namespace) -> int:
    """The scl step the resume starts from: k, or j = k/2 when checkpoint-k is killed mid-save."""
    return max(1, args.interrupt_step // 2) if args.kill_during_save else args.interrupt_step


# --- orchestration ------------------------------------------------------------------------------
def free_port() -> int:
    """A free TCP port for the launch's rendezvous (other launches may hold the default 29500)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(args: argparse.Namespace, phase: str, kill_at: str | None = None) -> float:
    """Launch the 2 worker processes of one phase; returns the launch's wall time in seconds.

    ``kill_at``: the kill switch of ``trainers.method.atomic_files`` (``SCL_SLT_KILL_AT``); the
    launch must then fail.
    """
    # accelerate's launcher through this interpreter: the venv need not be on PATH
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"),
        *("--num_processes", str(NUM_PROCESSES), "--num_machines", "1"),
        *("--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())),
        *("--module", __spec__.name, "--worker", phase, "--output-dir", str(args.output_dir)),
    ]
    if args.interrupt_step is not None:
        command += ["--interrupt-step", str(args.interrupt_step)]
    # --multi_gpu with no GPU visible gives gloo processes on the CPU (`--cpu` would run one process).
    env = {**module_environment(), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    if kill_at:
        command += ["--kill-during-save"]
        env["SCL_SLT_KILL_AT"] = kill_at
    log = args.output_dir / f"launch-{phase}.log"
    print(f"{time.strftime('%H:%M:%S')} launch {phase!r}: 2 processes, output in {log}", flush=True)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        result = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, timeout=args.launch_timeout, env=env, cwd=REPO
        )
    seconds = time.perf_counter() - start
    if kill_at and result.returncode == 0:
        raise SystemExit(f"launch {phase!r} was to be killed by {kill_at} but ended normally; see {log}")
    if result.returncode != 0 and not kill_at:
        tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise SystemExit(f"launch {phase!r} failed (exit {result.returncode}); end of {log}:\n{tail}")
    return seconds


def read_records(output: Path, phase: str) -> list[dict[str, Any]]:
    records = [output / "records" / f"{phase}-rank{rank}.json" for rank in range(NUM_PROCESSES)]
    missing = [str(path) for path in records if not path.exists()]
    if missing:
        raise SystemExit(f"launch {phase!r} ended without the records {missing}")
    return [json.loads(path.read_text(encoding="utf-8")) for path in records]


def disk_model_digest(run: Path) -> str:
    """The parameter digest of the final model folder the run wrote (run/model)."""
    from modeling_scl_slt import SclSltForSignTranslation

    return parameter_digest(SclSltForSignTranslation.from_pretrained(run / "model"))


def model_size(run: Path) -> dict[str, int]:
    from modeling_scl_slt import SclSltForSignTranslation

    model = SclSltForSignTranslation.from_pretrained(RunPaths(run).initial)
    return {"parameters": sum(p.numel() for p in model.parameters())}


def run_checks(
    first: list[dict[str, Any]], resumed: list[dict[str, Any]], k: int, steps: int, run: Path, saved: bool
) -> dict[str, dict[str, Any]]:
    """Every check of the rehearsal: name → {"ok": bool, "detail": ...}; ``saved``: checkpoint-k existed."""
    checks: dict[str, dict[str, Any]] = {}

    def check(name: str, ok: bool, detail: Any) -> None:
        checks[name] = {"ok": bool(ok), "detail": detail}

    sizes = [record["world_size"] for record in first + resumed]
    check("two processes in each launch", sizes == [2] * 4, sizes)
    for phase, records in (("first", first), ("resume", resumed)):
        for stage in sorted(set(records[0]["stages"]) | set(records[1]["stages"])):
            probes = [record["stages"].get(stage, {}) for record in records]
            for key in ("parameters_at_start", "parameters_at_interruption", "parameters_at_end"):
                values = [probe.get(key) for probe in probes]
                if any(values):
                    name = f"{phase}/{stage}: {key.replace('_', ' ')} equal on both ranks"
                    check(name, values[0] is not None and values[0] == values[1], values)
            evaluations = [probe.get("evaluations", []) for probe in probes]
            if any(evaluations):
                name = f"{phase}/{stage}: dev metrics and evaluated model (with buffers) equal on both ranks"
                check(name, evaluations[0] == evaluations[1], evaluations)
    scl_first = [record["stages"].get("scl", {}) for record in first]
    scl_resumed = [record["stages"].get("scl", {}) for record in resumed]
    stopped = [probe.get("interrupted_at_step") for probe in scl_first]
    interrupted = all(record.get("interrupted") for record in first)
    check("first launch: scl stopped at step k", interrupted and stopped == [k, k], stopped)
    trained = [probe.get("steps_trained") for probe in scl_first]
    check("first launch: scl trained steps 1..k only", trained == [list(range(1, k + 1))] * 2, trained)
    check("first launch: checkpoint-k saved, scl not done", saved, f"{run}/scl/checkpoint-{k}")
    started = [probe.get("start_global_step") for probe in scl_resumed]
    check("resume: scl started at global step k", started == [k, k], started)
    at_start = [probe.get("parameters_at_start") for probe in scl_resumed]
    at_stop = [probe.get("parameters_at_interruption") for probe in scl_first]
    check("resume: scl started from the parameters held at the interruption", at_start == at_stop, at_start)
    trained = [probe.get("steps_trained") for probe in scl_resumed]
    check(
        "resume: scl trained steps k+1..end of the epoch",
        trained == [list(range(k + 1, steps + 1))] * 2,
        {"expected": [k + 1, steps], "trained": [len(numbers or []) for numbers in trained]},
    )
    check("resume: scl finished (DONE)", (run / "scl" / "DONE").exists(), str(run / "scl" / "DONE"))
    check("resume: the reference run was not trained again", "reference" not in resumed[0]["stages"],
          sorted(resumed[0]["stages"]))  # fmt: skip
    digests = [record.get("final_metrics_sha256") for record in resumed]
    check(
        "final metrics returned equal on both ranks", None not in digests and len(set(digests)) == 1, digests
    )
    final = [record["stages"].get("translate", {}).get("parameters_at_end") for record in resumed]
    on_disk = disk_model_digest(run) if (run / "model" / "config.json").exists() else None
    check("final model on disk has the ranks' parameters", on_disk is not None and [on_disk] * 2 == final,
          {"disk": on_disk, "ranks": final})  # fmt: skip
    return checks


def step_times(first: list[dict[str, Any]], resumed: list[dict[str, Any]], k: int, steps: int) -> list[dict]:
    """Rows of the time table: step, launch, seconds on each rank (summed over calls)."""

    def seconds(records: list[dict[str, Any]], step: str) -> list[float | None]:
        out: list[float | None] = []
        for record in records:
            values = [t["seconds"] for t in record["timings"] if t["step"] == step]
            out.append(sum(values) if values else None)
        return out

    rows = [
        ("corpus loading", "first", first, "corpus loading"),
        ("tokenizer + initial model (rank 0 writes)", "first", first, "initial model"),
        ("reference run (2 epochs, with its snapshots)", "first", first, "reference"),
        ("  of which the 2 snapshots", "first", first, "snapshot"),
        ("trajectory analysis + Pair Selection (dense CiCo)", "first", first, "pair selection"),
        (f"scl, steps 1–{k} (interrupted)", "first", first, "scl"),
        ("corpus loading", "resume", resumed, "corpus loading"),
        ("reference + Pair Selection: found done", "resume", resumed, "reference"),
        (f"scl, steps {k + 1}–{steps} (resumed) + dev retrieval", "resume", resumed, "scl"),
        ("translate (1 epoch + dev BLEU)", "resume", resumed, "translate"),
        ("final evaluation (dev + test, rank 0 decodes)", "resume", resumed, "evaluation"),
    ]
    table = []
    for label, launch_name, records, step in rows:
        values = seconds(records, step)
        if step == "reference" and launch_name == "resume":
            values = [
                sum(v or 0 for v in pair)
                for pair in zip(values, seconds(records, "pair selection"), strict=True)
            ]
        table.append({"step": label, "launch": launch_name, "seconds_per_rank": values})
    return table


def machine() -> dict[str, Any]:
    import torch
    import transformers

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "niceness": os.nice(0),
    }


def markdown(report: dict[str, Any]) -> str:
    sizes, corpus = report["sizes"], report["corpus"]
    box, load = report["machine"], report["load_average"]
    videos = " / ".join(f"{corpus['videos'][s]:,}" for s in SPLITS)
    frames = sum(corpus["frames"].values())
    lines = [
        "# Real-scale rehearsal: the recipe on 2 processes (gloo, CPU)",
        "",
        f"Corpus: the PHOENIX-2014T twin, {videos} train / dev / test videos (real sentences and frame "
        f"counts), {corpus['settings']['image_size']}² frames, every {corpus['settings']['frame_step']}th "
        f"frame: {frames:,} frames, {corpus['disk_bytes'] / 2**20:,.0f} MiB on disk"
        + (" (reused)" if corpus["reused"] else f", rendered in {corpus['seconds']:.0f} s")
        + ".",
        f"Model: `tiny` preset, {sizes['parameters']:,} parameters. Batch {sizes['batch_size']} per process; "
        f"scl: {sizes['scl_steps']} optimizer steps, "
        + (
            f"killed while saving checkpoint-{sizes['killed_during_save_of_step']}, resumed from "
            f"checkpoint-{sizes['resumed_from_step']}."
            if sizes.get("killed_during_save_of_step")
            else f"interrupted after step {sizes['interrupt_step']}."
        ),
        f"Machine: {box['cpu']}, {box['cores']} cores, {box['memory_gib']} GiB, torch {box['torch']}, "
        f"transformers {box['transformers']}, niceness {box['niceness']}, load average "
        f"{load['start']:.1f} at the start and {load['end']:.1f} at the end.",
        "",
        "| step | launch | rank 0 | rank 1 |",
        "|---|---|---|---|",
    ]

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{value:,.1f} s"

    for row in report["times"]:
        rank0, rank1 = row["seconds_per_rank"]
        lines.append(f"| {row['step']} | {row['launch']} | {cell(rank0)} | {cell(rank1)} |")
    launches = report["launch_seconds"]
    lines += [
        f"| whole launch (with start-up and imports) | first | {cell(launches['first'])} | |",
        f"| whole launch (with start-up and imports) | resume | {cell(launches['resume'])} | |",
        "",
        "Peak RSS (MiB): " + ", ".join(
            f"{phase} rank {rank} {value:,.0f}" for phase, values in report["peak_rss_mib"].items()
            for rank, value in enumerate(values)
        ) + ".",
        "",
        "| check | result |",
        "|---|---|",
    ]  # fmt: skip
    lines += [f"| {name} | {'ok' if c['ok'] else 'FAILED'} |" for name, c in report["checks"].items()]
    metrics = report.get("final_metrics") or {}
    if "test" in metrics:
        lines += [
            "",
            f"Final metrics (greedy, at most {sizes['max_new_tokens']} new tokens; not a result): dev BLEU-4 "
            f"{metrics['validation']['bleu4']:.2f}, test BLEU-4 {metrics['test']['bleu4']:.2f}, test ROUGE-L "
            f"{metrics['test']['rouge_l']:.2f}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    output = args.output_dir
    output.mkdir(parents=True, exist_ok=True)
    corpus = render_corpus(args, output / "corpus")
    config = rehearsal_config(args, output / "corpus" / "manifest.csv")
    steps = scl_steps(corpus["videos"]["train"], config)
    if args.interrupt_step is None:
        args.interrupt_step = max(1, steps // 2)
    if not (2 if args.kill_during_save else 1) <= args.interrupt_step < steps:
        raise SystemExit(
            f"--interrupt-step {args.interrupt_step} is not inside stage scl's epoch of {steps} steps: "
            "expected 1 (2 with --kill-during-save) to steps − 1 (more --train-videos or a smaller "
            "--batch-size give more steps)"
        )
    run = output / "run"
    if run.exists():
        if not (run / "recipe.yaml").exists():
            raise SystemExit(f"{run} exists and is not a run directory: choose another --output-dir")
        shutil.rmtree(run)  # a rehearsal measures a whole run
    shutil.rmtree(output / "records", ignore_errors=True)
    (output / "rehearsal.yaml").write_text(
        yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8"
    )

    # the reference run saves once per epoch; then scl's checkpoint-j, and checkpoint-k is the next save
    kill_at = f"checkpoint#{math.ceil(config.reference.epochs) + 2}" if args.kill_during_save else None
    launch_seconds = {"first": launch(args, "first", kill_at)}
    first = read_records(output, "first")
    k = resume_step(args)
    saved = (run / "scl" / f"checkpoint-{k}").is_dir() and not (run / "scl" / "DONE").exists()
    killed = run / "scl" / f"checkpoint-{args.interrupt_step}"  # with --kill-during-save
    left_incomplete = killed.is_dir() and not (killed / COMPLETE_MARKER).exists()
    launch_seconds["resume"] = launch(args, "resume")
    resumed = read_records(output, "resume")

    checks = run_checks(first, resumed, k, steps, run, saved)
    if args.kill_during_save:
        resume_log = (output / "launch-resume.log").read_text(encoding="utf-8", errors="replace")
        skipped = f"{killed} is an incomplete checkpoint" in resume_log
        checks["kill: checkpoint-k left incomplete, the resume skipped it and went on from j"] = {
            "ok": left_incomplete and skipped,
            "detail": {"left_incomplete": left_incomplete, "skipped": skipped, "folder": str(killed)},
        }
    report = {
        "corpus": corpus,
        "sizes": {
            **model_size(run),
            "batch_size": args.batch_size,
            "max_frames": args.max_frames,
            "max_new_tokens": args.max_new_tokens,
            "scl_steps": steps,
            "interrupt_step": args.interrupt_step,
            "killed_during_save_of_step": args.interrupt_step if args.kill_during_save else None,
            "resumed_from_step": k,
            "processes": NUM_PROCESSES,
        },
        "times": step_times(first, resumed, k, steps),
        "launch_seconds": launch_seconds,
        "wall_seconds": time.perf_counter() - start,
        "peak_rss_mib": {
            "first": [r["peak_rss_mib"] for r in first],
            "resume": [r["peak_rss_mib"] for r in resumed],
        },
        "checks": checks,
        "final_metrics": resumed[0].get("final_metrics"),
        "records": {"first": first, "resume": resumed},
        "config": config.to_dict(),
        "machine": machine(),
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (output / "rehearsal.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    table = markdown(report)
    (output / "rehearsal.md").write_text(table, encoding="utf-8")
    print(table)
    failed = [name for name, c in checks.items() if not c["ok"]]
    if failed:
        raise SystemExit(
            f"the rehearsal failed {len(failed)} check(s): {failed}; see {output / 'rehearsal.json'}"
        )
    print(f"all {len(checks)} checks passed; report in {output / 'rehearsal.json'} and .md")


if __name__ == "__main__":
    main()
