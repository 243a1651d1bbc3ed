"""Tests of the feature-level twin: real lengths and splits, determinism, the difficulty knob, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from datasets_scripts import CorpusError, read_gloss_annotations
from datasets_scripts.frame_features import FORMAT as FEATURES_FORMAT
from datasets_scripts.frame_features import FrameFeaturesWriter
from datasets_scripts.synthetic.feature_twin import (
    FeatureTwinParameters,
    _stable_int,
    assign_signers,
    broadcast_of,
    make_feature_twin,
)
from tests._shared_data import PHOENIX_SPLITS, phoenix_rows

SMALL = FeatureTwinParameters(feature_dim=24, sign_rank=8, difficulty=0.3)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def tiny_rows() -> dict[str, list[dict]]:
    rows = {
        "train": [
            {"name": "1May_2011_Sunday_tagesschau-1", "gloss": "A B C", "text": "a b c", "num_frames": 40},
            {"name": "1May_2011_Sunday_tagesschau-2", "gloss": "B C", "text": "b c", "num_frames": 3},
            {"name": "2May_2011_Monday_heute-1", "gloss": "A A D E F", "text": "a d", "num_frames": 57},
        ],
        "validation": [{"name": "3May_2011_Tuesday_heute-4", "gloss": "", "text": "nichts", "num_frames": 9}],
        "test": [{"name": "4May_2011_Wednesday_heute-7", "gloss": "C D", "text": "c d", "num_frames": 21}],
    }
    return rows


def load_split(folder: Path, split: str) -> datasets.Dataset:
    files = sorted(str(path) for path in (folder / split).glob("*.parquet"))
    return datasets.Dataset.from_parquet(files, cache_dir=str(folder.parent / "cache"), keep_in_memory=True)


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*.parquet"))}


def test_shared_data_real_annotations_keep_their_splits_names_texts_and_lengths(tmp_path: Path) -> None:
    """Real PHOENIX-2014T rows (the first 5 of each split): one row each, in order, T = num_frames."""
    rows = {split: phoenix_rows(split)[:5] for split in PHOENIX_SPLITS}
    folder = make_feature_twin(
        {split: rows[split] for split in rows}, tmp_path / "twin", FeatureTwinParameters(difficulty=0.5)
    )
    manifest = json.loads((folder / "features.json").read_text(encoding="utf-8"))
    assert manifest["format"] == FEATURES_FORMAT and manifest["version"] == 1
    assert manifest["feature_dim"] == 512 and manifest["dtype"] == "float16"
    assert manifest["splits"] == {"train": 5, "validation": 5, "test": 5}
    assert manifest["backbone"]["kind"] == "synthetic"
    assert manifest["backbone"]["identity"].startswith("feature-twin:")
    for split in PHOENIX_SPLITS:
        table = pq.read_table(next((folder / split).glob("*.parquet")))
        assert table.schema.field("features").type.storage_type.value_type.value_type == "halffloat"
        assert json.loads((folder / "feature_twin.json").read_text())["parameters"]["difficulty"] == 0.5
        loaded = load_split(folder, split)
        assert loaded["name"][:] == [row["name"] for row in rows[split]]
        assert loaded["text"][:] == [row["text"] for row in rows[split]]
        loaded = loaded.with_format("numpy")
        for index, row in enumerate(rows[split]):
            features = loaded[index]["features"]
            assert features.shape == (row["num_frames"], 512)
            assert loaded[index]["num_frames"] == row["num_frames"]
            assert features.min() >= 0 and 0 < (features == 0).mean() < 0.9


def test_frame_step_keeps_every_kth_frame(tmp_path: Path) -> None:
    rows = tiny_rows()
    parameters = FeatureTwinParameters(feature_dim=24, sign_rank=8, frame_step=4)
    folder = make_feature_twin(rows, tmp_path / "twin", parameters)
    loaded = load_split(folder, "train")
    assert loaded["num_frames"][:] == [math.ceil(row["num_frames"] / 4) for row in rows["train"]]


def test_same_parameters_give_the_same_bytes_and_another_seed_other_features(tmp_path: Path) -> None:
    rows = tiny_rows()
    first = make_feature_twin(rows, tmp_path / "first", SMALL, shard_size=2)
    second = make_feature_twin(rows, tmp_path / "second", SMALL, shard_size=2)
    assert shard_bytes(first) == shard_bytes(second)
    assert len(list((first / "train").glob("*.parquet"))) == 2
    # A video's features do not depend on which videos share its shard.
    one_shard = make_feature_twin(rows, tmp_path / "one", SMALL, shard_size=100)
    np.testing.assert_array_equal(
        load_split(first, "train").with_format("numpy")[2]["features"],
        load_split(one_shard, "train").with_format("numpy")[2]["features"],
    )
    reseeded = FeatureTwinParameters(feature_dim=24, sign_rank=8, difficulty=0.3, seed=1)
    other = make_feature_twin(rows, tmp_path / "other", reseeded, shard_size=2)
    a = load_split(first, "train").with_format("numpy")[0]["features"]
    b = load_split(other, "train").with_format("numpy")[0]["features"]
    assert a.shape == b.shape and not np.array_equal(a, b)
    identities = {
        json.loads((folder / "features.json").read_text())["backbone"]["identity"]
        for folder in (first, other)
    }
    assert len(identities) == 2


def test_the_difficulty_knob_lowers_nearest_prototype_accuracy_on_shared_data_glosses() -> None:
    """The knob's separability measure, computed here at three levels on 200 real glosses."""
    glosses = sorted({g for row in phoenix_rows("train")[:400] for g in row["gloss"].split()})[:200]
    accuracy = {
        level: FeatureTwinParameters(difficulty=level).nearest_prototype_accuracy(glosses)
        for level in (0.1, 0.8, 1.0)
    }
    assert accuracy[0.1] > 0.95
    assert accuracy[0.1] - accuracy[0.8] > 0.1
    assert accuracy[0.8] - accuracy[1.0] > 0.1


