"""Batch samplers: coverage, determinism, curriculum ordering, duplicates, sparse scores."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.method.pair_selection import SparseScores
from trainers.method.sampler import (
    NoDuplicatesBatchSampler,
    PSCurriculumBatchSampler,
    RandomBatchSampler,
    RankedSet,
    batch_score,
    curriculum_alpha,
)


def dyadic_scores(n: int, seed: int = 0) -> torch.Tensor:
    """Random scores on a 1/8 grid, so sums are exact in float32 whatever the order."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(-64, 65, (n, n), generator=generator).float() / 8


def all_others_sparse(dense: torch.Tensor) -> SparseScores:
    """The dense matrix written as SparseScores with M = N − 1 candidates per sample."""
    n = dense.shape[0]
    indices = torch.stack([torch.cat([torch.arange(i), torch.arange(i + 1, n)]) for i in range(n)])
    rows = torch.arange(n)[:, None].expand_as(indices)
    return SparseScores(indices, dense[rows, indices], dense[indices, rows])


def make_samplers(n: int = 50, batch_size: int = 8, **kwargs) -> list:
    texts = [f"text {i % 17}" for i in range(n)]
    return [
        PSCurriculumBatchSampler(
            dyadic_scores(n), batch_size=batch_size, num_epochs=10, texts=texts, **kwargs
        ),
        NoDuplicatesBatchSampler(texts, batch_size=batch_size, **kwargs),
        RandomBatchSampler(n, batch_size=batch_size, **kwargs),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_every_sample_exactly_once_per_epoch(index: int) -> None:
    sampler = make_samplers()[index]
    for epoch in (0, 3, 9):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for batch in batches for i in batch) == list(range(50))
        assert [len(b) for b in batches] == [8] * 6 + [2]
        assert len(batches) == len(sampler) == 7


@pytest.mark.parametrize("index", [0, 1, 2])
def test_drop_last_drops_only_the_short_batch(index: int) -> None:
    sampler = make_samplers(drop_last=True)[index]
    batches = list(sampler)
    assert len(sampler) == len(batches) == 6 and all(len(b) == 8 for b in batches)
    assert len({i for b in batches for i in b}) == 48


@pytest.mark.parametrize("index", [0, 1, 2])
def test_epochs_are_deterministic_and_differ(index: int) -> None:
    first, second = make_samplers(seed=3)[index], make_samplers(seed=3)[index]
    first.set_epoch(4)
    second.set_epoch(4)
    assert list(first) == list(second)
    second.set_epoch(5)
    assert list(first) != list(second)
    other_seed = make_samplers(seed=4)[index]
    other_seed.set_epoch(4)
    assert list(other_seed) != list(first)


def test_state_dict_restores_the_epoch() -> None:
    sampler = make_samplers(seed=7)[0]
    sampler.set_epoch(6)
    restored = make_samplers()[0]
    restored.load_state_dict(sampler.state_dict())
    assert restored.state_dict() == {"seed": 7, "epoch": 6}
    assert list(restored) == list(sampler)


def test_alpha_schedules_at_known_points() -> None:
    assert curriculum_alpha("log", 0, 10) == 0.0
    assert curriculum_alpha("log", 5, 10) == pytest.approx(math.log10(1 + 9 * 0.5))  # 0.7404
    assert curriculum_alpha("log", 9, 10) == pytest.approx(math.log10(1 + 9 * 0.9))  # last epoch < 1
    assert curriculum_alpha("log", 5, 10, log_base=2) == pytest.approx(math.log2(1.5))
    assert curriculum_alpha("linear", 5, 10) == 0.5
    assert curriculum_alpha("linear", 12, 10) == 1.0  # past the curriculum: clamped
    assert curriculum_alpha("sqrt", 4, 16) == 0.5
    assert curriculum_alpha("easy", 7, 10) == 0.0
    assert curriculum_alpha("hard", 0, 10) == 1.0
    assert curriculum_alpha(lambda e, total: e / (2 * total), 5, 10) == 0.25
    with pytest.raises(ValueError, match="alpha=2"):
        curriculum_alpha(lambda e, total: 2, 0, 10)
    with pytest.raises(ValueError, match="schedule must be one of"):
        curriculum_alpha("cubic", 0, 10)


def test_log_schedule_is_above_linear_inside_the_run() -> None:
    for epoch in range(1, 10):
        assert curriculum_alpha("log", epoch, 10) > curriculum_alpha("linear", epoch, 10)


