"""Pair Selection scores and the snapshot format they are computed from."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from modeling_scl_slt.similarity import video_text_similarity
from trainers.method import pair_selection
from trainers.method.damaged_files import DamagedFileError
from trainers.method.pair_selection import (
    SparseScores,
    compute_dense_scores,
    compute_sparse_scores,
    find_candidates,
    load_pair_scores,
    save_pair_scores,
)
from trainers.method.similarity_series import SnapshotSimilaritySeries, TensorSimilaritySeries
from trainers.method.snapshots import (
    SNAPSHOT_METADATA_KEY,
    TOKEN_TENSORS,
    Snapshot,
    load_snapshot,
    load_snapshot_series,
    pad_and_concatenate,
    save_snapshot,
    snapshot_filename,
)

N, D = 9, 8


def token_snapshot(epoch: int, seed: int, num_samples: int = N) -> Snapshot:
    """Random right-padded token embeddings with varying lengths."""
    generator = torch.Generator().manual_seed(seed)
    video_lengths = torch.randint(1, 6, (num_samples,), generator=generator)
    text_lengths = torch.randint(1, 4, (num_samples,), generator=generator)
    video_mask = torch.arange(5)[None, :] < video_lengths[:, None]
    text_mask = torch.arange(3)[None, :] < text_lengths[:, None]
    return Snapshot.from_embeddings(
        sample_ids=[f"s{i}" for i in range(num_samples)],
        step=100 * epoch,
        epoch=epoch,
        video_tokens=torch.randn(num_samples, 5, D, generator=generator),
        video_mask=video_mask,
        text_tokens=torch.randn(num_samples, 3, D, generator=generator),
        text_mask=text_mask,
        aggregation="cico",
    )


def naive_similarity(snapshot: Snapshot, aggregation: str) -> torch.Tensor:
    """s(V_i, T_j) on the whole set at once; CiCo uses the mean of both directions."""
    video_to_text, text_to_video = video_text_similarity(
        snapshot.video_tokens.float(),
        snapshot.video_mask,
        snapshot.text_tokens.float(),
        snapshot.text_mask,
        aggregation,
    )
    return 0.5 * (video_to_text + text_to_video.transpose(0, 1))


@pytest.mark.parametrize("aggregation", ["cico", "mean", "cls"])
def test_dense_blocked_equals_naive_delta(aggregation: str) -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(5, 2), token_snapshot(10, 3)]
    expected = naive_similarity(snapshots[-1], aggregation) - naive_similarity(snapshots[0], aggregation)
    expected.fill_diagonal_(0.0)
    dense = compute_dense_scores(snapshots, block_size=4, aggregation=aggregation, tile_size=2)
    assert dense.shape == (N, N)
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=1e-5)
    assert torch.all(dense.diagonal() == 0)


def test_direction_choice_changes_cico_scores() -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(5, 2)]
    forward = compute_dense_scores(snapshots, direction="video_to_text")
    backward = compute_dense_scores(snapshots, direction="text_to_video")
    both = compute_dense_scores(snapshots)
    torch.testing.assert_close(both, 0.5 * (forward + backward))
    assert not torch.allclose(forward, backward)


def test_slope_of_linear_trajectories_is_their_slope() -> None:
    positions = torch.tensor([0.0, 5.0, 10.0, 15.0])
    intercept, slope = torch.randn(N, N), torch.randn(N, N)
    similarities = intercept[None] + slope[None] * positions[:, None, None]  # (S, N, N)
    series = TensorSimilaritySeries(similarities, positions=positions)
    expected = slope.clone().fill_diagonal_(0.0)
    torch.testing.assert_close(compute_dense_scores(series, score="slope", block_size=2), expected)
    # the two-point delta of the same trajectories is slope × (x_last − x_first)
    torch.testing.assert_close(compute_dense_scores(series, score="delta"), 15.0 * expected)


def test_slope_uses_snapshot_epochs_as_positions() -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(3, 2), token_snapshot(9, 3)]
    series = SnapshotSimilaritySeries(snapshots, aggregation="mean")
    assert series.positions.tolist() == [0.0, 3.0, 9.0]
    sims = torch.stack([naive_similarity(s, "mean") for s in snapshots])  # (S, N, N)
    x = series.positions.float()
    centred = x - x.mean()
    expected = torch.einsum("s,sij->ij", centred, sims) / (centred**2).sum()
    torch.testing.assert_close(compute_dense_scores(series, score="slope"), expected.fill_diagonal_(0.0))


@pytest.mark.parametrize("aggregation", ["cico", "mean"])
def test_sparse_with_all_candidates_equals_dense(aggregation: str) -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(10, 2)]
    dense = compute_dense_scores(snapshots, aggregation=aggregation)
    sparse = compute_sparse_scores(snapshots, num_candidates=N - 1, block_size=4, aggregation=aggregation)
    assert sparse.indices.shape == sparse.scores.shape == (N, N - 1)
    assert not torch.any(sparse.indices == torch.arange(N)[:, None])
    torch.testing.assert_close(sparse.to_dense(), dense, atol=1e-5, rtol=1e-5)


def test_sparse_candidates_are_top_symmetric_pooled_neighbours() -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(10, 2)]
    series = SnapshotSimilaritySeries(snapshots)
    candidates = find_candidates(series, num_candidates=3, block_size=2)
    video, text = snapshots[-1].pooled_vectors("mean")
    symmetric = 0.5 * (video @ text.T + (video @ text.T).T)
    symmetric.fill_diagonal_(float("-inf"))
    expected = torch.topk(symmetric, 3, dim=1).indices
    assert torch.equal(candidates.sort(dim=1).values, expected.sort(dim=1).values)


def test_sparse_scores_of_candidates_match_dense_entries() -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(10, 2)]
    dense = compute_dense_scores(snapshots)
    sparse = compute_sparse_scores(snapshots, num_candidates=2)
    rows = torch.arange(N)[:, None].expand(N, 2)
    torch.testing.assert_close(sparse.scores, dense[rows, sparse.indices], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sparse.reverse_scores, dense[sparse.indices, rows], atol=1e-5, rtol=1e-5)


def test_symmetric_edges_hold_each_pair_once_per_direction() -> None:
    # 0↔1 is a candidate both ways, 2→0 one way
    sparse = SparseScores(
        indices=torch.tensor([[1], [0], [0]]),
        scores=torch.tensor([[1.0], [2.0], [4.0]]),
        reverse_scores=torch.tensor([[2.0], [1.0], [8.0]]),
    )
    offsets, columns, weights = sparse.symmetric_edges()
    assert offsets.tolist() == [0, 2, 3, 4]
    assert columns.tolist() == [1, 2, 0, 0]
    assert weights.tolist() == [3.0, 12.0, 3.0, 12.0]


def reference_symmetric_edges(sparse: SparseScores) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The plain construction: distinct pairs, both directions, one sort by (row, column)."""
    n, m = sparse.indices.shape
    rows = torch.arange(n).repeat_interleave(m)
    cols = sparse.indices.reshape(-1)
    low, high = torch.minimum(rows, cols), torch.maximum(rows, cols)
    weights = (sparse.scores + sparse.reverse_scores).reshape(-1)
    first = {}
    for position, key in enumerate((low * n + high).tolist()):
        first.setdefault(key, position)
    pairs = sorted(first)
    entries = sorted(
        [(key // n, key % n, float(weights[first[key]])) for key in pairs]
        + [(key % n, key // n, float(weights[first[key]])) for key in pairs]
    )
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.bincount(torch.tensor([e[0] for e in entries]), minlength=n), 0)
    return offsets, torch.tensor([e[1] for e in entries]), torch.tensor([e[2] for e in entries])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_symmetric_edges_equal_the_plain_construction_on_random_candidates(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    n, m = 40, 6  # many mutual candidates and rows of very different degrees
    indices = torch.randint(0, n - 1, (n, m), generator=generator)
    indices += (indices >= torch.arange(n)[:, None]).long()  # never i itself
    sparse = SparseScores(
        indices, torch.randn(n, m, generator=generator), torch.randn(n, m, generator=generator)
    )
    for got, expected in zip(sparse.symmetric_edges(), reference_symmetric_edges(sparse), strict=True):
        torch.testing.assert_close(got, expected)


def test_snapshot_round_trip_is_fp16_and_keeps_metadata(tmp_path) -> None:
    snapshot = token_snapshot(5, 1)
    snapshot.checkpoint_path = "runs/ref/checkpoint-500"
    path = save_snapshot(snapshot, tmp_path / snapshot_filename(snapshot.step))
    loaded = load_snapshot(path)
    assert loaded.video_tokens.dtype == torch.float16 and loaded.video_mask.dtype == torch.bool
    assert (loaded.step, loaded.epoch, loaded.checkpoint_path) == (500, 5.0, "runs/ref/checkpoint-500")
    assert loaded.sample_ids == snapshot.sample_ids and loaded.kind == "tokens"
    torch.testing.assert_close(loaded.video_tokens.float(), snapshot.video_tokens, atol=1e-3, rtol=1e-3)
    assert torch.allclose(loaded.video_tokens.float().norm(dim=-1), torch.ones(N, 5), atol=1e-3)


def test_pooled_snapshot_round_trip(tmp_path) -> None:
    pooled = Snapshot.from_embeddings(
        ["a", "b"],
        step=1,
        epoch=0,
        video_pooled=torch.randn(2, 4),
        text_pooled=torch.randn(2, 4),
        aggregation="cls",
    )
    loaded = load_snapshot(save_snapshot(pooled, tmp_path / "p.safetensors"))
    assert loaded.kind == "pooled" and loaded.video_tokens is None
    with pytest.raises(ValueError, match="needs token snapshots"):
        SnapshotSimilaritySeries([loaded], aggregation="cico")


def test_series_is_sorted_by_epoch_and_validated(tmp_path) -> None:
    for epoch, seed in [(10, 1), (0, 2), (5, 3)]:
        save_snapshot(token_snapshot(epoch, seed), tmp_path / snapshot_filename(epoch))
    series = load_snapshot_series(tmp_path)
    assert [s.epoch for s in series] == [0.0, 5.0, 10.0]
    ends = load_snapshot_series(tmp_path, first_and_last_only=True)
    assert [s.epoch for s in ends] == [0.0, 10.0]

    shuffled = token_snapshot(20, 4)
    shuffled.sample_ids = list(reversed(shuffled.sample_ids))
    save_snapshot(shuffled, tmp_path / snapshot_filename(20))
    with pytest.raises(ValueError, match=r"same samples in the same order.*position 0 holds 's8'"):
        load_snapshot_series(tmp_path)


def test_series_rejects_a_snapshot_with_fewer_samples(tmp_path) -> None:
    save_snapshot(token_snapshot(0, 1), tmp_path / "a.safetensors")
    save_snapshot(token_snapshot(5, 2, num_samples=N - 1), tmp_path / "b.safetensors")
    with pytest.raises(ValueError, match=f"{N - 1} samples instead of {N}"):
        load_snapshot_series(tmp_path)


def cut_in_half(path) -> None:
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def test_a_damaged_snapshot_in_a_series_is_named(tmp_path) -> None:
    save_snapshot(token_snapshot(0, 1), tmp_path / snapshot_filename(0))
    damaged = save_snapshot(token_snapshot(5, 2), tmp_path / snapshot_filename(5))
    cut_in_half(damaged)
    with pytest.raises(DamagedFileError, match="file not fully covered") as error:
        load_snapshot_series(tmp_path)
    assert error.value.path == damaged and "\n" not in str(error.value)
    assert str(error.value).startswith(f"{damaged} is damaged ({damaged.stat().st_size:,} bytes: ")


def test_a_snapshot_whose_record_lacks_a_key_is_damaged(tmp_path) -> None:
    from safetensors.torch import save_file

    snapshot = token_snapshot(0, 1)
    record = snapshot.metadata_record()
    del record["sample_ids"]
    tensors = {name: getattr(snapshot, name).contiguous() for name in TOKEN_TENSORS}
    path = tmp_path / "s.safetensors"
    save_file(tensors, str(path), metadata={SNAPSHOT_METADATA_KEY: json.dumps(record)})
    with pytest.raises(DamagedFileError, match="its snapshot record lacks sample_ids"):
        load_snapshot(path)


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_damaged_pair_scores_name_the_file_and_how_to_compute_them_again(tmp_path, how: str) -> None:
    path = save_pair_scores(torch.randn(6, 6), tmp_path / "scores.safetensors", sample_ids=list("abcdef"))
    if how == "truncated":
        cut_in_half(path)
    else:
        path.write_bytes(b"")
    with pytest.raises(DamagedFileError) as error:
        load_pair_scores(path, sample_ids=list("abcdef"))
    message = str(error.value)
    assert message.startswith(f"{path} is damaged ({path.stat().st_size:,} bytes: ") and "\n" not in message
    assert message.endswith("; " + pair_selection.SCORES_REMEDY)


def test_pair_scores_round_trip(tmp_path) -> None:
    dense = torch.randn(4, 4)
    torch.testing.assert_close(load_pair_scores(save_pair_scores(dense, tmp_path / "d.safetensors")), dense)
    sparse = SparseScores(
        torch.tensor([[1], [0]]), torch.tensor([[0.5], [0.25]]), torch.tensor([[0.25], [0.5]])
    )
    loaded = load_pair_scores(save_pair_scores(sparse, tmp_path / "s.safetensors", {"score": "delta"}))
    assert torch.equal(loaded.indices, sparse.indices) and torch.equal(loaded.scores, sparse.scores)


def test_one_snapshot_is_not_enough() -> None:
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        compute_dense_scores(torch.randn(1, 3, 3))


def test_normalisation_in_from_embeddings() -> None:
    snapshot = Snapshot.from_embeddings(
        ["x"], 0, 0, video_pooled=3 * torch.ones(1, 4), text_pooled=torch.ones(1, 4)
    )
    torch.testing.assert_close(snapshot.video_pooled, F.normalize(torch.ones(1, 4), dim=-1))


def test_pad_and_concatenate_right_pads_batches() -> None:
    tokens, mask = pad_and_concatenate(
        [torch.ones(2, 3, 4), torch.ones(1, 5, 4)], [torch.ones(2, 3, dtype=torch.bool), torch.ones(1, 5)]
    )
    assert tokens.shape == (3, 5, 4) and mask.shape == (3, 5) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [3, 3, 5]
    assert tokens[:2, 3:].abs().sum() == 0


def test_integer_like_sample_ids_become_json_ints(tmp_path) -> None:
    import numpy as np

    snapshot = Snapshot.from_embeddings(
        np.arange(2), step=0, epoch=0, video_pooled=torch.ones(2, 3), text_pooled=torch.ones(2, 3)
    )
    assert load_snapshot(save_snapshot(snapshot, tmp_path / "s.safetensors")).sample_ids == [0, 1]


@pytest.mark.parametrize("direction", ["both", "video_to_text", "text_to_video"])
@pytest.mark.parametrize("tile_size", [4, (3, 7), (8, 64)])
def test_fused_cico_kernel_equals_the_reference(direction: str, tile_size: int | tuple[int, int]) -> None:
    # several row and column blocks of unequal lengths, a last block cut short, and a single video
    snapshots = [token_snapshot(0, seed=3, num_samples=40), token_snapshot(5, seed=4, num_samples=40)]
    rows, cols = torch.arange(0, 40, 3), torch.arange(40)
    results = []
    for kernel in ("fused", "reference"):
        series = SnapshotSimilaritySeries(
            snapshots, direction=direction, tile_size=tile_size, cico_kernel=kernel
        )
        assert series.uses_fused_kernel == (kernel == "fused")
        results.append(
            (
                series.block(1, rows, cols),
                series.block(1, rows[5:6], cols),
                series.pairs(1, rows, cols[: len(rows)]),
            )
        )
    for fused, reference in zip(*results, strict=True):
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)


def pooled_snapshots(num_samples: int, dim: int = 16) -> list[Snapshot]:
    """Two pooled fp32 snapshots with clustered vectors (so neighbours are meaningful)."""
    generator = torch.Generator().manual_seed(7)
    centres = torch.randn(8, dim, generator=generator)[
        torch.randint(0, 8, (num_samples,), generator=generator)
    ]
    return [
        Snapshot.from_embeddings(
            list(range(num_samples)),
            step=epoch,
            epoch=epoch,
            video_pooled=centres + torch.randn(num_samples, dim, generator=generator),
            text_pooled=centres + torch.randn(num_samples, dim, generator=generator),
            aggregation="mean",
        )
        for epoch in (0, 5)
    ]


def test_ann_candidates_find_the_exact_neighbours_when_every_cell_is_probed() -> None:
    assert pair_selection.faiss_available(), "faiss-cpu is a dev dependency: the ANN path must be tested"
    series = SnapshotSimilaritySeries(pooled_snapshots(400))
    exact = find_candidates(series, 10)
    approximate = find_candidates(series, 10, search="ann", ann_lists=8, ann_probes=8)
    assert not (approximate == torch.arange(400)[:, None]).any()
    recall = torch.tensor(
        [len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approximate, exact, strict=True)]
    )
    assert recall.float().mean() / 10 > 0.98  # fp16 storage may swap near-ties at the boundary


def test_ann_search_falls_back_to_exact_without_faiss(monkeypatch) -> None:
    monkeypatch.setattr(pair_selection, "faiss_available", lambda: False)
    series = SnapshotSimilaritySeries(pooled_snapshots(50))
    with pytest.warns(UserWarning, match="falling back to the exact"):
        approximate = find_candidates(series, 5, search="ann")
    assert torch.equal(approximate, find_candidates(series, 5))


@pytest.mark.parametrize("direction", ["both", "video_to_text", "text_to_video"])
def test_fused_pairs_in_length_sorted_chunks_equal_the_reference(direction: str) -> None:
    # many texts per video, cut into several chunks of 3: every pair equals the per-pair reference
    snapshots = [token_snapshot(0, seed=5, num_samples=30), token_snapshot(5, seed=6, num_samples=30)]
    generator = torch.Generator().manual_seed(0)
    videos = torch.randint(0, 30, (200,), generator=generator)
    texts = torch.randint(0, 30, (200,), generator=generator)
    fused = SnapshotSimilaritySeries(snapshots, direction=direction, pair_chunk=3)
    reference = SnapshotSimilaritySeries(snapshots, direction=direction, cico_kernel="reference")
    expected = reference.block(1, torch.arange(30), torch.arange(30))[videos, texts]
    torch.testing.assert_close(fused.pairs(1, videos, texts), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(reference.pairs(1, videos, texts), expected, rtol=1e-5, atol=1e-6)


def test_pooled_pairs_with_runs_equal_per_pair_products() -> None:
    snapshots = pooled_snapshots(60)
    series = SnapshotSimilaritySeries(snapshots, tile_workers=2)
    generator = torch.Generator().manual_seed(0)
    runs = torch.arange(60).repeat_interleave(7)  # grouped side: one gather per run
    scattered = torch.randint(0, 60, (420,), generator=generator)  # plain gather
    video, text = snapshots[1].video_pooled, snapshots[1].text_pooled
    for rows, cols in ((runs, scattered), (scattered, runs)):
        expected = (video[rows] * text[cols]).sum(-1)
        torch.testing.assert_close(series.pooled_pairs(1, rows, cols, chunk=50), expected)


def test_sparse_scores_accept_precomputed_candidates() -> None:
    snapshots = [token_snapshot(0, 1), token_snapshot(10, 2)]
    series = SnapshotSimilaritySeries(snapshots)
    candidates = find_candidates(series, num_candidates=3)
    given = compute_sparse_scores(series, candidates=candidates)
    searched = compute_sparse_scores(series, num_candidates=3)
    assert torch.equal(given.indices, searched.indices)
    torch.testing.assert_close(given.scores, searched.scores)
    torch.testing.assert_close(given.reverse_scores, searched.reverse_scores)


# --- scores files know their samples -------------------------------------------------------
def permuted_series(similarities: torch.Tensor, order: torch.Tensor) -> TensorSimilaritySeries:
    """The same (S, N, N) similarities with the samples renumbered: new k is old order[k]."""
    return TensorSimilaritySeries(similarities[:, order][:, :, order].contiguous())


def curriculum(scores: torch.Tensor | SparseScores, names: list[str]) -> list[list[str]]:
    from trainers.method.sampler import PSCurriculumBatchSampler

    sampler = PSCurriculumBatchSampler(scores, batch_size=3, num_epochs=3, schedule="linear", seed=0)
    sampler.set_epoch(1)
    return [[names[i] for i in batch] for batch in sampler]


def test_scores_file_records_sample_ids_and_the_snapshot_series(tmp_path) -> None:
    import json

    from safetensors import safe_open

    for epoch, seed in ((1, 1), (3, 2)):
        save_snapshot(token_snapshot(epoch, seed), tmp_path / "snapshots" / snapshot_filename(100 * epoch))
    snapshots = load_snapshot_series(tmp_path / "snapshots")
    series = SnapshotSimilaritySeries(snapshots, aggregation="mean")
    path = save_pair_scores(
        compute_dense_scores(series), tmp_path / "scores.safetensors", {"mode": "dense"}, series
    )
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    record = json.loads(header["scl_slt_pair_scores"])
    assert header["mode"] == "dense" and record["num_samples"] == N
    assert record["sample_ids"] == [f"s{i}" for i in range(N)] and len(record["sample_ids_sha256"]) == 64
    assert record["series"]["aggregation"] == "mean"  # the series' aggregation, not the snapshots' cico
    assert [(s["step"], s["epoch"], s["file"]) for s in record["series"]["snapshots"]] == [
        (100, 1.0, snapshot_filename(100)),
        (300, 3.0, snapshot_filename(300)),
    ]


@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_scores_reordered_to_a_training_order_give_that_orders_curriculum(tmp_path, mode: str) -> None:
    similarities = torch.randn(2, 10, 10, generator=torch.Generator().manual_seed(8))
    names = [f"clip{i}" for i in range(10)]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(9))
    train_names = [names[i] for i in order]  # the training set lists the same clips in another order

    def compute(series):
        if mode == "dense":
            return compute_dense_scores(series)
        return compute_sparse_scores(series, num_candidates=4)

    stored = compute(TensorSimilaritySeries(similarities))
    path = save_pair_scores(stored, tmp_path / "scores.safetensors", sample_ids=names)
    loaded = load_pair_scores(path, sample_ids=train_names)
    expected = compute(permuted_series(similarities, order))  # computed in the training order itself
    if mode == "dense":
        assert torch.equal(loaded, expected)
    else:
        for field in ("indices", "scores", "reverse_scores"):
            assert torch.equal(getattr(loaded, field), getattr(expected, field)), field
    assert curriculum(loaded, train_names) == curriculum(expected, train_names)
    assert curriculum(stored, train_names) != curriculum(expected, train_names), "the test would be vacuous"
    again = load_pair_scores(path, sample_ids=names)  # the stored order: nothing to reorder
    dense_of = (lambda scores: scores) if mode == "dense" else SparseScores.to_dense
    assert torch.equal(dense_of(again), dense_of(stored))


def test_scores_of_other_samples_are_refused_naming_the_first_difference(tmp_path) -> None:
    names = [f"clip{i}" for i in range(6)]
    path = save_pair_scores(torch.randn(6, 6), tmp_path / "scores.safetensors", sample_ids=names)
    filtered = names[:2] + names[3:]  # e.g. on_error="skip" dropped clip2 this time
    with pytest.raises(
        ValueError,
        match=r"position 2 the training set has 'clip3' but the scores have 'clip2' "
        r"\(training set 5 samples, scores 6\)",
    ) as error:
        load_pair_scores(path, sample_ids=filtered)
    assert str(path) in str(error.value)
    renamed = [*names[:4], "other", *names[5:]]
    with pytest.raises(
        ValueError, match="position 4 the training set has 'other' but the scores have 'clip4'"
    ):
        load_pair_scores(path, sample_ids=renamed)
    with pytest.raises(ValueError, match="6 sample ids were given for scores over 5 samples"):
        save_pair_scores(torch.randn(5, 5), tmp_path / "bad.safetensors", sample_ids=names)


def test_old_scores_file_without_sample_ids_loads_with_a_warning(tmp_path) -> None:
    from safetensors.torch import save_file

    dense = torch.randn(4, 4)
    save_file({"dense": dense}, str(tmp_path / "old.safetensors"), metadata={"mode": "dense"})
    with pytest.warns(UserWarning, match="stores no sample ids"):
        loaded = load_pair_scores(tmp_path / "old.safetensors", sample_ids=["a", "b", "c", "d"])
    assert torch.equal(loaded, dense)
    assert torch.equal(load_pair_scores(tmp_path / "old.safetensors"), dense)  # no ids asked: no warning
