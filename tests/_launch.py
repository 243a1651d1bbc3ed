"""Two real training processes on a CPU (gloo), launched as a user without the venv on PATH would.

accelerate's launcher is called as ``python -m accelerate.commands.launch`` through this very
interpreter, never looked up on ``PATH`` (where IDEs and ``venv/bin/python`` calls have no venv).
``--cpu`` would silently run one process; ``--multi_gpu`` with ``use_cpu=True`` in the training
arguments gives 2 gloo ranks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    """A free TCP port for the launch's rendezvous (another launch may hold accelerate's 29500)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_gloo_processes(
    *program: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: int = 600,
) -> subprocess.CompletedProcess:
    """Run ``program`` (``script args…`` or ``-m module args…``) on 2 processes, one torch thread
    each, with ``env`` added to this environment; the finished launch."""
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(free_port()), *program),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=cwd)