def mean_batch_score(sampler, scores: torch.Tensor) -> float:
    batches = [b for b in sampler if len(b) == sampler.batch_size]
    return sum(batch_score(scores, b) for b in batches) / len(batches)


def test_easy_batches_score_below_random_and_hard_above() -> None:
    scores = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    easy = mean_batch_score(
        PSCurriculumBatchSampler(scores, batch_size=8, num_epochs=1, schedule="easy"), scores
    )
    hard = mean_batch_score(
        PSCurriculumBatchSampler(scores, batch_size=8, num_epochs=1, schedule="hard"), scores
    )
    random = mean_batch_score(RandomBatchSampler(256, batch_size=8), scores)
    assert easy < random - 10 and hard > random + 10  # random ≈ 0 with sd ≈ 7.5 per batch
    middle = PSCurriculumBatchSampler(scores, batch_size=8, num_epochs=2, schedule="linear")
    middle.set_epoch(1)  # alpha 0.5: in between
    assert easy < mean_batch_score(middle, scores) < hard


def test_greedy_step_adds_the_candidate_at_the_quantile() -> None:
    scores = dyadic_scores(40, seed=2)
    weights = scores + scores.T
    for schedule, choose in (("hard", torch.argmax), ("easy", torch.argmin)):
        sampler = PSCurriculumBatchSampler(scores, batch_size=2, num_epochs=1, schedule=schedule, seed=5)
        first_seed, partner = next(iter(sampler))
        row = weights[first_seed].clone()
        row[first_seed] = float("nan")
        row = torch.where(row.isnan(), float("inf") if schedule == "easy" else float("-inf"), row)
        assert row[partner] == row[choose(row)]


def test_identical_texts_never_share_a_batch() -> None:
    n = 120
    texts = [f"sentence {i % 30}" for i in range(n)]  # 4 copies of each text
    samplers = [
        PSCurriculumBatchSampler(dyadic_scores(n), batch_size=10, num_epochs=5, texts=texts),
        NoDuplicatesBatchSampler(texts, batch_size=10),
    ]
    for sampler in samplers:
        for epoch in range(3):
            sampler.set_epoch(epoch)
            for batch in sampler:
                assert len({texts[i] for i in batch}) == len(batch)
            assert sampler.num_relaxed_picks == 0


def test_duplicates_can_be_switched_off() -> None:
    n = 64
    texts = ["same"] * 32 + [f"t{i}" for i in range(32)]
    sampler = PSCurriculumBatchSampler(
        dyadic_scores(n),
        batch_size=8,
        num_epochs=1,
        texts=texts,
        avoid_duplicate_texts=False,
        schedule="hard",
    )
    assert any(sum(texts[i] == "same" for i in batch) > 1 for batch in sampler)


@pytest.mark.parametrize("kind", ["curriculum", "no_duplicates"])
def test_a_text_with_one_copy_per_batch_lands_in_every_batch(kind: str) -> None:
    texts = ["frequent"] * 8 + [f"t{i % 20}" for i in range(56)]  # 64 samples, 8 batches of 8
    for epoch in range(4):
        if kind == "curriculum":
            sampler = PSCurriculumBatchSampler(dyadic_scores(64), batch_size=8, num_epochs=4, texts=texts)
        else:
            sampler = NoDuplicatesBatchSampler(texts, batch_size=8)
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert [sum(texts[i] == "frequent" for i in b) for b in batches] == [1] * 8
        assert all(len({texts[i] for i in b}) == len(b) for b in batches)
        assert sampler.num_relaxed_picks == 0


@pytest.mark.parametrize("kind", ["curriculum", "no_duplicates"])
def test_impossible_constraint_is_relaxed_without_dropping_samples(kind: str) -> None:
    texts = ["hello"] * 10 + ["a", "b", "c", "d", "e", "f"]  # 10 copies, only 4 batches of 4
    if kind == "curriculum":
        sampler = PSCurriculumBatchSampler(dyadic_scores(16), batch_size=4, num_epochs=1, texts=texts)
    else:
        sampler = NoDuplicatesBatchSampler(texts, batch_size=4)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(16))
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert sampler.num_relaxed_picks >= 6  # at least 10 − 4 copies had to share


