"""SclSltTrainer: the three stages, pluggable parts, exact gradient accumulation, peft models."""

from __future__ import annotations

import numpy as np
import peft
import pytest
import torch
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from transformers import TrainerCallback

from datasets_scripts import SignTranslationCollator
from modeling_scl_slt import SclSltForSignTranslation, VideoTransform
from modeling_scl_slt.similarity import cico_similarity
from trainers.application.tokenization import config_for_tokenizer, train_tokenizer
from trainers.method.sampler import PSCurriculumBatchSampler
from trainers.method.snapshots import load_snapshot_series
from trainers.method.text_groups import text_group_ids
from trainers.training.arguments import SclSltTrainingArguments
from trainers.training.retrieval import blocked_similarity, retrieval_metrics
from trainers.training.trainer import SclSltTrainer

SENTENCES = [
    "rain in the north",
    "sun in the south tomorrow",
    "rain in the north",
    "strong wind at the coast",
    "snow in the mountains tonight",
    "sun in the south",
    "fog in the valleys in the morning",
    "warm and dry",
]


def tiny_corpus(num_samples: int = 8, seed: int = 0) -> Dataset:
    """Frames as real PNG-backed images, as the corpus loaders produce them."""
    rng = np.random.default_rng(seed)
    rows = {"name": [], "text": [], "frames": [], "num_frames": []}
    for index in range(num_samples):
        length = 8 + 2 * (index % 4)
        frames = [
            PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(length)
        ]
        rows["name"].append(f"clip{index}")
        rows["text"].append(SENTENCES[index % len(SENTENCES)])
        rows["frames"].append(frames)
        rows["num_frames"].append(length)
    features = Features(
        {
            "name": Value("string"),
            "text": Value("string"),
            "frames": List(Image()),
            "num_frames": Value("int32"),
        }
    )
    return Dataset.from_dict(rows, features=features)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")


def collators(tokenizer) -> tuple[SignTranslationCollator, SignTranslationCollator]:
    train = SignTranslationCollator(tokenizer, transform=VideoTransform(size=32, resize=None, train=True))
    evaluation = SignTranslationCollator(tokenizer, transform=VideoTransform(size=32, resize=None))
    return train, evaluation


def tiny_model(tokenizer, **overrides) -> SclSltForSignTranslation:
    torch.manual_seed(0)
    return SclSltForSignTranslation(config_for_tokenizer("tiny", tokenizer, "en_XX", **overrides))


def arguments(tmp_path, **overrides) -> SclSltTrainingArguments:
    values = {
        "output_dir": str(tmp_path / "run"),
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 4,
        "num_train_epochs": 1,
        "learning_rate": 1e-3,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "seed": 0,
        "disable_tqdm": True,
    }
    return SclSltTrainingArguments(**{**values, **overrides})


def make_trainer(
    tmp_path, tokenizer, model=None, dataset=None, augment: bool = True, **overrides
) -> SclSltTrainer:
    train_collator, eval_collator = collators(tokenizer)
    train_collator = train_collator if augment else eval_collator
    dataset = dataset if dataset is not None else tiny_corpus()
    return SclSltTrainer(
        model=model if model is not None else tiny_model(tokenizer),
        args=arguments(tmp_path, **overrides),
        train_dataset=dataset,
        eval_dataset=dataset,
        data_collator=train_collator,
        eval_data_collator=eval_collator,
        processing_class=tokenizer,
    )


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def test_gradient_accumulation_equals_the_larger_batch(tmp_path, tokenizer) -> None:
    final_states = []
    for batch_size, accumulation in ((8, 1), (4, 2)):
        model = tiny_model(tokenizer, freeze_batch_norm=True)
        trainer = make_trainer(
            tmp_path,
            tokenizer,
            model=model,
            augment=False,  # the same pixels in both runs
            stage="translate",
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            optim="sgd",
            learning_rate=0.5,
            lr_scheduler_type="constant",
            max_steps=1,
            data_seed=0,
        )
        trainer.train()
        final_states.append(trainable_state(model))
    reference = trainable_state(tiny_model(tokenizer))
    moved = [name for name in reference if not torch.equal(reference[name], final_states[0][name])]
    assert moved, "the optimizer step changed nothing: the comparison would be vacuous"
    for name, value in final_states[0].items():
        assert torch.allclose(value, final_states[1][name], atol=1e-6), name


