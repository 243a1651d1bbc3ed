"""LoRA through peft: the paper's targets, what trains, training, saving/loading and merging."""

from __future__ import annotations

import json
import textwrap

import peft
import pytest
import torch

from modeling_scl_slt import SclSltForSignTranslation
from tests._isolation import run_without_project
from tests.test_trainer import SENTENCES, make_trainer
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer
from trainers.training.lora import apply_lora, lora_module_names, paper_lora_config

LAYERS = 2  # two layers per stack, so that the regex's layer index is exercised


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


def tiny_model(tokenizer) -> SclSltForSignTranslation:
    torch.manual_seed(0)
    config = config_for_tokenizer(
        "tiny", tokenizer, "en_XX", text_config={"encoder_layers": LAYERS, "decoder_layers": LAYERS}
    )
    return SclSltForSignTranslation(config)


def video_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    return {"pixel_values": torch.randn(2, 12, 3, 32, 32, generator=generator), "attention_mask": mask}


def randomize_adapter(model: peft.PeftModel) -> None:
    """LoRA B starts at zero (a no-op adapter): give it and the saved modules values to compare."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))


@torch.no_grad()
def decoder_logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    decoder_input_ids = torch.tensor([[4, 5, 6, 7], [4, 8, 9, 10]])
    return model(**inputs, decoder_input_ids=decoder_input_ids).logits  # (2, 4, V)


def test_lora_targets_exactly_the_attention_projections(tokenizer) -> None:
    lora = apply_lora(tiny_model(tokenizer))
    projections = ("q_proj", "k_proj", "v_proj", "out_proj")
    expected = {
        f"video_encoder.visual_encoder.layers.{i}.self_attn.{p}" for i in range(LAYERS) for p in projections
    }
    expected |= {
        f"decoder.layers.{i}.{attention}.{p}"
        for i in range(LAYERS)
        for attention in ("self_attn", "encoder_attn")
        for p in projections
    }
    assert lora_module_names(lora) == expected
    config = lora.peft_config["default"]
    assert config.task_type == "SEQ_2_SEQ_LM" and config.r == 16 and config.lora_alpha == 32


def trainable_names(model: torch.nn.Module) -> set[str]:
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


@pytest.mark.parametrize("train_backbone", [True, False])
def test_trainable_parameters_are_lora_and_the_documented_modules(tokenizer, train_backbone) -> None:
    lora = apply_lora(tiny_model(tokenizer), paper_lora_config(train_backbone=train_backbone))
    names = trainable_names(lora)
    saved_modules = {name.split(".modules_to_save.")[0] for name in names if ".modules_to_save." in name}
    expected_modules = {"video_encoder.temporal", "video_projection", "text_projection", "logit_scale"}
    if train_backbone:
        expected_modules.add("video_encoder.backbone")
    assert saved_modules == {f"base_model.model.{module}" for module in expected_modules}
    others = {name for name in names if ".modules_to_save." not in name}
    assert others and all(".lora_A." in name or ".lora_B." in name for name in others)
    assert not any("text_encoder" in name for name in names)
    base = lora.get_base_model()
    assert not any(p.requires_grad for p in base.text_encoder.parameters())


def test_translation_only_model_skips_the_missing_projections(tokenizer) -> None:
    model = tiny_model(tokenizer)
    model.drop_text_branch()  # stage 2: no text encoder, projections or logit scale
    names = trainable_names(apply_lora(model))
    saved_modules = {name.split(".modules_to_save.")[0] for name in names if ".modules_to_save." in name}
    assert saved_modules == {
        "base_model.model.video_encoder.temporal",
        "base_model.model.video_encoder.backbone",
    }


@pytest.mark.parametrize("stage", ["scl", "translate"])
def test_training_moves_lora_weights_only(tmp_path, tokenizer, stage) -> None:
    lora = apply_lora(tiny_model(tokenizer))
    base = lora.get_base_model()
    attention = base.decoder.layers[0].encoder_attn.q_proj
    temporal = base.video_encoder.temporal  # a peft ModulesToSaveWrapper: original + trained copy
    frozen_before = {
        "attention": attention.base_layer.weight.detach().clone(),
        "text_encoder": base.text_encoder.layers[0].fc1.weight.detach().clone(),
        "temporal_original": temporal.original_module.blocks[0].conv.weight.detach().clone(),
    }
    temporal_before = temporal.modules_to_save["default"].blocks[0].conv.weight.detach().clone()
    trainer = make_trainer(tmp_path, tokenizer, model=lora, stage=stage, learning_rate=1e-2, max_steps=1)
    trainer.pair_selection_scores = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    trainer.train()

    visual_attention = base.video_encoder.visual_encoder.layers[0].self_attn.v_proj
    for layer in (attention, visual_attention):
        assert layer.lora_B["default"].weight.abs().sum() > 0, "LoRA B stayed at its zero init"
    assert torch.equal(frozen_before["attention"], attention.base_layer.weight)
    assert torch.equal(frozen_before["text_encoder"], base.text_encoder.layers[0].fc1.weight)
    assert torch.equal(frozen_before["temporal_original"], temporal.original_module.blocks[0].conv.weight)
    assert not torch.equal(temporal_before, temporal.modules_to_save["default"].blocks[0].conv.weight)


def saved_adapter(tmp_path, tokenizer) -> tuple[peft.PeftModel, str]:
    """A LoRA model (non-trivial adapter) whose base and adapter folders are saved; the adapter path."""
    model = tiny_model(tokenizer)
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    model.save_pretrained(base_dir)  # before peft injects its layers into the model
    lora = apply_lora(model).eval()
    randomize_adapter(lora)
    lora.peft_config["default"].base_model_name_or_path = str(base_dir)
    lora.save_pretrained(adapter_dir)
    return lora, str(adapter_dir)


# Runs in a fresh interpreter that cannot import the project: the adapter loads through the
# base folder's remote code, offline, the way a Hub user would load it.
LOADER = textwrap.dedent(
    """
    import sys
    import torch
    from peft import AutoPeftModelForSeq2SeqLM

    adapter_dir, inputs_path, output_path = sys.argv[1:]
    inputs = torch.load(inputs_path)
    model = AutoPeftModelForSeq2SeqLM.from_pretrained(adapter_dir, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(**inputs["video"], decoder_input_ids=inputs["decoder_input_ids"]).logits
        generated = model.generate(**inputs["video"], max_new_tokens=5)
    torch.save({"logits": logits, "generated": generated, "class": type(model.get_base_model()).__module__},
               output_path)
    """
)


def test_adapter_saves_and_loads_with_auto_peft_model(tmp_path, tokenizer) -> None:
    lora, adapter_dir = saved_adapter(tmp_path, tokenizer)
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["task_type"] == "SEQ_2_SEQ_LM"
    assert adapter_config["base_model_name_or_path"] == str(tmp_path / "base")
    inputs = video_inputs()
    expected_logits = decoder_logits(lora, inputs)
    expected_ids = lora.generate(**inputs, max_new_tokens=5)

    loaded = peft.AutoPeftModelForSeq2SeqLM.from_pretrained(adapter_dir, trust_remote_code=True).eval()
    assert torch.allclose(decoder_logits(loaded, inputs), expected_logits, atol=1e-6)
    assert torch.equal(loaded.generate(**inputs, max_new_tokens=5), expected_ids)
    # The adapter changes the output: the comparison is not one of two plain base models.
    with lora.disable_adapter():
        assert not torch.allclose(decoder_logits(lora, inputs), expected_logits, atol=1e-3)

    decoder_input_ids = torch.tensor([[4, 5, 6, 7], [4, 8, 9, 10]])
    torch.save({"video": inputs, "decoder_input_ids": decoder_input_ids}, tmp_path / "inputs.pt")
    result = run_without_project(
        LOADER,
        adapter_dir,
        str(tmp_path / "inputs.pt"),
        str(tmp_path / "out.pt"),
        workdir=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = torch.load(tmp_path / "out.pt")
    assert fresh["class"].startswith("transformers_modules.")
    assert torch.allclose(fresh["logits"], expected_logits, atol=1e-6)
    assert torch.equal(fresh["generated"], expected_ids)


def test_merge_and_unload_gives_the_adapter_outputs(tokenizer) -> None:
    lora = apply_lora(tiny_model(tokenizer)).eval()
    randomize_adapter(lora)
    inputs = video_inputs()
    expected = decoder_logits(lora, inputs)
    merged = lora.merge_and_unload()
    assert isinstance(merged, SclSltForSignTranslation)
    assert not any(isinstance(m, peft.tuners.lora.LoraLayer) for m in merged.modules())
    assert torch.allclose(decoder_logits(merged, inputs), expected, atol=1e-5)


def test_logit_scale_and_cls_token_train_and_travel_with_the_adapter(tmp_path, tokenizer) -> None:
    torch.manual_seed(0)
    config = config_for_tokenizer("tiny", tokenizer, "en_XX", similarity_aggregation="cls")
    model = SclSltForSignTranslation(config)
    model.save_pretrained(tmp_path / "base")
    lora = apply_lora(model)
    trainer = make_trainer(tmp_path, tokenizer, model=lora, stage="scl", learning_rate=1e-2, max_steps=2)
    trainer.pair_selection_scores = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    base = lora.get_base_model()
    scale_before = float(base.logit_scale.modules_to_save["default"]())
    token_before = base.video_encoder.cls_token.modules_to_save["default"].embedding.detach().clone()
    trainer.train()

    trained_scale = base.logit_scale.modules_to_save["default"]()
    trained_token = base.video_encoder.cls_token.modules_to_save["default"].embedding
    assert float(trained_scale) != pytest.approx(scale_before, abs=1e-6)
    assert not torch.equal(trained_token, token_before)

    lora.peft_config["default"].base_model_name_or_path = str(tmp_path / "base")
    lora.save_pretrained(tmp_path / "adapter")
    loaded = peft.AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "adapter", trust_remote_code=True)
    merged = loaded.merge_and_unload()
    assert float(merged.logit_scale()) == pytest.approx(float(trained_scale), abs=1e-6)
    assert torch.allclose(merged.video_encoder.cls_token.embedding, trained_token, atol=1e-6)
