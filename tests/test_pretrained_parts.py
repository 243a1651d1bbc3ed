"""Building the model from a pretrained ResNet and a pretrained mBART (tiny, saved by the test)."""

from __future__ import annotations

import torch
from transformers import (
    MBartConfig,
    MBartForConditionalGeneration,
    ResNetConfig,
    ResNetForImageClassification,
)

from modeling_scl_slt import SclSltForSignTranslation

TINY_MBART = {
    "vocab_size": 40,
    "d_model": 16,
    "encoder_layers": 2,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 24,
    "decoder_ffn_dim": 24,
    "max_position_embeddings": 64,
    "decoder_start_token_id": 2,
}


def save_tiny_parts(folder) -> tuple[ResNetForImageClassification, MBartForConditionalGeneration]:
    torch.manual_seed(0)
    resnet = ResNetForImageClassification(
        ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic", num_labels=3)
    )
    mbart = MBartForConditionalGeneration(MBartConfig(**TINY_MBART))
    resnet.save_pretrained(folder / "resnet")
    mbart.save_pretrained(folder / "mbart")
    return resnet, mbart


def assert_same_weights(module: torch.nn.Module, reference: dict[str, torch.Tensor], skip: str = "") -> None:
    state = module.state_dict()
    expected = {k: v for k, v in reference.items() if not (skip and k.startswith(skip))}
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


def test_from_pretrained_parts_copies_every_part(tmp_path) -> None:
    resnet, mbart = save_tiny_parts(tmp_path)
    model = SclSltForSignTranslation.from_pretrained_parts(
        backbone=tmp_path / "resnet",
        text_model=tmp_path / "mbart",
        decoder_start_token_id=39,
        tgt_lang="xx_XX",
    )
    assert model.config.tgt_lang == "xx_XX" and model.config.decoder_start_token_id == 39
    assert model.config.text_config.encoder_layers == 2
    assert_same_weights(model.video_encoder.backbone, resnet.resnet.state_dict())
    encoder_state = mbart.model.encoder.state_dict()
    assert_same_weights(model.video_encoder.visual_encoder, encoder_state, skip="embed_tokens")
    assert_same_weights(model.text_encoder, encoder_state)
    assert_same_weights(model.decoder, mbart.model.decoder.state_dict())
    assert torch.equal(model.lm_head.weight, mbart.lm_head.weight)
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_from_pretrained_parts_accepts_models_and_matches_mbart_decoder(tmp_path) -> None:
    resnet, mbart = save_tiny_parts(tmp_path)
    model = SclSltForSignTranslation.from_pretrained_parts(backbone=resnet, text_model=mbart).eval()
    mbart.eval()
    # Fed the same encoder states, our decoder + LM head must reproduce mBART's logits.
    states = torch.randn(1, 6, 16)
    decoder_ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        ours = model(encoder_outputs=(states,), decoder_input_ids=decoder_ids).logits
        theirs = mbart(encoder_outputs=(states,), decoder_input_ids=decoder_ids).logits
    assert torch.allclose(ours, theirs, atol=1e-5)
