"""CSL-Daily loader on a tiny copy of the distributed layout (both frame-folder variants)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from datasets_scripts import CorpusError, UnsafePickleError, load_csl_daily
from tests._corpus_builders import csl_entry, frame_pixels, make_csl_daily

TRAIN, DEV, TEST = "S000000_P0000_T00", "S000001_P0001_T00", "S000002_P0002_T00"
FRAMES = Path("sentence/frames_512x512")
LABELS = Path("sentence_label")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "hf-cache"


@pytest.mark.parametrize("nested", [False, True], ids=["sentence", "sentence_frames-512x512"])
def test_loads_both_frame_layouts(tmp_path: Path, cache: Path, nested: bool) -> None:
    root = make_csl_daily(tmp_path / "csl", nested=nested, frames={TRAIN: 12})

    corpus = load_csl_daily(root, cache_dir=cache)

    assert list(corpus) == ["train", "validation", "test"]
    assert corpus.report.num_rows == {"train": 1, "validation": 1, "test": 1}
    example = corpus["train"][0]
    assert example["name"] == TRAIN
    assert example["signer"] == "0"  # an int in the pickle, stored as str
    assert example["text"] == "今天天气好"
    assert example["gloss"] == "今天 天气 好"
    assert example["num_frames"] == 12 == len(example["frames"])
    # 000000.jpg … 000011.jpg in numeric order; JPEG is lossy, so compare approximately.
    for index, image in enumerate(example["frames"]):
        difference = np.abs(np.asarray(image, dtype=int) - frame_pixels(index).astype(int))
        assert difference.max() <= 8
    assert corpus["validation"][0]["name"] == DEV


def test_text_falls_back_to_label_char(tmp_path: Path, cache: Path) -> None:
    entry = csl_entry(TRAIN)
    entry["label_word"] = []
    root = make_csl_daily(tmp_path, splits={TRAIN: "train"}, entries=[entry])

    assert load_csl_daily(root, cache_dir=cache)["train"][0]["text"] == "今天天气好"


def test_missing_split_and_label_files_are_named_together(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    (root / LABELS / "split_1.txt").unlink()
    (root / LABELS / "csl2020ct_v2.pkl").unlink()

    with pytest.raises(CorpusError) as error:
        load_csl_daily(root, cache_dir=cache)

    message = str(error.value)
    assert message.startswith("2 unusable files:")
    assert "split file" in message and "split_1.txt is missing" in message
    assert "csl2020ct_v2.pkl is missing" in message


def test_missing_frame_root_names_both_layouts(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    (root / "sentence").rename(root / "elsewhere")

    with pytest.raises(CorpusError, match=r"expected .*sentence/frames_512x512 or .*sentence_frames-512x512"):
        load_csl_daily(root, cache_dir=cache)


def test_wrong_split_file_header(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    split_file = root / LABELS / "split_1.txt"
    split_file.write_text(split_file.read_text(encoding="utf-8").replace("name|split", "id|split"), "utf-8")

    with pytest.raises(
        CorpusError, match=r"expected the columns name, split separated by '\|'.*missing name"
    ):
        load_csl_daily(root, cache_dir=cache)


def test_bad_samples_are_listed_with_a_count(tmp_path: Path, cache: Path) -> None:
    splits = {TRAIN: "train", "S9": "train", DEV: "dev", "S8": "test", TEST: "holdout"}
    entries = [csl_entry(TRAIN), csl_entry("S9", words=[]), csl_entry(DEV), csl_entry(TEST)]
    entries[1]["label_char"] = []
    root = make_csl_daily(tmp_path, splits=splits, entries=entries)
    for frame in (root / FRAMES / DEV).iterdir():
        frame.unlink()

    with pytest.raises(CorpusError) as error:
        load_csl_daily(root, cache_dir=cache)

    message = str(error.value)
    assert message.startswith("4 bad samples in ")
    assert "line 3 (name 'S9'): empty sentence" in message
    assert f"line 4 (name '{DEV}'): frame folder" in message and "holds no frames" in message
    assert "line 5 (name 'S8'): not found in csl2020ct_v2.pkl" in message
    assert (
        "line 6 (name 'S000002_P0002_T00'): unknown split 'holdout' (expected train, dev or test)" in message
    )


def test_skip_keeps_good_samples_and_reports_the_rest(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    jpeg = root / FRAMES / TEST / "000001.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:-10])  # truncated: loses the EOI marker

    corpus = load_csl_daily(root, on_error="skip", cache_dir=cache)

    assert corpus.report.num_rows == {"train": 1, "validation": 1, "test": 0}
    (problem,) = corpus.report.skipped
    assert problem.name == TEST
    assert "000001.jpg is truncated (no JPEG end marker)" in problem.reason


def test_duplicate_names_in_split_file(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    split_file = root / LABELS / "split_1.txt"
    split_file.write_text(split_file.read_text(encoding="utf-8") + f"{TRAIN}|test\n", encoding="utf-8")

    with pytest.raises(
        CorpusError, match=rf"line 5 \(name '{TRAIN}'\): duplicate name, already used at line 2"
    ):
        load_csl_daily(root, cache_dir=cache)


def test_non_utf8_split_file_line(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    split_file = root / LABELS / "split_1.txt"
    data = split_file.read_bytes()
    split_file.write_bytes(data.replace(b"S000001", b"S\xff00001"))
    offset = data.index(b"S000001") + 1

    with pytest.raises(
        CorpusError, match=rf"line 3: is not valid UTF-8 \(byte 0xFF at byte offset {offset}\)"
    ):
        load_csl_daily(root, cache_dir=cache)


class _WritesAFile:
    """Unpickling this would call open(path, "w"), creating the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_malicious_label_pickle_is_refused_and_never_run(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path / "csl")
    victim = tmp_path / "pwned.txt"
    label_file = root / LABELS / "csl2020ct_v2.pkl"
    label_file.write_bytes(pickle.dumps({"info": [_WritesAFile(victim)]}))

    with pytest.raises(UnsafePickleError) as error:
        load_csl_daily(root, cache_dir=cache)

    assert not victim.exists()
    assert str(label_file) in str(error.value) and f"'{open.__module__}.open'" in str(error.value)


def test_label_pickle_without_info_list(tmp_path: Path, cache: Path) -> None:
    root = make_csl_daily(tmp_path)
    (root / LABELS / "csl2020ct_v2.pkl").write_bytes(pickle.dumps({"gloss_map": []}))

    with pytest.raises(CorpusError, match=r"should hold a dict with an 'info' list; found \['gloss_map'\]"):
        load_csl_daily(root, cache_dir=cache)
