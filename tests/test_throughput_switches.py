"""The speed switches change speed, never results.

Switches: ``SclSltConfig.backbone_channels_last`` (NHWC backbone: refused for CPU training, its
forward compared), the Trainer's ``optim`` (fused or plain AdamW),
``SclSltTrainingArguments.cudnn_benchmark`` and ``backbone_compile``. Each one on is
compared with it off on one training step of a tiny model (loss, every gradient and buffer, or the
parameters after an optimiser step, within float tolerance). Also: the recipe's ``auto`` for each,
on a CPU and with CUDA availability mocked, and the validation of the new recipe fields.

What is not tested here, honestly: ``torch.compile`` with its default backend (inductor) takes about
a minute per compilation on the CPU box, so the results test compiles with the ``eager`` backend
(Dynamo's graph capture and guards, no code generation); the Trainer's compile is tested for its
wiring. cuDNN does not run on a CPU: only the flag is tested. The GPU effect of every switch is
measured by ``python -m benchmarks.speed_switches --device cuda``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers.models.resnet.modeling_resnet import ResNetModel

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from tests.test_memory_knobs import assert_same_step, knob_model, training_step
from tests.test_trainer import SENTENCES, make_trainer, tiny_model, trainable_state
from trainers.application.recipe_config import ConfigError, RecipeConfig
from trainers.application.run_paths import RunPaths
from trainers.application.stage_arguments import (
    device_arguments,
    resolved_channels_last,
    resolved_cudnn_benchmark,
    resolved_optimizer,
    stage_arguments,
)
from trainers.application.tokenization import train_tokenizer
from trainers.training.speed_switches import (
    UnsoundKernelError,
    compile_backbones,
    has_channels_last_convolutions,
)

CHANNELS_LAST = torch.channels_last


def conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p for name, p in model.named_parameters() if "backbone" in name and p.dim() == 4]


@pytest.fixture
def tokenizer():
    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


# --- channels_last ------------------------------------------------------------------------------
def test_training_a_channels_last_backbone_on_a_cpu_is_refused_in_one_line(tmp_path: Path, tokenizer) -> None:
    """torch's CPU NHWC convolution backward is wrong on some processors, intermittently: a probe
    passed on a CPU whose next NHWC training step had a gradient 3·10⁶ × NCHW's error off."""
    nhwc = tiny_model(tokenizer, freeze_batch_norm=True, backbone_channels_last=True)
    assert has_channels_last_convolutions(nhwc)
    with pytest.raises(UnsoundKernelError) as refused:
        make_trainer(tmp_path, tokenizer, model=nhwc)
    assert str(refused.value) == (
        "model.backbone_channels_last: training a channels_last (NHWC) backbone on a CPU is refused: "
        f"torch {torch.__version__}'s NHWC convolution backward gives wrong gradients on some CPUs, "
        "intermittently; set model.backbone_channels_last to false, or auto (channels_last on a GPU only)"
    )
    plain = tiny_model(tokenizer, freeze_batch_norm=True)
    assert not has_channels_last_convolutions(plain)
    make_trainer(tmp_path, tokenizer, model=plain)  # NCHW trains


def test_a_channels_last_backbone_still_runs_inference_on_a_cpu() -> None:
    nhwc, plain = knob_model(backbone_channels_last=True).eval(), knob_model().eval()
    assert all(w.is_contiguous(memory_format=CHANNELS_LAST) for w in conv_weights(nhwc))
    pixels = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 4, dtype=torch.long)
    with torch.no_grad():
        found = nhwc.get_frame_features(pixels, mask)
        expected = plain.get_frame_features(pixels, mask)
    # the forward is not the defect: the same features as NCHW, to float32 summation order
    scale = expected.abs().max()
    assert (found - expected).abs().max() <= 1e-4 * scale, float((found - expected).abs().max() / scale)


def test_channels_last_survives_save_and_load_and_can_be_switched(tmp_path: Path) -> None:
    model = knob_model(backbone_channels_last=True)
    model.save_pretrained(tmp_path)
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path)
    assert loaded.config.backbone_channels_last is True
    assert all(w.is_contiguous(memory_format=CHANNELS_LAST) for w in conv_weights(loaded))
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    loaded.config.backbone_channels_last = False
    loaded.video_encoder.apply_backbone_memory_format()
    assert all(w.is_contiguous() for w in conv_weights(loaded))
    assert SclSltConfig.from_dict(SclSltConfig.from_preset("tiny").to_dict()).backbone_channels_last is False


