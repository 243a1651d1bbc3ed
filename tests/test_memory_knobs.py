"""The memory knobs change memory and speed, never results.

Each knob is compared with the plain model on one training step of a tiny model (dropout on, a
padded batch of clips of different lengths): loss, every gradient and every buffer (BatchNorm
running statistics) must agree within floating-point tolerance. Saved-for-backward bytes and
backbone calls show that each knob really did something. Also: the recipe's ``auto`` precision and
loader-worker count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from tests.test_modeling import video_batch
from tests.test_trainer import SENTENCES, make_trainer, tiny_model, trainable_state
from trainers.application.recipe_config import ConfigError, RecipeConfig
from trainers.application.stage_arguments import device_arguments, resolved_num_workers
from trainers.application.tokenization import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = [20, 13, 9]  # 42 real frames, padded to 20 each
LABELS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100], [11, 12, 13, 2, -100]])
TEXT_IDS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 1, 1], [11, 12, 13, 2, 1]])
# Chunks sum the weight gradients in another order; observed differences are ~1e-7.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}  # chunk-wise recomputation reorders float sums (1 ulp seen)
PLAIN = {"backbone_inplace_relu": False}


def knob_model(gradient_checkpointing: bool = False, **overrides: Any) -> SclSltForSignTranslation:
    """The tiny preset with dropout (so that recomputation must replay the random masks) and a
    trainable text encoder (so that all three mBART stacks train); ``gradient_checkpointing`` turns
    on transformers' switch, as the Trainer does."""
    torch.manual_seed(0)
    config = SclSltConfig.from_preset(
        "tiny",
        text_config={"dropout": 0.1, "attention_dropout": 0.1},
        freeze_text_encoder=False,
        **overrides,
    )
    model = SclSltForSignTranslation(config).train()
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def training_step(model: SclSltForSignTranslation, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Forward + backward of translation + contrastive loss; what it gave and kept for backward.
    ``dtype``: the pixels' (float64 for a model made double as a reference)."""
    pixels, mask = video_batch(LENGTHS)
    pixels = pixels.to(dtype)
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    torch.manual_seed(1)  # the same dropout masks in every run
    # Outside checkpointed regions only: checkpointing installs its own hooks inside them.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
    loss = out.loss - out.similarity_per_video.diag().mean() - out.similarity_per_text.diag().mean()
    loss.backward()
    return {
        "loss": loss.detach(),
        "grads": {name: p.grad for name, p in model.named_parameters() if p.grad is not None},
        "buffers": {name: b.clone() for name, b in model.named_buffers()},
        "saved_bytes": sum(saved.values()),
    }


def assert_close_named(actual: torch.Tensor, expected: torch.Tensor, name: str) -> None:
    torch.testing.assert_close(actual, expected, **TOLERANCE, msg=lambda message: f"{name}: {message}")


def assert_same_step(
    expected: dict[str, Any],
    actual: dict[str, Any],
    assert_close: Callable[[torch.Tensor, torch.Tensor, str], None] = assert_close_named,
) -> None:
    """The loss, every gradient and every buffer of two steps agree, by ``assert_close``."""
    assert_close(actual["loss"], expected["loss"], "loss")
    assert actual["grads"].keys() == expected["grads"].keys()
    for kind in ("grads", "buffers"):
        for name, value in expected[kind].items():
            assert_close(actual[kind][name], value, name)


def backbone_calls(model: SclSltForSignTranslation) -> list[int]:
    """Frames per backbone call, recorded from now on.

    A pre-hook: checkpointing stops a recomputation as soon as it has what backward needs, before
    the backbone's forward returns (forward hooks would not see it).
    """
    calls: list[int] = []
    model.video_encoder.backbone.register_forward_pre_hook(lambda _m, inputs: calls.append(len(inputs[0])))
    return calls


# --- in-place ReLUs ---------------------------------------------------------------------------
def test_inplace_relus_keep_losses_gradients_and_statistics() -> None:
    plain, inplace = knob_model(**PLAIN), knob_model()  # training-mode BatchNorm
    relus = [m for m in inplace.video_encoder.backbone.modules() if isinstance(m, nn.ReLU)]
    assert relus and all(m.inplace for m in relus)
    assert not any(m.inplace for m in plain.modules() if isinstance(m, nn.ReLU))
    assert_same_step(training_step(plain), training_step(inplace))


# --- backbone chunks and checkpointing --------------------------------------------------------
@pytest.mark.parametrize(
    "knobs",
    [
        {"backbone_chunk_size": 5},
        {"backbone_chunk_size": 64},  # larger than the batch: one chunk
        {"gradient_checkpointing": True},
        {"backbone_chunk_size": 5, "gradient_checkpointing": True},
        {"backbone_chunk_size": 1, "gradient_checkpointing": True},
    ],
    ids=str,
)
def test_backbone_chunks_and_checkpointing_keep_results(knobs: dict[str, Any]) -> None:
    expected = training_step(knob_model(**PLAIN, freeze_batch_norm=True))
    model = knob_model(**knobs, freeze_batch_norm=True)
    calls = backbone_calls(model)
    actual = training_step(model)
    assert_same_step(expected, actual)
    chunk = min(knobs.get("backbone_chunk_size") or 42, 42)
    sizes = [chunk] * (42 // chunk) + ([42 % chunk] if 42 % chunk else [])
    assert calls[: len(sizes)] == sizes
    # Checkpointing runs every chunk once more in backward (in whatever order backward reaches them).
    assert sorted(calls[len(sizes) :]) == (sorted(sizes) if knobs.get("gradient_checkpointing") else [])
    if knobs.get("gradient_checkpointing"):
        assert actual["saved_bytes"] < expected["saved_bytes"]


def test_chunks_and_checkpointing_refuse_training_mode_batch_norm() -> None:
    for knobs in ({"backbone_chunk_size": 4}, {"gradient_checkpointing": True}):
        with pytest.raises(ValueError, match=r"set freeze_batch_norm=True") as error:
            training_step(knob_model(**knobs))
        assert str(error.value).count(". ") == 0, "one sentence"


def test_chunks_in_inference_need_no_frozen_batch_norm() -> None:
    pixels, mask = video_batch(LENGTHS)
    plain, chunked = knob_model().eval(), knob_model(backbone_chunk_size=4).eval()
    with torch.no_grad():
        expected = plain.get_encoder()(pixels, mask).last_hidden_state
        chunked.config.backbone_chunk_size = None  # read at every call: the same weights unchunked
        assert torch.equal(chunked.get_encoder()(pixels, mask).last_hidden_state, expected)
        chunked.config.backbone_chunk_size = 4
        chunks = chunked.get_encoder()(pixels, mask).last_hidden_state
        torch.testing.assert_close(chunks, expected, **TOLERANCE)


def test_backbone_checkpointing_ignores_reentrant_kwargs() -> None:
    """Reentrant checkpointing would leave the backbone without gradients (its frames need none)."""
    expected = training_step(knob_model(**PLAIN, freeze_batch_norm=True))
    model = knob_model(**PLAIN, freeze_batch_norm=True)
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:  # transformers >= 5.24
        enable(activation_checkpointing_kwargs={"use_reentrant": True})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    for module in model.modules():  # the backbone alone
        if module is not model.video_encoder and hasattr(module, "gradient_checkpointing"):
            module.gradient_checkpointing = False
    calls = backbone_calls(model)
    actual = training_step(model)
    assert calls == [42, 42]  # forward, then the recomputation in backward
    assert_same_step(expected, actual)


# --- gradient checkpointing of the mBART stacks -------------------------------------------------
def enable_gradient_checkpointing(model: SclSltForSignTranslation) -> None:
    """What the Trainer calls: ``activation_checkpointing_enable`` since transformers 5.24, before it
    ``gradient_checkpointing_enable`` (now its deprecated alias)."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def checkpointed_modules(model: nn.Module) -> list[str]:
    modules = model.named_modules()
    return [name for name, module in modules if getattr(module, "gradient_checkpointing", False)]


def test_gradient_checkpointing_of_the_mbart_stacks_keeps_results() -> None:
    """Training-mode BatchNorm: the backbone's switch is turned back off, as its refusal advises."""
    expected = training_step(knob_model())
    model = knob_model()
    assert model.supports_gradient_checkpointing
    enable_gradient_checkpointing(model)
    assert model.video_encoder.gradient_checkpointing
    model.video_encoder.gradient_checkpointing = False
    layers = {name for name in checkpointed_modules(model) if ".layers." in name}
    assert layers == {"video_encoder.visual_encoder.layers.0", "text_encoder.layers.0", "decoder.layers.0"}
    actual = training_step(model)
    assert_same_step(expected, actual)
    assert actual["saved_bytes"] < expected["saved_bytes"]


def test_all_knobs_together_keep_results() -> None:
    expected = training_step(knob_model(**PLAIN, freeze_batch_norm=True))
    model = knob_model(backbone_chunk_size=8, gradient_checkpointing=True, freeze_batch_norm=True)
    assert_same_step(expected, training_step(model))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # gradient_checkpointing: renamed in transformers 5.24
def test_trainer_gradient_checkpointing_step_equals_the_plain_step(tmp_path) -> None:
    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    states, flags = [], []
    for checkpointing in (False, True):
        model = tiny_model(
            tokenizer,
            text_config={"dropout": 0.1, "attention_dropout": 0.1},
            freeze_text_encoder=False,
            freeze_batch_norm=True,  # the backbone is checkpointed too
        )
        trainer = make_trainer(
            tmp_path,
            tokenizer,
            model=model,
            augment=False,
            stage="scl",
            batch_sampler="random",
            gradient_checkpointing=checkpointing,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            max_steps=1,
            data_seed=0,
        )
        trainer.train()
        states.append(trainable_state(model))
        flags.append(checkpointed_modules(model))
    assert flags[0] == [] and "decoder.layers.0" in flags[1] and "text_encoder.layers.0" in flags[1]
    assert "video_encoder" in flags[1]  # the backbone's switch
    assert any(not torch.equal(states[0][n], trainable_state(tiny_model(tokenizer))[n]) for n in states[0])
    for name, value in states[0].items():
        assert_close_named(states[1][name], value, name)


# --- the config -----------------------------------------------------------------------------
def test_knobs_round_trip_through_save_and_load(tmp_path) -> None:
    knobs = {"backbone_chunk_size": 8, "backbone_inplace_relu": False}
    model = knob_model(**knobs)
    model.save_pretrained(tmp_path)
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path)
    for name, value in knobs.items():
        assert getattr(loaded.config, name) == value
    assert not any(m.inplace for m in loaded.modules() if isinstance(m, nn.ReLU))
    defaults = SclSltConfig.from_dict(SclSltConfig.from_preset("tiny").to_dict())
    assert defaults.backbone_chunk_size is None
    assert defaults.backbone_inplace_relu is True
    assert "backbone_checkpointing" not in defaults.to_dict()  # runtime: gradient_checkpointing_enable()


@pytest.mark.parametrize("value", [0, -3, True, 2.5, "8"])
def test_bad_chunk_sizes_give_one_clear_error(value: object) -> None:
    expected = f"backbone_chunk_size must be a positive number of frames or None, got {value!r}"
    with pytest.raises(ValueError, match="^" + expected.replace(".", r"\.") + "$"):
        SclSltConfig.from_preset("tiny", backbone_chunk_size=value)


# --- the recipe's auto precision and loader workers -----------------------------------------------
def fake_cuda(monkeypatch, available: bool, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)


@pytest.mark.parametrize(
    ("precision", "available", "bf16", "expected"),
    [
        ("auto", True, True, (False, True, False)),
        ("auto", True, False, (False, False, False)),  # e.g. a V100: fp32, not fp16
        ("auto", False, True, (True, False, False)),  # never bf16 on a CPU
        ("fp32", True, True, (False, False, False)),
        ("fp16", True, True, (False, False, True)),
        ("bf16", False, False, (True, True, False)),  # asked for explicitly
    ],
)
def test_precision_auto_is_bf16_only_on_a_gpu_that_supports_it(
    monkeypatch, precision: str, available: bool, bf16: bool, expected: tuple[bool, bool, bool]
) -> None:
    fake_cuda(monkeypatch, available, bf16)
    arguments = device_arguments(RecipeConfig(precision=precision))
    assert (arguments["use_cpu"], arguments["bf16"], arguments["fp16"]) == expected


@pytest.mark.parametrize(
    ("cores", "local_processes", "expected"),
    [(16, None, 8), (64, None, 8), (2, None, 1), (1, None, 0), (16, "4", 3), (8, "8", 0)],
)
def test_num_workers_auto_leaves_each_process_a_core(
    monkeypatch, cores: int, local_processes: str | None, expected: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    if local_processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    assert resolved_num_workers("auto") == expected
    assert device_arguments(RecipeConfig(num_workers="auto"))["dataloader_num_workers"] == expected
    assert device_arguments(RecipeConfig(num_workers=5))["dataloader_num_workers"] == 5


@pytest.mark.parametrize("name", ["phoenix2014t", "csl_daily"])
def test_paper_configs_pick_auto_and_stay_overridable(monkeypatch, name: str) -> None:
    path = ROOT / "configs" / f"{name}.yaml"
    config = RecipeConfig.from_yaml(path)
    assert (config.precision, config.num_workers) == ("auto", "auto")
    fake_cuda(monkeypatch, available=False, bf16=False)
    assert device_arguments(config)["bf16"] is False
    overridden = RecipeConfig.from_yaml(path, {"precision": "fp32", "num_workers": 4})
    assert (overridden.precision, overridden.num_workers) == ("fp32", 4)
    for key, value in (("precision", "fast"), ("num_workers", "many"), ("num_workers", -1)):
        with pytest.raises(ConfigError, match=key):
            RecipeConfig.from_yaml(path, {key: value})


# --- the benchmark's side-by-side mode ------------------------------------------------------------
def test_the_benchmark_compares_the_knobs(tmp_path) -> None:
    from benchmarks import training_throughput
    from benchmarks.harness import read_records

    output = tmp_path / "knobs.jsonl"
    training_throughput.main(
        [
            *("--memory-knobs", "--frames", "8", "--short-frames", "4", "--knob-image-size", "32"),
            *("--knob-chunk-size", "4", "--repeats", "1", "--warmup", "0", "--output", str(output)),
        ]
    )
    records = {(r["mode"], r["variant"]): r for r in read_records(output)}
    inference = "forward (no_grad)"
    assert len(records) == 8 and all(r["step_s_median"] > 0 for r in records.values())
    kept = {name: r["kept_for_backward_mib"] for (mode, name), r in records.items() if mode != inference}
    assert kept["chunked+checkpointing"] < kept["chunked"] == kept["plain"]
