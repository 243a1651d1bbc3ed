"""Correctness of SclSltForSignTranslation on tiny configs built through the real config class."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation

D_MODEL = 16
VOCAB = 32
START = 31  # the tiny preset's target-language token


def tiny_model(**overrides: object) -> SclSltForSignTranslation:
    torch.manual_seed(0)
    model = SclSltForSignTranslation(SclSltConfig.from_preset("tiny", **overrides))
    # Spread the output distribution so that greedy/beam decoding produce varied ids.
    with torch.no_grad():
        model.lm_head.weight.normal_(std=1.0)
    return model.eval()


def video_batch(lengths: list[int], size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(len(lengths), max(lengths), 3, size, size, generator=generator)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        pixels[row, length:] = 0.0
    return pixels, mask


LABELS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100]])
TEXT_IDS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 1, 1]])


@pytest.mark.parametrize("aggregation", ["cico", "cls", "mean"])
def test_output_shapes(aggregation: str) -> None:
    model = tiny_model(similarity_aggregation=aggregation)
    pixels, mask = video_batch([20, 13])
    out = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
    extra = 1 if aggregation == "cls" else 0  # the [CLS] token
    tokens = 20 // 4 + extra
    assert out.logits.shape == (2, 5, VOCAB)
    assert out.encoder_last_hidden_state.shape == (2, tokens, D_MODEL)
    assert out.encoder_attention_mask.shape == (2, tokens)
    assert out.encoder_attention_mask.sum(dim=1).tolist() == [5 + extra, 3 + extra]  # floor(13 / 4) = 3
    assert out.video_embeds.shape == (2, tokens, 8)
    assert out.text_embeds.shape == (2, 5, 8)
    assert out.similarity_per_video.shape == (2, 2)
    assert out.similarity_per_text.shape == (2, 2)
    assert torch.allclose(out.video_embeds.norm(dim=-1), torch.ones(2, tokens), atol=1e-5)
    assert out.loss.shape == ()
    if aggregation != "cico":
        assert torch.allclose(out.similarity_per_text, out.similarity_per_video.T)


def test_without_text_inputs_no_contrastive_outputs() -> None:
    model = tiny_model()
    pixels, mask = video_batch([8, 8])
    out = model(pixel_values=pixels, attention_mask=mask, labels=LABELS)
    assert out.similarity_per_video is None and out.text_embeds is None


def test_save_load_round_trip(tmp_path) -> None:
    model = tiny_model()
    pixels, mask = video_batch([16, 9])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
        actual = loaded(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
    assert torch.equal(expected.logits, actual.logits)
    assert torch.equal(expected.similarity_per_text, actual.similarity_per_text)
    for field in ("similarity_aggregation", "projection_dim", "decoder_start_token_id", "tgt_lang"):
        assert getattr(loaded.config, field) == getattr(model.config, field)
    assert loaded.config.text_config.d_model == D_MODEL
    assert loaded.config.backbone_config.hidden_sizes == model.config.backbone_config.hidden_sizes


@pytest.mark.parametrize("aggregation", ["cico", "cls"])
def test_padding_invariance(aggregation: str) -> None:
    model = tiny_model(similarity_aggregation=aggregation)
    lone, lone_mask = video_batch([13], seed=1)
    other, _ = video_batch([24], seed=2)
    batch = torch.zeros(2, 24, 3, 32, 32)
    batch[0], batch[1, :13] = other[0], lone[0]
    batch_mask = torch.zeros(2, 24, dtype=torch.long)
    batch_mask[0], batch_mask[1, :13] = 1, 1
    decoder_ids = torch.tensor([[START, 5, 6, 7]])
    with torch.no_grad():
        alone = model(pixel_values=lone, attention_mask=lone_mask, decoder_input_ids=decoder_ids)
        padded = model(
            pixel_values=batch, attention_mask=batch_mask, decoder_input_ids=decoder_ids.repeat(2, 1)
        )
    tokens = alone.encoder_last_hidden_state.shape[1]
    assert padded.encoder_attention_mask[1].tolist() == [1] * tokens + [0] * (24 // 4 - 13 // 4)
    assert torch.allclose(
        alone.encoder_last_hidden_state[0], padded.encoder_last_hidden_state[1, :tokens], atol=1e-5
    )
    assert torch.allclose(alone.logits[0], padded.logits[1], atol=1e-5)
    generated_alone = model.generate(pixel_values=lone, attention_mask=lone_mask, max_new_tokens=6)
    generated_batch = model.generate(pixel_values=batch, attention_mask=batch_mask, max_new_tokens=6)
    assert torch.equal(generated_alone[0], generated_batch[1, : generated_alone.shape[1]])
    assert len(set(generated_alone[0].tolist())) > 1, "degenerate generation would make this test vacuous"


def test_padding_frames_cost_no_backbone_compute() -> None:
    model = tiny_model()
    seen: list[int] = []
    model.video_encoder.backbone.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].shape[0]))
    pixels, mask = video_batch([20, 8])
    with torch.no_grad():
        model.get_encoder()(pixels, mask)
    assert seen == [28]


def test_loss_finite_and_gradients_reach_every_trained_part() -> None:
    model = tiny_model().train()
    pixels, mask = video_batch([16, 12])
    out = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, text_input_ids=TEXT_IDS)
    contrastive = -(out.similarity_per_video.diag().mean() + out.similarity_per_text.diag().mean())
    assert torch.isfinite(out.loss)
    (out.loss + contrastive).backward()
    parts = {
        "backbone": model.video_encoder.backbone,
        "temporal": model.video_encoder.temporal,
        "visual encoder": model.video_encoder.visual_encoder,
        "decoder": model.decoder,
        "video projection": model.video_projection,
        "text projection": model.text_projection,
    }
    for name, module in parts.items():
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), f"no gradient reaches the {name}"
        assert any(g.abs().sum() > 0 for g in grads), f"zero gradient in the {name}"
    assert all(p.grad is None for p in model.text_encoder.parameters())


def test_text_branch_frozen_by_default(tmp_path) -> None:
    model = tiny_model()
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    model.train()
    assert model.training and not model.text_encoder.training
    model.save_pretrained(tmp_path)
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path)
    assert not any(p.requires_grad for p in loaded.text_encoder.parameters())
    assert all(p.requires_grad for p in loaded.decoder.parameters())
    trainable = tiny_model(freeze_text_encoder=False).train()
    assert (
        all(p.requires_grad for p in trainable.text_encoder.parameters()) and trainable.text_encoder.training
    )


def test_beam_search_returns_requested_sequences() -> None:
    model = tiny_model()
    pixels, mask = video_batch([16, 12])
    generated = model.generate(
        pixel_values=pixels, attention_mask=mask, num_beams=4, num_return_sequences=3, max_new_tokens=5
    )
    assert generated.shape[0] == 6
    assert (generated[:, 0] == START).all(), "decoding must start from the target-language token"
    greedy = model.generate(pixel_values=pixels, attention_mask=mask, max_new_tokens=5)
    assert greedy.shape[0] == 2 and (greedy[:, 0] == START).all()


def test_drop_text_branch_save_and_load(tmp_path) -> None:
    model = tiny_model()
    pixels, mask = video_batch([12, 12])
    model.drop_text_branch()
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert not [k for k in keys if k.startswith(("text_encoder", "text_projection", "video_projection"))]
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path).eval()
    assert loaded.config.use_text_branch is False and loaded.text_encoder is None
    with torch.no_grad():
        assert torch.equal(
            model(pixel_values=pixels, attention_mask=mask, labels=LABELS).logits,
            loaded(pixel_values=pixels, attention_mask=mask, labels=LABELS).logits,
        )
    with pytest.raises(ValueError, match="no text branch"):
        loaded.get_text_features(TEXT_IDS)


def test_loss_with_num_items_in_batch_sums_over_tokens() -> None:
    model = tiny_model()
    pixels, mask = video_batch([8, 8])
    with torch.no_grad():
        mean_loss = model(pixel_values=pixels, attention_mask=mask, labels=LABELS).loss
        summed = model(pixel_values=pixels, attention_mask=mask, labels=LABELS, num_items_in_batch=14).loss
    real_tokens = int((LABELS != -100).sum())
    assert torch.allclose(summed, mean_loss * real_tokens / 14)


def test_masked_batch_norm_ignores_padding_in_training() -> None:
    model = tiny_model().train()
    block = model.video_encoder.temporal.blocks[0]
    features = torch.randn(1, 8, 12)
    padded = torch.cat([features, torch.zeros(1, 8, 6)], dim=2)  # padded steps are zero by contract
    mask = torch.tensor([[True] * 12 + [False] * 6])
    out_plain, _ = block(features, mask[:, :12])
    stats_plain = block.norm.running_mean.clone()
    block.norm.reset_running_stats()
    out_padded, _ = block(padded, mask)
    assert torch.allclose(out_plain, out_padded[:, :, :6], atol=1e-5)
    assert torch.allclose(stats_plain, block.norm.running_mean, atol=1e-6)


@pytest.mark.parametrize(
    ("lengths", "message"),
    [([3, 8], "at least 4 real frames"), ([8, 8], None)],
)
def test_too_short_video_is_named(lengths: list[int], message: str | None) -> None:
    model = tiny_model()
    pixels, mask = video_batch(lengths)
    if message is None:
        model.get_encoder()(pixels, mask)
        return
    with pytest.raises(ValueError, match=message) as error:
        model.get_encoder()(pixels, mask)
    assert "video 0: 3" in str(error.value)


def test_bad_video_shapes_are_rejected() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match=r"\(batch, frames, 3, height, width\)"):
        model.get_encoder()(torch.randn(2, 8, 32, 32))
    pixels, _ = video_batch([8, 8])
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        model.get_encoder()(pixels, torch.ones(2, 7))
    left_padded = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1] * 8])
    with pytest.raises(ValueError, match="real frames first"):
        model.get_encoder()(pixels, left_padded)


# --- loading and generating without noise ------------------------------------------------------
class TransformersLogRecords:
    """Every record the ``transformers`` loggers emit inside the ``with`` (they do not propagate)."""

    def __enter__(self) -> list[str]:
        import logging

        self.messages: list[str] = []
        self.handler = logging.Handler(level=logging.DEBUG)
        self.handler.emit = lambda record: self.messages.append(record.getMessage())
        logging.getLogger("transformers").addHandler(self.handler)
        return self.messages

    def __exit__(self, *exc_info: object) -> None:
        import logging

        logging.getLogger("transformers").removeHandler(self.handler)


def test_a_tied_model_declares_its_tied_copy_unsaved_and_an_untied_one_nothing() -> None:
    assert tiny_model()._keys_to_ignore_on_save == {"lm_head.weight"}
    assert tiny_model(tie_word_embeddings=False)._keys_to_ignore_on_save == set()


def test_loading_a_saved_tied_model_reports_no_missing_keys(tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    tiny_model().save_pretrained(tmp_path / "model")
    with TransformersLogRecords() as messages:
        model = SclSltForSignTranslation.from_pretrained(tmp_path / "model")
        # The Trainer's way (load_best_model_at_end, resuming): load_state_dict of the checkpoint.
        trainer = Trainer(model=model, args=TrainingArguments(tmp_path / "run", use_cpu=True, report_to=[]))
        trainer._load_from_checkpoint(str(tmp_path / "model"))
    assert not [m for m in messages if "missing keys" in m or "lm_head" in m], messages
    assert model.lm_head.weight is model.decoder.embed_tokens.weight


def test_generation_with_the_saved_generation_config_does_not_warn_about_max_length(tmp_path) -> None:
    import warnings

    from trainers.application.evaluation import set_generation_defaults

    model = tiny_model()
    set_generation_defaults(model, num_beams=2, max_new_tokens=5)
    model.save_pretrained(tmp_path / "model")
    loaded = SclSltForSignTranslation.from_pretrained(tmp_path / "model").eval()
    assert loaded.generation_config.max_new_tokens == 5 and loaded.generation_config.max_length is None
    pixels, mask = video_batch([8, 8])
    with TransformersLogRecords() as messages, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            generated = loaded.generate(pixel_values=pixels, attention_mask=mask)
    noise = [m for m in [*messages, *(str(w.message) for w in caught)] if "max_length" in m]
    assert not noise, noise
    assert generated.shape[1] <= 1 + 5
