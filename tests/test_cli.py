"""The `scl-slt` commands prepare, evaluate, translate, analyze and push, on a tiny model and corpus.

`demo` and `train` are covered by tests/test_recipe.py. User mistakes end with one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData

from datasets_scripts import make_synthetic_corpus
from tests._corpus_builders import write_frames, write_video
from tests.test_hub import save_tiny_model
from trainers.application.cli import main
from trainers.application.demo import demo_config
from trainers.method.snapshots import Snapshot, save_snapshot, snapshot_filename

METRICS = {"bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"}


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Corpus loads inside the commands write their arrow files under the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = save_tiny_model(tmp_path_factory.mktemp("cli") / "model")
    ModelCard.from_template(
        ModelCardData(license="apache-2.0"), template_str="---\n{{ card_data }}\n---\n# m\n"
    ).save(folder / "README.md")
    return folder


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "synthetic"
    make_synthetic_corpus(folder, size="tiny", video_format="frames")
    return folder


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line that ends stderr (progress bars of work done before it may precede it)."""
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if line.startswith("scl-slt ")]
    assert len(errors) == 1 and err.endswith(errors[0]) and "Traceback" not in err, err
    return errors[0]


# --- help -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("demo", ["--output-dir", "--quick"]),
        ("train", ["config", "--output-dir", "--set", "--stop-after"]),
        ("prepare", ["kind", "path", "--output-dir", "--on-error", "--size"]),
        ("evaluate", ["model_dir", "--corpus-kind", "--corpus-path", "--split", "--num-beams", "--output"]),
        ("translate", ["model_dir", "INPUT", "--batch-size", "--num-beams", "--max-new-tokens", "--output"]),
        ("analyze", ["snapshot_dir", "--output-dir", "--texts-from"]),
        ("push", ["model_dir", "--repo-id", "--private", "--dataset", "--dataset-repo-id"]),
    ],
)
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: str, names: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in names), out
    description = out.split("\n\n")[1]  # usage, then the description
    assert not description.lstrip().startswith(("positional", "options")), out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in ("demo", "train", "prepare", "evaluate", "translate", "analyze", "push"))


