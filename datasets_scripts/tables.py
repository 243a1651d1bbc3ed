"""Read annotation tables (delimited text, JSON lines) and report every bad line.

Lines are decoded one by one so that a stray non-UTF-8 byte spoils only its own row,
and is reported with its line number and byte offset.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corpus import Problem

_DELIMITER_NAMES = {",": "comma", "\t": "tab", "|": "pipe", ";": "semicolon"}


@dataclass(frozen=True)
class Row:
    """One data row of a table.

    Attributes:
        line: 1-based line number of the row in its file (the header is line 1).
        values: Column name → value (str for delimited files; any JSON value for JSONL).
    """

    line: int
    values: dict


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based
    text: str  # decoded with surrogateescape: invalid bytes survive as U+DC80..U+DCFF
    bad_byte_offset: int | None = None  # file offset of the first invalid UTF-8 byte, if any
    bad_byte: int = 0  # its value


def _decode_lines(path: Path) -> list[_Line]:
    """Split a file into lines (keeping line ends) and decode each as UTF-8."""
    lines: list[_Line] = []
    offset = 0
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
            raw, offset = raw[3:], 3
        try:
            lines.append(_Line(number, raw.decode("utf-8")))
        except UnicodeDecodeError as error:
            text = raw.decode("utf-8", errors="surrogateescape")
            lines.append(_Line(number, text, offset + error.start, raw[error.start]))
        offset += len(raw)
    return lines


def _utf8_problem(path: Path, line: _Line) -> Problem:
    return Problem(
        path,
        f"is not valid UTF-8 (byte 0x{line.bad_byte:02X} at byte offset {line.bad_byte_offset}); "
        "save the file as UTF-8",
        where=f"line {line.number}",
    )


def _header_problem(
    path: Path, what: str, header: list[str], required: Sequence[str], delimiter: str
) -> Problem | None:
    """A whole-file problem if the header lacks a required column, else None."""
    missing = [column for column in required if column not in header]
    if not missing:
        return None
    delimiter_name = _DELIMITER_NAMES.get(delimiter, repr(delimiter))
    reason = (
        f"The {what} {path} has the wrong header: expected the columns {', '.join(required)} "
        f"separated by {delimiter!r} ({delimiter_name}), found {header!r}; missing {', '.join(missing)}."
    )
    if len(header) == 1:
        found = [d for d in _DELIMITER_NAMES if d != delimiter and d in header[0]]
        if found:
            reason += (
                f" The header holds {_DELIMITER_NAMES[found[0]]}s: is the file "
                f"{_DELIMITER_NAMES[found[0]]}-separated (delimiter={found[0]!r})?"
            )
    return Problem(path, reason)


def read_delimited(
    path: Path,
    *,
    delimiter: str,
    required: Sequence[str],
    what: str = "annotation file",
    quotechar: str | None = '"',
) -> tuple[list[Row], list[Problem]]:
    """Read a delimited text file with one header line.

    Args:
        path: The file.
        delimiter: One character, e.g. ``"|"``, ``","`` or ``"\\t"``.
        required: Columns the header must contain.
        what: How to call the file in messages ("annotation file", "manifest", …).
        quotechar: Character that quotes fields (standard CSV), or None for files that
            never quote (PHOENIX, CSL-Daily), so a ``"`` opening a sentence stays a character.

    Returns:
        ``(rows, problems)``: the good rows, and one problem per bad line (wrong field
        count, invalid UTF-8) or a single whole-file problem (missing file, empty file,
        wrong header) in which case `rows` is empty.
    """
    if not path.is_file():
        return [], [Problem(path, f"The {what} {path} is missing.")]
    lines = _decode_lines(path)
    if not lines:
        return [], [Problem(path, f"The {what} {path} is empty; expected a header line.")]
    # csv handles quoting; line numbers come from how many lines each record consumed.
    quoting = {"quotechar": quotechar} if quotechar else {"quoting": csv.QUOTE_NONE}
    reader = csv.reader((line.text for line in lines), delimiter=delimiter, **quoting)
    try:
        header = next(reader)
        problem = _header_problem(path, what, header, required, delimiter)
        if problem is not None:
            return [], [problem]
        return _read_records(path, reader, header, lines, delimiter)
    except csv.Error as error:  # e.g. a quote left open until the end of the file
        reason = f"The {what} {path} cannot be parsed near line {reader.line_num}: {error}."
        return [], [Problem(path, reason)]


def _read_records(
    path: Path, reader: Any, header: list[str], lines: list[_Line], delimiter: str
) -> tuple[list[Row], list[Problem]]:
    """The data rows after the header, each with its starting line number."""
    rows: list[Row] = []
    problems: list[Problem] = []
    first_line = reader.line_num + 1
    for fields in reader:
        record_lines = lines[first_line - 1 : reader.line_num]
        start, first_line = first_line, reader.line_num + 1
        bad = next((line for line in record_lines if line.bad_byte_offset is not None), None)
        if bad is not None:
            problems.append(_utf8_problem(path, bad))
        elif not fields or all(not field.strip() for field in fields):
            continue  # blank line
        elif len(fields) != len(header):
            problems.append(
                Problem(
                    path,
                    f"expected {len(header)} fields separated by {delimiter!r}, found {len(fields)}",
                    where=f"line {start}",
                )
            )
        else:
            rows.append(Row(start, dict(zip(header, fields, strict=True))))
    return rows, problems


def read_json_lines(path: Path, *, required: Sequence[str]) -> tuple[list[Row], list[Problem]]:
    """Read a JSON-lines manifest: one JSON object per line.

    Returns:
        ``(rows, problems)`` as `read_delimited`; a row missing a required key, an
        invalid JSON line or a non-object line is one problem each.
    """
    if not path.is_file():
        return [], [Problem(path, f"The manifest {path} is missing.")]
    rows: list[Row] = []
    problems: list[Problem] = []
    for line in _decode_lines(path):
        if line.bad_byte_offset is not None:
            problems.append(_utf8_problem(path, line))
            continue
        if not line.text.strip():
            continue
        where = f"line {line.number}"
        try:
            record = json.loads(line.text)
        except json.JSONDecodeError as error:
            problems.append(Problem(path, f"is not valid JSON ({error.msg} at column {error.colno})", where))
            continue
        if not isinstance(record, dict):
            problems.append(Problem(path, f"expected a JSON object, found {type(record).__name__}", where))
            continue
        missing = [key for key in required if key not in record]
        if missing:
            problems.append(
                Problem(path, f"lacks the key(s) {', '.join(missing)} (found {', '.join(record)})", where)
            )
            continue
        rows.append(Row(line.number, record))
    if not rows and not problems:
        problems.append(Problem(path, f"The manifest {path} is empty; expected one JSON object per line."))
    return rows, problems


def iter_duplicates(names: Sequence[tuple[str, Path, int]]) -> Iterator[tuple[int, str]]:
    """Yield ``(index, first_seen)`` for every name already seen earlier in `names`.

    Args:
        names: ``(name, file, line)`` per sample, in load order.

    Yields:
        The index of each repeated name and where it was first seen ("line 3 of x.csv").
    """
    first: dict[str, str] = {}
    for index, (name, source, line) in enumerate(names):
        if name in first:
            yield index, first[name]
        else:
            first[name] = f"line {line} of {source}"
