"""The `scl-slt` commands prepare, evaluate, translate, analyze and push, on a tiny model and corpus.

`demo` and `train` are covered by tests/test_recipe.py. User mistakes end with one line on
stderr and exit code 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard, ModelCardData

from datasets_scripts import make_synthetic_corpus
from tests._corpus_builders import write_frames, write_video
from tests.test_hub import save_tiny_model
from trainers.application.cli import apply_generation_options, main, metric_language, rounded
from trainers.application.cli_parser import build_parser
from trainers.application.demo import demo_config
from trainers.application.recipe_config import ConfigError
from trainers.application.run_paths import RunPaths
from trainers.application.run_setup import check_or_record_config
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
        ("demo", ["--output-dir", "--quick", "--overwrite"]),
        ("train", ["config", "--output-dir", "--set", "--stop-after", "--overwrite"]),
        ("prepare", ["kind", "path", "--output-dir", "--on-error", "--generate", "--size"]),
        ("evaluate", ["model_dir", "--corpus-kind", "--corpus-path", "--split", "--num-beams", "--generate"]),
        ("translate", ["model_dir", "INPUT", "--batch-size", "--num-beams", "--max-new-tokens", "--output"]),
        ("analyze", ["snapshot_dir", "--output-dir", "--texts-from"]),
        ("app", ["model_dir", "--host", "--port", "127.0.0.1"]),
        (
            "push",
            ["model_dir", "--repo-id", "--private", "--dataset", "--dataset-repo-id", "--space-repo-id"],
        ),
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
    assert all(
        c in out for c in ("demo", "train", "prepare", "evaluate", "translate", "analyze", "app", "push")
    )


# --- translate --------------------------------------------------------------------------------
def test_translate_prints_one_line_per_input_and_writes_jsonl(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_video(tmp_path / "clip.mp4", 16, size=(32, 24))  # the model's max_frames: one window
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


def damage(path: Path, how: str) -> None:
    """Cut ``path`` to half its bytes (what a killed plain write leaves) or empty it."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if how == "truncated" else b"")


