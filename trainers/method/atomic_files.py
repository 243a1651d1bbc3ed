"""Files and folders written so that no reader ever sees them half-made, whenever the writer dies.

Rule: an artefact is written under a temporary name in the folder it belongs to (``.NAME.tmp-PID``),
flushed to the disk (a power loss then cannot leave a renamed but empty file), then renamed onto
its final name with ``os.replace``, which POSIX makes atomic within one file system. A reader
finds the old artefact, or none, or the new one whole; never a part. A folder is written whole
under its temporary name and renamed the same way; a folder that already holds an older version
is first renamed aside (``.NAME.old-PID``) and deleted after the new one is in place, so a kill
between the two renames leaves no folder at the final name (the writer's next call writes it
again). Leftover temporary files and folders of a killed writer are deleted by the next write of
the same artefact.

Fault injection (tests): the environment variable ``SCL_SLT_KILL_AT=KIND[#N]`` makes the process
send itself SIGKILL in the middle of writing the N-th artefact of that kind (default the first),
after its content exists under the temporary name and before the rename. Kinds are the
``kind`` arguments of the write sites (``checkpoint``, ``snapshot``, ``pair_scores``, …).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KILL_SWITCH = "SCL_SLT_KILL_AT"
MAX_FILES_SYNCED_ONE_BY_ONE = 10_000
_kill_counts: Counter[str] = Counter()


def kill_point(kind: str) -> None:
    """SIGKILL this process if ``SCL_SLT_KILL_AT`` names this occurrence of ``kind``."""
    wanted = os.environ.get(KILL_SWITCH)
    if not wanted:
        return
    name, _, occurrence = wanted.partition("#")
    if name != kind:
        return
    _kill_counts[kind] += 1
    if _kill_counts[kind] == int(occurrence or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def temporary_sibling(path: Path, role: str = "tmp") -> Path:
    """``.NAME.ROLE-PID`` next to ``path``: hidden, and unique to this process."""
    return path.with_name(f".{path.name}.{role}-{os.getpid()}")


def remove_leftovers(path: Path) -> None:
    """Delete temporary files and folders that killed writers of ``path`` left next to it."""
    if not path.parent.is_dir():
        return
    for role in ("tmp", "old"):
        for leftover in path.parent.glob(f".{path.name}.{role}-*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: str | Path, kind: str) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s content to; on success it becomes ``path``.

    The parent folder is created. On an exception the temporary file is deleted and ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        sync_file(temporary)
        kill_point(kind)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def write_text_atomically(path: str | Path, text: str, kind: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_file(path, kind) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def atomic_folder(path: str | Path, kind: str) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; on success it replaces the folder ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    temporary = temporary_sibling(path)
    temporary.mkdir()
    try:
        yield temporary
        sync_tree(temporary)
        kill_point(kind)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    replace_folder(temporary, path)


def replace_folder(source: Path, path: Path) -> None:
    """Rename the folder ``source`` to ``path``, replacing (then deleting) a folder already there."""
    old = None
    if path.exists():
        old = temporary_sibling(path, "old")
        os.replace(path, old)
    os.replace(source, path)
    sync_folder(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def sync_file(path: Path) -> None:
    """Flush ``path``'s content to the disk (a rename must not land before the data)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sync_tree(folder: Path) -> None:
    """Flush every file under ``folder``: one by one, or by one ``os.sync`` for more than
    :data:`MAX_FILES_SYNCED_ONE_BY_ONE` files (a corpus of frame images holds about a million)."""
    files = []
    for file in folder.rglob("*"):
        if file.is_file():
            files.append(file)
            if len(files) > MAX_FILES_SYNCED_ONE_BY_ONE:
                os.sync()
                return
    for file in files:
        sync_file(file)


def sync_folder(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename itself) to the disk, where the platform allows it."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
