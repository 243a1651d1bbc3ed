"""Timed translations → subtitle files: WebVTT (``.vtt``) and SubRip (``.srt``).

A cue is one window of the pipeline (``{"translation_text": str, "timestamp": (start, end)}``, seconds).
Windows with an empty translation are kept as cues of their own (an empty line): every second of the
video stays covered, and a reader sees where the model had nothing to say. Times are written to the
millisecond (``HH:MM:SS.mmm`` in WebVTT, ``HH:MM:SS,mmm`` in SubRip). A line break inside a
translation would end a cue early, so it becomes a space; WebVTT's ``-->`` is escaped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SUBTITLE_FORMATS = (".vtt", ".srt")


def subtitle_format(path: str | Path) -> str:
    """The format of a subtitle file name (``.vtt`` or ``.srt``); a ValueError for other suffixes."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUBTITLE_FORMATS:
        raise ValueError(
            f"--subtitles {str(path)!r}: expected a file name ending in .vtt (WebVTT) or .srt (SubRip)"
        )
    return suffix


def timestamp(seconds: float, decimal_mark: str) -> str:
    """``seconds`` (>= 0) as ``HH:MM:SS<mark>mmm``."""
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal_mark}{millis:03d}"


def cue_text(text: str, vtt: bool) -> str:
    """One line of cue text (line breaks would end the cue)."""
    line = " ".join(text.split())
    return line.replace("-->", "--&gt;") if vtt else line


def render_subtitles(windows: Sequence[dict[str, Any]], suffix: str) -> str:
    """The text of a ``.vtt`` or ``.srt`` file for ``windows`` (in time order)."""
    vtt = suffix == ".vtt"
    mark = "." if vtt else ","
    blocks = ["WEBVTT"] if vtt else []
    for number, window in enumerate(windows, start=1):
        start, end = window["timestamp"]
        timing = f"{timestamp(start, mark)} --> {timestamp(end, mark)}"
        text = cue_text(window["translation_text"], vtt)
        blocks.append(f"{timing}\n{text}" if vtt else f"{number}\n{timing}\n{text}")
    return "\n\n".join(blocks) + "\n"


def write_subtitles(path: str | Path, windows: Sequence[dict[str, Any]]) -> Path:
    """Write ``windows`` as subtitles to ``path`` (its suffix picks the format), atomically: a
    temporary file in the same folder, then a rename, so a killed run leaves no half file."""
    path = Path(path)
    text = render_subtitles(windows, subtitle_format(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
