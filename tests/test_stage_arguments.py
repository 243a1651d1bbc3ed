"""What each recipe stage trains with: its loss, label smoothing, step counts and shortest clip."""

from __future__ import annotations

import math

import pytest
import torch
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, SequentialSampler

from modeling_scl_slt import SclSltForSignTranslation
from tests.test_trainer import SENTENCES, make_trainer, tiny_model
from trainers.application.recipe import run_collators
from trainers.application.recipe_config import RecipeConfig
from trainers.application.run_paths import RunPaths
from trainers.application.stage_arguments import (
    checkpointing_argument,
    optimizer_steps_per_epoch,
    stage_arguments,
)
from trainers.application.tokenization import train_tokenizer
from trainers.method.losses import SelectiveContrastiveLoss


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


@pytest.mark.parametrize(("stage", "masks_identical_texts"), [("reference", False), ("scl", True)])
def test_the_reference_stage_trains_plain_clip_and_scl_the_selective_loss(
    tmp_path, tokenizer, stage: str, masks_identical_texts: bool
) -> None:
    args = stage_arguments(stage, RecipeConfig(), RunPaths(tmp_path), num_train=8)
    trainer = make_trainer(tmp_path, tokenizer, stage=stage, contrastive_loss=args.contrastive_loss)
    assert isinstance(trainer.contrastive_loss, SelectiveContrastiveLoss)
    assert trainer.contrastive_loss.mask_false_negatives is masks_identical_texts


def test_the_trainers_auto_loss_is_the_stage_default(tmp_path, tokenizer) -> None:
    reference = make_trainer(tmp_path, tokenizer, stage="reference")
    scl = make_trainer(tmp_path, tokenizer, stage="scl", batch_sampler="random")
    assert reference.contrastive_loss.mask_false_negatives is False
    assert scl.contrastive_loss.mask_false_negatives is True
    assert make_trainer(tmp_path, tokenizer, stage="translate").contrastive_loss is None


def test_the_reference_loss_stays_configurable(tmp_path) -> None:
    config = RecipeConfig()
    config.reference.contrastive_loss = "selective"
    assert stage_arguments("reference", config, RunPaths(tmp_path), 8).contrastive_loss == "selective"


def test_stage_scl_smooths_its_cross_entropy_like_stage_translate_unless_told(tmp_path) -> None:
    config = RecipeConfig()
    config.translate.label_smoothing = 0.2
    assert stage_arguments("scl", config, RunPaths(tmp_path), 8).label_smoothing_factor == 0.2
    config.scl.label_smoothing = 0.0
    assert stage_arguments("scl", config, RunPaths(tmp_path), 8).label_smoothing_factor == 0.0
    assert stage_arguments("translate", config, RunPaths(tmp_path), 8).label_smoothing_factor == 0.2


def test_a_stages_gradient_checkpointing_reaches_the_trainer(tmp_path) -> None:
    config = RecipeConfig()
    config.model.overrides = {"freeze_batch_norm": True}
    config.scl.gradient_checkpointing = True
    switch = checkpointing_argument()  # activation_checkpointing from transformers 5.24 on
    assert getattr(stage_arguments("scl", config, RunPaths(tmp_path), 8), switch) is True
    assert getattr(stage_arguments("translate", config, RunPaths(tmp_path), 8), switch) is False


@pytest.mark.parametrize(
    ("num_train", "batch_size", "accumulation", "num_processes"),
    [(7096, 8, 1, 1), (7096, 8, 1, 8), (7096, 8, 3, 8), (519, 16, 2, 3), (5, 16, 1, 8)],
)
def test_steps_per_epoch_are_counted_as_accelerate_shards_the_batches(
    num_train: int, batch_size: int, accumulation: int, num_processes: int
) -> None:
    batches = BatchSampler(SequentialSampler(range(num_train)), batch_size, drop_last=False)
    shard = BatchSamplerShard(batches, num_processes=num_processes, process_index=0)
    expected = max(1, math.ceil(len(shard) / accumulation))
    assert optimizer_steps_per_epoch(num_train, batch_size, accumulation, num_processes) == expected


def test_translate_evaluates_every_configured_epoch_on_any_number_of_processes(tmp_path) -> None:
    config = RecipeConfig()
    config.translate.batch_size, config.translate.eval_every_epochs = 8, 2.0
    one = stage_arguments("translate", config, RunPaths(tmp_path), 7096, num_processes=1)
    eight = stage_arguments("translate", config, RunPaths(tmp_path), 7096, num_processes=8)
    assert (one.eval_steps, one.save_steps) == (1774, 1774)
    assert (eight.eval_steps, eight.save_steps) == (222, 222)  # 111 steps per epoch on 8 ranks


def test_the_runs_collators_refuse_clips_shorter_than_the_model_downsamples(tmp_path, tokenizer) -> None:
    paths = RunPaths(tmp_path)
    model: SclSltForSignTranslation = tiny_model(tokenizer, temporal_num_blocks=3)
    model.save_pretrained(paths.initial)
    tokenizer.save_pretrained(paths.tokenizer)
    config = RecipeConfig()
    config.video.image_size, config.video.resize = 32, None
    _, collators = run_collators(config, paths)
    assert {collator.min_frames for collator in collators.values()} == {8}
    clip = torch.zeros(6, 3, 32, 32)
    with pytest.raises(ValueError, match=r"'short' has 6 frames; at least 8 are needed .*×8"):
        collators["eval"]([{"name": "short", "pixel_values": clip, "text": "a"}])
