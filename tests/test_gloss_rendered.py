"""Tests of the gloss-rendered corpus: real PHOENIX-2014T rows and tiny rows in every input format."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datasets_scripts import (
    CorpusError,
    GlossRow,
    load_sign_corpus,
    make_gloss_rendered_corpus,
    read_gloss_annotations,
)
from datasets_scripts.synthetic.gloss_signs import GlossSign, assign_signers, gloss_sign, segment_frames
from datasets_scripts.synthetic.rendering import make_signers
from tests._corpus_builders import csl_entry, make_csl_daily, make_phoenix, phoenix_row, write_csv_rows
from tests._shared_data import PHOENIX_SPLITS, phoenix_rows

SIZE = 12  # pixels: enough to tell signers apart, small enough to keep every test fast
EMPTY_GLOSS_NAME = "11December_2009_Friday_tagesschau-3509"  # a real validation row without glosses
FIX_HINT = "Fix these samples, or pass on_error='skip' to drop them."


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_frames(folder: Path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of a PNG frame folder."""
    return np.stack([np.asarray(Image.open(file)) for file in sorted(folder.glob("*.png"))])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def real_rows() -> dict[str, list[dict]]:
    """Three real rows per split, plus the real validation row whose gloss sequence is empty."""
    rows = {split: phoenix_rows(split)[:3] for split in PHOENIX_SPLITS}
    rows["validation"].append(next(r for r in phoenix_rows("validation") if r["name"] == EMPTY_GLOSS_NAME))
    return rows


