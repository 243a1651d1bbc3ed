"""A recipe run killed with SIGKILL at any instant resumes to the uninterrupted run's results.

The kill switch of :mod:`trainers.method.atomic_files` (``SCL_SLT_KILL_AT=KIND[#N]``) makes the
recipe kill itself in the middle of writing each kind of artefact in turn; every relaunch of the
same command goes on from what the previous one left. The last relaunch must end with the same
bytes (weights, scores, predictions, metrics, model card) as a run that was never killed. Smaller
tests: the files a killer leaves, incomplete checkpoints, damaged derived files and sources.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from tests._launch import run_two_gloo_processes
from trainers.application.demo import demo_config
from trainers.application.recipe import run_recipe
from trainers.application.recipe_config import ConfigError, RecipeConfig
from trainers.method.atomic_files import KILL_SWITCH, atomic_folder, write_text_atomically
from trainers.training.checkpoints import COMPLETE_MARKER, last_complete_checkpoint

REPO = Path(__file__).resolve().parents[1]
# (kill switch, what the killed run must not show), in the order the recipe writes them. Saves of
# this config (24 training videos, batch 8: 3 steps an epoch): reference checkpoints 3 and 6 with
# a snapshot before each, scl 3, translate 3 and 6 (best on dev BLEU-4). Each launch resumes what
# the previous one left: "checkpoint" is reference/checkpoint-6 (the first save of a launch that
# resumes from checkpoint-3), "checkpoint#3" is translate/checkpoint-6.
KILLS = [
    ("corpus", "corpus"),
    ("tokenizer", "tokenizer"),
    ("initial", "initial"),
    ("snapshot#2", "snapshots/snapshot-step000000006.safetensors"),
    ("checkpoint", f"reference/checkpoint-6/{COMPLETE_MARKER}"),  # model saved, optimizer not
    ("stage_model", "reference/model"),
    ("stage_state", "reference/trainer_state.json"),
    ("trajectories", "trajectories.json"),
    ("pair_scores", "pair_scores.safetensors"),
    ("checkpoint#3", f"translate/checkpoint-6/{COMPLETE_MARKER}"),
    ("predictions", "predictions/validation.jsonl"),
    ("metrics", "metrics.json"),
    ("model_card", "model"),
]
INCOMPLETE_CHECKPOINTS = ["reference/checkpoint-6", "translate/checkpoint-6"]
COMPARED = [
    "reference/model/model.safetensors",
    "snapshots/snapshot-step000000003.safetensors",
    "snapshots/snapshot-step000000006.safetensors",
    "trajectories.json",
    "pair_scores.safetensors",
    "scl/model/model.safetensors",
    "scl/DONE",
    "translate/model/model.safetensors",
    "predictions/validation.jsonl",
    "predictions/test.jsonl",
    "metrics.json",
    "model/model.safetensors",
    "model/README.md",
]


def kill_test_config() -> RecipeConfig:
    """``demo --quick`` with 1 scl epoch and 2 translate epochs (a checkpoint after each)."""
    config = demo_config(quick=True)
    config.scl.epochs = 1
    config.translate.epochs, config.translate.eval_every_epochs = 2, 1
    return config


def same_content(name: str, run: Path, other: Path) -> bool:
    """Whether file ``name`` of two run directories holds the same bytes, the run directory's
    own path aside (snapshot and score headers record where they were computed)."""
    mine, theirs = (run / name).read_bytes(), (other / name).read_bytes()
    if name.endswith(".safetensors") and mine != theirs:
        return same_tensors_and_header(run / name, other / name, run, other)
    return mine == theirs


def same_tensors_and_header(path: Path, other_path: Path, run: Path, other: Path) -> bool:
    with safe_open(str(path), framework="pt") as a, safe_open(str(other_path), framework="pt") as b:
        if sorted(a.keys()) != sorted(b.keys()):
            return False
        if not all(torch.equal(a.get_tensor(key), b.get_tensor(key)) for key in a.keys()):  # noqa: SIM118
            return False
        header = json.dumps(a.metadata(), sort_keys=True).replace(str(run), "<run>")
        return header == json.dumps(b.metadata(), sort_keys=True).replace(str(other), "<run>")


def launch(config_file: Path, run_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """``scl-slt train`` in a fresh process, as a user runs it (one torch thread: same kernels)."""
    env = {key: value for key, value in os.environ.items() if key != KILL_SWITCH}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")  # output up to the kill
    if kill_at:
        env[KILL_SWITCH] = kill_at
    command = [sys.executable, "-m", "trainers.application.cli", "train", str(config_file)]
    command += ["--output-dir", str(run_dir), "--quiet"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "recipe.yaml"
    path.write_text(yaml.safe_dump(kill_test_config().to_dict()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, config_file: Path) -> Path:
    """The run that is never killed."""
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    result = launch(config_file, run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return run_dir


@pytest.mark.slow
def test_a_run_killed_while_writing_each_kind_of_file_resumes_to_the_same_bytes(
    straight_run: Path, config_file: Path, tmp_path
) -> None:
    run_dir = tmp_path / "run"
    output = ""
    for kill_at, unfinished in KILLS:
        result = launch(config_file, run_dir, kill_at)
        output += result.stdout
        assert result.returncode == -signal.SIGKILL, f"{kill_at}: not killed: {result.stderr[-3000:]}"
        assert not (run_dir / unfinished).exists(), f"{kill_at}: {unfinished} is visible half-made"
    result = launch(config_file, run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    for folder in INCOMPLETE_CHECKPOINTS:
        assert output.count(f"{run_dir / folder} is an incomplete checkpoint") == 1, (folder, output)
    for name in COMPARED:
        assert same_content(name, run_dir, straight_run), name
    leftovers = [path.name for path in run_dir.rglob(".*") if ".tmp-" in path.name or ".old-" in path.name]
    assert not leftovers, leftovers


@pytest.mark.slow
def test_each_stage_keeps_its_whole_log_history_after_its_checkpoints_rotate(straight_run: Path) -> None:
    """Checkpoints are rotated (translate keeps its best on dev BLEU-4); each stage's
    trainer_state.json still holds its training summary and every evaluation."""
    for stage in ("reference", "scl", "translate"):
        history = json.loads((straight_run / stage / "trainer_state.json").read_text())["log_history"]
        assert any("train_loss" in entry for entry in history), stage
    history = json.loads((straight_run / "translate" / "trainer_state.json").read_text())["log_history"]
    assert [entry["epoch"] for entry in history if "eval_bleu4" in entry] == [1.0, 2.0]


def launch_two(config_file: Path, run_dir: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """``scl-slt train --stop-after reference`` on 2 gloo processes."""
    env = {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    env[KILL_SWITCH] = kill_at or ""
    command = ["-m", "trainers.application.cli", "train", str(config_file), "--output-dir", str(run_dir)]
    command += ["--quiet", "--stop-after", "reference"]
    return run_two_gloo_processes(*command, env=env, cwd=REPO, timeout=900)


@pytest.mark.slow
def test_two_processes_killed_in_the_middle_of_a_checkpoint_save_resume_to_the_same_bytes(
    config_file: Path, tmp_path
) -> None:
    straight, run_dir = tmp_path / "straight", tmp_path / "killed"
    result = launch_two(config_file, straight)
    assert result.returncode == 0, result.stderr[-4000:]
    # 2 steps an epoch on 2 processes: reference checkpoints 2 and 4; both processes die inside
    # the second save, after the model and before the optimizer and their RNG states
    result = launch_two(config_file, run_dir, kill_at="checkpoint#2")
    assert result.returncode != 0, "the kill switch did not fire"
    incomplete, complete = run_dir / "reference" / "checkpoint-4", run_dir / "reference" / "checkpoint-2"
    assert (incomplete / "model.safetensors").is_file() and not (incomplete / COMPLETE_MARKER).exists()
    assert (complete / COMPLETE_MARKER).is_file()
    result = launch_two(config_file, run_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count(f"{incomplete} is an incomplete checkpoint") == 1, result.stdout
    assert f"resuming {complete}" in result.stdout
    names = ["reference/model/model.safetensors", "snapshots/snapshot-step000000004.safetensors"]
    for name in [*names, "trajectories.json", "pair_scores.safetensors"]:
        assert same_content(name, run_dir, straight), name


# --- damaged files of a finished reference run (each failed on the recipe before atomic writes) --
@pytest.fixture(scope="module")
def reference_run(straight_run: Path, tmp_path_factory) -> Path:
    """The straight run up to its Pair Selection scores: stages scl and translate forgotten."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    shutil.copytree(straight_run, run_dir)
    for name in ("scl", "translate", "predictions", "model"):
        shutil.rmtree(run_dir / name)
    (run_dir / "metrics.json").unlink()
    return run_dir


