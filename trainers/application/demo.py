"""`scl-slt demo`: the whole recipe on the built-in synthetic sign language, on a CPU.

The configuration lives here (an installed package has no ``configs/`` folder);
``configs/synthetic.yaml`` holds the same values and a test keeps the two equal.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from accelerate import PartialState
from transformers import pipeline

import modeling_scl_slt  # noqa: F401  (registers the sign-language-translation pipeline)

from ..method.atomic_files import write_text_atomically
from ..training.progress import progress_display
from .recipe import run_recipe
from .recipe_config import (
    CorpusSection,
    EvaluationSection,
    ModelSection,
    RecipeConfig,
    ReferenceSection,
    SclSection,
    TranslateSection,
    VideoSection,
)
from .run_paths import RunPaths
from .run_setup import Report

QUICK_NOTE = (
    "--quick checks that every step of the recipe runs (24 training videos, a few minutes at most); its "
    "scores say nothing about quality. `scl-slt demo` trains for real (dev/test BLEU-4 about 70)."
)


def demo_config(quick: bool = False) -> RecipeConfig:
    """The demo's recipe; ``quick`` runs the same path on a tiny corpus (24 training videos).

    ``quick`` checks the path, not the quality: 24 training videos give well-formed sentences but
    not good translations (the demo says so in its output).
    """
    stage = {"batch_size": 16, "learning_rate": 3e-4, "warmup_ratio": 0.05}
    config = RecipeConfig(
        seed=0,
        corpus=CorpusSection(
            kind="synthetic", language="en", synthetic_size="default", synthetic_format="frames"
        ),
        model=ModelSection(preset="small", tokenizer_model="wordlevel", tgt_lang="en_XX"),
        video=VideoSection(image_size=32, resize=32, max_frames=64, augment=True),
        reference=ReferenceSection(epochs=4, snapshot_interval=2, **stage),
        scl=SclSection(epochs=6, schedule="log", init_from="reference", **stage),
        translate=TranslateSection(
            epochs=6, label_smoothing=0.1, num_beams=1, max_new_tokens=24, eval_every_epochs=2, **stage
        ),
        evaluation=EvaluationSection(num_beams=4, max_new_tokens=24),
    )
    if quick:
        config.corpus.synthetic_size = "tiny"
        config.video.max_frames = 32
        config.reference.epochs, config.reference.snapshot_interval = 2, 1
        # Enough translation steps (36) at a higher rate for well-formed sentences rather than one
        # word repeated; 24 videos still teach it little (the scores are not the point: QUICK_NOTE).
        config.scl.epochs, config.translate.epochs = 2, 12
        config.translate.eval_every_epochs = 4
        for section in (config.reference, config.scl, config.translate):
            section.batch_size = 8
        config.scl.learning_rate = config.translate.learning_rate = 1e-3
    return config


def run_demo(
    output_dir: str | Path,
    quick: bool = False,
    report: Report = print,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the recipe, print dev/test BLEU-4 and translate one test video through the pipeline.

    ``overwrite`` deletes a previous run in ``output_dir`` first (see :func:`run_recipe`).
    ``quiet`` draws no progress bars (they are drawn only on a terminal anyway).
    """
    with progress_display(enabled=False if quiet else None):
        return run_and_show(output_dir, quick, report, overwrite)


def run_and_show(output_dir: str | Path, quick: bool, report: Report, overwrite: bool) -> dict[str, Any]:
    """The demo itself: the recipe, its scores and one translated test video."""
    metrics = run_recipe(demo_config(quick), output_dir, report=report, overwrite=overwrite)
    if not PartialState().is_main_process:
        return metrics
    paths = RunPaths(output_dir)
    report(f"dev BLEU-4 {metrics['validation']['bleu4']:.2f}, test BLEU-4 {metrics['test']['bleu4']:.2f}")
    if quick:
        report(QUICK_NOTE)
    reference, hypothesis = translate_one_test_video(paths)
    report(f"reference:  {reference}\nhypothesis: {hypothesis}")
    report(
        f"scores: {paths.metrics}\n"
        f"model: {paths.model} (scl-slt translate {paths.model} VIDEO)\n"
        f"trajectory figure: {paths.trajectory_figure}"
    )
    summary = {"metrics": metrics, "example": {"reference": reference, "hypothesis": hypothesis}}
    write_text_atomically(paths.root / "demo.json", json.dumps(summary, indent=2), "demo_summary")
    return metrics


def translate_one_test_video(paths: RunPaths) -> tuple[str, str]:
    """Translate the first test video of the corpus through the pipeline, as a user would: in
    windows of the longest length the model reads (one window unless the clip is longer than the
    run's ``video.max_frames``, as in ``--quick``), their translations joined."""
    with (paths.corpus / "manifest.csv").open(encoding="utf-8", newline="") as handle:
        row = next(row for row in csv.DictReader(handle) if row["split"] == "test")
    translate = pipeline("sign-language-translation", model=str(paths.model))
    windows = translate(
        str(paths.corpus / row["video"]), chunk_length_s=translate.max_frames / translate.frame_rate
    )
    return row["text"], " ".join(window["translation_text"] for window in windows)