def test_reference_stage_trains_contrastively_and_writes_snapshots(tmp_path, tokenizer) -> None:
    trainer = make_trainer(tmp_path, tokenizer, stage="reference", num_train_epochs=2, snapshot_interval=1)
    before = trainable_state(trainer.model)
    trainer.train()
    after = trainable_state(trainer.model)
    assert not torch.equal(before["logit_scale.log_scale"], after["logit_scale.log_scale"])
    assert torch.equal(before["decoder.layers.0.fc1.weight"], after["decoder.layers.0.fc1.weight"])
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all("loss_contrastive" in entry and "loss_translation" not in entry for entry in logged)
    snapshots = load_snapshot_series(tmp_path / "run" / "snapshots")
    assert [snapshot.epoch for snapshot in snapshots] == [1, 2]
    assert snapshots[0].sample_ids == [f"clip{i}" for i in range(8)]
    assert snapshots[0].video_tokens.shape[0] == 8 and snapshots[0].text_tokens.shape[0] == 8


def test_scl_stage_follows_the_curriculum_sampler(tmp_path, tokenizer) -> None:
    scores = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    trainer = make_trainer(tmp_path, tokenizer, stage="scl", curriculum_schedule="hard")
    trainer.pair_selection_scores = scores
    loader = trainer.get_train_dataloader()
    expected = PSCurriculumBatchSampler(
        scores, batch_size=4, num_epochs=1, schedule="hard", texts=list(trainer.train_dataset["text"]), seed=0
    )
    expected.set_epoch(0)
    names = trainer.train_dataset["text"]
    seen = [
        tokenizer.batch_decode(batch["labels"].clamp(min=0), skip_special_tokens=True) for batch in loader
    ]
    assert [[text.strip() for text in batch] for batch in seen] == [
        [names[i] for i in batch] for batch in expected
    ]
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and "loss_translation" in logged[0] and "loss_contrastive" in logged[0]


def test_scl_stage_without_scores_names_the_fix(tmp_path, tokenizer) -> None:
    trainer = make_trainer(tmp_path, tokenizer, stage="scl")
    with pytest.raises(ValueError, match="pair_selection_scores"):
        trainer.get_train_dataloader()


