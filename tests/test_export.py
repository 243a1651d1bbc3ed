"""Parquet export embeds frame bytes: the export survives deleting the original frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest

from datasets_scripts import export_parquet, load_phoenix2014t, load_sign_corpus
from tests._corpus_builders import make_phoenix, write_csv_rows, write_video


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def pixels(dataset: datasets.Dataset) -> list[list[np.ndarray]]:
    return [[np.asarray(image) for image in example["frames"]] for example in dataset]


def reload(files: dict[str, Path], cache: Path) -> datasets.DatasetDict:
    return datasets.load_dataset(
        "parquet",
        data_files={split: str(path) for split, path in files.items()},
        cache_dir=str(cache / "reload"),
    )


def test_exported_corpus_decodes_after_the_frames_are_deleted(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path / "data", frames={"train-a": 11})
    corpus = load_phoenix2014t(release, cache_dir=cache)
    expected = {split: pixels(corpus[split]) for split in corpus}

    files = export_parquet(corpus, tmp_path / "export")
    shutil.rmtree(release)
    reloaded = reload(files, cache)

    assert sorted(files) == ["test", "train", "validation"]
    assert reloaded["train"].features == corpus["train"].features
    assert reloaded["train"]["name"] == ["train-a", "train-b"]
    for split in corpus:
        got = pixels(reloaded[split])
        assert [len(frames) for frames in got] == [len(frames) for frames in expected[split]]
        for got_frames, expected_frames in zip(got, expected[split], strict=True):
            for got_frame, expected_frame in zip(got_frames, expected_frames, strict=True):
                np.testing.assert_array_equal(got_frame, expected_frame)  # PNG: exact


def test_export_of_one_split_after_skipping(tmp_path: Path, cache: Path) -> None:
    write_video(tmp_path / "good.mp4", 3)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    write_video(tmp_path / "also-good.mp4", 2)
    manifest = write_csv_rows(
        tmp_path / "m.csv", "video,text", ["good.mp4,a", "bad.mp4,b", "also-good.mp4,c"]
    )
    train = load_sign_corpus(manifest, on_error="skip", cache_dir=cache)["train"]  # rows selected by index

    files = export_parquet(train, tmp_path / "train.parquet")
    reloaded = reload(files, cache)["train"]

    assert reloaded["name"] == ["good", "also-good"]
    assert reloaded["num_frames"] == [3, 2]
    for got, expected in zip(pixels(reloaded), pixels(train), strict=True):
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))
