"""`scl-slt plan`: per-stage memory on the meta device, checked against real steps, the verdict and
the advice, the time estimate, and the refusal of `scl-slt train` for a run that cannot fit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from benchmarks import plan as plan_benchmark
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from tests.test_cli import cli_calls_in_a_fresh_process, one_error_line
from trainers.application import plan as plan_module
from trainers.application.cli import main
from trainers.application.demo import demo_config
from trainers.application.memory_estimate import (
    MemoryKnobs,
    StepShape,
    build_stage_model,
    estimate_step_memory,
    set_knobs,
)
from trainers.application.plan import check_run_fits, format_plan, make_plan
from trainers.application.plan_inputs import GIB, HEADROOM, PlanDevice, plan_device, plan_vocabulary
from trainers.application.plan_times import time_estimate
from trainers.application.recipe_config import ConfigError, RecipeConfig, validate_config
from trainers.application.tokenization import train_tokenizer
from trainers.training.stages import get_stage

ROOT = Path(__file__).resolve().parents[1]
PHOENIX = ROOT / "configs" / "phoenix2014t.yaml"
MIB = 2**20


@pytest.fixture(scope="module")
def small_config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's config (small preset, 32² frames) with a 16-frame cap and batches of 4: planned in
    seconds."""
    config = demo_config()
    config.video.max_frames = 16
    for stage in ("reference", "scl", "translate"):
        getattr(config, stage).batch_size = 4
    path = tmp_path_factory.mktemp("plan") / "small.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    return path


@pytest.fixture(scope="module")
def peaks(small_config_file: Path) -> dict[str, int]:
    """The largest peak over the stages, as configured and with the knobs up to each kind (bytes)."""
    plan = make_plan(RecipeConfig.from_yaml(small_config_file), PlanDevice("gpu", 1, None))
    return {
        kind: max(stage.up_to(kind)[1].peak for stage in plan.stages)
        for kind in ("configured", "checkpointing", "bf16")
    }


def gpu_memory_for(usable: float) -> str:
    """``--gpu-memory`` (GiB) whose usable part (after the headroom) is ``usable`` bytes."""
    return f"{usable / (1 - HEADROOM) / GIB:.9f}"


def plan_output(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["plan", *argv])
    return code, capsys.readouterr().out