def test_translate_stage_generates_and_scores(tmp_path, tokenizer) -> None:
    trainer = make_trainer(
        tmp_path,
        tokenizer,
        stage="translate",
        predict_with_generate=True,
        generation_max_length=12,
        metric_language="en",
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert {"eval_bleu1", "eval_bleu4", "eval_rouge_l"} <= set(metrics)
    assert all(0.0 <= metrics[key] <= 100.0 for key in ("eval_bleu1", "eval_bleu4", "eval_rouge_l"))


def test_contrastive_stage_evaluates_retrieval(tmp_path, tokenizer) -> None:
    trainer = make_trainer(tmp_path, tokenizer, stage="reference")
    metrics = trainer.evaluate()
    for key in ("eval_video_to_text_r1", "eval_text_to_video_r5", "eval_video_to_text_r10"):
        assert 0.0 <= metrics[key] <= 100.0
    # With 8 samples, recall at 10 covers every candidate.
    assert metrics["eval_video_to_text_r10"] == 100.0


def test_identical_label_rows_share_a_group() -> None:
    labels = torch.tensor([[5, 6, 2], [7, 2, -100], [5, 6, 2], [5, 2, -100]])
    groups = text_group_ids(labels)
    assert groups[0] == groups[2] and len(set(groups.tolist())) == 3


def test_retrieval_metrics_on_a_model_that_matches_perfectly(tmp_path, tokenizer) -> None:
    """Features identical for video and text of each sample must give recall@1 = 100."""

    class Mirror(torch.nn.Module):
        config = tiny_model(tokenizer).config

        def get_video_features(self, pixel_values, attention_mask=None):
            return self.embed(pixel_values.shape[0], pixel_values[:, 0, 0, 0, 0])

        def get_text_features(self, text_input_ids, text_attention_mask=None):
            return self.embed(text_input_ids.shape[0], text_input_ids[:, 0].float())

        def embed(self, batch, key):
            vectors = torch.nn.functional.one_hot(key.long() % 8, 8).float()[:, None, :]
            return vectors, torch.ones(batch, 1, dtype=torch.long)

    batches = [
        {
            "pixel_values": torch.arange(4).float().view(4, 1, 1, 1, 1).expand(4, 1, 3, 2, 2),
            "text_input_ids": torch.arange(4)[:, None],
        }
    ]
    metrics = retrieval_metrics(Mirror(), batches, "cpu")
    assert metrics["video_to_text_r1"] == 100.0 and metrics["text_to_video_r1"] == 100.0


def test_pluggable_loss_and_sampler(tmp_path, tokenizer) -> None:
    calls = []

    def custom_loss(similarity_v2t, similarity_t2v, group_ids=None, logit_scale=None):
        from trainers.method.losses import SelectiveContrastiveLoss

        calls.append(similarity_v2t.shape)
        return SelectiveContrastiveLoss()(similarity_v2t, similarity_t2v)

    trainer = make_trainer(
        tmp_path, tokenizer, stage="reference", batch_sampler="no_duplicates", contrastive_loss=custom_loss
    )
    trainer.train()
    assert calls and calls[0] == (4, 4)
    for batch in trainer.get_train_dataloader():
        rows = batch["labels"].tolist()
        assert len({tuple(row) for row in rows}) == len(rows), "identical texts shared a batch"


def test_lora_model_trains_through_the_trainer(tmp_path, tokenizer) -> None:
    model = tiny_model(tokenizer)
    config = peft.LoraConfig(
        task_type="SEQ_2_SEQ_LM",
        r=4,
        lora_alpha=8,
        target_modules=r".*(visual_encoder|decoder)\..*(q_proj|v_proj)",
    )
    lora = peft.get_peft_model(model, config)
    base_before = model.decoder.layers[0].fc1.weight.detach().clone()
    lora_before = {n: p.detach().clone() for n, p in lora.named_parameters() if "lora_B" in n}
    trainer = make_trainer(tmp_path, tokenizer, model=lora, stage="translate", learning_rate=1e-2)
    trainer.train()
    lora_after = {n: p.detach() for n, p in lora.named_parameters() if "lora_B" in n}
    assert lora_before and any(not torch.equal(lora_before[n], lora_after[n]) for n in lora_before)
    assert torch.equal(base_before, model.decoder.layers[0].fc1.weight)


class RecordingCollator:
    """Wraps a collator and records the sample names of every batch it builds."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    def __call__(self, examples):
        self.batches.append([example["name"] for example in examples])
        return self.inner(examples)


class StopAtStep(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True


def scl_trainer(tmp_path, tokenizer, output: str, callbacks=()) -> tuple[SclSltTrainer, RecordingCollator]:
    _, eval_collator = collators(tokenizer)
    # No random augmentation: a resumed run re-draws the augmentation of the batch that the
    # loader had read ahead before the checkpoint (documented in trainers/training/trainer.py).
    recorder = RecordingCollator(eval_collator)
    trainer = SclSltTrainer(
        model=tiny_model(tokenizer),
        args=arguments(
            tmp_path,
            output_dir=str(tmp_path / output),
            stage="scl",
            num_train_epochs=3,
            save_strategy="epoch",
        ),
        train_dataset=tiny_corpus(num_samples=12),
        data_collator=recorder,
        eval_data_collator=eval_collator,
        processing_class=tokenizer,
        pair_selection_scores=torch.randn(12, 12, generator=torch.Generator().manual_seed(2)),
        callbacks=list(callbacks),
    )
    return trainer, recorder


def test_resumed_run_matches_an_uninterrupted_one(tmp_path, tokenizer) -> None:
    uninterrupted, all_batches = scl_trainer(tmp_path, tokenizer, "straight")
    uninterrupted.train()

    # 3 steps per epoch: the checkpoint at step 4 sits inside the second epoch.
    first, first_batches = scl_trainer(tmp_path, tokenizer, "stopped", callbacks=[StopAtStep(4)])
    first.train()
    checkpoint = tmp_path / "stopped" / "checkpoint-4"
    assert checkpoint.is_dir()
    resumed, resumed_batches = scl_trainer(tmp_path, tokenizer, "stopped")
    resumed.train(resume_from_checkpoint=str(checkpoint))

    # The loader reads one batch ahead: the stopped run collated a batch it never trained on.
    trained_before_stop = first_batches.batches[: first.state.global_step]
    assert trained_before_stop + resumed_batches.batches == all_batches.batches
    assert len(all_batches.batches) == 9
    final = trainable_state(uninterrupted.model)
    for name, value in trainable_state(resumed.model).items():
        assert torch.allclose(value, final[name], atol=1e-6), name


def test_blocked_similarity_keeps_the_cico_text_to_video_direction() -> None:
    generator = torch.Generator().manual_seed(4)
    features = {
        "video_tokens": torch.nn.functional.normalize(torch.randn(5, 3, 4, generator=generator), dim=-1),
        "video_mask": torch.ones(5, 3, dtype=torch.bool),
        "text_tokens": torch.nn.functional.normalize(torch.randn(5, 2, 4, generator=generator), dim=-1),
        "text_mask": torch.ones(5, 2, dtype=torch.bool),
    }
    video_to_text, text_to_video = blocked_similarity(features, "cico", 0.07, block_size=2)
    expected_v2t, expected_t2v = cico_similarity(
        features["video_tokens"], features["video_mask"], features["text_tokens"], features["text_mask"]
    )
    assert torch.allclose(video_to_text, expected_v2t) and torch.allclose(text_to_video, expected_t2v)
    assert not torch.allclose(text_to_video, video_to_text.T), "CiCo's two directions should differ"


def test_a_resumed_epoch_reaches_the_sampler_behind_accelerates_shard_wrappers(tmp_path, tokenizer) -> None:
    """Rank 1 of 2, resumed one batch into epoch 2: its loader is accelerate's
    DataLoaderShard(SkipBatchSampler(BatchSamplerShard(our sampler))). Neither accelerate nor the
    Trainer's own set_epoch calls reach our sampler through that; the epoch-begin callbacks must."""
    from accelerate.data_loader import BatchSamplerShard, DataLoaderShard, SkipBatchSampler

    dataset = tiny_corpus(num_samples=16)
    scores = torch.randn(16, 16, generator=torch.Generator().manual_seed(3))
    trainer = make_trainer(
        tmp_path, tokenizer, dataset=dataset, stage="scl", num_train_epochs=4, curriculum_schedule="linear"
    )
    trainer.pair_selection_scores = scores
    sampler = trainer.get_train_dataloader().batch_sampler  # one process: our sampler itself
    assert isinstance(sampler, PSCurriculumBatchSampler) and len(sampler) == 4
    shard = BatchSamplerShard(sampler, num_processes=2, process_index=1)
    resumed = DataLoaderShard(
        dataset,
        batch_sampler=SkipBatchSampler(shard, skip_batches=1),
        collate_fn=lambda examples: [example["name"] for example in examples],
    )
    # What Trainer.train does on such a resume (4 steps per epoch for this one-process trainer):
    trainer.state.global_step = 2 * 4 + 1
    handler, args, state = trainer.callback_handler, trainer.args, trainer.state
    handler.on_train_begin(args, state, trainer.control)
    handler.on_epoch_begin(args, state, trainer.control)
    resumed.set_epoch(2)  # then `_run_epoch`: the loader's set_epoch and one wrapper deeper
    if hasattr(resumed.batch_sampler.batch_sampler, "set_epoch"):
        resumed.batch_sampler.batch_sampler.set_epoch(2)
    assert sampler.epoch == 2
    expected = PSCurriculumBatchSampler(
        scores, batch_size=4, num_epochs=4, schedule="linear", texts=list(dataset["text"]), seed=0
    )
    expected.set_epoch(2)
    names = [[f"clip{i}" for i in batch] for batch in expected]
    assert list(resumed) == names[1::2][1:]
    handler.on_epoch_begin(args, state, trainer.control)  # the next epoch counts on from there
    assert sampler.epoch == 3


def test_scores_file_is_reordered_to_the_training_set_or_refused(tmp_path, tokenizer) -> None:
    from trainers.method.pair_selection import save_pair_scores

    dataset = tiny_corpus()
    names = list(dataset["name"])
    stored = torch.randn(8, 8, generator=torch.Generator().manual_seed(6))
    order = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])  # scores computed when the manifest listed this order
    path = save_pair_scores(stored, tmp_path / "scores.safetensors", sample_ids=[names[i] for i in order])
    trainer = make_trainer(tmp_path, tokenizer, dataset=dataset, stage="scl", pair_selection_scores=str(path))
    position = torch.argsort(order)  # training sample k sits at row position[k] of the file
    assert torch.equal(trainer.training_scores(), stored[position][:, position])

    skipped = make_trainer(
        tmp_path, tokenizer, dataset=dataset.select(range(1, 8)), stage="scl", pair_selection_scores=str(path)
    )
    with pytest.raises(ValueError, match="computed for other samples than the training set") as error:
        skipped.get_train_dataloader()
    assert str(path) in str(error.value) and "training set 7 samples, scores 8" in str(error.value)
