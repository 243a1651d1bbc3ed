"""PHOENIX-2014-T loader on a tiny copy of the official release layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from datasets_scripts import CorpusError, load_phoenix2014t
from tests._corpus_builders import frame_pixels, make_phoenix, phoenix_row, write_frames

INNER = Path("PHOENIX-2014-T")
ANNOTATIONS = INNER / "annotations" / "manual"
FRAMES = INNER / "features" / "fullFrame-210x260px"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def test_loads_official_layout_with_all_columns(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path, frames={"train-a": 12})

    corpus = load_phoenix2014t(release, cache_dir=cache)

    assert list(corpus) == ["train", "validation", "test"]
    assert corpus.report.num_rows == {"train": 2, "validation": 1, "test": 1}
    assert corpus.report.skipped == []
    example = corpus["train"][0]
    assert example["name"] == "train-a"
    assert (example["signer"], example["gloss"], example["text"]) == (
        "Signer01",
        "REGEN KOMMEN",
        "es regnet .",
    )
    assert example["num_frames"] == 12 == len(example["frames"])
    # images0002 … images0012: numeric order, frame i has colour frame_pixels(i).
    for index, image in enumerate(example["frames"]):
        np.testing.assert_array_equal(np.asarray(image), frame_pixels(index))
    assert corpus["validation"][0]["name"] == "dev-a"


def test_frames_are_stored_as_paths_not_bytes(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)

    corpus = load_phoenix2014t(release, cache_dir=cache)

    stored = corpus["test"].with_format("arrow")[0]["frames"].to_pylist()[0]
    assert [frame["bytes"] for frame in stored] == [None, None, None]
    assert stored[0]["path"] == str(release / FRAMES / "test" / "test-a" / "images0001.png")


def test_accepts_the_inner_folder(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)

    corpus = load_phoenix2014t(release / INNER, cache_dir=cache)

    assert corpus["train"]["name"] == ["train-a", "train-b"]


def test_frames_sort_numerically_past_9999(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path, rows={"train": [phoenix_row("long")], "dev": [], "test": []})
    folder = release / FRAMES / "train" / "long"
    for frame in folder.iterdir():
        frame.unlink()
    write_frames(folder, 3, start=9999)  # images9999, images10000, images10001: lexical order differs

    frames = load_phoenix2014t(release, cache_dir=cache)["train"][0]["frames"]

    assert [Path(image.filename).name for image in frames] == [
        "images9999.png",
        "images10000.png",
        "images10001.png",
    ]
    np.testing.assert_array_equal(np.asarray(frames[1]), frame_pixels(1))


def test_splits_argument_loads_only_those(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    (release / ANNOTATIONS / "PHOENIX-2014-T.train.corpus.csv").unlink()  # not needed for dev

    corpus = load_phoenix2014t(release, splits=["dev"], cache_dir=cache)

    assert list(corpus) == ["validation"]


def test_missing_annotation_files_are_all_named(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    for split in ("dev", "test"):
        (release / ANNOTATIONS / f"PHOENIX-2014-T.{split}.corpus.csv").unlink()

    with pytest.raises(CorpusError) as error:
        load_phoenix2014t(release, cache_dir=cache)

    message = str(error.value)
    assert "PHOENIX-2014-T.dev.corpus.csv is missing" in message
    assert "PHOENIX-2014-T.test.corpus.csv is missing" in message


def test_missing_data_dir_is_one_clear_error(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_phoenix2014t(tmp_path / "nowhere", cache_dir=cache)


def test_wrong_delimiter_names_expected_and_found_columns(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    csv = release / ANNOTATIONS / "PHOENIX-2014-T.train.corpus.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("|", ","), encoding="utf-8")

    with pytest.raises(CorpusError) as error:
        load_phoenix2014t(release, cache_dir=cache)

    message = str(error.value)
    assert str(csv) in message
    assert (
        "expected the columns name, video, start, end, speaker, orth, translation separated by '|'" in message
    )
    assert "'name,video,start,end,speaker,orth,translation'" in message
    assert "comma-separated" in message


def test_wrong_header_names_the_missing_column(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    csv = release / ANNOTATIONS / "PHOENIX-2014-T.test.corpus.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("|translation", "|text"), encoding="utf-8")

    with pytest.raises(CorpusError, match="missing translation"):
        load_phoenix2014t(release, cache_dir=cache)


def test_missing_and_empty_frame_folders_are_listed_together(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    for frame in (release / FRAMES / "train" / "train-b").iterdir():
        frame.unlink()
    for frame in (release / FRAMES / "test" / "test-a").iterdir():
        frame.unlink()
    (release / FRAMES / "test" / "test-a").rmdir()

    with pytest.raises(CorpusError) as error:
        load_phoenix2014t(release, cache_dir=cache)

    message = str(error.value)
    assert message.startswith("2 bad samples:")
    assert "line 3 (name 'train-b'): frame folder" in message and "holds no frames (*.png)" in message
    assert (
        f"line 2 (name 'test-a'): frame folder {release / FRAMES / 'test' / 'test-a'} is missing" in message
    )
    assert {p.name for p in error.value.problems} == {"train-b", "test-a"}


def test_skip_drops_bad_samples_and_reports_each(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = make_phoenix(tmp_path)
    for frame in (release / FRAMES / "train" / "train-b").iterdir():
        frame.unlink()

    with caplog.at_level(logging.WARNING, logger="datasets_scripts"):
        corpus = load_phoenix2014t(release, on_error="skip", cache_dir=cache)

    assert corpus["train"]["name"] == ["train-a"]
    assert [(p.name, p.where) for p in corpus.report.skipped] == [("train-b", "line 3")]
    assert corpus.report.num_rows["train"] == 1
    assert "Skipping 1 bad sample" in caplog.text and "train-b" in caplog.text


def test_truncated_png_is_caught_by_the_fast_check(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    frame = release / FRAMES / "dev" / "dev-a" / "images0002.png"
    frame.write_bytes(frame.read_bytes()[:-20])

    with pytest.raises(CorpusError, match=r"frame .*images0002\.png is truncated \(no PNG end chunk\)"):
        load_phoenix2014t(release, cache_dir=cache)


def test_zero_length_frame_is_caught(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    (release / FRAMES / "dev" / "dev-a" / "images0003.png").write_bytes(b"")

    with pytest.raises(CorpusError, match=r"images0003\.png is empty \(0 bytes\)"):
        load_phoenix2014t(release, cache_dir=cache)


def test_damage_inside_a_png_needs_the_full_check(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(tmp_path)
    frame = release / FRAMES / "dev" / "dev-a" / "images0001.png"
    data = bytearray(frame.read_bytes())
    idat = data.index(b"IDAT") + 4
    data[idat : idat + 8] = b"\x00" * 8  # corrupt compressed pixels, keep both ends intact
    frame.write_bytes(bytes(data))

    assert load_phoenix2014t(release, cache_dir=cache).report.skipped == []  # fast check passes
    with pytest.raises(CorpusError, match=r"images0001\.png cannot be decoded"):
        load_phoenix2014t(release, frame_check="full", cache_dir=cache)


def test_empty_translation_is_a_bad_sample(tmp_path: Path, cache: Path) -> None:
    rows = {"train": [phoenix_row("a"), phoenix_row("b", text=" ")], "dev": [], "test": []}
    release = make_phoenix(tmp_path, rows=rows)

    with pytest.raises(
        CorpusError, match=r"1 bad sample in .*train\.corpus\.csv:\n  line 3 \(name 'b'\): empty translation"
    ):
        load_phoenix2014t(release, cache_dir=cache)


def test_non_utf8_line_names_line_and_byte_offset(tmp_path: Path, cache: Path) -> None:
    release = make_phoenix(
        tmp_path, rows={"train": [phoenix_row("a"), phoenix_row("b")], "dev": [], "test": []}
    )
    csv = release / ANNOTATIONS / "PHOENIX-2014-T.train.corpus.csv"
    lines = csv.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"es regnet", b"es n\xe4sst")  # latin-1 "ä"
    csv.write_bytes(b"\n".join(lines))
    offset = len(lines[0]) + len(lines[1]) + 2 + lines[2].index(b"\xe4")

    with pytest.raises(CorpusError) as error:
        load_phoenix2014t(release, cache_dir=cache)

    assert f"line 3: is not valid UTF-8 (byte 0xE4 at byte offset {offset})" in str(error.value)
    assert str(csv) in str(error.value)


def test_duplicate_names_across_splits_are_reported(tmp_path: Path, cache: Path) -> None:
    rows = {"train": [phoenix_row("same")], "dev": [], "test": [phoenix_row("same")]}
    release = make_phoenix(tmp_path, rows=rows)

    with pytest.raises(
        CorpusError, match=r"line 2 \(name 'same'\): duplicate name, already used at line 2 of .*train"
    ):
        load_phoenix2014t(release, cache_dir=cache)


def test_row_with_wrong_field_count_is_reported(tmp_path: Path, cache: Path) -> None:
    rows = {"train": [phoenix_row("a"), "b|b/1/*.png|-1|-1|Signer01"], "dev": [], "test": []}
    release = make_phoenix(tmp_path, rows=rows)

    corpus = load_phoenix2014t(release, on_error="skip", cache_dir=cache)

    assert corpus["train"]["name"] == ["a"]
    assert str(corpus.report.skipped[0]) == "line 3: expected 7 fields separated by '|', found 5"


def test_quotes_in_a_translation_are_kept_verbatim(tmp_path: Path, cache: Path) -> None:
    rows = {"train": [phoenix_row("q", text='"morgen" sonne , dann regen .')], "dev": [], "test": []}
    release = make_phoenix(tmp_path, rows=rows)

    assert load_phoenix2014t(release, cache_dir=cache)["train"][0]["text"] == '"morgen" sonne , dann regen .'


def test_misspelt_on_error_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip', got 'ignore'"):
        load_phoenix2014t(tmp_path, on_error="ignore")  # type: ignore[arg-type]