@pytest.fixture
def damaged_model(model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A copy of the tiny model with one file damaged: ``request.param`` is (file name, how)."""
    name, how = request.param
    folder = tmp_path / "damaged-model"
    shutil.copytree(model_dir, folder)
    damage(folder / name, how)
    return folder / name


DAMAGED_MODEL_FILES = [
    ("model.safetensors", "truncated"),
    ("model.safetensors", "empty"),
    ("config.json", "truncated"),
    ("tokenizer.json", "empty"),
]


def assert_names_the_damaged_model_file(error: str, damaged: Path) -> None:
    size = damaged.stat().st_size
    assert f"{damaged} is damaged ({size:,} bytes: " in error, error
    assert error.endswith(
        f"the model folder {damaged.parent} cannot be loaded: save or copy the model into it again"
    )


@pytest.mark.parametrize("damaged_model", DAMAGED_MODEL_FILES, indirect=True)
def test_translate_with_a_damaged_model_file_is_one_line_naming_it(
    damaged_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_frames(tmp_path / "frames", 8)
    assert main(["translate", str(damaged_model.parent), str(tmp_path / "frames")]) == 2
    assert_names_the_damaged_model_file(one_error_line(capsys), damaged_model)


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


@pytest.mark.parametrize("damaged_model", DAMAGED_MODEL_FILES, indirect=True)
def test_evaluate_with_a_damaged_model_file_is_one_line_naming_it(
    damaged_model: Path, synthetic_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", str(damaged_model.parent), "--corpus-kind", "synthetic", "--corpus-path"]
    assert main([*args, str(synthetic_dir)]) == 2
    assert_names_the_damaged_model_file(one_error_line(capsys), damaged_model)


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


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_analyze_of_a_damaged_snapshot_is_one_line_naming_it_and_the_remedy(
    snapshot_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    damaged = snapshot_dir / snapshot_filename(6)
    damage(damaged, how)
    assert main(["analyze", str(snapshot_dir), "--output-dir", str(tmp_path / "report")]) == 2
    error = one_error_line(capsys)
    assert f"{damaged} is damaged ({damaged.stat().st_size:,} bytes: " in error, error
    assert f"move it out of {snapshot_dir} to analyze the other snapshots" in error
    assert not (tmp_path / "report").exists()


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


@pytest.mark.parametrize("damaged_model", DAMAGED_MODEL_FILES[:2], indirect=True)
def test_push_of_a_damaged_model_names_the_file_before_going_online(
    damaged_model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(damaged_model.parent), "--repo-id", "me/scl-slt"]) == 2
    assert_names_the_damaged_model_file(one_error_line(capsys), damaged_model)


@pytest.mark.parametrize("damaged_model", DAMAGED_MODEL_FILES[:2], indirect=True)
def test_app_with_a_damaged_model_file_is_one_line_naming_it(
    damaged_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["app", str(damaged_model.parent)]) == 2  # before any page is served
    assert_names_the_damaged_model_file(one_error_line(capsys), damaged_model)


def test_push_dataset_needs_its_repo_id(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", str(model_dir), "--repo-id", "me/m", "--dataset", "manifest:m.csv"]) == 2
    assert "--dataset-repo-id" in one_error_line(capsys)


# --- start-up ---------------------------------------------------------------------------------
HEAVY_MODULES = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "peft",
    "evaluate",
    "datasets_scripts",
    "modeling_scl_slt",
    "trainers.method",
    "trainers.training",
    "trainers.application.recipe",
    "gradio",
)


def cli_calls_in_a_fresh_process(calls: list[list[str]], cwd: Path) -> tuple[list[int], list[str]]:
    """Exit codes of ``scl-slt`` calls made in one new interpreter, and the heavy modules it imported."""
    script = (
        "import contextlib, io, json, sys\n"
        "import trainers.application.cli as cli\n"
        "codes = []\n"
        f"for argv in {calls!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        try:\n"
        "            codes.append(cli.main(argv))\n"
        "        except SystemExit as exit_info:\n"
        "            codes.append(exit_info.code)\n"
        f"print(json.dumps([codes, [m for m in {HEAVY_MODULES!r} if m in sys.modules]]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    codes, heavy = json.loads(result.stdout)
    return codes, heavy


def test_help_and_user_mistakes_answer_without_importing_the_training_stack(tmp_path: Path) -> None:
    """`scl-slt --help`, `COMMAND --help`, argument errors and config errors import nothing heavy
    (the import graph is tested, not a timing)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(demo_config(quick=True).to_dict()))
    calls = [
        ["--help"],
        ["evaluate", "--help"],
        ["translate", "--help"],
        ["train"],
        ["train", "c.yaml", "--output-dir", "run", "--set", "scl.epochs=-3"],
        ["train", "c.yaml", "--output-dir", "run", "--set", "model.preset=huge"],
        ["evaluate", "model", "--corpus-kind", "synthetic", "--corpus-path", "TYPO"],
        ["prepare", "manifest", "TYPO.csv", "--output-dir", "out"],
        ["app", "TYPO"],
    ]
    codes, heavy = cli_calls_in_a_fresh_process(calls, tmp_path)
    assert codes == [0, 0, 0, 2, 2, 2, 2, 2, 2] and heavy == []
    assert not (tmp_path / "run").exists() and not (tmp_path / "TYPO").exists()


def test_importing_trainers_stays_lazy() -> None:
    script = "import sys, trainers; print([m for m in ('torch', 'trainers.method') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_scl_slt_help_as_a_user_runs_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trainers.application.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "evaluate" in result.stdout and not result.stderr


# --- corpus paths -----------------------------------------------------------------------------
def test_a_missing_synthetic_corpus_is_an_error_unless_generate_is_asked(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "TYPO"
    args = ["evaluate", str(model_dir), "--corpus-kind", "synthetic", "--corpus-path", str(typo)]
    assert main(args) == 2
    assert one_error_line(capsys) == (
        f"scl-slt evaluate: error: --corpus-path: {typo} does not exist; expected the folder of a "
        "generated synthetic corpus (with manifest.csv), or pass --generate to generate one there"
    )
    assert not typo.exists()
    typo.mkdir()
    assert main(args) == 2
    assert f"--corpus-path: {typo} holds no manifest.csv;" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("phoenix2014t", "the PHOENIX-2014-T release folder"),
        ("csl_daily", "the CSL-Daily folder (with sentence_label/ and sentence/)"),
        ("manifest", "a manifest file (.csv, .tsv or .jsonl)"),
    ],
)
def test_a_missing_corpus_names_the_path_and_what_was_expected(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, expected: str
) -> None:
    typo = tmp_path / "TYPO"
    assert main(["evaluate", str(model_dir), "--corpus-kind", kind, "--corpus-path", str(typo)]) == 2
    assert one_error_line(capsys) == (
        f"scl-slt evaluate: error: --corpus-path: {typo} does not exist; expected {expected}"
    )


