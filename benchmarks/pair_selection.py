"""Benchmark Pair Selection (scores + one epoch of curriculum batches) on synthetic snapshots.

Every measured variant runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``)
is its own. One JSON line per result goes to stdout (and to ``--output`` when given).

Synthetic data (see :func:`make_token_snapshots`): N samples in 64 topics; a video's tokens
move from a random start to a topic-shared "aligned" direction over the S snapshots, its
text's tokens from a nearby start to the same direction, plus fixed per-token noise. So
similarities are spread (not all ~0) and pairs drift together or apart. Token snapshots: about
30 real visual and 25 real text tokens per sample (uniform 15–45 and 12–38), D = 256, fp16 on
disk, written once to ``--cache-dir``. Pooled snapshots (the 10⁶ runs): the same model without
tokens; only the first and last snapshot are written (the delta score reads nothing else).

Parts (``--parts``, comma-separated; default: all but the slow ones marked *):
  gemm            plain large fp32 matmul rate of this machine (the floor of dense CiCo)
  sparse          7,096 samples, sparse CiCo scores (M = 256, pooled-candidate search) + 1 epoch
  dense-pooled    7,096 samples, dense mean-pooled scores + 1 epoch
  dense-cico      dense CiCo on ``--cico-rows`` rows × all N columns, fused kernel per tile
                  shape (``--cico-tiles``) and reference kernel, extrapolated to N² and
                  compared with the matmul floor in interleaved rounds
  dense-cico-full* dense CiCo over all N² pairs (compute_dense_scores), against the matmul floor
  recall          ANN vs exact candidates on ``--recall-samples`` pooled samples
  million*        10⁶ pooled samples (``--million`` sets N, e.g. 100000 for a scaled check): ANN
                  candidates, sparse scores, one epoch of batches; stage times reported apart
  sampler-scaling* the fast sparse sampler alone on random candidate graphs of growing N

Example: ``python -m benchmarks.pair_selection --parts gemm,sparse,dense-pooled``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.harness import module_command, module_environment, peak_rss_gib
from trainers.method.pair_selection import compute_dense_scores, compute_sparse_scores, find_candidates
from trainers.method.sampler import PSCurriculumBatchSampler
from trainers.method.similarity_series import SnapshotSimilaritySeries
from trainers.method.snapshots import Snapshot, load_snapshot_series, save_snapshot

DIM, VIDEO_TOKENS, TEXT_TOKENS, TOPICS = 256, (15, 45), (12, 38), 64
DEFAULT_PARTS = "gemm,sparse,dense-pooled,dense-cico,recall"


# --------------------------------------------------------------------------- synthetic data


def latent_directions(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: video start (N, D), text start (N, D) and shared aligned direction (N, D)."""
    generator = torch.Generator().manual_seed(seed)
    topic = torch.randint(0, TOPICS, (n,), generator=generator)
    centres = F.normalize(torch.randn(TOPICS, DIM, generator=generator), dim=-1)
    video_centres = F.normalize(torch.randn(TOPICS, DIM, generator=generator), dim=-1)

    def noisy(base: torch.Tensor, scale: float) -> torch.Tensor:
        return F.normalize(
            base + scale * F.normalize(torch.randn(n, DIM, generator=generator), dim=-1), dim=-1
        )

    aligned = noisy(centres[topic], 0.8)
    return noisy(video_centres[topic], 0.8), noisy(aligned, 0.7), aligned


def trajectory_point(start: torch.Tensor, end: torch.Tensor, progress: float) -> torch.Tensor:
    return (1 - progress) * start + progress * end


