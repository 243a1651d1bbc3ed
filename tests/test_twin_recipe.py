"""The PHOENIX twin's recipe (configs/phoenix2014t_twin.yaml) runs end to end on a few real rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._shared_data import PHOENIX_SPLITS, phoenix_rows, shared_path
from trainers.application.recipe import run_recipe
from trainers.application.recipe_config import RecipeConfig

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_SPLIT = {"train": 16, "validation": 4, "test": 4}


def write_annotations(folder: Path) -> Path:
    """The first real rows of each PHOENIX-2014T split, as {split}.jsonl."""
    folder.mkdir(parents=True)
    for split in PHOENIX_SPLITS:
        rows = phoenix_rows(split)[: ROWS_PER_SPLIT[split]]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (folder / f"{split}.jsonl").write_text(text, encoding="utf-8")
    return folder


@pytest.mark.slow
def test_the_twin_config_renders_the_annotations_and_runs_every_stage(tmp_path) -> None:
    annotations = write_annotations(tmp_path / "annotations")
    overrides = {
        "corpus.path": str(annotations),
        "corpus.rendering_options": {"image_size": 16, "frame_step": 8, "num_signers": 3},
        "model.tokenizer": str(shared_path("mbart-cc25-trimmed-de")),
        "model.preset": "tiny",
        "video.image_size": 16,
        "video.resize": 16,
        "video.max_frames": 16,
        "reference.epochs": 2,
        "reference.snapshot_interval": 1,
        "scl.epochs": 1,
        "translate.epochs": 1,
        "translate.eval_every_epochs": 1,
        "evaluation.num_beams": 1,
        "evaluation.max_new_tokens": 8,
    }
    config = RecipeConfig.from_yaml(REPO / "configs" / "phoenix2014t_twin.yaml", overrides)
    run = tmp_path / "run"
    metrics = run_recipe(config, run, report=lambda message: None)

    manifest = (run / "corpus" / "manifest.csv").read_text(encoding="utf-8").splitlines()
    assert len(manifest) == 1 + sum(ROWS_PER_SPLIT.values())
    first = phoenix_rows("train")[0]
    frames = sorted((run / "corpus" / "frames" / "train" / first["name"]).iterdir())
    assert len(frames) == -(-first["num_frames"] // 8)  # the real frame count, every 8th frame
    assert set(metrics) >= {"validation", "test", "validation_retrieval_after_scl"}
    assert 0.0 <= metrics["test"]["bleu4"] <= 100.0
    predictions = (run / "predictions" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["reference"] for line in predictions] == [
        row["text"] for row in phoenix_rows("test")[:4]
    ]
