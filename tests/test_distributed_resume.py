"""A 2-process (gloo on CPU) scl run stopped inside a late epoch and resumed in a new launch
trains on the same batches, to the same parameters, as the uninterrupted 2-process run.

Under 2 processes accelerate wraps the batch sampler in ``BatchSamplerShard`` and the resume
wraps that in ``SkipBatchSampler``; without ``CurriculumEpochCallback`` the rest of the resumed
epoch ran epoch 0's curriculum.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests._distributed_resume_worker import EPOCHS, NUM_SAMPLES, SCHEDULE, STOP_STEP, scores
from tests._launch import run_two_gloo_processes
from tests.test_trainer import tiny_corpus
from trainers.method.sampler import PSCurriculumBatchSampler

WORKER = Path(__file__).with_name("_distributed_resume_worker.py")


def launch(out_dir: Path, mode: str) -> None:
    result = run_two_gloo_processes(str(WORKER), str(out_dir), mode)
    assert result.returncode == 0, result.stderr[-4000:]


def expected_batches(rank: int) -> list[list[str]]:
    """This rank's share of every epoch's curriculum: batches rank, rank + 2, … of each epoch."""
    texts = tiny_corpus(num_samples=NUM_SAMPLES)["text"]
    sampler = PSCurriculumBatchSampler(
        scores(), batch_size=4, num_epochs=EPOCHS, schedule=SCHEDULE, texts=texts, seed=0
    )
    batches = []
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        batches += [[f"clip{i}" for i in batch] for batch in list(sampler)[rank::2]]
    return batches


@pytest.mark.slow
def test_a_resumed_two_process_run_equals_the_uninterrupted_one(tmp_path) -> None:
    launch(tmp_path, "first")
    assert (tmp_path / "stopped" / f"checkpoint-{STOP_STEP}").is_dir()
    launch(tmp_path, "resume")

    final = {}
    for rank in (0, 1):
        first = json.loads((tmp_path / f"first-rank{rank}.json").read_text())
        resumed = json.loads((tmp_path / f"resume-rank{rank}.json").read_text())["resumed"]
        straight, stopped = first["straight"], first["stopped"]
        expected = expected_batches(rank)
        assert straight["batches"] == expected and len(expected) == 2 * EPOCHS
        # not vacuous: epoch 0's curriculum at the resumed position is another batch
        assert expected[STOP_STEP] != expected[STOP_STEP % 2], "the epoch would not matter"
        assert stopped["global_step"] == STOP_STEP and resumed["global_step"] == 2 * EPOCHS
        # The loader reads one batch ahead: the stopped run collated a batch it never trained on.
        assert stopped["batches"][:STOP_STEP] + resumed["batches"] == straight["batches"], f"rank {rank}"
        final[rank] = {run: params for run, params in torch.load(tmp_path / f"first-rank{rank}.pt").items()}
        final[rank]["resumed"] = torch.load(tmp_path / f"resume-rank{rank}.pt")["resumed"]
    for name, value in final[0]["straight"].items():
        assert torch.equal(value, final[1]["straight"][name]), f"{name} differs between the ranks"
        for rank in (0, 1):
            assert torch.allclose(final[rank]["resumed"][name], value, atol=1e-6), (rank, name)
    moved = final[0]["straight"]["logit_scale.log_scale"]
    assert float(moved) != pytest.approx(2.6593, abs=1e-4), "training did not move: the test would be vacuous"