def copy_of(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


@pytest.mark.slow
def test_a_checkpoint_folder_left_with_only_the_code_file_is_skipped(reference_run: Path, tmp_path) -> None:
    run_dir = copy_of(reference_run, tmp_path)
    shutil.rmtree(run_dir / "reference" / "model")
    (run_dir / "reference" / "DONE").unlink()
    (run_dir / "pair_scores.safetensors").unlink()
    complete = run_dir / "reference" / "checkpoint-6"
    broken = run_dir / "reference" / "checkpoint-7"  # what a kill at the start of a save leaves
    broken.mkdir()
    shutil.copy(complete / "modeling_scl_slt.py", broken)
    messages: list[str] = []
    run_recipe(kill_test_config(), run_dir, report=messages.append, stop_after="reference")
    assert [m for m in messages if "incomplete checkpoint" in m] == [
        f"{broken} is an incomplete checkpoint (the run was killed while saving it): deleted it"
    ]
    assert any(m.endswith(f"resuming {complete}") for m in messages), messages
    assert not broken.exists()
    for name in ("reference/model/model.safetensors", "pair_scores.safetensors"):
        assert same_content(name, run_dir, reference_run), name


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pair_scores.safetensors", "trajectories.json"])
def test_a_half_written_derived_file_is_computed_again(reference_run: Path, tmp_path, name: str) -> None:
    run_dir = copy_of(reference_run, tmp_path)
    whole = (run_dir / name).read_bytes()
    (run_dir / name).write_bytes(whole[: len(whole) // 2])
    messages: list[str] = []
    run_recipe(kill_test_config(), run_dir, report=messages.append, stop_after="reference")
    assert any(m.startswith(f"{run_dir / name} is damaged") for m in messages), messages
    assert same_content(name, run_dir, reference_run)


@pytest.mark.slow
def test_a_damaged_snapshot_is_one_line_naming_it_and_the_remedy(reference_run: Path, tmp_path) -> None:
    run_dir = copy_of(reference_run, tmp_path)
    (run_dir / "pair_scores.safetensors").unlink()
    snapshot = run_dir / "snapshots" / "snapshot-step000000003.safetensors"
    snapshot.write_bytes(snapshot.read_bytes()[:1000])
    with pytest.raises(ConfigError) as error:
        run_recipe(kill_test_config(), run_dir, report=lambda _: None, stop_after="reference")
    message = str(error.value)
    assert "\n" not in message and str(snapshot) in message
    assert f"delete {run_dir / 'reference'} and {run_dir / 'snapshots'}" in message


@pytest.mark.slow
def test_a_damaged_stage_model_is_one_line_naming_it_and_the_folder_to_delete(
    reference_run: Path, tmp_path
) -> None:
    run_dir = copy_of(reference_run, tmp_path)
    weights = run_dir / "reference" / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ConfigError) as error:
        run_recipe(kill_test_config(), run_dir, report=lambda _: None, stop_after="scl")
    message = str(error.value)
    assert "\n" not in message and str(weights) in message
    assert f"delete {run_dir / 'reference'} and run the same command again" in message


# --- the pieces ---------------------------------------------------------------------------------
# The module alone (stdlib only): its package would import torch, 10 s of start-up here.
ATOMIC_FILES = REPO / "trainers" / "method" / "atomic_files.py"
IMPORT_ATOMIC_FILES = f"""import importlib.util, sys
spec = importlib.util.spec_from_file_location("atomic_files", {str(ATOMIC_FILES)!r})
atomic_files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic_files)
"""


def test_a_killed_writer_leaves_the_previous_file_and_the_next_write_clears_its_leftovers(tmp_path) -> None:
    target = tmp_path / "metrics.json"
    write_text_atomically(target, "old", "metrics")
    script = IMPORT_ATOMIC_FILES + "atomic_files.write_text_atomically(sys.argv[1], 'new', 'metrics')\n"
    env = {**os.environ, KILL_SWITCH: "metrics"}
    result = subprocess.run([sys.executable, "-c", script, str(target)], env=env)
    assert result.returncode == -signal.SIGKILL
    assert target.read_text() == "old"
    leftovers = list(tmp_path.glob(".metrics.json.tmp-*"))
    assert len(leftovers) == 1 and leftovers[0].read_text() == "new"  # whole, under its temporary name
    write_text_atomically(target, "newer", "metrics")
    assert target.read_text() == "newer" and not list(tmp_path.glob(".metrics.json.*"))


def test_a_folder_appears_whole_and_replaces_the_previous_one(tmp_path) -> None:
    target = tmp_path / "model"
    with atomic_folder(target, "model") as folder:
        (folder / "a").write_text("1")
        assert not target.exists()
    with atomic_folder(target, "model") as folder:
        (folder / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    with pytest.raises(RuntimeError), atomic_folder(target, "model") as folder:
        (folder / "c").write_text("3")
        raise RuntimeError("the writer failed")
    assert sorted(p.name for p in target.iterdir()) == ["b"] and len(list(tmp_path.iterdir())) == 1


def test_the_kill_switch_counts_occurrences(tmp_path) -> None:
    script = IMPORT_ATOMIC_FILES + "for i in range(3):\n"
    script += "    atomic_files.write_text_atomically(f'{sys.argv[1]}/f{i}', str(i), 'snapshot')\n"
    env = {**os.environ, KILL_SWITCH: "snapshot#2"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env)
    assert result.returncode == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["f0"]


def checkpoint(stage_dir: Path, step: int, marker: bool = False, state: str | None = None) -> Path:
    folder = stage_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "modeling_scl_slt.py").write_text("")
    if marker:
        (folder / COMPLETE_MARKER).write_text("{}")
    if state is not None:
        (folder / "trainer_state.json").write_text(state)
    return folder


def test_the_last_complete_checkpoint_is_the_last_marked_one(tmp_path) -> None:
    first = checkpoint(tmp_path, 3, marker=True, state="{}")
    unmarked = checkpoint(tmp_path, 6, state="{}")  # killed before every process had saved
    messages: list[str] = []
    assert last_complete_checkpoint(tmp_path, messages.append, delete_incomplete=False) == first
    assert messages == [
        f"{unmarked} is an incomplete checkpoint (the run was killed while saving it): skipped it"
    ]
    assert last_complete_checkpoint(tmp_path, messages.append, delete_incomplete=True) == first
    assert not unmarked.exists() and first.exists()


def test_checkpoints_of_a_run_without_markers_are_complete_when_their_state_reads(tmp_path) -> None:
    kept = checkpoint(tmp_path, 3, state=json.dumps({"global_step": 3}))
    checkpoint(tmp_path, 6, state='{"global_st')  # the Trainer writes its state last, in place
    checkpoint(tmp_path, 9)
    messages: list[str] = []
    assert last_complete_checkpoint(tmp_path, messages.append, delete_incomplete=True) == kept
    assert len(messages) == 2 and [p.name for p in tmp_path.iterdir()] == ["checkpoint-3"]
    assert last_complete_checkpoint(tmp_path / "missing", messages.append, delete_incomplete=True) is None
