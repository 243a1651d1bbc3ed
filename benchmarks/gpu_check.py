"""Every GPU measurement we owe, in one call of at most 8 minutes, written to one JSON document.

    python -m benchmarks.gpu_check                        # on the GPU, the paper's shapes
    python -m benchmarks.gpu_check --device cpu --tiny    # the same path at tiny shapes (the test)

Parts, in this order, each in a fresh process (its own peak memory; a crash or a timeout costs that
part only). ``--budget-s`` (465 s: 8 minutes less the check's own start) is shared out: each part may
use what the parts before it left unused, never the shares of the parts after it. A part that
times out keeps the records it had written.

* ``training step``: plain against ours (:mod:`benchmarks.speed_switches`, part ``switches``): the
  paper model with its LoRA, 8 clips of [112, 40] frames at 224², the baseline's step, ours (on
  CUDA: bf16 autocast, channels_last, ``cudnn.benchmark``, fused AdamW) and ours with each switch
  flipped, except the compiled backbone;
* ``training step, large batch``: plain against ours at 16 clips (part ``large batch``);
* ``plan``: the plan's activation estimate against the measured peak (:mod:`benchmarks.plan`), the
  cases ``small`` and ``gfslt-lora``, every stage and knob setting; on CUDA the measured peak is
  ``max_memory_allocated`` above the memory allocated before the step;
* ``plan, paper shape``: the same for the paper model with its LoRA at 4 × 112 frames of 224²,
  stage ``scl``, bf16 autocast alone and with every knob;
* ``pipeline latency``: :mod:`benchmarks.inference` for ``small`` and ``paper``: one clip greedy and
  beam 4, fp32 and bf16 autocast, then batches of 8.

``--tiny`` gives every part tiny shapes (the ``small`` and ``tiny-test`` models, a few frames, one
repeat), so that a CPU runs the whole path in a minute or two. What only CUDA has (bf16 autocast in
``ours`` and in the pipeline, ``cudnn.benchmark``, the CUDA allocator's peak) is listed under the
part's ``skipped`` with the reason when the device is a CPU. Each part's record says ``ok``,
``failed`` (with the end of its output), ``timed out`` or ``not run`` (the budget was spent); the
document is rewritten after every part, so a killed check keeps the parts it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import (
    RESULTS_DIR,
    machine_info,
    module_command,
    module_environment,
    read_records,
)

COMPILE_LEFT_OUT = (
    "left out on every device: compiling the backbone takes minutes, beyond this check's budget; "
    "run `python -m benchmarks.speed_switches --device cuda --switch-model paper --switch-batch-size 8 "
    "--switch-parts switches --switch-variants ours,'backbone compiled'`"
)
CUDA_ONLY_STEP = {
    "bf16 autocast in ours": "CUDA only: on a CPU ours is fp32, the recipe's auto precision there",
    "channels_last and cudnn.benchmark in ours": "CUDA only: the recipe's auto switches them on with CUDA",
}


@dataclass(frozen=True)
class Part:
    """One measurement: a module run as ``python -m``, its options at full and at tiny shapes, its
    share of the budget, how its records are read, and what a CPU run of it leaves out."""

    name: str
    module: str
    full: list[str]
    tiny: list[str]
    share: float  # fraction of --budget-s kept for this part
    output: str  # "jsonl": records appended to --output; "json": one document with "records"
    cuda_only: dict[str, str] = field(default_factory=dict)  # what a CPU run skips, with the reason
    cuda_args: list[str] = field(default_factory=list)  # options given only with CUDA
    left_out: dict[str, str] = field(default_factory=dict)  # skipped on every device, with the reason


PARTS: tuple[Part, ...] = (
    Part(
        "training step",
        "benchmarks.speed_switches",
        full=[
            *("--switch-part", "switches", "--switch-model", "paper", "--switch-batch-size", "8"),
            *("--switch-frame-counts", "112,40", "--switch-image-size", "224"),
            *("--skip-variants", "backbone compiled", "--repeats", "5", "--warmup", "1"),
        ],
        tiny=[
            *("--switch-part", "switches", "--switch-model", "small", "--switch-image-size", "16"),
            *("--switch-frame-counts", "8,4", "--switch-variants", "plain,ours", "--repeats", "1"),
            *("--warmup", "0", "--threads", "1"),
        ],
        share=0.30,
        output="jsonl",
        cuda_only=CUDA_ONLY_STEP,
        left_out={"backbone compiled": COMPILE_LEFT_OUT},
    ),
    Part(
        "training step, large batch",
        "benchmarks.speed_switches",
        full=[
            *("--switch-part", "large batch", "--large-batch-model", "paper", "--large-batch-size", "16"),
            *("--large-batch-frame-counts", "112,40", "--switch-image-size", "224"),
            *("--large-batch-repeats", "3", "--warmup", "1"),
        ],
        tiny=[
            *("--switch-part", "large batch", "--large-batch-model", "small", "--large-batch-size", "3"),
            *("--large-batch-frame-counts", "4", "--switch-image-size", "16", "--repeats", "1"),
            *("--warmup", "0", "--threads", "1"),
        ],
        share=0.14,
        output="jsonl",
        cuda_only=CUDA_ONLY_STEP,
    ),
    Part(
        "plan",
        "benchmarks.plan",
        full=["--cases", "small,gfslt-lora"],
        tiny=["--cases", "tiny-test", "--stages", "scl", "--settings", "plain", "--threads", "1"],
        share=0.15,
        output="json",
        cuda_only={
            "CUDA peak": "CUDA only: on a CPU the measured peak is the CPU allocator's, read through "
            "torch.profiler, and the estimate follows CPU autocast's op lists"
        },
    ),
    Part(
        "plan, paper shape",
        "benchmarks.plan",
        full=["--cases", "paper-lora", "--stages", "scl", "--settings", "bf16 autocast,all knobs"],
        tiny=["--cases", "tiny-test", "--stages", "scl", "--settings", "all knobs", "--threads", "1"],
        share=0.11,
        output="json",
        cuda_only={"CUDA peak": "CUDA only: on a CPU the measured peak is the CPU allocator's"},
    ),
    Part(
        "pipeline latency",
        "benchmarks.inference",
        full=[
            *("--models", "small,paper", "--repeats", "3", "--small-batch-sizes", "1,8"),
            *("--paper-batch-sizes", "1,8", "--throughput-beams", "1,4"),
        ],
        tiny=[
            *("--models", "small", "--frames", "8", "--new-tokens", "2", "--small-batch-sizes", "1"),
            *("--repeats", "1", "--throughput-beams", "1", "--threads", "1"),
        ],
        share=0.30,
        output="jsonl",
        cuda_only={"bf16 autocast": "CUDA only: on a CPU the pipeline is timed in fp32 alone"},
        cuda_args=["--bf16"],
    ),
)


def part_command(part: Part, device: str, tiny: bool, output: Path) -> list[str]:
    """``python -m MODULE …`` of ``part`` on ``device``, writing its records to ``output``."""
    options = [*(part.tiny if tiny else part.full), "--device", device, "--output", str(output)]
    if device == "cuda":
        options += part.cuda_args
    return module_command(part.module, options)


def run_process(command: list[str], timeout: float) -> tuple[str, int | None, str]:
    """Run ``command`` in its own process group; ``(status, exit code, end of its output)``.

    On a timeout the whole group is killed (a benchmark may have started processes of its own).
    """
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=module_environment(),
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return "timed out", None, output[-4000:]
    return ("ok" if process.returncode == 0 else "failed"), process.returncode, output[-4000:]


def read_part_records(part: Part, output: Path) -> list[dict[str, Any]]:
    """The records a part wrote (those a killed part finished, for JSONL)."""
    if not output.exists():
        return []
    if part.output == "jsonl":
        return read_records(output)
    return json.loads(output.read_text(encoding="utf-8"))["records"]


def run_part(part: Part, device: str, tiny: bool, timeout: float, scratch: Path) -> dict[str, Any]:
    """Run one part and return its record: status, command, wall time, records, what it skipped."""
    output = scratch / f"{part.module.rsplit('.', 1)[-1]}-{len(list(scratch.iterdir()))}.{part.output}"
    command = part_command(part, device, tiny, output)
    print(f"# {part.name}: {shlex.join(command[1:])} (at most {timeout:.0f} s)", file=sys.stderr, flush=True)
    began = time.perf_counter()
    status, code, tail = run_process(command, timeout)
    record: dict[str, Any] = {
        "status": status,
        "command": shlex.join(command[1:]),
        "timeout_s": round(timeout, 1),
        "wall_s": round(time.perf_counter() - began, 1),
        "records": read_part_records(part, output),
        "skipped": {**part.left_out, **(part.cuda_only if device != "cuda" else {})},
    }
    if status != "ok":
        record.update(exit_code=code, output_tail=tail)
    return record


def summarise(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers: ours against plain, the plan's ratios, one clip's latency."""
    summary: dict[str, Any] = {}
    for name in ("training step", "training step, large batch"):
        steps = {
            r["variant"]: r for r in parts.get(name, {}).get("records", []) if r.get("measure") == "switches"
        }
        if "ours" in steps:
            ours = steps["ours"]
            summary[name] = {
                "ours_speedup_vs_plain": ours["speedup_vs_plain"],
                "ours_step_s_median": ours["step_s_median"],
                "ours_real_frames_per_s": ours["real_frames_per_s"],
                "ours_precision": "bf16 autocast" if ours["switches"]["bf16"] else "fp32",
                "frame_counts": ours["frame_counts"],
            }
    for name in ("plan", "plan, paper shape"):
        ratios = [r["ratio"] for r in parts.get(name, {}).get("records", [])]
        if ratios:
            summary[name] = {
                "estimate_over_measured_min": min(ratios),
                "estimate_over_measured_max": max(ratios),
            }
    latency = [
        r for r in parts.get("pipeline latency", {}).get("records", []) if r.get("measure") == "latency"
    ]
    if latency:
        summary["pipeline latency, one clip, inference_mode"] = {
            f"{r['model']} beam {r['num_beams']} {r['precision']}": r["seconds_median"]
            for r in latency
            if r["inference_context"] == "inference_mode"
        }
    return summary


