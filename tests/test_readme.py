"""The README's snippets run as written: its ```python blocks in order, then its ```bash blocks.

A block that cannot run here (it downloads, needs a corpus on disk or trains for long) carries the
HTML comment ``<!-- readme-test: skip (REASON) -->`` on the line before its fence; every skip
must give a reason. The Python blocks share one namespace, as in a notebook, and run in a fresh
interpreter inside a temporary folder, offline.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*readme-test:(.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^)]*\S[^)]*)\)\s*$")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}

# Runs every block in one namespace; names the README line of a block that fails.
RUNNER = """
import json, sys, traceback
namespace = {"__name__": "__readme__"}
for line, code in json.loads(sys.argv[1]):
    try:
        exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        raise SystemExit(f"the README block at line {line} failed")
"""


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    skip_reason: str | None  # None: the block runs
    marker: str | None  # the text of a readme-test comment before the fence


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with the readme-test marker on the line before it, if any."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        previous = MARKER.match(lines[index - 1]) if index else None
        marker = previous.group(1).strip() if previous else None
        skip = SKIP.match(marker) if marker is not None else None
        blocks.append(
            Block(
                line=index + 1,
                language=opening.group(1),
                code="\n".join(lines[index + 1 : end]) + "\n",
                skip_reason=skip.group("reason").strip() if skip else None,
                marker=marker,
            )
        )
        index = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def runnable(languages: set[str]) -> list[Block]:
    return [block for block in BLOCKS if block.language in languages and block.skip_reason is None]


def offline_environment(workdir: Path) -> dict[str, str]:
    """The environment of the snippets: offline, remote-code modules in ``workdir``, our scripts on PATH."""
    scripts = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(workdir / "modules"),
        "PATH": scripts + os.pathsep + os.environ.get("PATH", ""),
    }


def test_every_readme_test_marker_is_a_skip_with_a_reason() -> None:
    marked = [block for block in BLOCKS if block.marker is not None]
    assert marked, "the README marks no block; the slow and networked ones must be marked"
    for block in marked:
        expected = "<!-- readme-test: skip (REASON) -->"
        assert block.skip_reason, f"README.md line {block.line - 1}: write {expected}, got {block.marker!r}"


def test_the_snippets_that_cannot_run_here_are_the_marked_ones() -> None:
    skipped = {block.line: block for block in BLOCKS if block.skip_reason}
    needs_network_or_data = [
        block
        for block in BLOCKS
        if block.language in {"python", *SHELL_LANGUAGES}
        and re.search(
            r"pip install|from_pretrained_parts|load_phoenix2014t|accelerate launch|configs/phoenix",
            block.code,
        )
    ]
    assert needs_network_or_data and all(block.line in skipped for block in needs_network_or_data)


def test_readme_python_blocks_run_in_order(tmp_path: Path) -> None:
    blocks = runnable({"python"})
    assert len(blocks) >= 4, "the README's API snippets are gone?"
    payload = json.dumps([(block.line, block.code) for block in blocks])
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, payload],
        cwd=tmp_path,
        env=offline_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "my-model" / "tokenizer.json").is_file(), "the saved model folder has no tokenizer"


@pytest.mark.parametrize("block", runnable(SHELL_LANGUAGES), ids=lambda block: f"line{block.line}")
def test_readme_shell_blocks_run(tmp_path: Path, block: Block) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=tmp_path,
        env=offline_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"README.md line {block.line}:\n{result.stderr[-4000:]}"