def test_sparse_scores_give_the_same_batches_as_dense() -> None:
    dense = dyadic_scores(60, seed=1)
    texts = [f"t{i % 20}" for i in range(60)]
    for schedule in ("log", "hard"):
        from_dense = PSCurriculumBatchSampler(
            dense, batch_size=8, num_epochs=4, schedule=schedule, texts=texts
        )
        from_sparse = PSCurriculumBatchSampler(
            all_others_sparse(dense), batch_size=8, num_epochs=4, schedule=schedule, texts=texts
        )
        for epoch in (1, 3):
            from_dense.set_epoch(epoch)
            from_sparse.set_epoch(epoch)
            assert list(from_dense) == list(from_sparse)


def test_truly_sparse_scores_cover_every_sample() -> None:
    n, m = 300, 5
    generator = torch.Generator().manual_seed(0)
    indices = (torch.arange(n)[:, None] + torch.randint(1, n, (n, m), generator=generator)) % n
    sparse = SparseScores(
        indices, torch.randn(n, m, generator=generator), torch.randn(n, m, generator=generator)
    )
    sampler = PSCurriculumBatchSampler(sparse, batch_size=16, num_epochs=3, schedule="hard")
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(n))
    assert mean_batch_score(sampler, sparse.to_dense()) > 0  # hard picks the candidates that drifted together


def test_one_epoch_of_2000_samples() -> None:
    scores = torch.randn(2000, 2000, generator=torch.Generator().manual_seed(0))
    texts = [f"t{i % 700}" for i in range(2000)]
    sampler = PSCurriculumBatchSampler(scores, batch_size=16, num_epochs=80, texts=texts)
    sampler.set_epoch(40)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 125
    assert sorted(i for b in batches for i in b) == list(range(2000))


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="texts has 3 entries but there are 4 samples"):
        PSCurriculumBatchSampler(torch.zeros(4, 4), batch_size=2, num_epochs=1, texts=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"shape \(N, N\)"):
        PSCurriculumBatchSampler(torch.zeros(4, 3), batch_size=2, num_epochs=1)


def random_sparse(n: int, m: int, seed: int, dyadic: bool = True) -> SparseScores:
    """Random candidates; dyadic scores (many exact ties and exact zero sums) or Gaussian ones."""
    generator = torch.Generator().manual_seed(seed)
    indices = (torch.arange(n)[:, None] + torch.randint(1, n, (n, m), generator=generator)) % n
    if dyadic:
        forward = torch.randint(-4, 5, (n, m), generator=generator).float() / 4
        backward = torch.randint(-4, 5, (n, m), generator=generator).float() / 4
    else:
        forward, backward = torch.randn(n, m, generator=generator), torch.randn(n, m, generator=generator)
    return SparseScores(indices, forward, backward)


@pytest.mark.parametrize("dyadic", [True, False])
@pytest.mark.parametrize("with_texts", [True, False])
def test_fast_sparse_path_gives_the_reference_batches(dyadic: bool, with_texts: bool) -> None:
    n = 203
    sparse = random_sparse(n, 4, seed=int(dyadic) + 2 * int(with_texts), dyadic=dyadic)
    # a frequent text (tight near the end), an impossible one (relaxed picks), many pairs
    texts = ["often"] * 13 + ["too often"] * 16 + [f"t{i % 80}" for i in range(n - 29)]
    for schedule in ("easy", "log", "hard", "linear"):
        kwargs = dict(batch_size=16, num_epochs=5, schedule=schedule, texts=texts if with_texts else None)
        fast = PSCurriculumBatchSampler(sparse, **kwargs)
        reference = PSCurriculumBatchSampler(sparse, fast_sparse=False, **kwargs)
        for epoch in (0, 2, 4):
            fast.set_epoch(epoch)
            reference.set_epoch(epoch)
            assert list(fast) == list(reference), (schedule, epoch)
            assert fast.num_relaxed_picks == reference.num_relaxed_picks
            assert (reference.num_relaxed_picks > 0) == with_texts  # the relaxation is exercised


def test_ranked_set_finds_the_kth_rank_outside_an_excluded_set() -> None:
    generator = torch.Generator().manual_seed(0)
    ranked, present = RankedSet(50), set(range(50))
    for rank in torch.randperm(50, generator=generator)[:20].tolist():
        ranked.remove(rank)
        present.discard(rank)
    excluded = sorted(
        torch.tensor(sorted(present))[torch.randperm(len(present), generator=generator)[:9]].tolist()
    )
    rest = sorted(present - set(excluded))
    assert [ranked.kth(k) for k in range(len(present))] == sorted(present)
    assert [ranked.kth_excluding(k, excluded) for k in range(len(rest))] == rest
