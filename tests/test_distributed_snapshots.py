"""Snapshots and the reference analysis shared by processes equal what one process computes.

Fast tests simulate processes with threads (the share and gather logic); the slow one launches
2 real processes (gloo on CPU) through the reference stage and the recipe's analysis.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from tests import _distributed_snapshot_worker as worker
from tests._launch import run_two_gloo_processes
from tests.test_trainer import collators, make_trainer, tiny_corpus, tiny_model
from trainers.application import recipe
from trainers.application.recipe_config import RecipeConfig
from trainers.application.run_paths import RunPaths
from trainers.method.pair_selection import compute_dense_scores, compute_pair_scores, load_pair_scores
from trainers.method.similarity_series import RowShare, SnapshotSimilaritySeries
from trainers.method.snapshots import (
    Snapshot,
    load_snapshot_series,
    pad_and_concatenate,
    save_snapshot,
    snapshot_filename,
)
from trainers.method.trajectories import analyze_trajectories
from trainers.training.callbacks import ReferenceSnapshotCallback, assemble_shares, batch_aligned_share
from trainers.training.retrieval import collect_features

WORKER = Path(worker.__file__)


# --- shares of the snapshot extraction ----------------------------------------------------------
@pytest.mark.parametrize("num_samples", [1, 8, 11, 12, 13])
@pytest.mark.parametrize("num_processes", [1, 2, 3, 5, 8])
def test_snapshot_shares_are_contiguous_whole_batches_covering_every_sample(num_samples, num_processes):
    batch_size = 3
    shares = [batch_aligned_share(num_samples, batch_size, r, num_processes) for r in range(num_processes)]
    assert [i for share in shares for i in share] == list(range(num_samples))  # in order, once each
    for share in shares:  # a run of the one-process batches (the last one short)
        if len(share):
            assert share.start % batch_size == 0
            assert share.stop % batch_size == 0 or share.stop == num_samples
    sizes = [len(share) for share in shares]
    assert max(sizes) - min(sizes) <= batch_size  # balanced to a batch


def random_batches(lengths: list[int], dim: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Model-like batches: (B, L_batch, D) tokens with non-zero values at padded positions too."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for start in range(0, len(lengths), batch_size):
        part = lengths[start : start + batch_size]
        mask = torch.arange(max(part))[None, :] < torch.tensor(part)[:, None]
        batches.append((torch.randn(len(part), max(part), dim, generator=generator), mask))
    return batches


def test_gathered_shares_reassemble_the_one_process_snapshot_tensors() -> None:
    lengths, batch_size = [4, 2, 7, 1, 3, 3, 5, 2, 6, 1, 2], 3  # 11 samples, longest in batch 1
    batches = random_batches(lengths, dim=5, batch_size=batch_size)
    tokens, mask = pad_and_concatenate([t for t, _ in batches], [m for _, m in batches])
    expected = Snapshot.from_embeddings(
        sample_ids=range(11), step=0, epoch=0, video_tokens=tokens, video_mask=mask,
        text_tokens=tokens, text_mask=mask,
    )  # fmt: skip
    for num_processes in (1, 2, 3, 5):
        shares = []
        for rank in range(num_processes):
            share = batch_aligned_share(11, batch_size, rank, num_processes)
            mine = batches[share.start // batch_size : (share.stop + batch_size - 1) // batch_size]
            if not mine:
                shares.append(None)
                continue
            normalised = [torch.nn.functional.normalize(t, dim=-1).half() for t, _ in mine]
            share_tokens, share_mask = pad_and_concatenate(normalised, [m for _, m in mine])
            shares.append({"video_tokens": share_tokens, "video_mask": share_mask,
                           "text_tokens": share_tokens, "text_mask": share_mask})  # fmt: skip
        gathered = assemble_shares(shares)
        for name in ("video_tokens", "video_mask"):
            want = getattr(expected, name)
            want = want.half() if name.endswith("tokens") else want
            assert gathered[name].dtype == want.dtype and torch.equal(gathered[name], want), (
                num_processes,
                name,
            )


def test_normalised_collection_equals_normalising_the_whole_float32_result(tokenizer_and_model) -> None:
    tokenizer, model = tokenizer_and_model
    _, evaluation = collators(tokenizer)
    loader = DataLoader(tiny_corpus(num_samples=7), batch_size=3, collate_fn=evaluation)
    plain = collect_features(model, loader, "cpu")
    normalised = collect_features(model, loader, "cpu", normalize_to=torch.float16)
    for name in ("video_tokens", "text_tokens"):
        expected = torch.nn.functional.normalize(plain[name], dim=-1).half()
        assert torch.equal(normalised[name], expected), name


@pytest.fixture(scope="module")
def tokenizer_and_model():
    from tests.test_trainer import SENTENCES
    from trainers.application.tokenization import train_tokenizer

    tokenizer = train_tokenizer(SENTENCES, tgt_lang="en_XX", model="wordlevel")
    return tokenizer, tiny_model(tokenizer)


def one_process_snapshot_file(
    model: Any,
    dataset: Any,
    collator: Callable,
    batch_size: int,
    step: int,
    epoch: int,
    output_dir: str,
    path: Path,
) -> Path:
    """What the snapshot callback wrote before it was shared: one plain loader, one float32 normalisation."""
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    features = collect_features(model, loader, "cpu")
    snapshot = Snapshot.from_embeddings(
        sample_ids=list(dataset["name"]),
        step=step,
        epoch=epoch,
        video_tokens=features["video_tokens"],
        video_mask=features["video_mask"],
        text_tokens=features["text_tokens"],
        text_mask=features["text_mask"],
        aggregation=model.config.similarity_aggregation,
        temperature=model.config.similarity_temperature,
        checkpoint_path=output_dir,
    )
    return save_snapshot(snapshot, path)


def test_one_process_snapshot_has_the_bytes_of_the_unshared_extraction(tmp_path, tokenizer_and_model) -> None:
    tokenizer, _ = tokenizer_and_model
    trainer = make_trainer(tmp_path, tokenizer, stage="reference", per_device_eval_batch_size=3,
                           dataset=tiny_corpus(num_samples=7))  # fmt: skip
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, ReferenceSnapshotCallback))
    written = callback.save_snapshot(trainer.args, step=5, epoch=1)
    expected = one_process_snapshot_file(
        trainer.model, trainer.train_dataset, trainer.eval_data_collator, 3, 5, 1, trainer.args.output_dir,
        tmp_path / "expected.safetensors",
    )  # fmt: skip
    assert written.name == snapshot_filename(5)
    assert written.read_bytes() == expected.read_bytes()


# --- shares of the similarity work --------------------------------------------------------------
def run_as_processes(count: int, work: Callable[[RowShare], Any]) -> list[Any]:
    """Run ``work(share)`` for ``count`` simulated processes on threads that gather through slots."""
    barrier = threading.Barrier(count, timeout=60)
    slots: list[Any] = [None] * count
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def share_of(index: int) -> RowShare:
        def all_gather(part: Any) -> list[Any]:
            slots[index] = part
            barrier.wait()
            parts = list(slots)
            barrier.wait()
            return parts

        def gather(part: Any) -> list[Any] | None:
            parts = all_gather(part)
            return parts if index == 0 else None

        return RowShare(index, count, all_gather, gather)

    def run(index: int) -> None:
        try:
            results[index] = work(share_of(index))
        except BaseException as error:  # re-raised in the test thread
            errors.append(error)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def token_snapshots(num_samples: int, num_snapshots: int = 3) -> list[Snapshot]:
    snapshots = []
    for k in range(num_snapshots):
        generator = torch.Generator().manual_seed(k)
        video_mask = torch.arange(6)[None, :] < torch.randint(1, 7, (num_samples, 1), generator=generator)
        text_mask = torch.arange(4)[None, :] < torch.randint(1, 5, (num_samples, 1), generator=generator)
        snapshots.append(
            Snapshot.from_embeddings(
                sample_ids=range(num_samples), step=k, epoch=k,
                video_tokens=torch.randn(num_samples, 6, 8, generator=generator), video_mask=video_mask,
                text_tokens=torch.randn(num_samples, 4, 8, generator=generator), text_mask=text_mask,
            )
        )  # fmt: skip
    return snapshots


@pytest.mark.parametrize("count", [2, 3, 7])
def test_shared_trajectory_analysis_equals_one_process(count: int) -> None:
    snapshots, texts = token_snapshots(23), [f"text {i % 9}" for i in range(23)]
    # max_threshold_pairs below N·(N−1) = 506: the thresholds come from a seeded random sample
    options = {"texts": texts, "block_size": 4, "max_threshold_pairs": 200, "seed": 3}
    expected = analyze_trajectories(snapshots, **options).to_dict()
    reports = run_as_processes(
        count, lambda share: analyze_trajectories(SnapshotSimilaritySeries(snapshots), share=share, **options)
    )
    assert all(report.to_dict() == expected for report in reports)


@pytest.mark.parametrize("score", ["delta", "slope"])
def test_shared_dense_scores_equal_one_process_on_the_main_only(score: str) -> None:
    snapshots = token_snapshots(23)
    expected = compute_dense_scores(snapshots, score=score, block_size=4)
    blocks_of: dict[int, set[int]] = {}

    def work(share: RowShare) -> torch.Tensor | None:
        series = SnapshotSimilaritySeries(snapshots)
        original = series.block
        blocks_of[share.index] = set()

        def block(snapshot: int, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            blocks_of[share.index].add(int(rows[0]))
            return original(snapshot, rows, cols)

        series.block = block
        return compute_dense_scores(series, score=score, block_size=4, share=share)

    results = run_as_processes(3, work)
    assert torch.equal(results[0], expected) and results[1] is None and results[2] is None
    assert blocks_of == {0: {0, 12}, 1: {4, 16}, 2: {8, 20}}  # blocks of 4 rows, round-robin


def test_sparse_scores_are_not_shared() -> None:
    share = RowShare(0, 2, all_gather=lambda part: [part, part])
    with pytest.raises(ValueError, match="Only dense scores"):
        compute_pair_scores(token_snapshots(6), mode="sparse", num_candidates=2, share=share)


def test_row_share_checks_its_process() -> None:
    with pytest.raises(ValueError, match="index"):
        RowShare(2, 2, all_gather=list)
    with pytest.raises(ValueError, match="all_gather"):
        RowShare(0, 2)
    assert RowShare.from_process_group() == RowShare()  # no process group in this test process


def test_reference_analysis_computes_on_the_accelerator_device(tmp_path, monkeypatch) -> None:
    for snapshot in token_snapshots(5, num_snapshots=2):
        save_snapshot(snapshot, tmp_path / "snapshots" / snapshot_filename(snapshot.step))
    seen: dict[str, Any] = {}

    class Reached(Exception):
        pass

    def series(snapshots: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise Reached

    monkeypatch.setattr(
        recipe, "PartialState", lambda: SimpleNamespace(device=torch.device("cuda", 3), is_main_process=True)
    )
    monkeypatch.setattr(recipe, "SnapshotSimilaritySeries", series)
    corpus = {"train": {"text": ["t"] * 5}}
    with pytest.raises(Reached):
        recipe.analyse_reference_run(RecipeConfig(), corpus, RunPaths(tmp_path), report=print)
    assert seen["device"] == torch.device("cuda", 3)


# --- two real processes ---------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_share_snapshots_and_analysis_with_one_process_results(tmp_path) -> None:
    result = run_two_gloo_processes(str(WORKER), str(tmp_path))
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [rank["world_size"] for rank in ranks] == [2, 2]

    # the process group waits the configured time, also once the Trainer has made its own state
    for rank in ranks:
        assert rank["timeout_before"] == rank["timeout_after"] == worker.TIMEOUT_MINUTES * 60

    # each rank embedded its own share of whole batches, once per snapshot, and nothing else
    names = [f"clip{i}" for i in range(worker.NUM_SAMPLES)]
    shares = [[names[0:3], names[3:6]], [names[6:9], names[9:11]]]
    assert ranks[0]["embedded"] == shares[0] * 2 and ranks[1]["embedded"] == shares[1] * 2

    # each rank computed its row blocks only: trajectories (blocks of 3) and dense scores (of 4)
    blocks = [{tuple(call) for call in rank["blocks"]} for rank in ranks]
    assert blocks[0] == {(0, 3), (6, 3), (0, 4), (8, 3)}
    assert blocks[1] == {(3, 3), (9, 2), (4, 4)}

    # the shared snapshots have the bytes of a one-process extraction with rank 0's model, whose
    # BatchNorm statistics rank 1 did not have before they were broadcast
    tokenizer = worker.train_tokenizer(worker.SENTENCES, tgt_lang="en_XX", model="wordlevel")
    _, evaluation = collators(tokenizer)
    dataset = tiny_corpus(num_samples=worker.NUM_SAMPLES)
    snapshots = load_snapshot_series(RunPaths(tmp_path).snapshots)
    assert [snapshot.epoch for snapshot in snapshots] == [1, 2]
    with one_intra_op_thread():  # as in the launched processes: kernels give the same bits
        for snapshot in snapshots:
            states = [torch.load(tmp_path / f"state-rank{r}-epoch{snapshot.epoch:g}.pt") for r in (0, 1)]
            assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0] if "running" in k)
            model = tiny_model(tokenizer)
            model.load_state_dict(states[0])
            expected = one_process_snapshot_file(
                model, dataset, evaluation, worker.EVAL_BATCH_SIZE, snapshot.step, snapshot.epoch,
                str(tmp_path / "reference"), tmp_path / f"expected-{snapshot.step}.safetensors",
            )  # fmt: skip
            assert snapshot.source_path.read_bytes() == expected.read_bytes()

        # the trajectory report and the dense scores are those of one process
        trajectory = analyze_trajectories(
            snapshots, texts=dataset["text"], seed=0, block_size=worker.TRAJECTORY_BLOCK_SIZE
        )
        expected_scores = compute_dense_scores(snapshots, block_size=worker.SCORE_BLOCK_SIZE)
    written = json.loads((tmp_path / "trajectories.json").read_text())
    assert written == json.loads(json.dumps(trajectory.to_dict()))
    assert torch.equal(load_pair_scores(tmp_path / "pair_scores.safetensors"), expected_scores)


@contextmanager
def one_intra_op_thread() -> Iterator[None]:
    """Torch on one intra-op thread: a kernel's bits can depend on its thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