def write_document(document: dict[str, Any], output: Path) -> None:
    """Write ``document`` whole or not at all (a temporary file, then a rename)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(temporary, output)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="auto: cuda if any")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (the CPU test of this path)")
    parser.add_argument(
        "--budget-s", type=float, default=465.0, help="seconds for all parts together (8 min less startup)"
    )
    parser.add_argument("--output", type=Path, default=None, help="default: results/gpu_check_<device>.json")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible to torch")
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, got {args.budget_s}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the parts within the budget and write the document; returns it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    suffix = "_tiny" if args.tiny else ""
    output = args.output or RESULTS_DIR / f"gpu_check_{args.device}{suffix}.json"
    began = time.perf_counter()
    document: dict[str, Any] = {
        "benchmark": "gpu_check",
        "command": shlex.join(["python", "-m", "benchmarks.gpu_check", *argv]),
        "device": args.device,
        "tiny": args.tiny,
        "budget_s": args.budget_s,
        "machine": machine_info(torch.device(args.device)),
        "parts": {},
    }
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        for index, part in enumerate(PARTS):
            # a part may use what the parts before it left unused, never what the later ones need
            reserved = sum(later.share for later in PARTS[index + 1 :]) * args.budget_s
            left = args.budget_s - (time.perf_counter() - began)
            timeout = left if args.tiny else left - reserved
            if timeout < 5:
                document["parts"][part.name] = {"status": "not run", "reason": "the budget was spent"}
            else:
                document["parts"][part.name] = run_part(part, args.device, args.tiny, timeout, Path(scratch))
            document["wall_s"] = round(time.perf_counter() - began, 1)
            document["summary"] = summarise(document["parts"])
            write_document(document, output)
    statuses = {name: part["status"] for name, part in document["parts"].items()}
    print(json.dumps({"output": str(output), "parts": statuses, "summary": document["summary"]}, indent=1))
    return document


if __name__ == "__main__":
    main()