def test_generate_applies_to_the_synthetic_kind_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["prepare", "manifest", str(tmp_path / "m.csv"), "--output-dir", "o", "--generate"]) == 2
    assert one_error_line(capsys) == (
        "scl-slt prepare: error: --generate makes a synthetic corpus; it does not apply to corpus kind "
        "manifest"
    )


def test_evaluate_generates_on_request_infers_the_language_and_prints_rounded_scores(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus, scores = tmp_path / "new-corpus", tmp_path / "metrics.json"
    args = ["evaluate", str(model_dir), "--corpus-kind", "synthetic", "--corpus-path", str(corpus)]
    assert main([*args, "--generate", "--num-beams", "1", "--metrics-output", str(scores)]) == 0
    captured = capsys.readouterr()
    assert (corpus / "manifest.csv").is_file()
    assert "scoring as language 'en'" in captured.err  # the synthetic corpus is English
    printed, stored = json.loads(captured.out), json.loads(scores.read_text())
    assert printed == rounded(stored) and set(printed) == METRICS


def test_printed_scores_are_rounded_and_stored_ones_are_not() -> None:
    metrics = {"eval_video_to_text_r1": 86.00000143051147, "validation": {"bleu4": 12.3456}, "n": 3}
    assert rounded(metrics) == {"eval_video_to_text_r1": 86.0, "validation": {"bleu4": 12.35}, "n": 3}


def test_train_refuses_a_corpus_path_that_does_not_exist_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = demo_config(quick=True)
    config.corpus.kind, config.corpus.path = "phoenix2014t", str(tmp_path / "TYPO")
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(config.to_dict()))
    assert main(["train", str(config_file), "--output-dir", str(tmp_path / "run")]) == 2
    assert one_error_line(capsys) == (
        f"scl-slt train: error: {config_file}: corpus.path: {tmp_path / 'TYPO'} does not exist; "
        "expected the PHOENIX-2014-T release folder"
    )
    assert not (tmp_path / "run").exists()


def test_bad_synthetic_options_are_one_line_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(demo_config(quick=True).to_dict()))
    train = ["train", str(config_file), "--output-dir", str(tmp_path / "run"), "--set"]
    assert main([*train, "corpus.synthetic_options={repeat_fraction: abc}"]) == 2
    assert one_error_line(capsys) == (
        f"scl-slt train: error: {config_file}: corpus.synthetic_options.repeat_fraction: expected float, "
        "got 'abc'"
    )
    assert main([*train, "corpus.synthetic_options={repeat_fraction: 1.5}"]) == 2
    assert one_error_line(capsys).endswith(
        "corpus.synthetic_options: repeat_fraction must lie in [0, 1], got 1.5"
    )
    assert main([*train, "corpus.synthetic_options={num_signers: 40}"]) == 2
    assert one_error_line(capsys).endswith("num_signers must be between 1 and 10, got 40")
    assert not (tmp_path / "run").exists()


# --- generation defaults and the metric language ------------------------------------------------
def test_evaluate_and_translate_share_their_generation_defaults(model_dir: Path) -> None:
    from modeling_scl_slt import SclSltForSignTranslation
    from modeling_scl_slt.pipeline_scl_slt import DEFAULT_MAX_NEW_TOKENS

    parser = build_parser()
    evaluate = parser.parse_args(["evaluate", "m", "--corpus-kind", "synthetic", "--corpus-path", "c"])
    translate = parser.parse_args(["translate", "m", "clip.mp4"])
    assert (evaluate.num_beams, evaluate.max_new_tokens) == (translate.num_beams, translate.max_new_tokens)
    assert evaluate.max_new_tokens is None and evaluate.num_beams is None  # the model's
    model = SclSltForSignTranslation.from_pretrained(model_dir)
    apply_generation_options(model, None, None)
    assert model.generation_config.max_new_tokens == 5  # the saved generation config's
    model.generation_config.max_new_tokens = None
    apply_generation_options(model, None, None)  # no length saved: the pipeline's default
    longest = model.config.text_config.max_position_embeddings - 1
    assert model.generation_config.max_new_tokens == min(DEFAULT_MAX_NEW_TOKENS, longest)
    apply_generation_options(model, 3, 7)
    assert (model.generation_config.num_beams, model.generation_config.max_new_tokens) == (3, 7)