# --- the command as a user runs it --------------------------------------------------------------
@pytest.mark.slow
def test_plan_of_the_paper_config_on_an_80_gb_gpu_as_a_user_runs_it() -> None:
    command = [sys.executable, "-m", "trainers.application.cli", "plan", str(PHOENIX)]
    result = subprocess.run(
        [*command, "--gpus", "1", "--gpu-memory", "80"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for stage in ("reference", "scl", "translate"):
        assert f"stage {stage} (batch " in out
    header = next(line for line in out.splitlines() if "setting" in line).split()
    assert header == [
        "setting",
        "weights",
        "gradients",
        "optimizer",
        "activations",
        "peak",
        "fits",
        "72.0",
        "GiB",
    ]
    assert "1,063.0 M parameters, 24.3 M trainable" in out  # ResNet-18 + mBART-large-50 + the paper's LoRA
    assert "as configured (bf16)" in out and "+ backbone chunks of 32, gradient checkpointing" in out
    assert "the tokenizer facebook/mbart-large-50 is not on disk" in out  # nothing was downloaded
    verdict = [line for line in out.splitlines() if line.startswith("verdict: ")]
    assert len(verdict) == 1 and verdict[0].startswith("verdict: fits 1 GPU of 80 GiB"), out
    assert "time: no estimate" in out and not result.stderr.strip()


def test_a_run_that_does_not_fit_gets_a_verdict_and_the_knobs_that_make_it_fit(
    small_config_file: Path, peaks: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    memory = gpu_memory_for((peaks["configured"] + peaks["checkpointing"]) / 2)
    code, out = plan_output(capsys, str(small_config_file), "--gpu-memory", memory)
    assert code == 1
    verdict = [line for line in out.splitlines() if line.startswith("verdict: ")]
    assert len(verdict) == 1 and verdict[0].startswith(
        f"verdict: does not fit 1 GPU of {float(memory):.3g} GiB"
    )
    advice = [line for line in out.splitlines() if line.startswith("advice: ")]
    assert len(advice) == 1 and advice[0].startswith(
        "advice: set model.overrides.backbone_chunk_size=32, model.overrides.freeze_batch_norm=true, "
        "reference.gradient_checkpointing=true, scl.gradient_checkpointing=true and "
        "translate.gradient_checkpointing=true (the largest peak is then "
    )
    fits = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("+ backbone")]
    assert fits == ["yes"] * 3 and "  as configured (fp32)" in out


def test_a_smaller_gpu_gets_batch_sizes_and_a_hopeless_one_is_told_so(
    small_config_file: Path, peaks: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    memory = gpu_memory_for(min(peaks["checkpointing"], peaks["bf16"]) * 0.95)  # no settable knob suffices
    code, out = plan_output(capsys, str(small_config_file), "--gpu-memory", memory)
    advice = [line for line in out.splitlines() if line.startswith("advice: ")]
    assert code == 1 and advice[0].startswith("advice: set model.overrides.backbone_chunk_size=32"), out
    sizes = {
        line.split()[2].split(".")[0]: int(line.split("=")[1]) for line in advice if ".batch_size=" in line
    }
    assert sizes and all(1 <= size < 4 for size in sizes.values()), advice
    applied = [
        item for line in advice[:1] for item in line.removeprefix("advice: set ").split(" (")[0].split(", ")
    ]
    applied = [part for item in applied for part in item.split(" and ")]
    applied += [f"{stage}.batch_size={size}" for stage, size in sizes.items()]
    code, out = plan_output(
        capsys, str(small_config_file), "--gpu-memory", memory, *(f"--set={item}" for item in applied)
    )
    assert code == 0, out  # the advice, applied, fits
    code, out = plan_output(
        capsys, str(small_config_file), "--gpu-memory", gpu_memory_for(peaks["checkpointing"] / 4)
    )
    assert code == 1 and "does not fit even with batch size 1" in out


def test_the_plan_reads_set_overrides_and_a_configured_knob_has_no_row_of_its_own(
    small_config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    knobs = "{backbone_chunk_size: 16, freeze_batch_norm: true}"
    stages = ("reference", "scl", "translate")
    checkpointing = [f"--set={stage}.gradient_checkpointing=true" for stage in stages]
    code, out = plan_output(
        capsys,
        str(small_config_file),
        "--gpus",
        "2",
        "--gpu-memory",
        "1",
        f"--set=model.overrides={knobs}",
        *checkpointing,
    )
    assert code == 0 and f"plan of {small_config_file} for 2 GPUs of 1 GiB" in out
    assert "+ backbone chunks" not in out and "+ bf16 autocast" in out


def test_a_features_plan_offers_only_the_knobs_that_apply_without_a_backbone(small_config_file: Path) -> None:
    """On frame features no backbone runs: the knob row is the mBART layers' checkpointing alone, its
    advice is a config the recipe accepts, and a hopeless stage is not told to shrink the images."""
    config = RecipeConfig.from_yaml(small_config_file)
    config.video.features = "features"  # the plan reads no file
    unknown = make_plan(config, PlanDevice("gpu", 1, None))
    for stage in unknown.stages:
        (_, as_configured), (variant, checkpointed) = stage.rows[:2]
        assert variant.kind == "checkpointing"
        assert variant.settings == {f"{stage.stage}.gradient_checkpointing": True}
        assert variant.knobs.backbone_chunk_size is None and not variant.knobs.freeze_batch_norm
        assert checkpointed.activations < as_configured.activations
    configured, checkpointing = (
        max(stage.up_to(kind)[1].peak for stage in unknown.stages) for kind in ("configured", "checkpointing")
    )
    between = PlanDevice("gpu", 1, int((configured + checkpointing) / 2 / (1 - HEADROOM)), "a GPU")
    plan = make_plan(config, between)
    text = format_plan(plan)
    assert plan.fits is False and "backbone chunks" not in text
    assert text.count("+ gradient checkpointing (mBART layers; no backbone on frame features)") == 3
    assert plan.advice == [
        "set reference.gradient_checkpointing=true, scl.gradient_checkpointing=true and "
        f"translate.gradient_checkpointing=true (the largest peak is then {plan_module.gib(checkpointing)})"
    ]
    for stage in ("reference", "scl", "translate"):
        getattr(config, stage).gradient_checkpointing = True
    validate_config(config)  # no model.overrides.freeze_batch_norm needed: no BatchNorm runs
    assert make_plan(config, between, knob_rows=False).fits is True
    hopeless = make_plan(config, PlanDevice("gpu", 1, int(checkpointing / 4), "a GPU")).advice
    assert any(
        line.endswith(
            "does not fit even with batch size 1: it needs a GPU with more memory, or a "
            "smaller video.max_frames"
        )
        for line in hopeless
    ), hopeless
    assert not any("image_size" in line or "backbone" in line for line in hopeless), hopeless


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--gpus", "0"], "argument --gpus: expected a positive integer, got 0"),
        (["--gpu-memory", "lots"], "argument --gpu-memory: expected a number, got lots"),
        (["--gpu-memory", "-8"], "argument --gpu-memory: expected a number above 0, got -8"),
        (["--set", "scl.batch_size=0"], "scl.batch_size: 0 is out of range; expected an integer >= 1"),
    ],
)
def test_bad_arguments_are_one_clear_error_line(
    small_config_file: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], expected: str
) -> None:
    try:
        code = main(["plan", str(small_config_file), *arguments])
    except SystemExit as exit_info:  # argparse: usage, then the error line
        code = exit_info.code
    line = one_error_line(capsys)
    assert code == 2 and line.startswith("scl-slt plan: error: ") and expected in line, line


def test_a_missing_config_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(tmp_path / "nope.yaml")]) == 2
    assert (
        one_error_line(capsys) == f"scl-slt plan: error: config file {tmp_path / 'nope.yaml'} does not exist"
    )


