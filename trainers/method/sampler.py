"""Batch samplers: the Pair Selection curriculum and the baselines used by the ablations.

All three samplers share one contract (what ``transformers.Trainer`` + accelerate need):

* ``Sampler[list[int]]`` yielding lists of dataset indices; every index appears exactly once per
  epoch (the last batch is smaller unless ``drop_last``, which then drops it);
* the epoch's batches depend only on ``(seed, epoch)`` — no global RNG, no rank: every process
  builds the same list, accelerate shards it (process r takes batches r, r+W, …), and a resumed
  Trainer that skips the already-consumed batches of an epoch sees exactly the batches it
  would have seen. ``set_epoch(e)`` selects the epoch (accelerate calls it);
* ``len()`` is constant across epochs (the Trainer counts steps once);
* ``state_dict()`` / ``load_state_dict()`` hold ``{"seed", "epoch"}``.

Identical target texts (``texts``) never share a batch when ``avoid_duplicate_texts`` is on.
A greedy filler can paint itself into a corner (the last batches left with copies of one text),
so both text-aware samplers apply one extra rule, which only bites near the end of an epoch or
for very frequent texts: a text with at least as many unused copies as there are batches left
(including the open one) is *tight* and must place a copy in the open batch — the open batch
starts from one of its copies (instead of a random sample) and picks among tight copies first,
by the sampler's usual rule. When the constraint is truly impossible (more copies of one text
than batches) or every remaining sample repeats a text of the open batch, it is relaxed for that
slot — the pick is made among all remaining samples by the usual rule — so no sample is ever
dropped and batch sizes stay fixed. ``num_relaxed_picks`` counts such slots in the last epoch.
"""

from __future__ import annotations

import bisect
import math
import typing
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import Sampler

from .pair_selection import SparseScores
from .text_groups import text_group_ids, tight_threshold

ScheduleName = Literal["log", "linear", "sqrt", "easy", "hard"]
Schedule = ScheduleName | Callable[[int, int], float]
SCHEDULES: tuple[str, ...] = typing.get_args(ScheduleName)
FAST_SPARSE_MIN_SAMPLES = 1 << 15  # where the fast sparse path overtakes the reference one (RESULTS.md)


