"""Read label pickles (e.g. CSL-Daily's ``csl2020ct_v2.pkl``) without running code.

A pickle is a small program: any global it names (``os.system``, ``builtins.open``,
a class with ``__reduce__``) is imported and can be called while loading. Plain data
(dict, list, tuple, str, bytes, int, float, bool, None) is encoded by pickle opcodes
that name no global, so refusing globals refuses code and keeps data.

`SafeUnpickler.find_class` admits only a few builtin container constructors that
older protocols spell as globals (``set``/``frozenset``/``bytearray``/``complex`` and
``collections.OrderedDict``, plus the ``_codecs.encode(text, "latin1")`` call that
protocol 2 uses for `bytes`), and refuses everything else before it is imported.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import pickle
from pathlib import Path
from typing import Any

from .corpus import CorpusError, Problem, UnsafePickleError


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """The only `_codecs.encode` call protocol 2 emits: bytes pickled as latin-1 text."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode is only admitted as (str, 'latin1'), got {encoding!r}.")
    return codecs.encode(text, "latin1")


# (module, name) -> object. `__builtin__` is how Python 2 pickles spell `builtins`.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    **{
        (module, name): getattr(builtins, name)
        for module in ("builtins", "__builtin__")
        for name in ("set", "frozenset", "bytearray", "complex")
    },
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}


class RefusedGlobal(pickle.UnpicklingError):
    """Raised inside the unpickler when the stream names a global that is not admitted."""

    def __init__(self, module: str, name: str) -> None:
        self.qualified_name = f"{module}.{name}"
        super().__init__(self.qualified_name)


class SafeUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that builds plain data and never imports or calls anything else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent IDs are not supported")


def load_pickle_safely(path: str | Path) -> Any:
    """Load a pickle that must contain only plain builtin data.

    Args:
        path: The pickle file.

    Returns:
        The unpickled object (dicts, lists, tuples, str, bytes, numbers, bools, None).

    Raises:
        UnsafePickleError: the file names a global that is not a plain builtin
            container; nothing from it was imported or executed.
        CorpusError: the file is missing, empty or not a valid pickle.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return SafeUnpickler(stream).load()
    except RefusedGlobal as error:
        raise UnsafePickleError(
            [
                Problem(
                    path,
                    f"Refused to load the pickle {path}: it refers to the Python global "
                    f"'{error.qualified_name}', which could run code while loading; only plain "
                    "builtin data (dict, list, tuple, str, bytes, numbers, bool, None) is accepted.",
                )
            ]
        ) from None
    except FileNotFoundError:
        raise CorpusError([Problem(path, f"The pickle {path} does not exist.")]) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
        raise CorpusError(
            [Problem(path, f"The pickle {path} is empty, truncated or corrupt ({error}).")]
        ) from None
