"""The frame-features corpus: writer and reader, extraction and its resume, collation, identity, plan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from transformers import ResNetConfig, ResNetModel

from datasets_scripts import SignTranslationCollator
from datasets_scripts.frame_features import (
    FeatureRow,
    FrameFeaturesError,
    FrameFeaturesInfo,
    FrameFeaturesWriter,
    load_frame_features,
    read_frame_features_info,
    write_frame_features_corpus,
)
from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from modeling_scl_slt.video_processing import VideoTransform, uniform_frame_indices
from trainers.application.demo import demo_config
from trainers.application.feature_extraction import (
    backbone_identity,
    check_features_backbone,
    extract_frame_features,
)
from trainers.application.plan import make_plan
from trainers.application.plan_inputs import PlanDevice
from trainers.application.recipe_config import ConfigError
from trainers.application.tokenization import train_tokenizer

TWIN = {"kind": "synthetic", "identity": "feature-twin:0123", "source": "a test"}


def rows(count: int, dim: int, prefix: str, seed: int = 0) -> list[FeatureRow]:
    generator = np.random.default_rng(seed)
    return [
        FeatureRow(
            f"{prefix}-{i}", f"sentence {i}", generator.standard_normal((5 + i, dim)).astype(np.float32)
        )
        for i in range(count)
    ]


def write_twin(folder: Path, dim: int = 8, shard_size: int = 2) -> dict[str, list[FeatureRow]]:
    splits = {
        "train": rows(5, dim, "train"),
        "validation": rows(2, dim, "dev", 1),
        "test": rows(3, dim, "test", 2),
    }
    write_frame_features_corpus(folder, splits, dim, TWIN, None, "de", shard_size=shard_size)
    return splits


def test_a_written_corpus_reads_back_in_order_as_float16(tmp_path: Path) -> None:
    splits = write_twin(tmp_path / "f")
    info = read_frame_features_info(tmp_path / "f")
    assert info.splits == {"train": 5, "validation": 2, "test": 3} and info.backbone == TWIN
    stored = json.loads((tmp_path / "f" / "features.json").read_text())
    assert stored["format"] == "scl-slt-frame-features" and stored["version"] == 1
    assert stored["dtype"] == "float16" and stored["feature_dim"] == 8 and stored["transform"] is None
    assert sorted(p.name for p in (tmp_path / "f" / "train").iterdir()) == [
        "00000000-00000002.parquet",
        "00000002-00000004.parquet",
        "00000004-00000005.parquet",
    ]
    corpus, _ = load_frame_features(tmp_path / "f")
    for split, written in splits.items():
        assert list(corpus[split]["name"]) == [row.name for row in written]
        for row, expected in zip(corpus[split], written, strict=True):
            assert row["text"] == expected.text and row["num_frames"] == expected.features.shape[0]
            assert row["features"].dtype == np.float16
            np.testing.assert_array_equal(row["features"], expected.features.astype(np.float16))


def test_a_reader_refuses_an_unfinished_or_foreign_folder(tmp_path: Path) -> None:
    writer = FrameFeaturesWriter(tmp_path / "f", 8, TWIN, None, "de", shard_size=2)
    writer.write_shard("train", 0, rows(2, 8, "train"))
    with pytest.raises(FrameFeaturesError, match=r"features.json is missing: .* has not finished: rerun it"):
        load_frame_features(tmp_path / "f")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "features.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(FrameFeaturesError, match="not a frame-features description"):
        read_frame_features_info(tmp_path / "g")


def test_a_writer_refuses_other_settings_and_bad_rows(tmp_path: Path) -> None:
    FrameFeaturesWriter(tmp_path / "f", 8, TWIN, None, "de", shard_size=2)
    with pytest.raises(FrameFeaturesError, match=r"other settings \(backbone\)"):
        FrameFeaturesWriter(
            tmp_path / "f", 8, {**TWIN, "identity": "feature-twin:other"}, None, "de", shard_size=2
        )
    with pytest.raises(FrameFeaturesError, match=r"other settings \(shard_size\)"):
        FrameFeaturesWriter(tmp_path / "f", 8, TWIN, None, "de", shard_size=3)
    writer = FrameFeaturesWriter(tmp_path / "f", 8, TWIN, None, "de", shard_size=2)
    with pytest.raises(
        FrameFeaturesError, match=r"features of 'x' have shape \(4, 7\); expected \(frames >= 1, 8\)"
    ):
        writer.write_shard("train", 0, [FeatureRow("x", "t", np.zeros((4, 7)))])
    with pytest.raises(FrameFeaturesError, match="'kind': 'model' or 'synthetic'"):
        FrameFeaturesWriter(tmp_path / "h", 8, {"kind": "guess", "identity": "x"}, None, "de")


# --- extraction -----------------------------------------------------------------------------------
def tiny_backbone(seed: int = 0) -> ResNetModel:
    torch.manual_seed(seed)
    return ResNetModel(ResNetConfig(embedding_size=4, hidden_sizes=[4, 8], depths=[1, 1], layer_type="basic"))


def video_corpus() -> DatasetDict:
    """7 train and 2 + 2 evaluation videos of 6 to 12 uint8 frames of 20 × 24 pixels."""
    generator = np.random.default_rng(0)

    def split(prefix: str, count: int) -> Dataset:
        frames = [generator.integers(0, 256, (6 + i, 20, 24, 3), dtype=np.uint8) for i in range(count)]
        names = [f"{prefix}-{i}" for i in range(count)]
        data = {"name": names, "text": [f"text {n}" for n in names], "frames": frames}
        return Dataset.from_dict(data).with_format(
            "numpy", columns=["frames"], output_all_columns=True, dtype=np.uint8
        )

    return DatasetDict({"train": split("train", 7), "validation": split("dev", 2), "test": split("test", 2)})


def extract(corpus: DatasetDict, folder: Path, backbone: ResNetModel) -> None:
    transform = VideoTransform(size=16, resize=18)
    extract_frame_features(
        corpus, backbone, folder, transform, "de", "tiny", batch_size=3, shard_size=3, progress=False
    )


def test_extraction_resumes_after_a_kill_keeping_the_complete_shards(tmp_path: Path, monkeypatch) -> None:
    corpus, backbone = video_corpus(), tiny_backbone()
    extract(corpus, tmp_path / "clean", backbone)
    written: list[Path] = []
    original = FrameFeaturesWriter.write_shard

    def killed_on_the_third_shard(self, split, start, shard_rows):
        if len(written) == 2:
            (self.shard_path(split, start, start + len(shard_rows)).parent / ".partial.tmp").write_bytes(b"x")
            raise KeyboardInterrupt  # the process dies while writing: a temporary file is left
        written.append(original(self, split, start, shard_rows))
        return written[-1]

    monkeypatch.setattr(FrameFeaturesWriter, "write_shard", killed_on_the_third_shard)
    with pytest.raises(KeyboardInterrupt):
        extract(corpus, tmp_path / "resumed", backbone)
    monkeypatch.setattr(FrameFeaturesWriter, "write_shard", original)
    kept = {path: path.stat().st_mtime_ns for path in written}
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(
        FrameFeaturesWriter,
        "write_shard",
        lambda self, split, start, shard_rows: (
            calls.append((split, start)) or original(self, split, start, shard_rows)
        ),
    )
    extract(corpus, tmp_path / "resumed", backbone)
    assert {path: path.stat().st_mtime_ns for path in written} == kept  # not rewritten
    assert calls == [("train", 6), ("validation", 0), ("test", 0)]  # only what was missing
    clean, info = load_frame_features(tmp_path / "clean")
    resumed, resumed_info = load_frame_features(tmp_path / "resumed")
    assert resumed_info == info and info.transform == {"size": 16, "resize": 18, "normalize": True}
    for split in clean:
        assert list(resumed[split]["name"]) == list(clean[split]["name"])
        for a, b in zip(resumed[split], clean[split], strict=True):
            np.testing.assert_array_equal(a["features"], b["features"])
            assert a["num_frames"] == b["num_frames"]


def test_extraction_runs_every_frame_through_the_evaluation_transform_and_the_eval_backbone(
    tmp_path: Path,
) -> None:
    corpus, backbone = video_corpus(), tiny_backbone()
    backbone.train()  # extraction must switch BatchNorm to its running statistics
    extract(corpus, tmp_path / "f", backbone)
    features, info = load_frame_features(tmp_path / "f")
    assert info.backbone == {"kind": "model", "identity": backbone_identity(backbone), "source": "tiny"}
    clip = VideoTransform(size=16, resize=18, max_frames=10**6)(
        corpus["train"][5]["frames"]
    )  # (11, 3, 16, 16)
    with torch.no_grad():
        expected = backbone.eval()(clip).pooler_output.flatten(1)
    stored = torch.from_numpy(features["train"][5]["features"]).float()
    assert stored.shape == (11, 8)
    torch.testing.assert_close(stored, expected.half().float())


def test_the_identity_follows_weights_and_architecture_not_device_or_memory_format() -> None:
    backbone = tiny_backbone()
    identity = backbone_identity(backbone)
    assert backbone_identity(backbone.to(memory_format=torch.channels_last)) == identity
    assert backbone_identity(tiny_backbone(seed=1)) != identity
    with torch.no_grad():
        backbone.embedder.embedder.convolution.weight[0, 0, 0, 0] += 1e-3
    assert backbone_identity(backbone) != identity


def test_training_checks_of_a_features_corpus(tmp_path: Path) -> None:
    model = SclSltForSignTranslation(SclSltConfig.from_preset("tiny"))
    write_twin(tmp_path / "twin")
    info = read_frame_features_info(tmp_path / "twin")
    line = check_features_backbone(info, model, "cfg.yaml: video.features")
    assert "synthetic frame features" in line and "does not produce them" in line
    extracted = FrameFeaturesInfo(
        8,
        {"kind": "model", "identity": backbone_identity(model.video_encoder.backbone), "source": "x"},
        None,
        "de",
        {},
    )
    assert check_features_backbone(extracted, model, "cfg.yaml: video.features") is None
    other = FrameFeaturesInfo(8, {**extracted.backbone, "identity": "f" * 64}, None, "de", {})
    with pytest.raises(
        ConfigError, match=r"^cfg.yaml: video.features: the features were made by backbone ffff"
    ):
        check_features_backbone(other, model, "cfg.yaml: video.features")
    wide = FrameFeaturesInfo(16, TWIN, None, "de", {})
    with pytest.raises(ConfigError, match="features of size 16; the model's backbone gives 8"):
        check_features_backbone(wide, model, "cfg.yaml: video.features")


# --- collation ------------------------------------------------------------------------------------
def test_the_collator_pads_features_with_the_frame_mask_and_subsamples_like_pixels() -> None:
    tokenizer = train_tokenizer(
        ["sentence one", "sentence two"], tgt_lang="de_DE", vocab_size=50, model="wordlevel"
    )
    collator = SignTranslationCollator(tokenizer, VideoTransform(max_frames=6))
    long, short = np.arange(10 * 4, dtype=np.float16).reshape(10, 4), np.ones((5, 4), np.float16)
    batch = collator(
        [{"features": long, "text": "sentence one"}, {"features": short, "text": "sentence two"}]
    )
    assert set(batch) == {
        "frame_features",
        "attention_mask",
        "labels",
        "text_input_ids",
        "text_attention_mask",
    }
    assert batch["frame_features"].shape == (2, 6, 4) and batch["frame_features"].dtype == torch.float16
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 5 + [0]]
    kept = uniform_frame_indices(10, 6)
    assert torch.equal(batch["frame_features"][0], torch.from_numpy(long)[kept])
    assert not batch["frame_features"][1, 5].any()
    with pytest.raises(ValueError, match="some examples have frame 'features' and others do not"):
        collator([{"features": short, "text": "a"}, {"pixel_values": torch.zeros(5, 3, 8, 8), "text": "b"}])
    with pytest.raises(ValueError, match="sample 'x' has 3 frames; at least 4"):
        collator([{"name": "x", "features": short[:3], "text": "a"}])


# --- plan -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_plan_of_a_features_run_has_no_backbone_activations_or_gradients() -> None:
    config = demo_config()
    config.video.max_frames = 16
    for stage in ("reference", "scl", "translate"):
        getattr(config, stage).batch_size = 4
    pixels = make_plan(config, PlanDevice("gpu", 1, None))
    config.video.features = "features"  # the plan reads no file
    features = make_plan(config, PlanDevice("gpu", 1, None))
    assert "stored float16 features" in features.shape_note and "pixels" in pixels.shape_note
    backbone = SclSltForSignTranslation(SclSltConfig.from_preset("small")).video_encoder.backbone
    backbone_parameters = sum(p.numel() for p in backbone.parameters())
    for on_pixels, on_features in zip(pixels.stages, features.stages, strict=True):
        assert [variant.kind for variant, _ in on_features.rows] == [
            variant.kind for variant, _ in on_pixels.rows
        ]
        pixel_memory, feature_memory = on_pixels.rows[0][1], on_features.rows[0][1]
        assert feature_memory.updated_parameters == pixel_memory.updated_parameters - backbone_parameters
        assert feature_memory.activations < pixel_memory.activations
        assert feature_memory.weights == pixel_memory.weights
    assert features.time[0].startswith("no estimate: frames/s were measured with the backbone running")


# --- user errors ----------------------------------------------------------------------------------
def test_user_errors_end_in_one_line(tmp_path: Path, capsys) -> None:
    from trainers.application.cli import main

    config = demo_config(quick=True)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert main(["extract-features", str(path), "--output-dir", str(tmp_path / "f")]) == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        f"scl-slt extract-features: error: {path}: model.backbone is not set: extract-features needs a "
        "pretrained backbone there (e.g. microsoft/resnet-18) or a model folder (--model)"
    )
    assert (
        main(["extract-features", str(path), "--output-dir", str(tmp_path / "f"), "--model", str(tmp_path)])
        == 2
    )
    assert "is not a saved model folder (no config.json)" in capsys.readouterr().err
    broken = tmp_path / "broken-model"  # weights emptied, e.g. by a copy that ran out of disk
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"")
    arguments = ["extract-features", str(path), "--output-dir", str(tmp_path / "f"), "--model", str(broken)]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert error.startswith(
        f"scl-slt extract-features: error: {broken / 'model.safetensors'} is damaged (0 bytes: "
    )
    missing = tmp_path / "nowhere"
    assert (
        main(
            ["train", str(path), "--output-dir", str(tmp_path / "run"), "--set", f"video.features={missing}"]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.startswith(
        f"scl-slt train: error: {path}: video.features: {missing / 'features.json'} is missing"
    )
    assert len(error.splitlines()) == 1
    extracted = tmp_path / "extracted"
    write_frame_features_corpus(
        extracted, {"train": rows(2, 8, "t")}, 8, TWIN, {"size": 224, "resize": 256, "normalize": True}, "de"
    )
    assert (
        main(
            [
                "train",
                str(path),
                "--output-dir",
                str(tmp_path / "run"),
                "--set",
                f"video.features={extracted}",
            ]
        )
        == 2
    )
    assert (
        "video.features: the features were extracted at size 224, resize 256; video.image_size 32 and "
        "video.resize 32 must match" in capsys.readouterr().err
    )