def curriculum_alpha(schedule: Schedule, epoch: int, num_epochs: int, log_base: float = 10.0) -> float:
    """Quantile ``alpha`` in [0, 1] of the Pair Selection curriculum at ``epoch`` (0-based) of ``num_epochs``.

    With progress ``p = min(epoch, E) / E`` (the first epoch has p = 0, the last p = (E−1)/E < 1):

    * ``log``: ``log(1 + (b − 1)·p) / log(b)`` with ``b = log_base`` (default 10): rises fast, then
      flattens — easy negatives only at the very start;
    * ``linear``: ``p``; ``sqrt``: ``sqrt(p)``;
    * ``easy``: 0 (always the lowest incremental score); ``hard``: 1 (always the highest);
    * a callable ``f(epoch, num_epochs) -> float`` in [0, 1].
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be at least 1, got {num_epochs}.")
    progress = min(max(epoch, 0), num_epochs) / num_epochs
    if callable(schedule):
        alpha = float(schedule(epoch, num_epochs))
    elif schedule == "log":
        if log_base <= 1:
            raise ValueError(f"log_base must be > 1, got {log_base}.")
        alpha = math.log(1 + (log_base - 1) * progress) / math.log(log_base)
    elif schedule == "linear":
        alpha = progress
    elif schedule == "sqrt":
        alpha = math.sqrt(progress)
    elif schedule == "easy":
        alpha = 0.0
    elif schedule == "hard":
        alpha = 1.0
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES} or a callable, got {schedule!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"The curriculum schedule returned alpha={alpha} at epoch {epoch}; expected [0, 1].")
    return alpha


def batch_score(scores: torch.Tensor | SparseScores, batch: Sequence[int]) -> float:
    """Sum of the scores of all ordered negative pairs (i ≠ j) inside ``batch``."""
    dense = scores.to_dense() if isinstance(scores, SparseScores) else scores
    index = torch.as_tensor(list(batch), dtype=torch.long)
    block = dense[index][:, index]
    return float(block.sum() - block.diagonal().sum())


class _EpochBatchSampler(Sampler[list[int]]):
    """Shared plumbing: epoch/seed bookkeeping, caching of the built epoch, length, state."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        texts: Sequence[str] | None = None,
        avoid_duplicate_texts: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        if texts is not None and len(texts) != num_samples:
            raise ValueError(f"texts has {len(texts)} entries but there are {num_samples} samples.")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.groups = text_group_ids(texts) if texts is not None and avoid_duplicate_texts else None
        self.num_relaxed_picks = 0
        self._cache: tuple[int, int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def generator(self) -> torch.Generator:
        """The only source of randomness of an epoch: seeded with ``seed + epoch``."""
        return torch.Generator().manual_seed(self.seed + self.epoch)

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch (built once per (seed, epoch), then cached)."""
        if self._cache is None or self._cache[:2] != (self.seed, self.epoch):
            built = self.build_epoch(self.generator())
            if self.drop_last and built and len(built[-1]) < self.batch_size:
                built = built[:-1]
            self._cache = (self.seed, self.epoch, built)
        return self._cache[2]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def build_epoch(self, generator: torch.Generator) -> list[list[int]]:
        raise NotImplementedError


class RandomBatchSampler(_EpochBatchSampler):
    """Uniformly random batches (the plain contrastive baseline); texts are ignored."""

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0, drop_last: bool = False):
        super().__init__(num_samples, batch_size, None, False, seed, drop_last)

    def build_epoch(self, generator: torch.Generator) -> list[list[int]]:
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        return [order[i : i + self.batch_size] for i in range(0, self.num_samples, self.batch_size)]


class NoDuplicatesBatchSampler(_EpochBatchSampler):
    """Random batches in which no two samples share an identical target text.

    Batches are filled from a random order; a sample whose text is already in the open batch
    waits for a later batch. Only when nothing else is left does a batch take a duplicate
    (counted in ``num_relaxed_picks``).
    """

    def __init__(
        self,
        texts: Sequence[str],
        batch_size: int,
        seed: int = 0,
        drop_last: bool = False,
    ):
        super().__init__(len(texts), batch_size, texts, True, seed, drop_last)

    def build_epoch(self, generator: torch.Generator) -> list[list[int]]:
        remaining = torch.randperm(self.num_samples, generator=generator).tolist()
        groups = self.groups.tolist()
        copies_left = torch.bincount(self.groups).tolist()
        batches, self.num_relaxed_picks = [], 0
        while remaining:
            tight = set(tight_groups(copies_left, len(remaining), self.batch_size))
            # tight texts first (in random order), then everything else in random order
            ordered = [i for i in remaining if groups[i] in tight] + [
                i for i in remaining if groups[i] not in tight
            ]
            batch, seen, waiting, position = [], set(), [], 0
            while position < len(ordered) and len(batch) < self.batch_size:
                index = ordered[position]
                position += 1
                if groups[index] in seen:
                    waiting.append(index)
                else:
                    batch.append(index)
                    seen.add(groups[index])
            rest = waiting + ordered[position:]
            while len(batch) < self.batch_size and rest:  # only duplicates are left
                batch.append(rest.pop(0))
                self.num_relaxed_picks += 1
            for index in batch:
                copies_left[groups[index]] -= 1
            batches.append(batch)
            remaining = rest
        return batches


def tight_groups(copies_left: Sequence[int], num_unused: int, batch_size: int) -> list[int]:
    """The text groups that are tight (:func:`~trainers.method.text_groups.tight_threshold`)."""
    threshold = tight_threshold(num_unused, batch_size)
    if threshold is None:
        return []
    return [group for group, count in enumerate(copies_left) if count >= threshold]


class PSCurriculumBatchSampler(_EpochBatchSampler):
    """Pair Selection curriculum batches (method.md "Batch construction" and "Curriculum").

    Each batch starts from a random unused sample (a copy of a *tight* text when one exists, see
    the module doc); then, until it is full, every unused sample u
    gets the incremental score ``Σ_{c in batch} delta(u, c) + delta(c, u)``, and the candidate at
    quantile ``alpha(epoch)`` of the ascending order is added: position ``round(alpha·(n − 1))``
    of the n candidates (0-based), so alpha = 0 takes the lowest score (easiest: pairs pushed
    apart in the reference run) and alpha = 1 the highest (hardest). Equal scores are ordered by
    a random permutation drawn per epoch, so ties do not favour low indices.

    Vectorised: a running (N,) incremental-score vector gets one row add per added sample
    (dense: ``w[c] = delta[c] + delta[:, c]``, precomputed once; sparse: ``index_add_`` of the
    sample's candidate edges; non-candidates count 0), and the pick is one ``kthvalue`` over the
    vector with used/blocked samples set to +inf. One epoch costs O(N²) vector work for dense
    scores, which keep one extra (N, N) float32 matrix (``4·N²`` bytes) on the CPU. Sparse scores
    from ``FAST_SPARSE_MIN_SAMPLES`` samples on use :class:`SparseEpochBuilder`: the same batches
    with O(B·M) work per pick, so an epoch is O(N·B·M).

    Args:
        scores: (N, N) dense scores (``scores[i, j] = delta(i, j)``) or :class:`SparseScores`.
        batch_size: Samples per batch (paper: 16).
        num_epochs: Curriculum length E (the Trainer's number of epochs).
        schedule: ``log`` (default), ``linear``, ``sqrt``, ``easy``, ``hard`` or a callable
            ``f(epoch, num_epochs) -> alpha``; see :func:`curriculum_alpha`.
        log_base: Base b of the ``log`` schedule.
        texts: Target texts, to keep identical ones apart (optional).
        avoid_duplicate_texts: Keep identical texts out of one batch (needs ``texts``).
        seed: Base seed; epoch e uses ``seed + e``.
        drop_last: Drop the final smaller batch.
        fast_sparse: With sparse scores, build epochs with :class:`SparseEpochBuilder` (same
            batches as the reference path, O(touched) work per pick instead of O(N)). Default
            (None): only from ``FAST_SPARSE_MIN_SAMPLES`` samples on, below which the reference
            path's few large tensor operations per pick are faster than the fast path's many
            small ones. ``True``/``False`` force a path (tests, comparisons).
    """

    def __init__(
        self,
        scores: torch.Tensor | SparseScores,
        batch_size: int = 16,
        num_epochs: int = 80,
        schedule: Schedule = "log",
        log_base: float = 10.0,
        texts: Sequence[str] | None = None,
        avoid_duplicate_texts: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        fast_sparse: bool | None = None,
    ):
        num_samples = scores.num_samples if isinstance(scores, SparseScores) else scores.shape[0]
        super().__init__(num_samples, batch_size, texts, avoid_duplicate_texts, seed, drop_last)
        self.num_epochs = num_epochs
        self.schedule = schedule
        self.log_base = log_base
        curriculum_alpha(schedule, 0, num_epochs, log_base)  # fail early on a bad schedule
        if fast_sparse is None:
            fast_sparse = num_samples >= FAST_SPARSE_MIN_SAMPLES
        self.fast_sparse = fast_sparse and isinstance(scores, SparseScores)
        if isinstance(scores, SparseScores):
            self.dense_weights = None
            cpu_scores = SparseScores(
                *(t.detach().cpu() for t in (scores.indices, scores.scores, scores.reverse_scores))
            )
            offsets, self.edge_columns, self.edge_weights = cpu_scores.symmetric_edges()
            self.edge_offsets = offsets.tolist()
        else:
            if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
                raise ValueError(f"Dense scores must have shape (N, N), got {tuple(scores.shape)}.")
            scores = scores.detach().float().cpu()
            weights = scores + scores.transpose(0, 1)  # w(u, c) = delta(u, c) + delta(c, u)
            self.dense_weights = weights.fill_diagonal_(0.0)
        self._group_members: list[torch.Tensor] | None = None

    @property
    def group_members(self) -> list[torch.Tensor]:
        """For every text group, its (k,) member indices; built on first use (reference path only)."""
        if self._group_members is None:
            self._group_members = group_members(self.groups)
        return self._group_members

    @property
    def alpha(self) -> float:
        """Curriculum quantile of the current epoch."""
        return curriculum_alpha(self.schedule, self.epoch, self.num_epochs, self.log_base)

    def add_to_incremental(self, incremental: torch.Tensor, sample: int) -> None:
        """incremental[u] += delta(u, sample) + delta(sample, u) for every u."""
        if self.dense_weights is not None:
            incremental += self.dense_weights[sample]
        else:
            start, end = self.edge_offsets[sample], self.edge_offsets[sample + 1]
            incremental.index_add_(0, self.edge_columns[start:end], self.edge_weights[start:end])

    def build_epoch(self, generator: torch.Generator) -> list[list[int]]:
        if self.fast_sparse:
            builder = SparseEpochBuilder(
                self.num_samples,
                (self.edge_offsets, self.edge_columns, self.edge_weights),
                self.groups,
                self.batch_size,
                self.alpha,
                generator,
            )
            batches = builder.build()
            self.num_relaxed_picks = builder.num_relaxed_picks
            return batches
        return self.build_epoch_reference(generator)

    def build_epoch_reference(self, generator: torch.Generator) -> list[list[int]]:
        """The plain greedy construction over a dense (N,) incremental vector: O(N) per pick."""
        n, alpha = self.num_samples, self.alpha
        seed_rank = torch.randperm(n, generator=generator).float()  # random start order
        tie_rank = torch.randperm(n, generator=generator)
        used = torch.zeros(n, dtype=torch.float32)  # +inf once a sample is in a batch
        incremental = torch.zeros(n, dtype=torch.float32)
        copies_left = torch.bincount(self.groups) if self.groups is not None else None
        batches, self.num_relaxed_picks, unused = [], 0, n
        while unused:
            blocked = used.clone()  # +inf: used, or repeats a text of the open batch
            incremental.zero_()
            tight = self.tight_penalty(copies_left, unused)  # (N,) 0 for copies of tight texts, or None
            batch, available = [], unused  # available = finite entries of `blocked`
            pick = int(torch.argmin(seed_rank + used + (0 if tight is None else tight)))
            while True:
                available -= self.admit(pick, used, blocked, incremental, copies_left)
                batch.append(pick)
                unused -= 1
                if len(batch) == self.batch_size or unused == 0:
                    break
                if tight is not None:
                    keys = incremental + blocked + tight
                    count = int(torch.isfinite(keys).sum())
                    if count:
                        pick = self.pick(keys, count, alpha, tie_rank)
                        continue
                    tight = None  # every tight text is in the batch now
                if available > 0:
                    pick = self.pick(incremental + blocked, available, alpha, tie_rank)
                else:  # every unused sample repeats a text of this batch: relax for this slot
                    pick = self.pick(incremental + used, unused, alpha, tie_rank)
                    self.num_relaxed_picks += 1
            batches.append(batch)
        return batches

    def tight_penalty(self, copies_left: torch.Tensor | None, unused: int) -> torch.Tensor | None:
        """(N,) 0 for samples whose text is tight (see module doc), +inf otherwise; None if none is."""
        threshold = tight_threshold(unused, self.batch_size)
        if copies_left is None or threshold is None:
            return None
        is_tight = copies_left >= threshold  # (G,)
        if not bool(is_tight.any()):
            return None
        group_penalty = torch.where(is_tight, 0.0, float("inf"))  # (G,)
        return group_penalty.index_select(0, self.groups)  # index_select: far faster than [] here

    def admit(
        self,
        sample: int,
        used: torch.Tensor,
        blocked: torch.Tensor,
        incremental: torch.Tensor,
        copies_left: torch.Tensor | None,
    ) -> int:
        """Put ``sample`` in the open batch: mark it used, block its text, add its scores.

        Returns how many samples became blocked that were available before.
        """
        used[sample] = float("inf")
        self.add_to_incremental(incremental, sample)
        if self.groups is None:
            was_available = bool(blocked[sample] == 0)
            blocked[sample] = float("inf")
            return int(was_available)
        group = int(self.groups[sample])
        copies_left[group] -= 1
        members = self.group_members[group]
        fresh = members[blocked.index_select(0, members) == 0]
        blocked[fresh] = float("inf")
        return int(fresh.shape[0])

    @staticmethod
    def pick(keys: torch.Tensor, count: int, alpha: float, tie_rank: torch.Tensor) -> int:
        """Index at quantile ``alpha`` of the ``count`` finite ``keys``; ties ordered by ``tie_rank``."""
        return pick_at(keys, quantile_position(alpha, count), tie_rank)


def group_members(groups: torch.Tensor) -> list[torch.Tensor]:
    """For every group id g, the (k,) indices of its members."""
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups).tolist()
    return list(torch.split(order, counts))


# --- the pick rule and the fast sparse epoch construction ------------------------------------
def quantile_position(alpha: float, count: int) -> int:
    """0-based rank of the pick at quantile ``alpha`` among ``count`` candidates."""
    return round(alpha * (count - 1))


def pick_at(keys: torch.Tensor, position: int, tie_rank: torch.Tensor) -> int:
    """Index of the ``position``-th (0-based) smallest of ``keys`` (r,); ties ordered by ``tie_rank`` (r,)."""
    value, index = torch.kthvalue(keys, position + 1)
    tied = torch.nonzero(keys == value).squeeze(1)
    if tied.shape[0] == 1:
        return int(index)
    below = int((keys < value).sum())
    # the (position − below)-th tied sample in tie_rank order; a selection, not a full sort
    rank_in_tie = torch.kthvalue(tie_rank.index_select(0, tied), position - below + 1).indices
    return int(tied[rank_in_tie])


class RankedSet:
    """A set of ranks 0..size−1 (initially all present): remove one, find the k-th present (Fenwick tree).

    Both operations are O(log size) in plain Python, which beats any O(size) tensor operation
    once size reaches about 10⁵.
    """

    def __init__(self, size: int):
        self.size = size
        self.tree = [index & -index for index in range(size + 1)]  # every rank present once
        self.top = 1 << max(size.bit_length() - 1, 0)

    def remove(self, rank: int) -> None:
        index = rank + 1
        while index <= self.size:
            self.tree[index] -= 1
            index += index & -index

    def kth(self, k: int) -> int:
        """The k-th (0-based) smallest present rank."""
        position, remaining, step = 0, k + 1, self.top
        while step:
            following = position + step
            if following <= self.size and self.tree[following] < remaining:
                position, remaining = following, remaining - self.tree[following]
            step >>= 1
        return position

    def kth_excluding(self, k: int, excluded: list[int]) -> int:
        """The k-th smallest present rank outside ``excluded`` (sorted, present ranks only)."""
        skipped = 0
        while True:
            rank = self.kth(k + skipped)
            at_or_below = bisect.bisect_right(excluded, rank)
            if at_or_below == skipped:  # no excluded rank was jumped over since the last try
                return rank
            skipped = at_or_below


class SparseEpochBuilder:
    """One epoch of :class:`PSCurriculumBatchSampler` from sparse scores without O(N) work per pick.

    It gets what the sampler knows explicitly: the symmetric candidate edges in CSR form
    (``edges``: (N + 1) offsets, (E,) columns, (E,) weights ``w(u, c)``, see
    :meth:`SparseScores.symmetric_edges`), the text groups (N,) or None, the batch size, the
    epoch's ``alpha`` and the epoch's generator.

    With sparse scores the incremental score of every unused sample that no edge of the open
    batch reaches is exactly 0. So the sorted candidates are: the touched negatives, then a block
    of zeros (every other candidate, ``count − negatives − positives`` of them), then the touched
    positives. The pick at position p falls in one of the three parts: in the first or the last
    it is a selection among the touched samples (as in the reference); in the zero block it is
    the (p − negatives)-th zero-score candidate in tie-rank order, found with a :class:`RankedSet`
    of the unused samples' tie ranks minus the few touched-non-zero and text-blocked ones. The
    draws from the generator, the incremental sums (same ``index_add_`` order), the tight-text
    rule and the relaxation are those of :meth:`PSCurriculumBatchSampler.build_epoch_reference`,
    so the batches are identical. Work per pick is O(touched) tensor work + O(log N) Python;
    per batch, O(members of tight texts).
    """

    def __init__(
        self,
        num_samples: int,
        edges: tuple[list[int], torch.Tensor, torch.Tensor],
        groups: torch.Tensor | None,
        batch_size: int,
        alpha: float,
        generator: torch.Generator,
    ):
        n = num_samples
        self.edge_offsets, self.edge_columns, self.edge_weights = edges
        self.alpha, self.batch_size = alpha, batch_size
        self.seed_rank = torch.randperm(n, generator=generator)  # same draws as the reference path
        self.tie_rank = torch.randperm(n, generator=generator)
        self.seed_order = torch.argsort(self.seed_rank).tolist()  # samples in start-priority order
        self.tie_rank_list = self.tie_rank.tolist()
        self.by_tie_rank = torch.argsort(self.tie_rank).tolist()  # sample holding each tie rank
        self.unused_ranks = RankedSet(n)
        self.used_flags = bytearray(n)
        self.used = torch.zeros(n, dtype=torch.bool)
        self.blocked = torch.zeros(n, dtype=torch.bool)  # in the open batch or repeats one of its texts
        self.touched_flags = torch.zeros(n, dtype=torch.bool)
        self.incremental = torch.zeros(n, dtype=torch.float32)  # non-zero only on `touched`
        self.touched = torch.empty(0, dtype=torch.long)
        self.blocked_lists: list[torch.Tensor] = []
        self.cursor, self.unused, self.num_relaxed_picks = 0, n, 0
        self.init_groups(groups)

    def init_groups(self, groups: torch.Tensor | None) -> None:
        """CSR of text groups and their sizes sorted descending (tight texts are found by prefix)."""
        self.groups = None if groups is None else groups.tolist()
        if groups is None:
            return
        counts = torch.bincount(groups)
        self.member_order = torch.argsort(groups, stable=True)
        self.member_offsets = [0, *torch.cumsum(counts, 0).tolist()]
        self.copies_left = counts.tolist()
        self.groups_by_size = torch.argsort(counts, descending=True, stable=True).tolist()
        self.negated_sizes = sorted(-count for count in self.copies_left)  # ascending for bisect

    def build(self) -> list[list[int]]:
        batches = []
        while self.unused:
            batches.append(self.build_batch())
        return batches

    def build_batch(self) -> list[int]:
        """Fill one batch exactly as the reference loop does."""
        tight = self.tight_members()
        available = self.unused  # unused samples that do not repeat a text of the open batch
        pick, batch = self.seed_pick(tight), []
        while True:
            available -= self.admit(pick)
            batch.append(pick)
            if len(batch) == self.batch_size or self.unused == 0:
                break
            if tight is not None:
                candidates = tight[~(self.used.index_select(0, tight) | self.blocked.index_select(0, tight))]
                if candidates.numel():
                    pick = self.pick_among(candidates)
                    continue
                tight = None  # every tight text is in the batch now
            if available > 0:
                pick = self.pick_sparse(available, relaxed=False)
            else:  # every unused sample repeats a text of this batch: relax for this slot
                pick = self.pick_sparse(self.unused, relaxed=True)
                self.num_relaxed_picks += 1
        self.close_batch()
        return batch

    def tight_members(self) -> torch.Tensor | None:
        """(k,) all copies of the tight texts (see the module doc), or None when no text is tight."""
        threshold = tight_threshold(self.unused, self.batch_size)
        if self.groups is None or threshold is None:
            return None
        # only texts that started with ≥ threshold copies can still have that many
        large = bisect.bisect_right(self.negated_sizes, -threshold)
        tight = [g for g in self.groups_by_size[:large] if self.copies_left[g] >= threshold]
        if not tight:
            return None
        return torch.cat([self.members(g) for g in tight])

    def members(self, group: int) -> torch.Tensor:
        return self.member_order[self.member_offsets[group] : self.member_offsets[group + 1]]

    def seed_pick(self, tight: torch.Tensor | None) -> int:
        """The unused sample (a tight copy when there is one) with the lowest seed rank."""
        if tight is not None:
            candidates = tight[~self.used.index_select(0, tight)]
            return int(candidates[torch.argmin(self.seed_rank.index_select(0, candidates))])
        while self.used_flags[self.seed_order[self.cursor]]:
            self.cursor += 1
        return self.seed_order[self.cursor]

    def admit(self, sample: int) -> int:
        """Add ``sample`` to the open batch; returns how many available samples became blocked."""
        copies = torch.tensor([sample]) if self.groups is None else self.members(self.groups[sample])
        fresh = copies[~(self.used.index_select(0, copies) | self.blocked.index_select(0, copies))]
        self.blocked[fresh] = True
        self.blocked_lists.append(fresh)
        self.used[sample], self.used_flags[sample] = True, 1
        self.unused_ranks.remove(self.tie_rank_list[sample])
        self.unused -= 1
        if self.groups is not None:
            self.copies_left[self.groups[sample]] -= 1
        self.add_edges(sample)
        return int(fresh.shape[0])

    def add_edges(self, sample: int) -> None:
        """incremental[u] += w(u, sample) on the sample's edges; remember newly touched samples."""
        start, end = self.edge_offsets[sample], self.edge_offsets[sample + 1]
        columns = self.edge_columns[start:end]
        self.incremental.index_add_(0, columns, self.edge_weights[start:end])
        new = columns[~self.touched_flags.index_select(0, columns)]
        self.touched_flags[new] = True
        self.touched = torch.cat([self.touched, new])

    def pick_among(self, candidates: torch.Tensor) -> int:
        """Reference pick restricted to an explicit (k,) candidate list (the tight copies)."""
        position = quantile_position(self.alpha, candidates.shape[0])
        keys = self.incremental.index_select(0, candidates)
        return int(candidates[pick_at(keys, position, self.tie_rank.index_select(0, candidates))])

    def pick_sparse(self, count: int, relaxed: bool) -> int:
        """Pick at the quantile among ``count`` candidates: unused (and, unless relaxed, unblocked)."""
        touched = self.touched
        excluded = self.used.index_select(0, touched)
        if not relaxed:
            excluded |= self.blocked.index_select(0, touched)
        touched = touched[~excluded]
        values = self.incremental.index_select(0, touched)  # (t,)
        position = quantile_position(self.alpha, count)
        negatives, positives = int((values < 0).sum()), int((values > 0).sum())
        zeros = count - negatives - positives
        if position < negatives:
            return int(touched[pick_at(values, position, self.tie_rank.index_select(0, touched))])
        if position >= negatives + zeros:
            shift = zeros - (values.shape[0] - negatives - positives)  # untouched zeros are not in `values`
            return int(touched[pick_at(values, position - shift, self.tie_rank.index_select(0, touched))])
        not_zero = touched[values != 0]
        if not relaxed:  # blocked copies of the batch's texts are no candidates either
            blocked = torch.cat(self.blocked_lists)
            not_zero = torch.cat([not_zero, blocked[~self.used.index_select(0, blocked)]])
        excluded_ranks = sorted(self.tie_rank.index_select(0, not_zero).tolist())
        rank = self.unused_ranks.kth_excluding(position - negatives, excluded_ranks)
        return self.by_tie_rank[rank]

    def close_batch(self) -> None:
        """Reset the per-batch state on the touched and blocked samples only."""
        self.incremental[self.touched] = 0.0
        self.touched_flags[self.touched] = False
        self.touched = torch.empty(0, dtype=torch.long)
        if self.blocked_lists:
            self.blocked[torch.cat(self.blocked_lists)] = False
        self.blocked_lists = []