@pytest.mark.parametrize(
    ("kind", "tgt_lang", "language"),
    [
        ("synthetic", "de_DE", "en"),
        ("phoenix2014t", "en_XX", "de"),
        ("csl_daily", "de_DE", "zh"),
        ("manifest", "zh_CN", "zh"),
        ("manifest", None, "de"),
    ],
)
def test_the_metric_language_comes_from_the_corpus_then_the_model(
    kind: str, tgt_lang: str | None, language: str
) -> None:
    assert metric_language(kind, SimpleNamespace(tgt_lang=tgt_lang)) == language


# --- run directories --------------------------------------------------------------------------
@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(demo_config(quick=True).to_dict()))
    return config_file


def old_run(folder: Path) -> RunPaths:
    """A run directory recorded with another config (the full demo's)."""
    paths = RunPaths(folder)
    folder.mkdir()
    paths.config.write_text(yaml.safe_dump(demo_config().to_dict(), sort_keys=True))
    (paths.corpus).mkdir()
    (paths.corpus / "manifest.csv").write_text("name,video,text\n")
    return paths


def test_a_run_with_work_and_another_config_is_refused_with_the_ways_out(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = old_run(tmp_path / "run")
    paths.stage("reference").mkdir()
    (paths.stage("reference") / "DONE").write_text("{}")
    assert main(["train", str(config_file), "--output-dir", str(paths.root)]) == 2
    assert one_error_line(capsys) == (
        f"scl-slt train: error: {paths.root} holds a run started with a different config ({paths.config}) "
        "that has finished stage(s) reference: run with the same config to resume it, or pass --overwrite "
        "(overwrite=True) to delete it and start over, or choose another output directory"
    )
    assert (paths.stage("reference") / "DONE").exists()


def test_overwrite_refuses_a_folder_that_is_not_a_run_directory(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    assert main(["train", str(config_file), "--output-dir", str(folder), "--overwrite"]) == 2
    assert one_error_line(capsys) == (
        f"scl-slt train: error: --overwrite: {folder} is not a run directory (it has no recipe.yaml of a "
        "recipe run); nothing was deleted: choose another output directory"
    )
    assert (folder / "thesis.tex").read_text() == "keep me" and not (folder / "recipe.yaml").exists()


def test_a_run_that_never_finished_a_stage_starts_over_with_a_new_config(tmp_path: Path) -> None:
    paths = old_run(tmp_path / "run")
    paths.stage("reference").mkdir()  # started, no checkpoint yet
    messages: list[str] = []
    config = demo_config(quick=True)
    check_or_record_config(config, paths, report=messages.append)
    assert any(
        "never finished a stage or saved a checkpoint: deleted it, starting over" in m for m in messages
    )
    assert sorted(p.name for p in paths.root.iterdir()) == ["recipe.yaml"]  # the old corpus is gone
    assert paths.config.read_text() == yaml.safe_dump(config.to_dict(), sort_keys=True)
    check_or_record_config(config, paths, report=messages.append)  # the same config: a resume
    assert paths.config.exists() and len(messages) == 1


def test_a_checkpoint_locks_the_run_and_overwrite_starts_over(tmp_path: Path) -> None:
    paths = old_run(tmp_path / "run")
    (paths.stage("reference") / "checkpoint-4").mkdir(parents=True)
    with pytest.raises(
        ConfigError, match=r"that has checkpoint\(s\), e\.g\. .*checkpoint-4: run with the same"
    ):
        check_or_record_config(demo_config(quick=True), paths, report=lambda _: None)
    check_or_record_config(demo_config(quick=True), paths, overwrite=True, report=lambda _: None)
    assert sorted(p.name for p in paths.root.iterdir()) == ["recipe.yaml"]
