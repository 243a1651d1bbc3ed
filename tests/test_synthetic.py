"""Tests of the built-in synthetic sign language corpus."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from datasets_scripts.synthetic import (
    DUPLICATE_RICH,
    SIGN_LEXICON,
    TEMPLATE_SLOTS,
    SyntheticSentence,
    make_signers,
    make_synthetic_corpus,
    near_duplicate,
    sample_sentence,
)

CONTRACT_COLUMNS = ["name", "video", "text", "split", "signer", "gloss", "language"]


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def decode_mp4(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_frame_folder(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(file)) for file in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def mp4_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_corpus(tmp_path_factory.mktemp("mp4"), seed=0, size="tiny")


@pytest.fixture(scope="module")
def rows(mp4_manifest: Path) -> list[dict[str, str]]:
    return read_manifest(mp4_manifest)


def test_manifest_has_the_contract_columns_and_splits(mp4_manifest: Path, rows: list[dict[str, str]]) -> None:
    assert mp4_manifest.name == "manifest.csv"
    assert list(rows[0]) == CONTRACT_COLUMNS
    assert Counter(row["split"] for row in rows) == {"train": 24, "validation": 6, "test": 6}
    assert len({row["name"] for row in rows}) == len(rows)
    assert all((mp4_manifest.parent / row["video"]).is_file() for row in rows)


def test_same_seed_gives_identical_manifest_and_frames(tmp_path: Path, mp4_manifest: Path) -> None:
    again = make_synthetic_corpus(tmp_path / "again", seed=0, size="tiny")
    assert again.read_bytes() == mp4_manifest.read_bytes()
    for row in read_manifest(again)[:3]:
        assert np.array_equal(
            decode_mp4(again.parent / row["video"]), decode_mp4(mp4_manifest.parent / row["video"])
        )
    other = make_synthetic_corpus(tmp_path / "other", seed=1, size="tiny")
    assert other.read_bytes() != mp4_manifest.read_bytes()


def test_mp4_decodes_losslessly_to_the_same_frames_as_png_folders(
    tmp_path: Path, mp4_manifest: Path, rows: list[dict[str, str]]
) -> None:
    frames_manifest = make_synthetic_corpus(tmp_path, seed=0, size="tiny", video_format="frames")
    frame_rows = read_manifest(frames_manifest)
    assert [row["text"] for row in frame_rows] == [row["text"] for row in rows]
    for mp4_row, frame_row in list(zip(rows, frame_rows, strict=True))[::7]:
        from_mp4 = decode_mp4(mp4_manifest.parent / mp4_row["video"])
        from_png = read_frame_folder(frames_manifest.parent / frame_row["video"])
        assert from_mp4.shape == (len(from_png), 64, 64, 3)
        assert np.array_equal(from_mp4, from_png)  # libx264rgb at qp 0 is lossless
        assert 16 <= len(from_png) <= 63


def test_train_split_holds_repeated_and_near_duplicate_sentences(rows: list[dict[str, str]]) -> None:
    train = [row for row in rows if row["split"] == "train"]
    repeats = [text for text, count in Counter(row["text"] for row in train).items() if count > 1]
    assert repeats
    for text in repeats:  # a repeated sentence is signed by more than one signer
        assert len({row["signer"] for row in train if row["text"] == text}) > 1
    distinct = sorted({row["text"] for row in train})
    one_word_apart = [
        (a, b)
        for i, a in enumerate(distinct)
        for b in distinct[i + 1 :]
        if len(a.split()) == len(b.split())
        and sum(x != y for x, y in zip(a.split(), b.split(), strict=True)) == 1
    ]
    assert one_word_apart


def test_duplicate_knob_controls_how_often_sentences_repeat(tmp_path: Path) -> None:
    def distinct_share(manifest: Path) -> float:
        train = [row["text"] for row in read_manifest(manifest) if row["split"] == "train"]
        return len(set(train)) / len(train)

    plain = make_synthetic_corpus(
        tmp_path / "plain", size=40, repeat_fraction=0.0, near_duplicate_fraction=0.0, video_format="frames"
    )
    rich = make_synthetic_corpus(tmp_path / "rich", size=40, video_format="frames", **DUPLICATE_RICH)
    assert distinct_share(rich) < 0.6 < distinct_share(plain)


def test_sign_order_differs_from_word_order(rows: list[dict[str, str]]) -> None:
    reordered = 0
    for row in rows:
        words, glosses = row["text"].split(), row["gloss"].split()
        assert 5 <= len(words) <= 8 and 3 <= len(glosses) <= 5
        assert all(gloss in SIGN_LEXICON for gloss in glosses)
        # The time word opens the sentence but closes the signing.
        assert glosses[-1].lower() == words[0]
        reordered += glosses[0].lower() != words[0]
    assert reordered == len(rows)


def test_test_split_holds_a_signer_unseen_in_training(rows: list[dict[str, str]]) -> None:
    train_signers = {row["signer"] for row in rows if row["split"] == "train"}
    unseen = {row["signer"] for row in rows if row["split"] == "test"} - train_signers
    assert unseen
    signers = {signer.name: signer for signer in make_signers(8, seed=0)}
    train_looks = {(signers[name].hand_colour, signers[name].background) for name in train_signers}
    assert all((signers[name].hand_colour, signers[name].background) not in train_looks for name in unseen)


def test_jsonl_manifest_holds_the_same_rows(tmp_path: Path, rows: list[dict[str, str]]) -> None:
    manifest = make_synthetic_corpus(tmp_path, size="tiny", manifest_format="jsonl", video_format="frames")
    json_rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]
    assert manifest.suffix == ".jsonl"
    assert [row["text"] for row in json_rows] == [row["text"] for row in rows]
    assert all(row["video"].startswith("frames/") for row in json_rows)


def test_lexicon_signs_are_all_distinct_and_cover_the_grammar() -> None:
    looks = {(s.shape, s.path, s.start, s.end, s.two_handed) for s in SIGN_LEXICON.values()}
    assert len(looks) == len(SIGN_LEXICON) == 29
    rng = np.random.default_rng(0)
    sentences = [sample_sentence(rng) for _ in range(300)]
    assert {sentence.template for sentence in sentences} == set(TEMPLATE_SLOTS)
    assert all(gloss in SIGN_LEXICON for sentence in sentences for gloss in sentence.glosses)
    vocabulary = {word for sentence in sentences for word in sentence.text.split()}
    assert 30 <= len(vocabulary) <= 40


def test_near_duplicate_changes_exactly_one_word() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        sentence = sample_sentence(rng)
        variant = near_duplicate(sentence, rng)
        words, variant_words = sentence.text.split(), variant.text.split()
        assert len(words) == len(variant_words)
        assert sum(a != b for a, b in zip(words, variant_words, strict=True)) == 1


def test_example_sentence_of_the_docstring() -> None:
    slots = {
        "time": "tomorrow",
        "region": "north",
        "intensity": "strong",
        "weather": "rain",
        "temperature": "cold",
    }
    sentence = SyntheticSentence("weather", tuple(slots.items()))
    assert sentence.text == "tomorrow in the north strong rain and cold"
    assert sentence.glosses == ("NORTH", "RAIN", "STRONG", "COLD", "TOMORROW")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "huge"}, "size must be one of"),
        ({"video_format": "gif"}, "video_format"),
        ({"num_unseen_signers": 8}, "num_unseen_signers"),
        ({"repeat_fraction": 0.8, "near_duplicate_fraction": 0.5}, "must not exceed 1"),
    ],
)
def test_invalid_arguments_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_synthetic_corpus(tmp_path, **kwargs)


def test_load_sign_corpus_reads_the_synthetic_corpus(mp4_manifest: Path, tmp_path: Path) -> None:
    from datasets_scripts import manifest

    corpus = manifest.load_sign_corpus(mp4_manifest, cache_dir=tmp_path)
    assert set(corpus) == {"train", "validation", "test"}
    assert {"name", "signer", "text", "frames", "num_frames"} <= set(corpus["train"].column_names)
    assert [corpus[split].num_rows for split in ("train", "validation", "test")] == [24, 6, 6]
    example = corpus["test"][0]
    assert example["num_frames"] == len(example["frames"]) >= 16
    assert example["frames"][0].size == (64, 64)
    first = next(row for row in read_manifest(mp4_manifest) if row["split"] == "test")
    assert (example["text"], example["gloss"], example["language"]) == (first["text"], first["gloss"], "en")
    decoded = np.stack([np.asarray(frame.convert("RGB")) for frame in example["frames"]])
    assert np.array_equal(decoded, decode_mp4(mp4_manifest.parent / first["video"]))


def test_load_sign_corpus_reads_synthetic_frame_folders(tmp_path: Path) -> None:
    from datasets_scripts import manifest

    frames_manifest = make_synthetic_corpus(tmp_path / "corpus", size="tiny", video_format="frames")
    corpus = manifest.load_sign_corpus(frames_manifest, cache_dir=tmp_path / "cache")
    first = read_manifest(frames_manifest)[0]
    example = corpus["train"][0]
    assert example["name"] == first["name"]
    assert example["num_frames"] == len(list((frames_manifest.parent / first["video"]).glob("*.png")))
    assert np.array_equal(
        np.asarray(example["frames"][-1]), read_frame_folder(frames_manifest.parent / first["video"])[-1]
    )


def test_regenerating_into_the_same_folder_leaves_no_stale_frames(tmp_path: Path) -> None:
    make_synthetic_corpus(tmp_path / "reused", seed=0, size=4, video_format="frames")
    reused = make_synthetic_corpus(tmp_path / "reused", seed=1, size=4, video_format="frames")
    clean = make_synthetic_corpus(tmp_path / "clean", seed=1, size=4, video_format="frames")
    for row in read_manifest(reused):
        reused_frames = read_frame_folder(reused.parent / row["video"])
        assert np.array_equal(reused_frames, read_frame_folder(clean.parent / row["video"]))
