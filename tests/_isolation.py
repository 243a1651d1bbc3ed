"""Run a script in a fresh interpreter that cannot import this project, fully offline.

Remote-code tests use it to load saved folders the way a Hub user would: the project's packages
are blocked from import (the editable install would otherwise find them) and HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_PROJECT = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockProject(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"modeling_scl_slt", "datasets_scripts", "trainers", "model_cards"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, BlockProject())
    try:
        import modeling_scl_slt
        raise SystemExit("the project is importable: the test would prove nothing")
    except ImportError:
        pass
    """
)


def run_without_project(
    script: str, *args: str, workdir: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``script`` (Python source, after the import blocker) with ``args`` in ``workdir``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(workdir / "modules")}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", BLOCK_PROJECT + textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=timeout,
    )
