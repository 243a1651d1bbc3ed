"""The restricted unpickler admits plain data and refuses (without running) everything else."""

from __future__ import annotations

import collections
import os
import pickle
from pathlib import Path

import pytest

from datasets_scripts import CorpusError, UnsafePickleError, load_pickle_safely


class _CreatesFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class _RunsShell:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [(_CreatesFile, f"{open.__module__}.open"), (_RunsShell, f"{os.system.__module__}.system")],
    ids=["open", "os.system"],
)
def test_payload_is_refused_and_not_executed(tmp_path: Path, payload: type, refused: str) -> None:
    victim = tmp_path / "created-by-pickle"
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({"info": [payload(victim)]}))

    with pytest.raises(UnsafePickleError) as error:
        load_pickle_safely(path)

    assert not victim.exists()
    assert str(error.value).startswith(
        f"Refused to load the pickle {path}: it refers to the Python global '{refused}'"
    )
    assert error.value.problems[0].source == path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_round_trips_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    data = {
        "info": [
            {"name": "S0", "label_word": ["今天", "好"], "signer": 3, "time": 1.5, "ok": True, "x": None}
        ],
        "tuple": (1, 2),
        "bytes": b"\x00\xff",
        "set": {1, 2},
        "frozen": frozenset({"a"}),
        "ordered": collections.OrderedDict(a=1),
        "complex": 1 + 2j,
    }
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))

    assert load_pickle_safely(path) == data


def test_codecs_encode_is_only_admitted_for_latin1_bytes(tmp_path: Path) -> None:
    # Hand-written protocol-2 stream calling _codecs.encode("x", "rot13").
    stream = b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    path = tmp_path / "labels.pkl"
    path.write_bytes(stream)

    with pytest.raises(CorpusError, match="only admitted as \\(str, 'latin1'\\)"):
        load_pickle_safely(path)


def test_truncated_pickle_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps({"info": list(range(100))})[:-5])

    with pytest.raises(CorpusError, match=rf"The pickle {path} is empty, truncated or corrupt"):
        load_pickle_safely(path)
