"""Training on frame features end to end: extract, train every stage on them, translate raw video.

A tiny "pretrained" ResNet and mBART are saved by the test; the config names them as the run's
pretrained parts, so extraction (``model.backbone``) and training share one backbone.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AutoModelForSeq2SeqLM,
    MBartConfig,
    MBartForConditionalGeneration,
    ResNetConfig,
    ResNetForImageClassification,
    pipeline,
)

import modeling_scl_slt
from datasets_scripts.frame_features import load_frame_features, read_frame_features_info
from tests.test_pretrained_parts import TINY_MBART
from trainers.application.cli import main
from trainers.application.demo import demo_config
from trainers.application.feature_extraction import backbone_identity
from trainers.application.recipe import run_recipe
from trainers.application.recipe_config import ConfigError, RecipeConfig
from trainers.application.tokenization import train_tokenizer

SENTENCES = [f"{a} {b} in the north" for a in ("rain", "sun", "snow", "wind") for b in ("today", "tomorrow")]


def save_parts(folder: Path, seed: int = 0) -> tuple[Path, Path, Path]:
    """A tokenizer, a ResNet (hidden size 8) and an mBART of its vocabulary, saved in ``folder``."""
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(
        [*SENTENCES, "red green blue big small one two three four five six seven eight nine ten zero"] * 4,
        tgt_lang="en_XX",
        vocab_size=200,
        model="wordlevel",
    )
    tokenizer.save_pretrained(folder / "tokenizer")
    ResNetForImageClassification(
        ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic")
    ).save_pretrained(folder / "resnet")
    mbart = {
        **TINY_MBART,
        "vocab_size": len(tokenizer),
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }
    MBartForConditionalGeneration(MBartConfig(**mbart)).save_pretrained(folder / "mbart")
    return folder / "tokenizer", folder / "resnet", folder / "mbart"


def features_config(folder: Path, parts: tuple[Path, Path, Path]) -> RecipeConfig:
    """The quick demo's recipe on the tiny pretrained parts, short stages."""
    config = demo_config(quick=True)
    config.model.tokenizer, config.model.backbone, config.model.text_model = map(str, parts)
    config.model.trim_vocabulary = True
    config.scl.epochs, config.translate.epochs, config.translate.eval_every_epochs = 1, 2, 2
    config.evaluation.num_beams = 1
    return config


def write_config(config: RecipeConfig, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.to_dict()), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> tuple[Path, RecipeConfig]:
    """The synthetic tiny corpus's frame features, extracted with the config's pretrained backbone."""
    folder = tmp_path_factory.mktemp("features")
    config = features_config(folder, save_parts(folder))
    path = write_config(config, folder / "recipe.yaml")
    status = main(
        ["extract-features", str(path), "--output-dir", str(folder / "features"), "--shard-size", "8"]
    )
    assert status == 0
    return folder / "features", config


@pytest.mark.slow
def test_extraction_writes_the_documented_corpus(extracted: tuple[Path, RecipeConfig]) -> None:
    features, config = extracted
    info = read_frame_features_info(features)
    backbone = modeling_scl_slt.SclSltForSignTranslation.from_pretrained_parts(
        config.model.backbone, config.model.text_model
    ).video_encoder.backbone
    assert info.backbone == {
        "kind": "model",
        "identity": backbone_identity(backbone),
        "source": config.model.backbone,
    }
    assert info.feature_dim == 8 and info.dtype == "float16" and info.language == "en"
    assert info.transform == {"size": 32, "resize": 32, "normalize": True}
    corpus, _ = load_frame_features(features)
    assert (
        {split: len(corpus[split]) for split in corpus}
        == info.splits
        == {"train": 24, "validation": 6, "test": 6}
    )
    assert len(list((features / "train").glob("*.parquet"))) == 3  # 24 rows, 8 per shard
    # Every frame, not video.max_frames: the corpus's own frame counts (up to 64 frames > max_frames 32).
    assert max(corpus["train"]["num_frames"]) > config.video.max_frames
    row = corpus["train"][0]
    assert row["features"].dtype.name == "float16" and row["features"].shape == (row["num_frames"], 8)
    # The same numbers as the model's own frame features of that video, in eval mode (fp16 storage).
    from datasets_scripts import load_sign_corpus
    from modeling_scl_slt.video_processing import VideoTransform

    video = load_sign_corpus(features / "corpus" / "manifest.csv")["train"][0]
    assert video["name"] == row["name"] and video["text"] == row["text"]
    clip = VideoTransform(size=32, resize=32, max_frames=10**6)(video["frames"])[None]
    with torch.no_grad():
        reference = backbone.eval()(clip[0]).pooler_output.flatten(1)
    assert torch.allclose(torch.from_numpy(row["features"]).float(), reference, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_the_recipe_trains_on_features_and_the_saved_model_translates_raw_video(
    extracted: tuple[Path, RecipeConfig], tmp_path: Path
) -> None:
    features, config = extracted
    config.video.features = str(features)
    lines: list[str] = []
    metrics = run_recipe(config, tmp_path / "run", report=lines.append)
    assert any(line.startswith("frame features (8 per frame") for line in lines)
    assert not any("synthetic frame features" in line for line in lines)
    assert 0.0 <= metrics["test"]["bleu4"] <= 100.0
    assert "eval_video_to_text_r1" in metrics["validation_retrieval_after_scl"]
    assert len((tmp_path / "run" / "predictions" / "test.jsonl").read_text().splitlines()) == 6
    # The backbone was frozen and never run: the final model holds the initial one's weights exactly,
    # BatchNorm statistics included (a forward in training mode would have moved them).
    initial = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "initial")
    final = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "run" / "model")
    assert backbone_identity(final.video_encoder.backbone) == backbone_identity(
        initial.video_encoder.backbone
    )
    name = "video_encoder.temporal.blocks.0.conv.weight"
    assert not torch.equal(initial.state_dict()[name], final.state_dict()[name]), "nothing trained"
    # The saved model keeps its backbone: the pipeline translates a raw test video.
    translator = pipeline(modeling_scl_slt.PIPELINE_TASK, model=str(tmp_path / "run" / "model"))
    with (features / "corpus" / "manifest.csv").open(encoding="utf-8") as handle:
        video = next(row for row in csv.DictReader(handle) if row["split"] == "test")["video"]
    # Windows of the longest length the model reads: the quick corpus's clips exceed its 32 frames.
    window_s = translator.max_frames / translator.frame_rate
    result = translator(str(features / "corpus" / video), chunk_length_s=window_s, max_new_tokens=8)
    assert isinstance(result[0]["translation_text"], str)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "frame features" in card and "frozen" in card


@pytest.mark.slow
def test_training_refuses_features_of_another_backbone(
    extracted: tuple[Path, RecipeConfig], tmp_path: Path
) -> None:
    features, config = extracted
    other = save_parts(tmp_path, seed=1)  # same architecture, other weights
    config = features_config(tmp_path, other)
    config.video.features = str(features)
    with pytest.raises(
        ConfigError, match=r"video.features: the features were made by backbone \w+… .*not by the model"
    ):
        run_recipe(config, tmp_path / "run", report=lambda _: None)
    assert not (tmp_path / "run" / "reference").exists()
