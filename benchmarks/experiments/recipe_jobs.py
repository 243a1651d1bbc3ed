"""Recipe runs as the experiments schedule them: one run per worker process, logged into its folder,
and runs that start from another run's outputs through links."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from pathlib import Path
from typing import Any

# What a variant's run directory shares with the reference run it starts from: the tokenizer, the
# initial model, the reference run and its snapshots, the trajectories and the Pair Selection scores.
SHARED_REFERENCE_OUTPUTS = (
    "tokenizer",
    "initial",
    "reference",
    "snapshots",
    "trajectories.json",
    "trajectories.png",
    "pair_scores.safetensors",
)


def run_job(config_dict: dict[str, Any], run_dir: str, stop_after: str | None) -> float:
    """Run (or resume) one recipe run in this worker process, with one torch thread, its output
    appended to ``run_dir/reference.log`` (a run that stops after stage reference) or
    ``run_dir/run.log``; returns its wall
    time in seconds. Imports the recipe here: the parent process stays light."""
    import torch
    from transformers.utils import logging as hf_logging

    from trainers.application.recipe import run_recipe
    from trainers.application.recipe_config import RecipeConfig, build_dataclass

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    config = build_dataclass(RecipeConfig, copy.deepcopy(config_dict), f"the config of {run_dir}")
    start = time.perf_counter()
    log_path = Path(run_dir) / ("reference.log" if stop_after == "reference" else "run.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_path.open("a", encoding="utf-8") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        run_recipe(config, run_dir, report=print, stop_after=stop_after)
    return time.perf_counter() - start


def link_outputs(source: Path, target: Path, names: tuple[str, ...]) -> None:
    """Make ``target`` start from the outputs ``names`` of the run in ``source`` (relative symlinks;
    an output ``source`` lacks, or ``target`` already has, is left alone)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = target / name
        if not link.exists() and (source / name).exists():
            link.symlink_to(os.path.relpath(source / name, target))