def make_token_snapshots(n: int, num_snapshots: int, folder: Path, seed: int = 0) -> None:
    """Write ``num_snapshots`` token snapshots of ``n`` synthetic samples to ``folder``."""
    video_start, text_start, aligned = latent_directions(n, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    video_lengths = torch.randint(VIDEO_TOKENS[0], VIDEO_TOKENS[1] + 1, (n,), generator=generator)
    text_lengths = torch.randint(TEXT_TOKENS[0], TEXT_TOKENS[1] + 1, (n,), generator=generator)
    video_mask = torch.arange(VIDEO_TOKENS[1])[None] < video_lengths[:, None]  # (N, Lv)
    text_mask = torch.arange(TEXT_TOKENS[1])[None] < text_lengths[:, None]  # (N, Lt)
    video_noise = 0.9 * F.normalize(torch.randn(n, VIDEO_TOKENS[1], DIM, generator=generator), dim=-1)
    text_noise = 0.9 * F.normalize(torch.randn(n, TEXT_TOKENS[1], DIM, generator=generator), dim=-1)
    for k in range(num_snapshots):
        progress = k / max(num_snapshots - 1, 1)
        video = trajectory_point(video_start, aligned, progress)[:, None] + video_noise
        text = trajectory_point(text_start, aligned, 0.5 * progress)[:, None] + text_noise
        snapshot = Snapshot.from_embeddings(
            list(range(n)),
            step=100 * k,
            epoch=float(k),
            video_tokens=video * video_mask[..., None],
            video_mask=video_mask,
            text_tokens=text * text_mask[..., None],
            text_mask=text_mask,
            aggregation="cico",
        )
        save_snapshot(snapshot, folder / f"snapshot-{k:02d}.safetensors")


def make_pooled_snapshots(
    n: int, num_snapshots: int, folder: Path, seed: int = 0, chunk: int = 1 << 17
) -> None:
    """Write the first and last of ``num_snapshots`` pooled fp16 snapshots of ``n`` samples."""
    video = torch.empty(2, n, DIM, dtype=torch.float16)
    text = torch.empty(2, n, DIM, dtype=torch.float16)
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        video_start, text_start, aligned = latent_directions(count, seed + start)
        for slot, progress in enumerate((0.0, 1.0)):
            video[slot, start : start + count] = F.normalize(
                trajectory_point(video_start, aligned, progress), dim=-1
            )
            text[slot, start : start + count] = F.normalize(
                trajectory_point(text_start, aligned, 0.5 * progress), dim=-1
            )
    for slot, k in enumerate((0, num_snapshots - 1)):
        snapshot = Snapshot(
            sample_ids=list(range(n)),
            step=100 * k,
            epoch=float(k),
            aggregation="mean",
            video_pooled=video[slot],
            text_pooled=text[slot],
        )
        save_snapshot(snapshot, folder / f"snapshot-{k:02d}.safetensors")


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """Target texts with PHOENIX-like repetition: drawn with replacement from 0.85·N sentences."""
    generator = torch.Generator().manual_seed(seed)
    return [
        f"sentence {j}" for j in torch.randint(0, max(1, int(0.85 * n)), (n,), generator=generator).tolist()
    ]


def ensure(folder: Path, builder: Callable[[Path], None]) -> Path:
    """Build a cached data folder once (marked complete by a ``done`` file)."""
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        builder(folder)
        (folder / "done").write_text("ok")
    return folder


# --------------------------------------------------------------------------- measurements


def timed(function: Callable, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def matmul_rate(size: int = 4096, repeats: int = 3) -> dict:
    """fp32 GFLOP/s of a plain (size × size) @ (size × size) matmul: best and median of ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    rates = []
    for _ in range(repeats):
        _, seconds = timed(torch.mm, a, b)
        rates.append(2 * size**3 / seconds / 1e9)
    rates.sort()
    return {"gflops_best": rates[-1], "gflops_median": rates[len(rates) // 2]}


def build_epoch(scores, texts: list[str], epoch: int = 40, **kwargs) -> tuple[int, float, float]:
    """(number of batches, seconds to set up the sampler, seconds to build one epoch)."""
    sampler, setup = timed(
        PSCurriculumBatchSampler, scores, batch_size=16, num_epochs=80, texts=texts, **kwargs
    )
    sampler.set_epoch(epoch)
    batches, seconds = timed(sampler.batches)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    return len(batches), setup, seconds


def run_sparse(args: argparse.Namespace) -> dict:
    folder = ensure(args.cache_dir / f"tokens-{args.num_samples}", token_builder(args))
    snapshots, load_s = timed(load_snapshot_series, folder, first_and_last_only=True)
    series = SnapshotSimilaritySeries(snapshots, aggregation="cico")
    scores, score_s = timed(compute_sparse_scores, series, num_candidates=args.num_candidates)
    del series, snapshots
    num_batches, setup_s, epoch_s = build_epoch(scores, synthetic_texts(args.num_samples))
    _, _, fast_epoch_s = build_epoch(scores, synthetic_texts(args.num_samples), fast_sparse=True)
    return {
        "mode": "sparse cico",
        "fast_sampler_epoch_s": fast_epoch_s,
        "n": args.num_samples,
        "m": args.num_candidates,
        "load_s": load_s,
        "scores_s": score_s,
        "sampler_setup_s": setup_s,
        "epoch_s": epoch_s,
        "total_s": load_s + score_s + setup_s + epoch_s,
        "batches": num_batches,
    }


def run_dense_pooled(args: argparse.Namespace) -> dict:
    folder = ensure(args.cache_dir / f"tokens-{args.num_samples}", token_builder(args))
    snapshots, load_s = timed(load_snapshot_series, folder, first_and_last_only=True)
    scores, score_s = timed(compute_dense_scores, snapshots, aggregation="mean")
    del snapshots
    num_batches, setup_s, epoch_s = build_epoch(scores, synthetic_texts(args.num_samples))
    return {
        "mode": "dense mean-pooled",
        "n": args.num_samples,
        "load_s": load_s,
        "scores_s": score_s,
        "sampler_setup_s": setup_s,
        "epoch_s": epoch_s,
        "total_s": load_s + score_s + setup_s + epoch_s,
        "batches": num_batches,
    }


def run_dense_cico(args: argparse.Namespace) -> dict:
    """Dense CiCo delta on a row subset against the matmul floor, per tile shape.

    Each of ``--cico-rounds`` rounds measures the matmul rate once and then every tile shape
    of the fused kernel once, so a slower or faster spell of the shared machine hits the floor
    and the kernels alike. A round's ratio is its kernel time, extrapolated to N², over the
    floor from that round's matmul rate; the median and the best round are reported. The
    reference kernel runs once on a smaller subset.
    """
    folder = ensure(args.cache_dir / f"tokens-{args.num_samples}", token_builder(args))
    snapshots = load_snapshot_series(folder, first_and_last_only=True)
    n = args.num_samples
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: args.cico_rows].sort().values
    video_lengths = snapshots[0].video_mask.sum(1).double()
    text_lengths_sum = float(snapshots[0].text_mask.sum())

    def needed(videos: torch.Tensor) -> float:
        """FLOPs the token-pair products of ``videos`` × all texts need: 2·D per real pair, 2 snapshots."""
        return 2 * 2 * DIM * float(video_lengths[videos].sum()) * text_lengths_sum

    needed_full = needed(torch.arange(n))
    tiles = [tuple(int(side) for side in tile.split("x")) for tile in args.cico_tiles.split(",")]
    results: dict = {"n": n, "rows": len(rows), "gflop_needed_full": needed_full / 1e9, "rounds": []}
    for _ in range(args.cico_rounds):
        round_result = {"matmul_gflops": matmul_rate()["gflops_best"]}
        for tile in tiles:
            series = SnapshotSimilaritySeries(snapshots, aggregation="cico", tile_size=tile)
            round_result[tile_name(tile)] = time_dense_rows(series, rows, needed)
        results["rounds"].append(round_result)
    series = SnapshotSimilaritySeries(snapshots, aggregation="cico", cico_kernel="reference")
    reference_rows = rows[: max(8, len(rows) // 8)]
    results["reference"] = time_dense_rows(series, reference_rows, needed)
    floor_s = needed_full / max(r["matmul_gflops"] for r in results["rounds"]) / 1e9
    results["floor_full_s"] = floor_s
    for name in map(tile_name, tiles):
        ratios = sorted(r[name]["full_s"] * r["matmul_gflops"] * 1e9 / needed_full for r in results["rounds"])
        results[f"{name}_ratio_median"] = ratios[len(ratios) // 2]
        results[f"{name}_ratio_best"] = min(r[name]["full_s"] for r in results["rounds"]) / floor_s
    results["reference_ratio"] = results["reference"]["full_s"] / floor_s
    return results


def run_dense_cico_full(args: argparse.Namespace) -> dict:
    """Dense CiCo delta over all N² pairs with :func:`compute_dense_scores`, against the floor.

    The floor uses the best matmul rate measured just before and just after the run.
    """
    folder = ensure(args.cache_dir / f"tokens-{args.num_samples}", token_builder(args))
    snapshots = load_snapshot_series(folder, first_and_last_only=True)
    video_lengths, text_lengths = (
        mask.sum().item() for mask in (snapshots[0].video_mask, snapshots[0].text_mask)
    )
    needed = 2 * 2 * DIM * video_lengths * text_lengths
    before = matmul_rate()
    scores, seconds = timed(compute_dense_scores, snapshots, aggregation="cico")
    after = matmul_rate()
    floor_s = needed / max(before["gflops_best"], after["gflops_best"]) / 1e9
    return {
        "n": args.num_samples,
        "gflop_needed": needed / 1e9,
        "scores_s": seconds,
        "gflops": needed / seconds / 1e9,
        "matmul_gflops_before": before,
        "matmul_gflops_after": after,
        "floor_s": floor_s,
        "ratio_to_floor": seconds / floor_s,
        "finite": bool(torch.isfinite(scores).all()),
    }


def tile_name(tile: tuple[int, ...]) -> str:
    return "fused_" + "x".join(map(str, tile))


def time_dense_rows(
    series: SnapshotSimilaritySeries, rows: torch.Tensor, needed: Callable[[torch.Tensor], float]
) -> dict:
    """Time the delta rows of ``rows`` (r,) × all N texts and extrapolate to N² (dict of floats).

    A snapshot's one-off preparation (augmented text rows, about a second) is timed apart and
    added once to the extrapolation, as :func:`compute_dense_scores` prepares each snapshot once.
    """
    cols = torch.arange(series.num_samples)
    prepare_s = block_s = 0.0
    for snapshot in (series.num_snapshots - 1, 0):
        if series.uses_fused_kernel:
            prepare_s += timed(series.text_rows, snapshot)[1]
        block_s += timed(series.block, snapshot, rows, cols)[1]
    return {
        "rows": len(rows),
        "block_s": block_s,
        "prepare_s": prepare_s,
        "gflops": needed(rows) / block_s / 1e9,
        "full_s": block_s * needed(cols) / needed(rows) + prepare_s,
    }


def run_recall(args: argparse.Namespace) -> dict:
    n, m = args.recall_samples, args.million_candidates
    folder = ensure(args.cache_dir / f"pooled-{n}", lambda f: make_pooled_snapshots(n, args.snapshots, f))
    series = SnapshotSimilaritySeries(load_snapshot_series(folder), aggregation="mean")
    exact, exact_s = timed(find_candidates, series, m)
    results = {"n": n, "m": m, "exact_s": exact_s}
    lists = int(4 * n**0.5)
    for probes in args.recall_probes:
        approximate, seconds = timed(
            find_candidates, series, m, search="ann", ann_lists=lists, ann_probes=probes
        )
        found = torch.sort(approximate, 1).values
        hits = sum(
            int(torch.isin(row, target).sum())
            for row, target in zip(found, torch.sort(exact, 1).values, strict=True)
        )
        results[f"ann_lists{lists}_probes{probes}"] = {
            "seconds": seconds,
            "recall": hits / exact.numel(),
            "scanned_fraction": probes / lists,
        }
    return results


def run_million(args: argparse.Namespace) -> dict:
    n, m = args.million, args.million_candidates
    folder = ensure(args.cache_dir / f"pooled-{n}", lambda f: make_pooled_snapshots(n, args.snapshots, f))
    snapshots, load_s = timed(load_snapshot_series, folder, first_and_last_only=True)
    series = SnapshotSimilaritySeries(snapshots, aggregation="mean")
    print(
        json.dumps({"progress": "loaded", "s": load_s, "peak_rss_gib": peak_rss_gib()}),
        file=sys.stderr,
        flush=True,
    )
    candidates, search_s = timed(
        find_candidates, series, m, search="ann", ann_lists=args.million_lists, ann_probes=args.million_probes
    )
    print(
        json.dumps({"progress": "candidates", "s": search_s, "peak_rss_gib": peak_rss_gib()}),
        file=sys.stderr,
        flush=True,
    )
    scores, pairs_s = timed(compute_sparse_scores, series, candidates=candidates)
    score_s = search_s + pairs_s
    del candidates
    print(
        json.dumps({"progress": "scored", "s": pairs_s, "peak_rss_gib": peak_rss_gib()}),
        file=sys.stderr,
        flush=True,
    )
    del series, snapshots
    texts = synthetic_texts(n)
    num_batches, setup_s, epoch_s = build_epoch(scores, texts)
    return {
        "mode": "sparse mean-pooled, ANN candidates",
        "n": n,
        "m": m,
        "ann_lists": args.million_lists or int(4 * n**0.5),
        "ann_probes": args.million_probes,
        "load_s": load_s,
        "candidates_s": search_s,
        "pair_scores_s": pairs_s,
        "scores_s": score_s,
        "sampler_setup_s": setup_s,
        "epoch_s": epoch_s,
        "total_s": load_s + score_s + setup_s + epoch_s,
        "batches": num_batches,
    }


def run_sampler_scaling(args: argparse.Namespace) -> dict:
    """The fast sparse sampler alone on a random graph of ``--scaling-n`` samples, M candidates."""
    n, m = args.scaling_n, args.million_candidates
    generator = torch.Generator().manual_seed(0)
    indices = (torch.arange(n)[:, None] + torch.randint(1, n, (n, m), generator=generator)) % n
    from trainers.method.pair_selection import SparseScores

    scores = SparseScores(
        indices, torch.randn(n, m, generator=generator), torch.randn(n, m, generator=generator)
    )
    num_batches, setup_s, epoch_s = build_epoch(scores, synthetic_texts(n))
    return {"n": n, "m": m, "sampler_setup_s": setup_s, "epoch_s": epoch_s, "batches": num_batches}


def token_builder(args: argparse.Namespace) -> Callable[[Path], None]:
    return lambda folder: make_token_snapshots(args.num_samples, args.snapshots, folder)


WORKERS: dict[str, Callable[[argparse.Namespace], dict]] = {
    "gemm": lambda args: matmul_rate(repeats=5),
    "sparse": run_sparse,
    "dense-pooled": run_dense_pooled,
    "dense-cico": run_dense_cico,
    "dense-cico-full": run_dense_cico_full,
    "recall": run_recall,
    "million": run_million,
    "sampler-scaling": run_sampler_scaling,
}


# --------------------------------------------------------------------------- driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts", default=DEFAULT_PARTS, help=f"comma-separated parts (default {DEFAULT_PARTS})"
    )
    parser.add_argument(
        "--num-samples", type=int, default=7096, help="samples of the token runs (PHOENIX train)"
    )
    parser.add_argument("--snapshots", type=int, default=16, help="snapshots of the reference run")
    parser.add_argument("--num-candidates", type=int, default=256, help="M of the 7,096-sample sparse run")
    parser.add_argument("--cico-rows", type=int, default=256, help="rows of the dense CiCo subset")
    parser.add_argument("--cico-rounds", type=int, default=3, help="interleaved rounds of dense CiCo")
    parser.add_argument(
        "--cico-tiles", default="8x64,16x16,32x32", help="fused tile shapes (videos x texts) compared"
    )
    parser.add_argument("--recall-samples", type=int, default=50_000, help="samples of the recall check")
    parser.add_argument("--recall-probes", type=int, nargs="+", default=[4, 16], help="IVF cells probed")
    parser.add_argument("--million", type=int, default=1_000_000, help="samples of the large run")
    parser.add_argument("--million-candidates", type=int, default=64, help="M of the large run and recall")
    parser.add_argument("--million-lists", type=int, default=None, help="IVF cells at 10⁶ (default 4·√N)")
    parser.add_argument("--million-probes", type=int, default=16, help="IVF cells probed at 10⁶")
    parser.add_argument("--scaling-n", type=int, default=100_000, help="N of the sampler-scaling part")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/scl_slt_bench"), help="synthetic data")
    parser.add_argument("--output", type=Path, default=None, help="also append the JSON lines here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_worker(args: argparse.Namespace) -> None:
    """Inside the fresh subprocess: run one part, print one JSON line with its peak memory."""
    result, seconds = timed(WORKERS[args.worker], args)
    result.update(
        part=args.worker, wall_s=seconds, peak_rss_gib=peak_rss_gib(), torch_threads=torch.get_num_threads()
    )
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    argv = list(sys.argv[1:] if argv is None else argv)
    for part in args.parts.split(","):
        if part not in WORKERS:
            raise SystemExit(f"--parts: unknown part {part!r}; expected some of {sorted(WORKERS)}.")
        completed = subprocess.run(
            module_command(__spec__.name, [*argv, "--worker", part]),
            capture_output=True,
            text=True,
            check=False,
            env=module_environment(),
        )
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        line = (
            lines[-1]
            if completed.returncode == 0 and lines
            else json.dumps(
                {"part": part, "error": completed.stderr.strip().splitlines()[-1:] or ["no output"]}
            )
        )
        line = json.dumps({"torch": torch.__version__, **json.loads(line)})
        print(line, flush=True)
        if args.output:
            with args.output.open("a") as handle:
                handle.write(line + "\n")


if __name__ == "__main__":
    main()
