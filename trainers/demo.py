"""`scl-slt demo`: the whole recipe on the built-in synthetic sign language, on a CPU.

The configuration lives here (an installed package has no ``configs/`` folder);
``configs/synthetic.yaml`` holds the same values and a test keeps the two equal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from datasets_scripts import SignTranslationCollator, VideoTransform, load_sign_corpus

from .recipe import Report, RunPaths, run_recipe
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


def demo_config(quick: bool = False) -> RecipeConfig:
    """The demo's recipe; ``quick`` runs the same path on a small corpus in about a minute."""
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
        config.scl.epochs = config.translate.epochs = 1
        config.translate.eval_every_epochs = 1
        for section in (config.reference, config.scl, config.translate):
            section.batch_size = 8
    return config


def run_demo(output_dir: str | Path, quick: bool = False, report: Report = print) -> dict[str, Any]:
    """Run the recipe, print dev/test BLEU-4 and translate one test video with the final model."""
    metrics = run_recipe(demo_config(quick), output_dir, report=report)
    paths = RunPaths(output_dir)
    report(f"dev BLEU-4 {metrics['validation']['bleu4']:.2f}, test BLEU-4 {metrics['test']['bleu4']:.2f}")
    reference, hypothesis = translate_one_test_video(paths, demo_config(quick))
    report(f"reference:  {reference}\nhypothesis: {hypothesis}")
    report(
        f"run directory: {paths.root} (final model in {paths.model}, trajectories in {paths.trajectories})"
    )
    (paths.root / "demo.json").write_text(
        json.dumps(
            {"metrics": metrics, "example": {"reference": reference, "hypothesis": hypothesis}}, indent=2
        ),
        encoding="utf-8",
    )
    return metrics


def translate_one_test_video(paths: RunPaths, config: RecipeConfig) -> tuple[str, str]:
    """Load the final model folder as a user would and translate the first test video."""
    model = AutoModelForSeq2SeqLM.from_pretrained(paths.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(paths.model)
    example = load_sign_corpus(paths.corpus / "manifest.csv")["test"][0]
    video = config.video
    transform = VideoTransform(size=video.image_size, resize=video.resize, max_frames=video.max_frames)
    batch = SignTranslationCollator(tokenizer, transform, include_text=False)([{"frames": example["frames"]}])
    with torch.inference_mode():
        generated = model.generate(**batch)
    return example["text"], tokenizer.decode(generated[0], skip_special_tokens=True).strip()
