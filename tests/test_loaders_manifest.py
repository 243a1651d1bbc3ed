"""Generic manifest loader: CSV/TSV/JSONL, real videos decoded with PyAV, frame folders, How2Sign."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from datasets_scripts import CorpusError, load_sign_corpus
from tests._corpus_builders import frame_pixels, write_csv_rows, write_frames, write_video

VIDEO_SIZE = (32, 32)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


def assert_frames_close(frames: list, tolerance: int = 8) -> None:
    """Frame i must have (about) colour `frame_pixels(i)`; video codecs are near-lossless here."""
    for index, image in enumerate(frames):
        expected = frame_pixels(index, image.width, image.height).astype(int)
        assert np.abs(np.asarray(image.convert("RGB"), dtype=int) - expected).max() <= tolerance, index


@pytest.fixture
def mixed_corpus(tmp_path: Path) -> Path:
    """A CSV naming an mp4 (libx264), a webm (VP9) and a frame folder 1.png … 12.png."""
    corpus = tmp_path / "corpus"
    write_video(corpus / "clips" / "hello.mp4", 12, "libx264", VIDEO_SIZE)
    write_video(corpus / "clips" / "thanks.webm", 5, "libvpx-vp9", VIDEO_SIZE)
    write_frames(corpus / "frames" / "bye", 12, pattern="{}.png")  # 1, 2, …, 10: natural order needed
    return write_csv_rows(
        corpus / "manifest.csv",
        "video,text,split,signer",
        [
            "clips/hello.mp4,Hello there.,train,s1",
            "clips/thanks.webm,Thank you.,dev,s2",
            "frames/bye,Bye.,test,s1",
        ],
    )


def test_videos_and_frame_folders_load_with_their_frames(mixed_corpus: Path, cache: Path) -> None:
    corpus = load_sign_corpus(mixed_corpus, cache_dir=cache)

    assert list(corpus) == ["train", "validation", "test"]
    hello, thanks, bye = corpus["train"][0], corpus["validation"][0], corpus["test"][0]
    assert (hello["name"], hello["text"], hello["signer"]) == ("hello", "Hello there.", "s1")
    assert (hello["num_frames"], thanks["num_frames"], bye["num_frames"]) == (12, 5, 12)
    assert hello["frames"][0].size == VIDEO_SIZE
    for example in (hello, thanks, bye):
        assert len(example["frames"]) == example["num_frames"]
        assert_frames_close(example["frames"])
    assert "gloss" not in corpus["train"].column_names and "language" not in corpus["train"].column_names


def test_videos_are_stored_as_png_bytes_and_folders_as_paths(mixed_corpus: Path, cache: Path) -> None:
    corpus = load_sign_corpus(mixed_corpus, cache_dir=cache)

    video_frames = corpus["train"].with_format("arrow")[0]["frames"].to_pylist()[0]
    folder_frames = corpus["test"].with_format("arrow")[0]["frames"].to_pylist()[0]
    assert all(f["path"] is None and f["bytes"].startswith(PNG_SIGNATURE) for f in video_frames)
    assert [Path(f["path"]).name for f in folder_frames[:3]] == ["1.png", "2.png", "3.png"]
    assert Path(folder_frames[9]["path"]).name == "10.png"
    assert all(f["bytes"] is None for f in folder_frames)


def test_jpeg_option_stores_jpeg_bytes(mixed_corpus: Path, cache: Path) -> None:
    corpus = load_sign_corpus(mixed_corpus, image_format="jpeg", cache_dir=cache)

    frames = corpus["train"].with_format("arrow")[0]["frames"].to_pylist()[0]
    assert frames[0]["bytes"].startswith(b"\xff\xd8\xff")
    assert_frames_close(corpus["train"][0]["frames"], tolerance=12)


def write_numbered_videos(folder: Path, count: int) -> Path:
    """Videos v0.mp4 … with 2, 3, … frames, and their manifest."""
    rows = []
    for index in range(count):
        write_video(folder / f"v{index}.mp4", 2 + index, "mpeg4", VIDEO_SIZE)
        rows.append(f"v{index}.mp4,sentence {index}")
    return write_csv_rows(folder / "m.csv", "video,text", rows)


def test_decoding_in_two_threads_gives_the_rows_and_the_cache_of_one(tmp_path: Path, cache: Path) -> None:
    manifest = write_numbered_videos(tmp_path, 7)  # more than the 4 videos two workers take at a time

    parallel = load_sign_corpus(manifest, num_workers=2, cache_dir=cache)["train"]
    serial = load_sign_corpus(manifest, cache_dir=tmp_path / "serial-cache")["train"]

    assert parallel["name"] == [f"v{index}" for index in range(7)]
    assert parallel["num_frames"] == list(range(2, 9))
    assert parallel.with_format("arrow")["frames"] == serial.with_format("arrow")["frames"]
    # The cached corpus does not depend on how many threads decoded it.
    again = load_sign_corpus(manifest, num_workers=3, cache_dir=cache)["train"]
    assert again.cache_files == parallel.cache_files


@pytest.mark.parametrize("num_workers", [0, -1, 1.5, True])
def test_num_workers_must_be_a_positive_int(tmp_path: Path, num_workers: object) -> None:
    manifest = write_numbered_videos(tmp_path, 1)
    with pytest.raises(ValueError, match=f"num_workers must be a positive int, got {num_workers!r}"):
        load_sign_corpus(manifest, num_workers=num_workers)  # type: ignore[arg-type]


def make_how2sign(root: Path) -> None:
    """How2Sign's layout: tab-separated .csv per split, clips under {split}_rgb_front_clips/raw_videos/."""
    header = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE"
    for split, count in (("train", 2), ("val", 1), ("test", 1)):
        rows = []
        for index in range(count):
            sentence_name = f"{split}VID_{index}-1-rgb_front"
            write_video(root / f"{split}_rgb_front_clips" / "raw_videos" / f"{sentence_name}.mp4", 3 + index)
            fields = [
                f"{split}VID",
                f"{split}VID-1-rgb_front",
                f"{split}_{index}",
                sentence_name,
                "1.5",
                "4.2",
            ]
            rows.append("\t".join([*fields, f"Hi, {split} {index}."]))
        write_csv_rows(root / f"how2sign_realigned_{split}.csv", header, rows)


