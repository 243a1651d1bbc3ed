"""SelectiveContrastiveLoss against hand-written CLIP and masked cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from modeling_scl_slt.similarity import pooled_similarity, video_text_similarity
from trainers.method.losses import SelectiveContrastiveLoss, false_negative_mask

B, D = 6, 5


def embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    video = F.normalize(torch.randn(B, D, generator=generator), dim=-1).requires_grad_()
    text = F.normalize(torch.randn(B, D, generator=generator), dim=-1).requires_grad_()
    return video, text


def test_equals_plain_clip_loss_in_value_and_gradients() -> None:
    loss_module = SelectiveContrastiveLoss()
    video, text = embeddings()
    output = loss_module(*pooled_similarity(video, text))
    output.loss.backward()

    video_ref, text_ref = video.detach().clone().requires_grad_(), text.detach().clone().requires_grad_()
    log_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    logits = log_scale.exp() * video_ref @ text_ref.T  # CLIP: row = video, column = text
    labels = torch.arange(B)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    expected.backward()

    torch.testing.assert_close(output.loss, expected)
    torch.testing.assert_close(video.grad, video_ref.grad)
    torch.testing.assert_close(text.grad, text_ref.grad)
    torch.testing.assert_close(loss_module.log_logit_scale.grad, log_scale.grad)
    assert output.logit_scale.item() == pytest.approx(1 / 0.07)
    assert output.num_masked_pairs == 0


def test_both_directions_are_reported_and_averaged() -> None:
    video, text = embeddings(1)
    output = SelectiveContrastiveLoss()(*pooled_similarity(video, text))
    torch.testing.assert_close(output.loss, (output.loss_video_to_text + output.loss_text_to_video) / 2)
    assert not torch.isclose(output.loss_video_to_text, output.loss_text_to_video)
    assert set(output.to_log_dict()) >= {"loss_contrastive", "logit_scale", "num_masked_pairs"}


def test_text_to_video_matrix_is_used_when_given() -> None:
    generator = torch.Generator().manual_seed(2)
    video_tokens = F.normalize(torch.randn(B, 4, D, generator=generator), dim=-1)
    text_tokens = F.normalize(torch.randn(B, 3, D, generator=generator), dim=-1)
    masks = torch.ones(B, 4, dtype=torch.bool), torch.ones(B, 3, dtype=torch.bool)
    v2t, t2v = video_text_similarity(video_tokens, masks[0], text_tokens, masks[1], "cico")
    loss = SelectiveContrastiveLoss()
    output = loss(v2t, t2v)
    labels = torch.arange(B)
    scale = 1 / 0.07
    torch.testing.assert_close(output.loss_text_to_video, F.cross_entropy(scale * t2v, labels))
    assert not torch.isclose(output.loss_text_to_video, loss(v2t).loss_text_to_video)


def masked_cross_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over rows of −log softmax at the diagonal, with masked columns left out, by hand."""
    losses = []
    for i in range(logits.shape[0]):
        kept = [logits[i, j] for j in range(logits.shape[1]) if not mask[i, j]]
        losses.append(torch.logsumexp(torch.stack(kept), dim=0) - logits[i, i])
    return torch.stack(losses).mean()


def test_identical_texts_are_masked_like_a_hand_computed_masked_cross_entropy() -> None:
    texts = ["rain", "sun", "rain", "wind", "sun", "rain"]
    video, text = embeddings(3)
    similarity = video.detach() @ text.detach().T
    output = SelectiveContrastiveLoss()(similarity, texts=texts)
    # rain: {0,2,5} → 6 ordered pairs; sun: {1,4} → 2 ordered pairs
    assert output.num_masked_pairs == 8
    mask = torch.tensor([[a == b and i != j for j, b in enumerate(texts)] for i, a in enumerate(texts)])
    logits = similarity / 0.07
    torch.testing.assert_close(output.loss_video_to_text, masked_cross_entropy(logits, mask))
    torch.testing.assert_close(output.loss_text_to_video, masked_cross_entropy(logits.T, mask.T))
    unmasked = SelectiveContrastiveLoss()(similarity)
    assert output.loss < unmasked.loss  # removing negatives can only lower each row's loss here


def test_group_ids_and_an_explicit_mask_match_texts() -> None:
    texts = ["a", "b", "a", "c", "b", "d"]
    similarity = torch.randn(B, B, generator=torch.Generator().manual_seed(4)).clamp(-1, 1)
    loss = SelectiveContrastiveLoss()
    by_text = loss(similarity, texts=texts).loss
    by_group = loss(similarity, group_ids=torch.tensor([0, 1, 0, 2, 1, 3])).loss
    by_mask = loss(similarity, false_negatives=false_negative_mask(B, texts=texts)).loss
    torch.testing.assert_close(by_text, by_group)
    torch.testing.assert_close(by_text, by_mask)


def test_the_diagonal_is_never_masked() -> None:
    everything = torch.ones(B, B, dtype=torch.bool)
    output = SelectiveContrastiveLoss()(torch.randn(B, B).clamp(-1, 1), false_negatives=everything)
    assert output.num_masked_pairs == B * (B - 1)
    assert torch.isfinite(output.loss) and output.loss.item() == pytest.approx(
        0.0, abs=1e-6
    )  # only positives
    assert not false_negative_mask(B, texts=["x"] * B).diagonal().any()


def test_masking_can_be_switched_off() -> None:
    similarity = torch.randn(B, B).clamp(-1, 1)
    loss = SelectiveContrastiveLoss(mask_false_negatives=False)
    output = loss(similarity, texts=["same"] * B)
    assert output.num_masked_pairs == 0
    torch.testing.assert_close(output.loss, loss(similarity).loss)


def test_logit_scale_is_clamped_and_gets_no_gradient_above_the_cap() -> None:
    loss = SelectiveContrastiveLoss(logit_scale_init=1000.0, max_logit_scale=100.0)
    similarity = torch.randn(B, B).clamp(-1, 1)
    output = loss(similarity)
    assert output.logit_scale.item() == pytest.approx(100.0)
    output.loss.backward()
    assert loss.log_logit_scale.grad.item() == 0.0
    torch.testing.assert_close(
        output.loss_video_to_text, F.cross_entropy(100.0 * similarity, torch.arange(B))
    )


def test_fixed_logit_scale_is_a_buffer() -> None:
    loss = SelectiveContrastiveLoss(learnable_logit_scale=False)
    assert not list(loss.parameters()) and "log_logit_scale" in dict(loss.named_buffers())


def test_bad_inputs_raise_clear_errors() -> None:
    loss = SelectiveContrastiveLoss()
    with pytest.raises(ValueError, match="square"):
        loss(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="texts has 2 entries for a batch of 3"):
        loss(torch.zeros(3, 3), texts=["a", "b"])
    with pytest.raises(ValueError, match="at most one"):
        loss(torch.zeros(3, 3), texts=["a", "b", "c"], group_ids=torch.arange(3))


def test_external_logit_scale_replaces_the_own_and_receives_the_gradient() -> None:
    similarity = torch.randn(4, 4, generator=torch.Generator().manual_seed(3)).tanh()
    external = torch.tensor(5.0, requires_grad=True)
    loss = SelectiveContrastiveLoss(logit_scale_init=1 / 0.07, mask_false_negatives=False)
    output = loss(similarity, logit_scale=external)
    expected = SelectiveContrastiveLoss(logit_scale_init=5.0, mask_false_negatives=False)(similarity)
    assert torch.allclose(output.loss, expected.loss)
    assert float(output.logit_scale) == 5.0
    output.loss.backward()
    assert external.grad is not None and loss.log_logit_scale.grad is None