def test_plan_help_and_argument_errors_import_nothing_heavy(tmp_path: Path) -> None:
    calls = [["plan", "--help"], ["plan", "c.yaml", "--gpus", "0"]]
    assert cli_calls_in_a_fresh_process(calls, tmp_path) == ([0, 2], [])


# --- the estimate ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stage", "setting"),
    [
        ("reference", "backbone chunks + gradient checkpointing"),
        ("scl", "plain"),
        ("scl", "all knobs"),
    ],
)
def test_the_activation_estimate_is_within_25_percent_of_a_real_step(stage: str, setting: str) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a loaded box, waiting for a second thread costs seconds per step
    try:
        record = plan_benchmark.compare("tiny-test", stage, setting)
    finally:
        torch.set_num_threads(threads)
    assert record["measured_bytes"] > 4 * MIB, "the step must be larger than the allocator's fixed buffers"
    assert 0.75 <= record["ratio"] <= 1.25, record


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_cpu_plan_says_that_its_autocast_memory_is_not_estimated(
    small_config_file: Path, precision: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = plan_device(precision)
    assert device.kind == "cpu" and device.autocast is None  # every row an fp32 estimate
    assert device.note == (
        f"no GPU given or found; precision {precision} on a CPU: its memory is not estimated (CPU "
        "autocast kernels allocate differently from one processor to another), the rows are fp32 estimates"
    )
    config = RecipeConfig.from_yaml(small_config_file, {"precision": precision})
    text = format_plan(make_plan(config, device))
    assert device.note in text and "(bf16)" not in text and "(fp16)" not in text
    assert plan_device("fp32").note == "no GPU given or found"


def test_many_backbone_chunks_are_extrapolated_from_few() -> None:
    config = SclSltConfig.from_preset("small", text_config={"vocab_size": 100, "decoder_start_token_id": 99})
    stage = get_stage("scl")
    shape = StepShape(2, 64, 32, 8)  # 128 frames in 32 chunks of 4
    model = set_knobs(
        build_stage_model(config, stage),
        MemoryKnobs(backbone_chunk_size=4, freeze_batch_norm=True, gradient_checkpointing=True),
    )
    exact = estimate_step_memory(model, stage, shape, max_exact_chunks=1000).activations
    extrapolated = estimate_step_memory(model, stage, shape).activations
    assert abs(extrapolated - exact) <= 0.01 * exact


def test_parameters_weights_and_optimizer_state_count_what_trains() -> None:
    config = SclSltConfig.from_preset("tiny")
    real = SclSltForSignTranslation(config)
    memory = estimate_step_memory(
        build_stage_model(config, get_stage("reference")), get_stage("reference"), StepShape(2, 8, 32, 6)
    )
    assert memory.total_parameters == sum(p.numel() for p in real.parameters())
    assert memory.trainable_parameters == sum(p.numel() for p in real.parameters() if p.requires_grad)
    decoder = sum(
        p.numel() for name, p in real.named_parameters() if name.startswith(("decoder.", "lm_head"))
    )
    assert memory.updated_parameters == memory.trainable_parameters - decoder  # no decoder loss here
    assert memory.gradients == 4 * memory.updated_parameters and memory.optimizer == 2 * memory.gradients
    assert memory.weights == 4 * memory.total_parameters + sum(
        b.numel() * b.element_size() for b in real.buffers()
    )


def test_the_vocabulary_comes_from_a_tokenizer_on_disk_else_from_the_preset(tmp_path: Path) -> None:
    tokenizer = train_tokenizer(
        ["rain in the north", "sun in the south"], tgt_lang="en_XX", model="wordlevel"
    )
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    config = RecipeConfig.from_yaml(PHOENIX, {"model.tokenizer": str(tmp_path / "tokenizer")})
    size, note = plan_vocabulary(config)
    assert size == len(tokenizer) and f"the tokenizer {tmp_path / 'tokenizer'}" in note
    size, note = plan_vocabulary(
        RecipeConfig.from_yaml(PHOENIX, {"model.tokenizer": "nobody/no-such-tokenizer"})
    )
    assert size == 250054 and "is not on disk" in note and "upper bounds" in note
    size, note = plan_vocabulary(RecipeConfig.from_yaml(PHOENIX), run_dir=tmp_path)  # a run's own tokenizer
    assert size == len(tokenizer) and "the run's tokenizer" in note


def test_times_come_from_a_measured_device_only() -> None:
    config = RecipeConfig.from_yaml(PHOENIX)
    lines = time_estimate(config, PlanDevice("gpu", 2, 80 * GIB, "h100", "bf16"))
    assert lines[0].startswith("NVIDIA H100 80GB HBM3: 1,243 frames/s measured") and "× 2 GPUs" in lines[0]
    assert "one epoch (7,096 clips" in lines[1] and "translate 200 epochs" in lines[1]
    assert time_estimate(config, PlanDevice("gpu", 1, 24 * GIB, "RTX 4090", "bf16"))[0].startswith(
        "no estimate"
    )
    assert time_estimate(config, PlanDevice("cpu"))[0].startswith("no estimate")


# --- scl-slt train ------------------------------------------------------------------------------------
def test_train_prints_the_plan_and_refuses_a_run_that_cannot_fit(
    small_config_file: Path,
    peaks: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = RecipeConfig.from_yaml(small_config_file)
    printed: list[str] = []
    monkeypatch.setattr(plan_module, "local_device", lambda precision: PlanDevice("cpu"))
    check_run_fits(config, "small.yaml", report=printed.append)  # memory unknown: printed, not refused
    assert "verdict: memory not checked" in printed[0] and " reference " in printed[0]
    memory = int(float(gpu_memory_for((peaks["configured"] + peaks["checkpointing"]) / 2)) * GIB)
    monkeypatch.setattr(plan_module, "local_device", lambda precision: PlanDevice("gpu", 1, memory, "a GPU"))
    with pytest.raises(
        ConfigError, match=r"^small\.yaml: the run cannot fit: does not fit 1 GPU of "
    ) as error:
        check_run_fits(config, "small.yaml", report=printed.append)
    assert "; set model.overrides.backbone_chunk_size=32" in str(error.value) and "\n" not in str(error.value)
    run_dir = tmp_path / "run"
    assert main(["train", str(small_config_file), "--output-dir", str(run_dir)]) == 2
    assert one_error_line(capsys).startswith(f"scl-slt train: error: {small_config_file}: the run cannot fit")
    assert not run_dir.exists(), "refused before any work"


def test_the_compact_plan_has_one_row_per_stage(small_config_file: Path) -> None:
    plan = make_plan(RecipeConfig.from_yaml(small_config_file), PlanDevice("gpu", 1, GIB), knob_rows=False)
    text = format_plan(plan, compact=True)
    rows = [
        line.split()[0] for line in text.splitlines() if line.startswith("  ") and line.split()[-1] == "yes"
    ]
    assert rows == ["reference", "scl", "translate"]
    assert plan.fits is True and text.count("verdict: fits 1 GPU of 1 GiB") == 1
    assert torch.get_default_device().type == "cpu"  # building meta models leaves the default alone