HOW2SIGN_OPTIONS = {
    "columns": {"name": "SENTENCE_NAME", "text": "SENTENCE"},
    "path_template": "{split}_rgb_front_clips/raw_videos/{SENTENCE_NAME}.mp4",
    "language": "ase",
}


def how2sign_files(root: Path) -> dict[str, Path]:
    return {split: root / f"how2sign_realigned_{split}.csv" for split in ("train", "val", "test")}


def test_how2sign_layout_loads_with_a_mapping_only(tmp_path: Path, cache: Path) -> None:
    make_how2sign(tmp_path)

    corpus = load_sign_corpus(how2sign_files(tmp_path), delimiter="\t", cache_dir=cache, **HOW2SIGN_OPTIONS)

    assert corpus.report.num_rows == {"train": 2, "validation": 1, "test": 1}
    example = corpus["validation"][0]
    assert (example["name"], example["text"], example["language"]) == (
        "valVID_0-1-rgb_front",
        "Hi, val 0.",
        "ase",
    )
    assert corpus["train"]["num_frames"] == [3, 4]
    assert_frames_close(corpus["train"][1]["frames"])


def test_how2sign_without_delimiter_suggests_tab(tmp_path: Path, cache: Path) -> None:
    make_how2sign(tmp_path)

    with pytest.raises(CorpusError) as error:
        load_sign_corpus(how2sign_files(tmp_path), cache_dir=cache, **HOW2SIGN_OPTIONS)

    message = str(error.value)
    assert message.startswith("3 unusable files:")
    assert (
        "how2sign_realigned_train.csv has the wrong header: expected the columns SENTENCE, SENTENCE_NAME"
        in message
    )
    assert "is the file tab-separated (delimiter='\\t')?" in message


