"""Two real processes (gloo on CPU) share the curriculum and finish with identical parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests._distributed_worker import NUM_SAMPLES
from tests._launch import run_two_gloo_processes
from tests.test_trainer import tiny_corpus
from trainers.application.recipe import close_process_group
from trainers.method.sampler import PSCurriculumBatchSampler

WORKER = Path(__file__).with_name("_distributed_worker.py")


@pytest.mark.slow
def test_two_processes_draw_disjoint_shares_of_the_same_curriculum(tmp_path) -> None:
    result = run_two_gloo_processes(str(WORKER), str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(rank["world_size"] == 2 for rank in ranks)
    texts = tiny_corpus(num_samples=NUM_SAMPLES)["text"]
    scores = torch.randn(NUM_SAMPLES, NUM_SAMPLES, generator=torch.Generator().manual_seed(5))
    sampler = PSCurriculumBatchSampler(scores, batch_size=4, num_epochs=1, texts=texts, seed=0)
    sampler.set_epoch(0)
    expected = [[f"clip{i}" for i in batch] for batch in sampler]
    assert ranks[0]["batches"] == expected[0::2]
    assert ranks[1]["batches"] == expected[1::2]
    names = [{name for batch in rank["batches"] for name in batch} for rank in ranks]
    assert not names[0] & names[1] and len(names[0] | names[1]) == NUM_SAMPLES

    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    initial_differs = False
    for name, value in first.items():
        assert torch.equal(value, second[name]), f"{name} differs between the ranks"
        initial_differs |= name == "logit_scale.log_scale" and float(value) != pytest.approx(2.6593, abs=1e-4)
    assert initial_differs, "training did not move the logit scale: the comparison would be vacuous"


def test_close_process_group_ends_the_launchs_group_and_is_a_no_op_without_one(tmp_path) -> None:
    close_process_group()  # no group: nothing to do
    store = f"file://{tmp_path / 'store'}"
    torch.distributed.init_process_group("gloo", init_method=store, rank=0, world_size=1)
    try:
        close_process_group()
        assert not torch.distributed.is_initialized()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
