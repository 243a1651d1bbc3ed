"""Files that do not read whole: one error that names the file, what is wrong and the remedy.

A file can be cut short (a kill or a full disk while an older version, or another program, wrote
it without :mod:`.atomic_files`), emptied, or overwritten. Reading such a file must end in one
line naming it, never in a library's traceback. The checks here read only what proves a file
whole: a safetensors header (safetensors refuses a header that does not parse or that describes
more or fewer bytes than the file holds) and a JSON document. No code in a file is executed.
The caller knows how the file is made again and adds that remedy (:meth:`DamagedFileError.with_remedy`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DamagedFileError(ValueError):
    """A file that exists but does not read whole.

    Attributes:
        path: The damaged file.
        reason: What the reader found wrong (the library's words, on one line).
        remedy: How to make the file again, or None when the caller did not say.
    """

    def __init__(self, path: str | Path, reason: str, remedy: str | None = None) -> None:
        self.path = Path(path)
        self.reason = " ".join(reason.split())
        self.remedy = remedy
        size = file_size(self.path)
        message = f"{self.path} is damaged ({size}: {self.reason})"
        super().__init__(message if remedy is None else f"{message}; {remedy}")

    def with_remedy(self, remedy: str) -> DamagedFileError:
        """The same error with ``remedy`` (one clause: what to do) after it."""
        return DamagedFileError(self.path, self.reason, remedy)


def file_size(path: Path) -> str:
    """``"0 bytes"``, ``"1,234 bytes"``; ``"unreadable size"`` when the file cannot be stat'ed."""
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "unreadable size"


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of the header of the safetensors file ``path`` ({} when it has none).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedFileError: the header does not parse or does not describe the file's bytes exactly.
    """
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as handle:  # numpy: no torch import for a header
            return handle.metadata() or {}
    except SafetensorError as error:
        raise DamagedFileError(path, str(error)) from None


def load_json(path: str | Path) -> Any:
    """The JSON document in ``path`` (UTF-8).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedFileError: the file is not UTF-8 JSON (an empty or cut-short file is not).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(path, f"not valid JSON: {error}") from None


def check_model_folder_files(folder: str | Path) -> None:
    """Read every ``*.json`` and ``*.safetensors`` file directly in the saved model folder ``folder``
    (config, generation config, tokenizer, weights or their shards); the first damaged one raises.

    Raises:
        DamagedFileError: naming the first damaged file (in name order) and the remedy.
    """
    for path in sorted(Path(folder).iterdir()):
        try:
            if path.suffix == ".json" and path.is_file():
                load_json(path)
            elif path.suffix == ".safetensors" and path.is_file():
                read_safetensors_metadata(path)
        except DamagedFileError as error:
            remedy = f"the model folder {folder} cannot be loaded: save or copy the model into it again"
            raise error.with_remedy(remedy) from None