# --- translate --------------------------------------------------------------------------------
def test_translate_prints_one_line_per_input_and_writes_jsonl(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_video(tmp_path / "clip.mp4", 20, size=(32, 24))
    write_frames(tmp_path / "frames", 12)
    inputs = [str(tmp_path / "clip.mp4"), str(tmp_path / "frames")]
    output = tmp_path / "out" / "translations.jsonl"
    code = main(
        [
            "translate",
            str(model_dir),
            *inputs,
            "--batch-size",
            "2",
            "--num-beams",
            "2",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == inputs
    records = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["input"] for r in records] == inputs
    assert [r["translation"] for r in records] == [line.split("\t", 1)[1] for line in lines]


def test_translate_with_a_missing_model_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_frames(tmp_path / "frames", 8)
    assert main(["translate", str(tmp_path / "nope"), str(tmp_path / "frames")]) == 2
    assert "nope/config.json is missing" in one_error_line(capsys)


def test_translate_with_a_missing_input_is_one_error_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["translate", str(model_dir), str(tmp_path / "gone.mp4")]) == 2
    assert "gone.mp4 does not exist" in one_error_line(capsys)


# --- evaluate ---------------------------------------------------------------------------------
def test_evaluate_prints_and_writes_the_five_metrics(
    model_dir: Path, synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    predictions, scores = tmp_path / "predictions.jsonl", tmp_path / "metrics.json"
    args = ["evaluate", str(model_dir), "--corpus-kind", "synthetic", "--corpus-path", str(synthetic_dir)]
    options = ["--num-beams", "1", "--max-new-tokens", "4", "--language", "en", "--batch-size", "6"]
    assert main([*args, *options, "--output", str(predictions), "--metrics-output", str(scores)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == METRICS and all(0.0 <= value <= 100.0 for value in printed.values())
    assert json.loads(scores.read_text()) == printed
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 6 and {"name", "reference", "hypothesis"} <= set(rows[0])


def test_evaluate_on_an_unknown_split_is_one_error_line(
    model_dir: Path, synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", str(model_dir), "--corpus-kind", "synthetic", "--corpus-path", str(synthetic_dir)]
    assert main([*args, "--split", "dev"]) == 2
    assert "no split 'dev'" in one_error_line(capsys)


# --- analyze ----------------------------------------------------------------------------------
@pytest.fixture
def snapshot_dir(synthetic_dir: Path, tmp_path: Path) -> Path:
    """Two random token snapshots of the synthetic training split (ids = sample names)."""
    manifest = (synthetic_dir / "manifest.csv").read_text().splitlines()[1:]
    names = [line.split(",")[0] for line in manifest if line.split(",")[0].startswith("train-")]
    generator = torch.Generator().manual_seed(0)
    folder = tmp_path / "snapshots"
    for step, epoch in ((3, 1), (6, 2)):
        snapshot = Snapshot.from_embeddings(
            names,
            step=step,
            epoch=epoch,
            video_tokens=torch.randn(len(names), 5, 8, generator=generator),
            video_mask=torch.ones(len(names), 5, dtype=torch.bool),
            text_tokens=torch.randn(len(names), 4, 8, generator=generator),
            text_mask=torch.ones(len(names), 4, dtype=torch.bool),
        )
        save_snapshot(snapshot, folder / snapshot_filename(step))
    return folder


def test_analyze_without_texts_writes_both_files_and_says_so(
    snapshot_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(snapshot_dir), "--output-dir", str(tmp_path / "report")]) == 0
    assert "NOT excluded" in capsys.readouterr().err
    report = json.loads((tmp_path / "report" / "trajectories.json").read_text())
    assert (tmp_path / "report" / "trajectories.png").stat().st_size > 0
    assert report["num_pairs"] == 24 * 23 and report["num_identical_text_pairs"] == 0


def test_analyze_with_texts_from_a_manifest_excludes_identical_texts(
    snapshot_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    manifest = synthetic_dir / "manifest.csv"
    output = tmp_path / "report"
    assert (
        main(["analyze", str(snapshot_dir), "--output-dir", str(output), "--texts-from", str(manifest)]) == 0
    )
    report = json.loads((output / "trajectories.json").read_text())
    assert report["num_identical_text_pairs"] > 0  # the synthetic corpus repeats sentences
    assert report["num_pairs"] == 24 * 23 - report["num_identical_text_pairs"]


def test_analyze_with_texts_from_a_run_directory(
    snapshot_dir: Path, synthetic_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(synthetic_dir, run / "corpus")
    (run / "recipe.yaml").write_text(yaml.safe_dump(demo_config(quick=True).to_dict()))
    output = tmp_path / "report"
    assert main(["analyze", str(snapshot_dir), "--output-dir", str(output), "--texts-from", str(run)]) == 0
    assert json.loads((output / "trajectories.json").read_text())["num_identical_text_pairs"] > 0


def test_analyze_of_a_missing_folder_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(tmp_path / "none"), "--output-dir", str(tmp_path / "out")]) == 2
    assert "does not exist" in one_error_line(capsys)


# --- prepare ----------------------------------------------------------------------------------
def test_prepare_synthetic_writes_loadable_parquet(
    synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "parquet"
    assert main(["prepare", "synthetic", str(synthetic_dir), "--output-dir", str(output)]) == 0
    assert str(output) in capsys.readouterr().out
    files = {split: str(output / "data" / f"{split}.parquet") for split in ("train", "validation", "test")}
    reloaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "reload"))
    assert {split: len(reloaded[split]) for split in reloaded} == {"train": 24, "validation": 6, "test": 6}
    first = reloaded["test"][0]
    folder = synthetic_dir / "frames" / "test" / first["name"]
    original = sorted(folder.iterdir())[0]
    from PIL import Image

    assert np.array_equal(np.asarray(first["frames"][0]), np.asarray(Image.open(original).convert("RGB")))


def test_prepare_into_a_folder_that_is_not_empty_is_one_error_line(
    synthetic_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("x")
    assert main(["prepare", "synthetic", str(synthetic_dir), "--output-dir", str(tmp_path / "taken")]) == 2
    assert "is not empty" in one_error_line(capsys)


def test_prepare_a_missing_manifest_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", "manifest", str(tmp_path / "m.csv"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "m.csv does not exist" in one_error_line(capsys)


# --- push -------------------------------------------------------------------------------------
def test_push_offline_exits_2_with_one_line(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(model_dir), "--repo-id", "me/scl-slt", "--private"]) == 2
    error = one_error_line(capsys)
    assert error.startswith("scl-slt push: error:") and "offline" in error


def test_push_dataset_needs_its_repo_id(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(model_dir), "--repo-id", "me/m", "--dataset", "manifest:m.csv"]) == 2
    assert "--dataset-repo-id" in one_error_line(capsys)
