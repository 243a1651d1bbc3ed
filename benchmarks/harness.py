"""What every benchmark measures with: machine facts, timers, device sync, peak memory, records.

Rules the benchmarks share:

* a timed call is bracketed by :func:`synchronize`, so queued GPU work counts where it was queued;
* variants compared side by side alternate call by call (:func:`time_interleaved`), so a shared
  machine's load changes weigh on every variant alike;
* peak memory is the GPU allocator's ``max_memory_allocated`` on CUDA; on the CPU either the
  process's ``ru_maxrss`` so far (:func:`peak_memory`), or the peak RSS above the RSS at the start
  of a window (:func:`start_memory_window` / :func:`window_peak`, Linux);
* a measurement is one JSON object, printed and appended as one line to a JSONL file together with
  the machine, the load average and the UTC time (:func:`emit`);
* a benchmark that needs a fresh process runs a module of this package through :func:`run_module`
  (``python -m benchmarks.NAME``), never a file path.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- machine facts --------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def machine_info(device: torch.device) -> dict[str, Any]:
    """Platform, CPU, accelerator, library versions and torch's intra-op thread count."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": device_name(device),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
    return info


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


# --- timers -----------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(call: Callable[[], Any], device: torch.device) -> float:
    """Seconds of one ``call()``, synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def time_interleaved(
    calls: dict[Any, Callable[[], Any]], device: torch.device, repeats: int, warmup: int = 1
) -> dict[Any, list[float]]:
    """Seconds of each call: ``warmup`` untimed rounds, then ``repeats`` rounds, the calls alternating."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[Any, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            times[name].append(time_call(call, device))
    return times


# --- peak memory ------------------------------------------------------------------------------
def reset_peak_memory(device: torch.device) -> None:
    """Start a new GPU peak-memory window (the CPU's ``ru_maxrss`` cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_rss_gib() -> float:
    """This process's peak resident set size so far, GiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak memory in GiB: GPU allocations since the last reset, or this process's max RSS."""
    if device.type == "cuda":
        gib = torch.cuda.max_memory_allocated(device) / 2**30
        return {"peak_memory_gib": round(gib, 3), "peak_memory_kind": "cuda max_memory_allocated"}
    return {
        "peak_memory_gib": round(peak_rss_gib(), 3),
        "peak_memory_kind": "ru_maxrss of the process so far",
    }


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the OS (so RSS tracks live memory)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def proc_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def start_memory_window(device: torch.device) -> int:
    """Reset the peak and return the memory in use now (bytes): GPU allocations, or the RSS.

    On the CPU, writing 5 to ``/proc/self/clear_refs`` resets the peak RSS (``VmHWM``, Linux).
    """
    release_free_memory()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    Path("/proc/self/clear_refs").write_text("5")
    return proc_status_bytes("VmRSS")


def window_peak(device: torch.device) -> int:
    """The peak (bytes) since :func:`start_memory_window`."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return proc_status_bytes("VmHWM")


# --- records ----------------------------------------------------------------------------------
def emit(record: dict[str, Any], output: Path | None, machine: dict[str, Any]) -> None:
    """Print one measurement as JSON and append it (with the machine, load and time) to ``output``."""
    record = {
        **record,
        "load_average": load_average(),
        "time_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine,
    }
    line = json.dumps(record)
    print(line, flush=True)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file, in order."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parse_int_list(text: str) -> list[int]:
    """``"1,2,4"`` → ``[1, 2, 4]``."""
    return [int(part) for part in text.split(",") if part.strip()]


# --- fresh processes --------------------------------------------------------------------------
def module_command(module: str, argv: Sequence[str]) -> list[str]:
    """``python -m module argv…`` with this interpreter."""
    return [sys.executable, "-m", module, *argv]


def module_environment() -> dict[str, str]:
    """This process's environment with the repository first on ``PYTHONPATH`` (``benchmarks`` is not
    installed, so a child started from another folder finds it there)."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def run_module(module: str, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``python -m module argv…`` in a fresh process and raise if it fails."""
    command = module_command(module, argv)
    print(f"# {' '.join(command[1:])}", file=sys.stderr, flush=True)
    return subprocess.run(command, check=True, env=module_environment(), **kwargs)