@pytest.mark.parametrize("value", [1, "true", None])
def test_a_channels_last_that_is_no_bool_gives_one_clear_error(value: object) -> None:
    with pytest.raises(ValueError, match=f"^backbone_channels_last must be True or False, got {value!r}$"):
        SclSltConfig.from_preset("tiny", backbone_channels_last=value)


# --- torch.compile of the backbone --------------------------------------------------------------
def test_a_compiled_backbone_keeps_results_and_the_saved_model(tmp_path: Path) -> None:
    expected = training_step(knob_model())
    model = knob_model()
    plain_keys = list(model.state_dict())
    assert compile_backbones(model, backend="eager") == 1
    assert_same_step(expected, training_step(model))
    assert list(model.state_dict()) == plain_keys  # compiled in place: no _orig_mod prefixes
    model.save_pretrained(tmp_path)
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_the_trainer_compiles_the_backbone_only_when_asked(tmp_path: Path, tokenizer, monkeypatch) -> None:
    compiled: list[torch.nn.Module] = []
    monkeypatch.setattr(ResNetModel, "compile", lambda self, **kwargs: compiled.append(self))
    model = tiny_model(tokenizer)
    make_trainer(tmp_path, tokenizer, model=model)
    assert compiled == []
    make_trainer(tmp_path, tokenizer, model=model, backbone_compile=True)
    assert compiled == [model.video_encoder.backbone]


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft calls a transformers name renamed in 5.24
def test_compile_reaches_the_backbone_under_lora(tokenizer) -> None:
    from trainers.training.lora import apply_lora, paper_lora_config

    wrapped = apply_lora(tiny_model(tokenizer), paper_lora_config(r=2, alpha=4))
    # the frozen original and peft's trainable copy; whichever runs is compiled
    assert compile_backbones(wrapped, backend="eager") == 2


# --- cuDNN autotuning -----------------------------------------------------------------------------
def test_the_trainer_sets_cudnn_benchmark_only_when_asked(tmp_path: Path, tokenizer, monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    make_trainer(tmp_path, tokenizer)
    assert torch.backends.cudnn.benchmark is False
    make_trainer(tmp_path, tokenizer, cudnn_benchmark=True)
    assert torch.backends.cudnn.benchmark is True


# --- fused vs plain AdamW -----------------------------------------------------------------------
def one_adamw_step(tmp_path: Path, tokenizer, optim: str) -> dict[str, Any]:
    """Parameters after one real Trainer step (translation + selective contrastive loss, AdamW)."""
    model = tiny_model(tokenizer, freeze_batch_norm=True)
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        model=model,
        augment=False,  # the same pixels in every run
        stage="scl",
        batch_sampler="random",
        optim=optim,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        max_steps=1,
        data_seed=0,
    )
    trainer.train()
    assert trainer.optimizer.defaults.get("fused") is (True if optim == "adamw_torch_fused" else None)
    return trainable_state(model)


def test_fused_and_plain_adamw_give_the_same_update(tmp_path: Path, tokenizer) -> None:
    initial = trainable_state(tiny_model(tokenizer, freeze_batch_norm=True))
    plain = one_adamw_step(tmp_path, tokenizer, "adamw_torch")
    assert any(not torch.equal(plain[name], value) for name, value in initial.items())
    fused = one_adamw_step(tmp_path, tokenizer, "adamw_torch_fused")
    for name, value in plain.items():
        torch.testing.assert_close(fused[name], value, msg=lambda message, name=name: f"{name}: {message}")


# --- the recipe: auto resolution and validation -----------------------------------------------------
@pytest.mark.parametrize("cuda", [False, True], ids=["cpu", "mocked-cuda"])
def test_auto_switches_resolve_by_cuda_availability(monkeypatch, cuda: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: cuda)
    # fused AdamW on both: torch has fused kernels for CUDA and the CPU (the Trainer's default too)
    assert resolved_optimizer("auto") == "adamw_torch_fused"
    assert resolved_cudnn_benchmark("auto") is cuda
    assert resolved_channels_last("auto") is cuda
    arguments = device_arguments(RecipeConfig())
    assert arguments["optim"] == "adamw_torch_fused"
    assert arguments["cudnn_benchmark"] is cuda and arguments["backbone_compile"] is False
    explicit = device_arguments(
        RecipeConfig(optimizer="adamw_torch", cudnn_benchmark=False, backbone_compile=True)
    )
    assert (explicit["optim"], explicit["cudnn_benchmark"], explicit["backbone_compile"]) == (
        "adamw_torch",
        False,
        True,
    )
    assert resolved_channels_last(False) is False and resolved_channels_last(True) is True


