"""The real-scale rehearsal (``python -m benchmarks.experiments.rehearsal_real_scale``): its checks,
and its whole path, small.

The slow test runs the script as a user does, on the first 48 real PHOENIX-2014T train videos
and 8 dev and test videos: 2 gloo processes, stage scl interrupted after step 1 of 3 and resumed
in a second launch. The full-size run and its measured times are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import pytest

from benchmarks.experiments import rehearsal_real_scale
from benchmarks.harness import module_command, module_environment
from tests._shared_data import shared_path


def consistent_records(k: int, steps: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records of both launches as the workers write them, for a run where everything agrees."""
    evaluation = {"model": "e", "eval_video_to_text_r1": 25.0}
    first = {
        "world_size": 2,
        "interrupted": f"stage scl interrupted after step {k}",
        "stages": {
            "reference": {"parameters_at_start": "a", "parameters_at_end": "b", "evaluations": []},
            "scl": {
                "parameters_at_start": "b",
                "parameters_at_interruption": "c",
                "interrupted_at_step": k,
                "start_global_step": 0,
                "steps_trained": list(range(1, k + 1)),
                "evaluations": [],
            },
        },
    }
    resumed = {
        "world_size": 2,
        "final_metrics_sha256": "m",
        "stages": {
            "scl": {
                "parameters_at_start": "c",
                "parameters_at_end": "d",
                "start_global_step": k,
                "steps_trained": list(range(k + 1, steps + 1)),
                "evaluations": [evaluation],
            },
            "translate": {"parameters_at_start": "d", "parameters_at_end": "f", "evaluations": [evaluation]},
        },
    }
    return [first, copy.deepcopy(first)], [resumed, copy.deepcopy(resumed)]


def test_the_checks_pass_a_consistent_run_and_name_what_differs(tmp_path) -> None:
    (tmp_path / "scl").mkdir()
    (tmp_path / "scl" / "DONE").write_text("{}")
    first, resumed = consistent_records(k=2, steps=5)
    checks = rehearsal_real_scale.run_checks(first, resumed, 2, 5, tmp_path, saved=True)
    failed = [name for name, check in checks.items() if not check["ok"]]
    assert failed == ["final model on disk has the ranks' parameters"]  # no model folder here

    resumed[1]["stages"]["scl"]["evaluations"][0]["model"] = "BatchNorm statistics of rank 1"
    resumed[0]["stages"]["scl"]["start_global_step"] = 0  # restarted instead of resumed
    first[1]["stages"]["scl"]["steps_trained"] = [1, 2, 3]  # trained past the interruption
    checks = rehearsal_real_scale.run_checks(first, resumed, 2, 5, tmp_path, saved=True)
    failed = {name for name, check in checks.items() if not check["ok"]}
    assert failed >= {
        "resume/scl: dev metrics and evaluated model (with buffers) equal on both ranks",
        "resume: scl started at global step k",
        "first launch: scl trained steps 1..k only",
    }


@pytest.mark.slow
def test_a_small_rehearsal_interrupts_resumes_and_ends_equal_on_both_ranks(tmp_path) -> None:
    annotations, tokenizer = shared_path("phoenix2014t"), shared_path("mbart-cc25-trimmed-de")
    command = [
        *module_command("benchmarks.experiments.rehearsal_real_scale", ["--output-dir", str(tmp_path)]),
        *("--annotations", str(annotations), "--tokenizer", str(tokenizer)),
        *("--train-videos", "48", "--eval-videos", "8", "--batch-size", "8"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=module_environment())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    report = json.loads((tmp_path / "rehearsal.json").read_text(encoding="utf-8"))
    assert report["corpus"]["videos"] == {"train": 48, "validation": 8, "test": 8}
    # 6 batches of 8 on 2 processes: 3 optimizer steps, interrupted after the first
    assert (report["sizes"]["scl_steps"], report["sizes"]["interrupt_step"]) == (3, 1)
    assert all(check["ok"] for check in report["checks"].values()), report["checks"]
    for name in (
        "first launch: scl stopped at step k",
        "first launch: checkpoint-k saved, scl not done",
        "resume: scl started at global step k",
        "resume: scl started from the parameters held at the interruption",
        "resume: scl trained steps k+1..end of the epoch",
        "resume/scl: parameters at end equal on both ranks",
        "resume/scl: dev metrics and evaluated model (with buffers) equal on both ranks",
        "resume/translate: parameters at end equal on both ranks",
        "final model on disk has the ranks' parameters",
    ):
        assert name in report["checks"], name
    times = {(row["step"], row["launch"]): row["seconds_per_rank"] for row in report["times"]}
    assert all(seconds[0] is not None and seconds[0] >= 0 for seconds in times.values()), times
    assert times[("scl, steps 1–1 (interrupted)", "first")][1] is not None
    assert times[("scl, steps 2–3 (resumed) + dev retrieval", "resume")][1] is not None
    assert set(report["final_metrics"]) >= {"validation", "test"}
    assert (tmp_path / "rehearsal.md").read_text(encoding="utf-8").count("| ok |") == len(report["checks"])