def test_jsonl_with_every_optional_column(tmp_path: Path, cache: Path) -> None:
    write_frames(tmp_path / "a", 2)
    write_frames(tmp_path / "b", 3)
    records = [
        {
            "video": "a",
            "text": "ein Satz",
            "split": "valid",
            "signer": 7,
            "language": "gsg",
            "name": "x1",
            "gloss": ["EIN", "SATZ"],
        },
        {
            "video": "b",
            "text": "noch einer",
            "split": "train",
            "signer": 8,
            "language": "gsg",
            "name": "x2",
            "gloss": "NOCH",
        },
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
    )

    corpus = load_sign_corpus(manifest, cache_dir=cache)

    assert list(corpus) == ["train", "validation"]
    example = corpus["validation"][0]
    assert (example["name"], example["signer"], example["language"], example["gloss"]) == (
        "x1",
        "7",
        "gsg",
        "EIN SATZ",
    )
    assert example["num_frames"] == 2


def test_without_split_column_rows_go_to_the_split_argument(tmp_path: Path, cache: Path) -> None:
    write_frames(tmp_path / "clip", 2)
    manifest = write_csv_rows(tmp_path / "m.tsv", "folder\tsentence", ["clip\thola"])

    corpus = load_sign_corpus(
        manifest, columns={"video": "folder", "text": "sentence"}, split="val", cache_dir=cache
    )
    default = load_sign_corpus(manifest, columns={"video": "folder", "text": "sentence"}, cache_dir=cache)

    assert list(corpus) == ["validation"] and corpus["validation"][0]["name"] == "clip"
    assert list(default) == ["train"] and default["train"][0]["signer"] == ""


def test_suffix_template_and_quoted_csv_fields(tmp_path: Path, cache: Path) -> None:
    write_video(tmp_path / "videos" / "clip7.mp4", 3, "mpeg4")
    manifest = write_csv_rows(tmp_path / "m.csv", "id,text", ['videos/clip7,"Yes, we can."'])

    corpus = load_sign_corpus(manifest, columns={"video": "id"}, path_template="{video}.mp4", cache_dir=cache)

    assert corpus["train"][0]["text"] == "Yes, we can."
    assert corpus["train"][0]["name"] == "clip7" and corpus["train"][0]["num_frames"] == 3


def test_quotechar_none_keeps_a_leading_quote(tmp_path: Path, cache: Path) -> None:
    write_frames(tmp_path / "clip", 1)
    manifest = write_csv_rows(tmp_path / "m.tsv", "video\ttext", ['clip\t"Hi," she said.'])

    corpus = load_sign_corpus(manifest, quotechar=None, cache_dir=cache)

    assert corpus["train"][0]["text"] == '"Hi," she said.'


def test_explicitly_mapped_column_must_exist(tmp_path: Path, cache: Path) -> None:
    manifest = write_csv_rows(tmp_path / "m.csv", "video,text", ["a.mp4,hi"])

    with pytest.raises(CorpusError, match=r"expected the columns text, video, SIGNER .* missing SIGNER"):
        load_sign_corpus(manifest, columns={"signer": "SIGNER"}, cache_dir=cache)


def test_template_must_name_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must name columns"):
        load_sign_corpus(tmp_path / "m.csv", path_template="{}.mp4")