@pytest.fixture(scope="module")
def real_files(real_rows: dict[str, list[dict]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real rows as ``{train,validation,test}.jsonl`` in a folder, like ``shared/data/phoenix2014t``."""
    folder = tmp_path_factory.mktemp("annotations")
    for split, rows in real_rows.items():
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


@pytest.fixture(scope="module")
def manifest(real_files: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gloss_rendered_corpus(real_files, tmp_path_factory.mktemp("corpus"), image_size=SIZE)


def test_every_video_has_exactly_its_real_number_of_frames(
    manifest: Path, real_rows: dict[str, list[dict]], tmp_path: Path
) -> None:
    expected = {row["name"]: row["num_frames"] for rows in real_rows.values() for row in rows}
    rows = read_manifest(manifest)
    assert {row["name"]: len(read_frames(manifest.parent / row["video"])) for row in rows} == expected
    assert read_frames(manifest.parent / rows[0]["video"]).shape[1:] == (SIZE, SIZE, 3)

    subsampled = make_gloss_rendered_corpus(
        {split: rows[:2] for split, rows in real_rows.items()}, tmp_path, image_size=SIZE, frame_step=3
    )
    for row in read_manifest(subsampled):
        assert len(list((tmp_path / row["video"]).glob("*.png"))) == math.ceil(expected[row["name"]] / 3)


def test_manifest_keeps_names_glosses_texts_and_splits(
    manifest: Path, real_rows: dict[str, list[dict]]
) -> None:
    rows = read_manifest(manifest)
    assert list(rows[0]) == ["name", "video", "text", "split", "signer", "gloss"]
    assert [(row["split"], row["name"], row["gloss"], row["text"]) for row in rows] == [
        (split, row["name"], row["gloss"], row["text"])
        for split, split_rows in real_rows.items()
        for row in split_rows
    ]
    assert rows[0]["video"] == f"frames/train/{rows[0]['name']}"


def test_load_sign_corpus_reads_the_three_splits(
    manifest: Path, real_rows: dict[str, list[dict]], tmp_path: Path
) -> None:
    corpus = load_sign_corpus(manifest, cache_dir=tmp_path)
    assert list(corpus) == ["train", "validation", "test"]
    for split, rows in real_rows.items():
        assert corpus[split]["name"] == [row["name"] for row in rows]
        assert corpus[split]["text"] == [row["text"] for row in rows]
        assert corpus[split]["num_frames"] == [row["num_frames"] for row in rows]
    example = corpus["test"][0]
    first = read_manifest(manifest)[len(real_rows["train"]) + len(real_rows["validation"])]
    decoded = np.stack([np.asarray(frame.convert("RGB")) for frame in example["frames"]])
    assert np.array_equal(decoded, read_frames(manifest.parent / first["video"]))


def test_same_input_gives_the_same_bytes_with_any_number_of_workers(
    manifest: Path, real_files: Path, tmp_path: Path
) -> None:
    again = make_gloss_rendered_corpus(real_files, tmp_path, image_size=SIZE, num_workers=2)
    assert again.read_bytes() == manifest.read_bytes()
    for row in read_manifest(manifest):
        first, second = (
            sorted((manifest.parent / row["video"]).iterdir()),
            sorted((tmp_path / row["video"]).iterdir()),
        )
        assert [file.name for file in first] == [file.name for file in second]
        assert [file.read_bytes() for file in first] == [file.read_bytes() for file in second]
    other_seed = make_gloss_rendered_corpus(real_files, tmp_path / "seed1", image_size=SIZE, seed=1)
    assert read_frames(other_seed.parent / row["video"]).tobytes() != read_frames(second[0].parent).tobytes()


def test_a_video_does_not_depend_on_the_other_rows_or_the_process(tmp_path: Path) -> None:
    row = {"name": "v1", "gloss": "REGEN SONNE", "text": "regen dann sonne", "num_frames": 20, "signer": "A"}
    other = {"name": "v2", "gloss": "WIND", "text": "wind", "num_frames": 9, "signer": "B"}
    alone = make_gloss_rendered_corpus({"train": [row]}, tmp_path / "alone", image_size=SIZE)
    # Signer ids map in sorted order, so "A" is signer01 in both corpora.
    crowded = make_gloss_rendered_corpus(
        {"train": [other, row]}, tmp_path / "crowded", image_size=SIZE, seed=0
    )
    assert np.array_equal(
        read_frames(alone.parent / "frames/train/v1"), read_frames(crowded.parent / "frames/train/v1")
    )
    # The sign of a gloss is a pure function of the string: these values hold in every process and run.
    assert gloss_sign("REGEN") == GlossSign(
        "REGEN", "square", "line", (0.097, -0.624), (0.023, -0.156), "one", "square", (-0.208, 0.331)
    )
    assert gloss_sign("天气").path == "repeat" and gloss_sign("__ON__").handedness == "mirrored"
    assert gloss_sign("REGEN") != gloss_sign("REGEN-PLUSPLUS")


def test_an_empty_gloss_sequence_is_a_signer_at_rest(manifest: Path) -> None:
    frames = read_frames(manifest.parent / f"frames/validation/{EMPTY_GLOSS_NAME}")
    assert (frames == frames[0]).all()


def test_timing_fills_the_frames_and_gives_every_sign_a_frame() -> None:
    signer = make_signers(9, 0)[3]
    for num_frames in (1, 4, 7, 28, 112, 475):
        counts = segment_frames(7, num_frames, signer, np.random.default_rng(num_frames))
        assert counts.sum() == num_frames and (counts >= 0).all()
        if num_frames >= 7:
            assert (counts[2:15:2] >= 1).all()


def test_signers_are_drawn_from_the_name_when_rows_have_none() -> None:
    names = [row["name"] for row in phoenix_rows("train")]
    by_name = assign_signers([(name, None) for name in names], 9, seed=0)
    counts = Counter(signer.name for signer in by_name.values())
    assert sorted(counts) == [f"signer{i:02d}" for i in range(1, 10)]
    assert min(counts.values()) > len(names) / 9 * 0.8  # roughly balanced
    assert assign_signers([(names[0], None)], 9, seed=0)[names[0]] == by_name[names[0]]


def test_rows_signer_ids_are_kept_and_map_to_distinct_looks(tmp_path: Path) -> None:
    rows = [
        {"name": f"v{i}", "gloss": "REGEN", "text": "regen", "num_frames": 5, "signer": signer}
        for i, signer in enumerate(["Signer10", "Signer02", "Signer02"])
    ]
    manifest = make_gloss_rendered_corpus({"train": rows}, tmp_path, image_size=SIZE, num_signers=2)
    assert [row["signer"] for row in read_manifest(manifest)] == ["Signer10", "Signer02", "Signer02"]
    backgrounds = [tuple(read_frames(tmp_path / f"frames/train/v{i}")[0, 0, 0]) for i in range(3)]
    signer01, signer02 = make_signers(2, 0)  # natural order: Signer02 → signer01, Signer10 → signer02
    assert backgrounds == [signer02.background, signer01.background, signer01.background]
    with pytest.raises(ValueError, match=r"name 2 signers \(Signer02, Signer10\) but num_signers=1"):
        make_gloss_rendered_corpus({"train": rows}, tmp_path / "few", image_size=SIZE, num_signers=1)


def test_max_train_videos_keeps_the_first_train_rows_and_whole_held_out_splits(
    real_files: Path, real_rows: dict[str, list[dict]], tmp_path: Path
) -> None:
    manifest = make_gloss_rendered_corpus(real_files, tmp_path, image_size=SIZE, max_train_videos=1)
    counts = Counter(row["split"] for row in read_manifest(manifest))
    assert counts == {"train": 1, "validation": len(real_rows["validation"]), "test": len(real_rows["test"])}


# --------------------------------------------------------------------------------------------
# Input formats and bad input
# --------------------------------------------------------------------------------------------


def test_phoenix_release_csv_counts_frames_in_the_frame_folders(tmp_path: Path) -> None:
    release = make_phoenix(
        tmp_path,
        rows={
            "train": [phoenix_row("train-a", "Signer01", "REGEN KOMMEN", "es regnet .")],
            "dev": [phoenix_row("dev-a", "Signer02", "SONNE", "sonne .")],
            "test": [phoenix_row("test-a", "Signer01", "WIND", "wind .")],
        },
        frames={"train-a": 7, "dev-a": 4, "test-a": 5},
    )
    annotations = read_gloss_annotations(release, format="phoenix")
    assert annotations == {
        "train": [GlossRow("train-a", ("REGEN", "KOMMEN"), "es regnet .", 7, "Signer01")],
        "validation": [GlossRow("dev-a", ("SONNE",), "sonne .", 4, "Signer02")],
        "test": [GlossRow("test-a", ("WIND",), "wind .", 5, "Signer01")],
    }
    manifest = make_gloss_rendered_corpus(release, tmp_path / "out", image_size=SIZE, language="de")
    assert [(r["split"], r["signer"], r["language"]) for r in read_manifest(manifest)] == [
        ("train", "Signer01", "de"),
        ("validation", "Signer02", "de"),
        ("test", "Signer01", "de"),
    ]
    assert len(read_frames(tmp_path / "out/frames/validation/dev-a")) == 4


def test_phoenix_csv_outside_the_release_needs_a_num_frames_column(tmp_path: Path) -> None:
    header = "name|video|start|end|speaker|orth|translation|num_frames"
    with_counts = write_csv_rows(
        tmp_path / "PHOENIX-2014-T.dev.corpus.csv", header, [phoenix_row("a") + "|12"]
    )
    assert read_gloss_annotations(with_counts) == {
        "validation": [GlossRow("a", ("REGEN", "KOMMEN"), "es regnet .", 12, "Signer01")]
    }
    bare = tmp_path / "bare" / "PHOENIX-2014-T.train.corpus.csv"
    bare.parent.mkdir()
    write_csv_rows(bare, header.rsplit("|", 1)[0], [phoenix_row("b")])
    with pytest.raises(CorpusError) as error:
        read_gloss_annotations(bare)
    assert str(error.value) == (
        f"1 bad sample in {bare}:\n"
        "  line 2 (name 'b'): no frame count: num_frames is missing and there are no frame folders to count\n"
        + FIX_HINT
    )


def test_csl_daily_rows_take_length_and_else_count_frames(tmp_path: Path) -> None:
    no_length = {key: value for key, value in csl_entry("S2", signer=7).items() if key != "length"}
    root = make_csl_daily(
        tmp_path / "csl",
        splits={"S1": "train", "S2": "dev"},
        entries=[csl_entry("S1", signer=3), no_length],
        frames={"S1": 9, "S2": 6},
    )
    annotations = read_gloss_annotations(root)
    assert annotations == {
        "train": [GlossRow("S1", ("今天", "天气", "好"), "今天天气好", 3, "3")],  # the pickle's length wins
        "validation": [GlossRow("S2", ("今天", "天气", "好"), "今天天气好", 6, "7")],  # frames counted
    }
    manifest = make_gloss_rendered_corpus(annotations, tmp_path / "out", image_size=SIZE, language="zh")
    corpus = load_sign_corpus(manifest, cache_dir=tmp_path / "cache")
    assert corpus["validation"][0]["gloss"] == "今天 天气 好" and corpus["validation"][0]["num_frames"] == 6


def test_one_jsonl_file_with_a_split_key(tmp_path: Path) -> None:
    rows = [
        {"name": "a", "gloss": ["X", "Y"], "text": "x y", "num_frames": 4, "split": "dev", "signer": 2},
        {"name": "b", "gloss": "Z", "text": "z", "num_frames": "5"},  # no split: train
    ]
    assert read_gloss_annotations(write_jsonl(tmp_path / "all.jsonl", rows)) == {
        "train": [GlossRow("b", ("Z",), "z", 5)],
        "validation": [GlossRow("a", ("X", "Y"), "x y", 4, "2")],
    }


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            {"name": "a", "gloss": "X", "text": "x"},
            "line 1: lacks the key(s) num_frames (found name, gloss, text)",
        ),
        (
            {"name": "a", "gloss": "X", "text": "x", "num_frames": "many"},
            "line 1 (name 'a'): num_frames must be a positive integer, got 'many'",
        ),
        (
            {"name": "a", "gloss": "X", "text": "x", "num_frames": 2.5},
            "line 1 (name 'a'): num_frames must be a positive integer, got 2.5",
        ),
        (
            {"name": "a", "gloss": "X", "text": "x", "num_frames": 3, "split": "holdout"},
            "line 1 (name 'a'): unknown split 'holdout' (expected train, validation, dev or test)",
        ),
        (
            {"name": "a/b", "gloss": "X", "text": " ", "num_frames": 3},
            "line 1 (name 'a/b'): the name cannot name a frame folder (expected no '/' or '\\', and not"
            " '.' or '..'); text must be a non-empty string, got ' '",
        ),
    ],
    ids=["missing-field", "non-integer-frames", "float-frames", "unknown-split", "bad-name-and-text"],
)
def test_a_bad_row_is_one_clear_error(tmp_path: Path, row: dict, reason: str) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [row])
    with pytest.raises(CorpusError) as error:
        read_gloss_annotations(path)
    assert str(error.value) == f"1 bad sample in {path}:\n  {reason}\n{FIX_HINT}"


def test_every_bad_row_is_reported_and_skip_drops_them_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"name": "ok", "gloss": "X", "text": "x", "num_frames": 3}
    rows = [good, {**good, "num_frames": 0}, {**good, "name": "ok2", "num_frames": 3}, good]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    with pytest.raises(CorpusError) as error:
        read_gloss_annotations({"train": path})
    assert str(error.value) == (
        f"2 bad samples in {path}:\n"
        "  line 2 (name 'ok'): num_frames must be a positive integer, got 0\n"
        f"  line 4 (name 'ok'): duplicate name, already used at line 1 of {path}\n" + FIX_HINT
    )
    assert [row.name for row in read_gloss_annotations({"train": path}, on_error="skip")["train"]] == [
        "ok",
        "ok2",
    ]
    assert "2 bad samples" in caplog.text


def test_unknown_split_keys_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"annotation splits must be train, validation \(or dev/val\) or test; got 'holdout'"
    ):
        read_gloss_annotations({"holdout": tmp_path / "x.jsonl"})
    missing = tmp_path / "train.jsonl"
    with pytest.raises(CorpusError, match=f"^The annotation file {missing} is missing.$"):
        read_gloss_annotations({"train": missing})
    with pytest.raises(ValueError, match="frame_step must be an int of at least 1, got 0"):
        make_gloss_rendered_corpus({"train": []}, tmp_path, frame_step=0)
