"""The pick rule of the Pair Selection curriculum and its fast sparse epoch construction.

:func:`quantile_position` and :func:`pick_at` are the pick of both construction paths of
:class:`~trainers.method.sampler.PSCurriculumBatchSampler` (the reference loop and
:class:`SparseEpochBuilder`); :class:`RankedSet` is the builder's order-statistics structure.
The samplers' shared contract (tight texts, relaxation, determinism) is in the docstring of
:mod:`trainers.method.sampler`.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

import torch

from .text_groups import tight_threshold

if TYPE_CHECKING:
    from .sampler import PSCurriculumBatchSampler


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

    def __init__(self, sampler: PSCurriculumBatchSampler, generator: torch.Generator):
        n = sampler.num_samples
        self.sampler, self.alpha, self.batch_size = sampler, sampler.alpha, sampler.batch_size
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
        self.init_groups(sampler.groups)

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
        sampler = self.sampler
        start, end = sampler.edge_offsets[sample], sampler.edge_offsets[sample + 1]
        columns = sampler.edge_columns[start:end]
        self.incremental.index_add_(0, columns, sampler.edge_weights[start:end])
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