def test_missing_manifest(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(CorpusError, match=r"The manifest .*nope\.csv is missing\."):
        load_sign_corpus(tmp_path / "nope.csv", cache_dir=cache)


def test_unknown_extension_and_unknown_column_are_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass format='csv', 'tsv' or 'jsonl'"):
        load_sign_corpus(tmp_path / "m.txt")
    with pytest.raises(ValueError, match="unknown canonical name\\(s\\) sentence"):
        load_sign_corpus(tmp_path / "m.csv", columns={"sentence": "SENTENCE"})


@pytest.fixture
def broken_corpus(tmp_path: Path) -> Path:
    """One good video and five bad rows of different kinds."""
    write_video(tmp_path / "good.mp4", 4)
    write_video(tmp_path / "cut.mp4", 4)
    (tmp_path / "cut.mp4").write_bytes((tmp_path / "cut.mp4").read_bytes()[:200])  # truncated
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.webm").write_bytes(bytes(range(256)) * 4)
    write_video(tmp_path / "quiet.mp4", 2)
    return write_csv_rows(
        tmp_path / "m.csv",
        "video,text",
        [
            "good.mp4,fine",
            "cut.mp4,cut",
            "empty.mp4,empty",
            "noise.webm,noise",
            "missing.mp4,gone",
            "quiet.mp4, ",
        ],
    )


@pytest.mark.parametrize("num_workers", [1, 2])
def test_bad_videos_and_rows_are_listed_in_one_error(
    broken_corpus: Path, cache: Path, num_workers: int
) -> None:
    with pytest.raises(CorpusError) as error:
        load_sign_corpus(broken_corpus, num_workers=num_workers, cache_dir=cache)

    message = str(error.value)
    assert message.startswith(f"5 bad samples in {broken_corpus}:")
    folder = broken_corpus.parent
    assert f"line 3 (name 'cut'): video {folder / 'cut.mp4'} cannot be decoded" in message
    assert f"line 4 (name 'empty'): video {folder / 'empty.mp4'} is empty (0 bytes)" in message
    assert f"line 5 (name 'noise'): video {folder / 'noise.webm'} cannot be decoded" in message
    assert (
        f"line 6 (name 'missing'): video file or frame folder {folder / 'missing.mp4'} is missing" in message
    )
    assert "line 7 (name 'quiet'): empty text (column 'text')" in message
    assert message.index("line 3") < message.index("line 6") < message.index("line 7")  # file order


def test_skip_reports_bad_videos_also_when_loaded_from_cache(
    broken_corpus: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(2):  # the second call reads the arrow cache and must report the same
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="datasets_scripts"):
            corpus = load_sign_corpus(broken_corpus, on_error="skip", cache_dir=cache)
        assert corpus["train"]["name"] == ["good"]
        assert corpus["train"].column_names == ["name", "signer", "text", "frames", "num_frames"]
        assert [p.name for p in corpus.report.skipped] == ["cut", "empty", "noise", "missing", "quiet"]
        assert "Skipping 5 bad samples" in caplog.text


def test_non_utf8_manifest_line(tmp_path: Path, cache: Path) -> None:
    write_frames(tmp_path / "a", 1)
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(b"video,text\na,caf\xe9\n")

    with pytest.raises(CorpusError, match=r"line 2: is not valid UTF-8 \(byte 0xE9 at byte offset 16\)"):
        load_sign_corpus(manifest, cache_dir=cache)


def test_duplicate_names(tmp_path: Path, cache: Path) -> None:
    write_frames(tmp_path / "one" / "clip", 1)
    write_frames(tmp_path / "two" / "clip", 1)
    manifest = write_csv_rows(tmp_path / "m.csv", "video,text", ["one/clip,a", "two/clip,b"])

    with pytest.raises(CorpusError, match=r"line 3 \(name 'clip'\): duplicate name, already used at line 2"):
        load_sign_corpus(manifest, cache_dir=cache)


def test_truncated_frame_in_a_frame_folder(tmp_path: Path, cache: Path) -> None:
    frames = write_frames(tmp_path / "clip", 3)
    frames[1].write_bytes(frames[1].read_bytes()[:30])
    manifest = write_csv_rows(tmp_path / "m.csv", "video,text", ["clip,a"])

    with pytest.raises(CorpusError, match=r"images0002\.png is truncated"):
        load_sign_corpus(manifest, cache_dir=cache)