def test_stage_arguments_carry_the_switches(tmp_path: Path) -> None:
    config = RecipeConfig(optimizer="adamw_torch", cudnn_benchmark=True, backbone_compile=True)
    args = stage_arguments("scl", config, RunPaths(tmp_path / "run"), num_train=8)
    assert (args.optim, args.cudnn_benchmark, args.backbone_compile) == ("adamw_torch", True, True)
    defaults = stage_arguments("scl", RecipeConfig(), RunPaths(tmp_path / "run"), num_train=8)
    assert (defaults.optim, defaults.cudnn_benchmark, defaults.backbone_compile) == (
        "adamw_torch_fused",
        False,  # auto, on this CPU
        False,
    )


def test_the_switch_defaults_are_auto_and_off() -> None:
    config = RecipeConfig()
    assert (config.optimizer, config.cudnn_benchmark, config.backbone_compile) == ("auto", "auto", False)
    assert config.model.backbone_channels_last == "auto"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("optimizer", "sgd", "optimizer: 'sgd' is not one of ['auto', 'adamw_torch', 'adamw_torch_fused']"),
        ("cudnn_benchmark", "yes", "cudnn_benchmark: expected bool or one of ['auto'], got 'yes'"),
        ("backbone_compile", "auto", "backbone_compile: expected bool, got 'auto'"),
        ("model.backbone_channels_last", 1, "model.backbone_channels_last: expected bool or one of ['auto']"),
        (
            "model.overrides",
            {"backbone_channels_last": True},
            "model.overrides.backbone_channels_last: set model.backbone_channels_last instead",
        ),
    ],
)
def test_bad_switch_values_are_one_clear_error(tmp_path: Path, key: str, value: Any, message: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        RecipeConfig.from_yaml(path, {key: value})
    assert str(error.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"optimizer": "adamw_torch"},
        {"cudnn_benchmark": True},
        {"backbone_compile": True},
        {"model.backbone_channels_last": False},
    ],
    ids=str,
)
def test_good_switch_values_are_accepted(tmp_path: Path, overrides: dict[str, Any]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("{}\n", encoding="utf-8")
    config = RecipeConfig.from_yaml(path, overrides)
    for key, value in overrides.items():
        section, _, name = key.rpartition(".")
        assert getattr(getattr(config, section) if section else config, name) == value


# --- the benchmark's --switches mode ---------------------------------------------------------------
def test_the_switches_benchmark_writes_one_document(tmp_path: Path) -> None:
    from benchmarks import speed_switches

    output = tmp_path / "switches.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        speed_switches.main(
            [
                *("--switch-model", "small", "--switch-image-size", "16"),
                *("--switch-frame-counts", "8,4", "--switch-variants", "plain,ours,channels_last on"),
                *("--large-batch-model", "small", "--large-batch-size", "3"),
                *("--large-batch-frame-counts", "4"),
                *("--repeats", "1", "--warmup", "0", "--output", str(output), "--in-process"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    document = json.loads(output.read_text(encoding="utf-8"))
    steps = [r for r in document["records"] if r["measure"] == "switches"]
    assert [(r["part"], r["variant"]) for r in steps] == [
        ("switches", "plain"),
        ("switches", "ours"),
        ("switches", "channels_last on"),
        ("large batch", "plain"),
        ("large batch", "ours"),
    ]
    plain, ours = steps[0], steps[1]
    assert (plain["cnn_frames"], ours["cnn_frames"], ours["real_frames"]) == (16, 12, 12)
    optimizers = (plain["switches"]["optimizer"], ours["switches"]["optimizer"])
    assert optimizers == ("adamw_torch", "adamw_torch_fused")
    assert steps[3]["frame_counts"] == [4, 4, 4] and {r["model"] for r in steps} == {"small"}
    assert plain["speedup_vs_plain"] == 1.0 and ours["time_vs_ours"] == 1.0
    assert all(r["step_peak_mib_above_start_max"] >= 0 and r["step_s_median"] > 0 for r in steps)