def test_gloss_families_overlap_as_the_knob_rises() -> None:
    """Two glosses of one family: their prototypes' distance shrinks with the knob, to 0 at 1."""
    by_family: dict[int, list[str]] = {}
    for gloss in (f"G{i}" for i in range(200)):
        by_family.setdefault(_stable_int("family", gloss) % FeatureTwinParameters().num_families, []).append(
            gloss
        )
    a, b = next(members[:2] for members in by_family.values() if len(members) >= 2)

    def distance(level: float) -> float:
        renderer = FeatureTwinParameters(difficulty=level).renderer()
        return float(np.linalg.norm(renderer.key_poses(a) - renderer.key_poses(b)))

    assert distance(0.0) > distance(0.5) > distance(0.9) > distance(1.0)
    assert distance(1.0) < 1e-5


def test_a_killed_run_resumes_and_another_corpus_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = tiny_rows()
    complete = shard_bytes(make_feature_twin(rows, tmp_path / "reference", SMALL, shard_size=2))
    folder = tmp_path / "twin"
    real_write = FrameFeaturesWriter.write_shard
    calls = []

    def killed_after_one_shard(self: FrameFeaturesWriter, *args: object) -> Path:
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real_write(self, *args)

    monkeypatch.setattr(FrameFeaturesWriter, "write_shard", killed_after_one_shard)
    with pytest.raises(KeyboardInterrupt):
        make_feature_twin(rows, folder, SMALL, shard_size=2)
    monkeypatch.undo()
    first_shard = next(folder.rglob("*.parquet"))
    assert [p.name for p in folder.rglob("*.parquet")] == [first_shard.name]
    assert not (folder / "features.json").exists()
    kept = first_shard.stat().st_mtime_ns
    other = FeatureTwinParameters(feature_dim=24, sign_rank=8, difficulty=0.9)
    with pytest.raises(ValueError, match="an unfinished extraction with other settings \\(backbone\\)"):
        make_feature_twin(rows, folder, other, shard_size=2)
    make_feature_twin(rows, folder, SMALL, shard_size=2)
    assert shard_bytes(folder) == complete
    assert first_shard.stat().st_mtime_ns == kept
    assert (folder / "features.json").is_file()
    make_feature_twin(rows, folder, SMALL, shard_size=2)  # finished: nothing to do
    assert shard_bytes(folder) == complete
    with pytest.raises(
        ValueError, match="holds a finished feature corpus of other annotations or parameters"
    ):
        make_feature_twin(rows, folder, other)


def test_bad_annotations_are_refused_one_line_per_row(tmp_path: Path) -> None:
    rows = tiny_rows()["train"]
    bad = [rows[0], {**rows[1], "num_frames": 0}, {**rows[2], "text": ""}]
    path = write_jsonl(tmp_path / "train.jsonl", bad)
    with pytest.raises(CorpusError) as error:
        make_feature_twin(path, tmp_path / "twin", SMALL)
    lines = str(error.value).splitlines()
    assert lines[0] == f"2 bad samples in {path}:"
    assert lines[1].strip().startswith("line 2 (name '1May_2011_Sunday_tagesschau-2'): num_frames must be")
    assert lines[2].strip().startswith("line 3 (name '2May_2011_Monday_heute-1'): text must be")
    assert not (tmp_path / "twin").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"difficulty": 1.5}, "difficulty must be a number in \\[0, 1\\], got 1.5"),
        ({"difficulty": "hard"}, "difficulty must be a number in \\[0, 1\\], got 'hard'"),
        ({"feature_dim": 0}, "feature_dim must be an int of at least 1, got 0"),
        ({"sign_rank": 64, "feature_dim": 16}, "sign_rank must be at most feature_dim \\(16\\), got 64"),
    ],
)
def test_bad_parameters_are_named(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FeatureTwinParameters(**arguments)


def test_signers_follow_the_broadcast_on_shared_data_names() -> None:
    assert broadcast_of("11August_2010_Wednesday_tagesschau-2") == "11August_2010_Wednesday_tagesschau"
    rows = read_gloss_annotations({"train": tiny_rows()["train"]})
    signers = assign_signers(rows, 9)
    assert signers["1May_2011_Sunday_tagesschau-1"] == signers["1May_2011_Sunday_tagesschau-2"]
    assert (
        len(set(assign_signers(read_gloss_annotations({"train": phoenix_rows("train")[:2000]}), 9).values()))
        == 9
    )
