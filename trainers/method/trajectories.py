"""Trajectory analysis of negative pairs over the reference run (method.md, "Trajectory analysis").

Every negative pair (video i, text j), i ≠ j, is put in one of four categories by its similarity
at the FIRST and the LAST snapshot:

    H->L  high, then low: pushed apart as desired (easy)
    H->H  stays high: likely semantic neighbours / false negatives
    L->H  becomes high: hard negatives
    L->L  stays low

Threshold rule (the paper's is unknown; this one is configurable): a pair is *high* at a
snapshot when its similarity is STRICTLY ABOVE a threshold ``t``. By default
(``threshold_reference="first"``) ``t`` is the ``threshold_quantile`` quantile (default 0.5: the
median) of all counted negative similarities at the FIRST snapshot, and the same ``t`` is used at
the last one, so a run that pushes negatives apart shows more H→L than L→H.
``threshold_reference="each"`` uses each snapshot's own quantile instead ("high relative to where
the similarities sit at that time"); note that with it, H→L and L→H always have the same count,
since both snapshots then have the same number of high pairs. Absolute thresholds can be given
instead (``thresholds=(t_first, t_last)``). When there are more than ``max_threshold_pairs``
negatives, quantiles are estimated from a seeded uniform random subset of that many pairs (exact
otherwise).

Also reported: for every pair of consecutive snapshots the share of negatives whose similarity
DECREASED (``push_away_shares``), and the share that decreased at every step
(``consistently_pushed_share``). With ``texts`` given, pairs with identical target texts (known
false negatives) are left out of all shares (``exclude_identical_texts``) and counted
separately.

Everything is computed on row blocks of ``block_size`` videos × all texts, one snapshot at a
time; the S × N × N similarity tensor is never materialised. Cost: S + 2 similarity passes
(one over all snapshots, then first and last again once the thresholds are known). Processes
can share the blocks (``share``, a :class:`~trainers.method.similarity_series.RowShare`): each
computes its blocks, and the report, identical to one process's, comes out on every process.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch

from .atomic_files import atomic_file, write_text_atomically
from .similarity_series import RowShare, SimilaritySeries, as_similarity_series
from .snapshots import Snapshot
from .text_groups import text_group_ids

CATEGORIES = ("H->L", "H->H", "L->H", "L->L")
CATEGORY_MEANINGS = {
    "H->L": "pushed apart (easy)",
    "H->H": "stays similar (likely false negative)",
    "L->H": "drifts together (hard negative)",
    "L->L": "stays dissimilar",
}


@dataclass
class TrajectoryReport:
    """Result of :func:`analyze_trajectories` (everything JSON-serialisable).

    Attributes:
        num_samples: N.
        num_snapshots: S.
        positions: (S,) x values of the snapshots (epochs when known).
        num_pairs: Negative pairs counted in the shares.
        counts / shares: Per category; shares sum to 1.
        thresholds: (S,) threshold ``t_k`` of every snapshot (the first and last classify; None
            in between when absolute thresholds were given).
        threshold_rule: Human-readable rule.
        push_away_shares: (S−1,) share decreasing between snapshot k and k+1.
        consistently_pushed_share: Share decreasing at every step.
        num_identical_text_pairs: Ordered pairs with identical texts (excluded when asked).
        identical_text_counts: Their categories (empty when texts were not given).
        sample_trajectories: A few trajectories per category, for the figure.
    """

    num_samples: int
    num_snapshots: int
    positions: list[float]
    num_pairs: int
    counts: dict[str, int]
    shares: dict[str, float]
    thresholds: list[float | None]
    threshold_rule: str
    push_away_shares: list[float]
    consistently_pushed_share: float
    num_identical_text_pairs: int = 0
    identical_text_counts: dict[str, int] = field(default_factory=dict)
    sample_trajectories: dict[str, list[list[float]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def save_json(self, path: str | Path) -> Path:
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"
        return write_text_atomically(path, text, "trajectories")


def negative_mask(
    rows: torch.Tensor, num_samples: int, groups: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For a row block: (r, N) negatives to count, and (r, N) identical-text negatives."""
    cols = torch.arange(num_samples)
    off_diagonal = rows[:, None] != cols[None, :]
    if groups is None:
        return off_diagonal, torch.zeros_like(off_diagonal)
    identical = (groups[rows][:, None] == groups[None, :]) & off_diagonal
    return off_diagonal & ~identical, identical


def category_counts(
    first_high: torch.Tensor, last_high: torch.Tensor, selected: torch.Tensor
) -> dict[str, int]:
    """Counts of the four categories among ``selected`` pairs (all (r, N) bool)."""
    return {
        "H->L": int((first_high & ~last_high & selected).sum()),
        "H->H": int((first_high & last_high & selected).sum()),
        "L->H": int((~first_high & last_high & selected).sum()),
        "L->L": int((~first_high & ~last_high & selected).sum()),
    }


def quantile(values: torch.Tensor, q: float) -> float:
    """The q-quantile with linear interpolation (as ``torch.quantile``, without its size limit)."""
    if values.numel() == 0:
        raise ValueError("No negative similarities to take a quantile of.")
    ordered = torch.sort(values.double()).values
    position = q * (ordered.numel() - 1)
    low = int(position)
    high = min(low + 1, ordered.numel() - 1)
    return float(ordered[low] + (position - low) * (ordered[high] - ordered[low]))


def classify(values: Sequence[float], first_threshold: float, last_threshold: float) -> str:
    """Category of one trajectory."""
    first = "H" if values[0] > first_threshold else "L"
    last = "H" if values[-1] > last_threshold else "L"
    return f"{first}->{last}"


def random_negative_pairs(num_samples: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, 2) random (i, j) pairs with i ≠ j, sorted by i."""
    rows = torch.randint(num_samples, (count,), generator=generator)
    offsets = torch.randint(1, num_samples, (count,), generator=generator)
    pairs = torch.stack([rows, (rows + offsets) % num_samples], dim=1)
    return pairs[torch.argsort(pairs[:, 0], stable=True)]


def analyze_trajectories(
    source: SimilaritySeries | torch.Tensor | Sequence[Snapshot],
    texts: Sequence[str] | None = None,
    exclude_identical_texts: bool = True,
    threshold_quantile: float = 0.5,
    threshold_reference: Literal["first", "each"] = "first",
    thresholds: tuple[float, float] | None = None,
    block_size: int = 256,
    max_threshold_pairs: int = 2_000_000,
    num_figure_pairs: int = 2_000,
    trajectories_per_category: int = 20,
    seed: int = 0,
    share: RowShare | None = None,
    **series_kwargs,
) -> TrajectoryReport:
    """Classify every negative pair by its first/last similarity and measure push-away shares.

    Args:
        source: A :class:`SimilaritySeries`, an (S, N, N) similarity tensor (row = video,
            column = text) or snapshots sorted by epoch; needs S ≥ 2.
        texts: (N,) target texts; identical ones mark known false negatives.
        exclude_identical_texts: Leave identical-text pairs out of the shares.
        threshold_quantile: Quantile q of the threshold rule (module doc).
        threshold_reference: ``"first"``: the first snapshot's quantile is the threshold at both
            ends; ``"each"``: every snapshot uses its own quantile (module doc).
        thresholds: Absolute (first, last) thresholds instead of the quantile rule.
        block_size: Videos per block; peak memory is a few ``block_size × N`` float tensors.
        max_threshold_pairs: Above this many negatives, quantiles are estimated from a sample.
        num_figure_pairs: Random negative pairs whose full trajectories are kept for the figure.
        trajectories_per_category: Trajectories per category stored in the report.
        seed: Seed of the threshold sample and of the figure pairs.
        share: This process's row blocks when several processes share the work (every one of
            them calls this function); the report is the same as one process's, on each of them.
        **series_kwargs: Passed to the series built from ``source`` (e.g. ``aggregation``).
    """
    series = as_similarity_series(source, **series_kwargs)
    if series.num_snapshots < 2:
        raise ValueError(f"Trajectory analysis needs at least 2 snapshots, got {series.num_snapshots}.")
    if not 0.0 <= threshold_quantile <= 1.0:
        raise ValueError(f"threshold_quantile must be in [0, 1], got {threshold_quantile}.")
    n = series.num_samples
    if texts is not None and len(texts) != n:
        raise ValueError(f"texts has {len(texts)} entries but the snapshots cover {n} samples.")
    groups = text_group_ids(texts) if texts is not None else None
    exclusion_groups = groups if exclude_identical_texts else None
    generator = torch.Generator().manual_seed(seed)
    figure_pairs = random_negative_pairs(n, num_figure_pairs, generator)

    share = share or RowShare()
    first_pass = scan_all_snapshots(
        series, exclusion_groups, block_size, max_threshold_pairs, figure_pairs, generator, share
    )
    if thresholds is None:
        per_snapshot = [quantile(v, threshold_quantile) for v in first_pass["threshold_samples"]]
        rule = f"high = similarity > the {threshold_quantile:g}-quantile of counted negatives at "
        if threshold_reference == "first":
            rule += "the first snapshot"
            classify_thresholds = (per_snapshot[0], per_snapshot[0])
        elif threshold_reference == "each":
            rule += "that snapshot"
            classify_thresholds = (per_snapshot[0], per_snapshot[-1])
        else:
            raise ValueError(f"threshold_reference must be 'first' or 'each', got {threshold_reference!r}.")
    else:
        classify_thresholds = (float(thresholds[0]), float(thresholds[1]))
        per_snapshot = [classify_thresholds[0], *[None] * (series.num_snapshots - 2), classify_thresholds[1]]
        rule = "high = similarity > the given absolute threshold (first, last)"

    counts, identical_counts = count_categories(
        series, groups, exclude_identical_texts, classify_thresholds, block_size, share
    )
    total = sum(counts.values())
    if total == 0:
        raise ValueError("No negative pairs left to analyse (every pair shares its text?).")
    return TrajectoryReport(
        num_samples=n,
        num_snapshots=series.num_snapshots,
        positions=series.positions.tolist(),
        num_pairs=total,
        counts=counts,
        shares={name: count / total for name, count in counts.items()},
        thresholds=per_snapshot,
        threshold_rule=rule,
        push_away_shares=[float(c) / total for c in first_pass["decreasing"]],
        consistently_pushed_share=float(first_pass["always_decreasing"]) / total,
        num_identical_text_pairs=sum(identical_counts.values()) if groups is not None else 0,
        identical_text_counts=identical_counts if groups is not None else {},
        sample_trajectories=figure_trajectories(
            first_pass["figure_values"],
            figure_pairs,
            groups if exclude_identical_texts else None,
            classify_thresholds,
            trajectories_per_category,
        ),
    )


def scan_all_snapshots(
    series: SimilaritySeries,
    groups: torch.Tensor | None,
    block_size: int,
    max_threshold_pairs: int,
    figure_pairs: torch.Tensor,
    generator: torch.Generator,
    share: RowShare | None = None,
) -> dict:
    """Pass 1: push-away counts, threshold samples and figure trajectories, block by block.

    With a ``share``, this process scans its blocks and the parts of all processes are merged.
    """
    share = share or RowShare()
    n, s = series.num_samples, series.num_snapshots
    num_negatives = n * (n - 1)
    keep_probability = min(1.0, max_threshold_pairs / max(num_negatives, 1))
    decreasing = torch.zeros(s - 1, dtype=torch.long)
    always_decreasing = 0
    threshold_samples: dict[int, list[torch.Tensor]] = {}  # block number -> (S,) samples
    figure_values = torch.zeros(figure_pairs.shape[0], s)
    figure_filled = torch.zeros(figure_pairs.shape[0], dtype=torch.bool)
    all_cols = torch.arange(n)
    for number, start in enumerate(range(0, n, block_size)):
        rows = torch.arange(start, min(start + block_size, n))
        # every process draws every block's numbers, so the sample is the one of one process
        draws = torch.rand((len(rows), n), generator=generator) if keep_probability < 1.0 else None
        if not share.owns(number):
            continue
        counted, _ = negative_mask(rows, n, groups)  # (r, N)
        sampled = counted if draws is None else counted & (draws < keep_probability)
        in_block = (figure_pairs[:, 0] >= rows[0]) & (figure_pairs[:, 0] <= rows[-1])
        figure_filled |= in_block
        block_pairs = figure_pairs[in_block]
        previous, all_down = None, counted.clone()
        threshold_samples[number] = []
        for k in range(s):
            current = series.block(k, rows, all_cols)  # (r, N)
            threshold_samples[number].append(current[sampled])
            figure_values[in_block, k] = current[block_pairs[:, 0] - start, block_pairs[:, 1]]
            if previous is not None:
                down = current < previous
                decreasing[k - 1] += int((down & counted).sum())
                all_down &= down
            previous = current
        always_decreasing += int(all_down.sum())
    part = {
        "decreasing": decreasing,
        "always_decreasing": always_decreasing,
        "threshold_samples": threshold_samples,
        "figure_values": figure_values,
        "figure_filled": figure_filled,
    }
    return merge_scans(share.gather_all(part), s)


def merge_scans(parts: Sequence[dict], num_snapshots: int) -> dict:
    """One pass-1 result from the parts of the processes (threshold samples in block order)."""
    by_block = {number: values for part in parts for number, values in part["threshold_samples"].items()}
    samples = [by_block[number] for number in sorted(by_block)]
    figure_values = parts[0]["figure_values"].clone()
    for part in parts[1:]:
        figure_values[part["figure_filled"]] = part["figure_values"][part["figure_filled"]]
    return {
        "decreasing": sum(part["decreasing"] for part in parts).tolist(),
        "always_decreasing": sum(part["always_decreasing"] for part in parts),
        "threshold_samples": [torch.cat([values[k] for values in samples]) for k in range(num_snapshots)],
        "figure_values": figure_values,
    }


def count_categories(
    series: SimilaritySeries,
    groups: torch.Tensor | None,
    exclude_identical_texts: bool,
    thresholds: tuple[float, float],
    block_size: int,
    share: RowShare | None = None,
) -> tuple[dict[str, int], dict[str, int]]:
    """Pass 2: category counts of counted negatives and of identical-text negatives (all processes)."""
    share = share or RowShare()
    n = series.num_samples
    counts = dict.fromkeys(CATEGORIES, 0)
    identical_counts = dict.fromkeys(CATEGORIES, 0)
    all_cols = torch.arange(n)
    for number, start in enumerate(range(0, n, block_size)):
        if not share.owns(number):
            continue
        rows = torch.arange(start, min(start + block_size, n))
        counted, identical = negative_mask(rows, n, groups)
        if not exclude_identical_texts:
            counted = counted | identical
        first_high = series.block(0, rows, all_cols) > thresholds[0]
        last_high = series.block(series.num_snapshots - 1, rows, all_cols) > thresholds[1]
        for name, value in category_counts(first_high, last_high, counted).items():
            counts[name] += value
        for name, value in category_counts(first_high, last_high, identical).items():
            identical_counts[name] += value
    parts = share.gather_all((counts, identical_counts))
    return tuple({name: sum(part[side][name] for part in parts) for name in CATEGORIES} for side in (0, 1))


def figure_trajectories(
    values: torch.Tensor,
    pairs: torch.Tensor,
    groups: torch.Tensor | None,
    thresholds: tuple[float, float],
    per_category: int,
) -> dict[str, list[list[float]]]:
    """Up to ``per_category`` trajectories per category from the figure sample."""
    result: dict[str, list[list[float]]] = {name: [] for name in CATEGORIES}
    for (i, j), trajectory in zip(pairs.tolist(), values.tolist(), strict=True):
        if groups is not None and groups[i] == groups[j]:
            continue
        bucket = result[classify(trajectory, *thresholds)]
        if len(bucket) < per_category:
            bucket.append(trajectory)
    return result


def plot_trajectories(report: TrajectoryReport, path: str | Path) -> Path:
    """Save :func:`trajectory_figure` as a PNG at ``path``."""
    import matplotlib.pyplot as plt

    path = Path(path)
    figure = trajectory_figure(report)
    with atomic_file(path, "trajectories_figure") as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return path


def trajectory_figure(report: TrajectoryReport):  # -> matplotlib.figure.Figure (imported lazily)
    """Category shares (bar chart), sample trajectories per category, a legend and a caption.

    The x axis counts snapshot positions (epochs) in whole numbers; the dashed line is the
    threshold above which a similarity counts as high; the caption states the threshold rule and
    what "pushed away at every step" measures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    ends = (report.positions[0], report.positions[-1])
    figure = plt.figure(figsize=(12, 5.6), layout="constrained")
    grid = figure.add_gridspec(2, 3)
    bars = figure.add_subplot(grid[:, 0])
    shares = [100 * report.shares[name] for name in CATEGORIES]
    bars.bar(CATEGORIES, shares, color=["tab:green", "tab:orange", "tab:red", "tab:gray"])
    for x, share in enumerate(shares):
        bars.text(x, share, f"{share:.1f}%", ha="center", va="bottom")
    bars.set_ylabel("share of negative pairs (%)")
    bars.set_title(
        f"{report.num_pairs:,} negative pairs of N={report.num_samples} samples, "
        f"{report.num_snapshots} snapshots\n"
        f"pushed away at every step*: {100 * report.consistently_pushed_share:.1f}%",
        fontsize=9,
    )
    for index, name in enumerate(CATEGORIES):
        axis = figure.add_subplot(grid[index // 2, 1 + index % 2])
        for trajectory in report.sample_trajectories.get(name, []):
            axis.plot(report.positions, trajectory, color="tab:blue", alpha=0.35, linewidth=1)
        axis.plot(ends, classification_thresholds(report), "k--", linewidth=1.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(f"{name}: {CATEGORY_MEANINGS[name]}", fontsize=9)
        axis.set_xlabel("snapshot (epoch)", fontsize=8)
        axis.set_ylabel("similarity", fontsize=8)
    figure.legend(
        handles=[
            Line2D([], [], color="k", linestyle="--", linewidth=1.5, label="threshold: above it is high (H)"),
            Line2D(
                [],
                [],
                color="tab:blue",
                alpha=0.6,
                linewidth=1,
                label="one negative pair (video i, text j ≠ i)",
            ),
        ],
        loc="outside upper right",
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    figure.supxlabel(trajectory_caption(report), fontsize=8, x=0.01, ha="left", multialignment="left")
    return figure


def classification_thresholds(report: TrajectoryReport) -> tuple[float, float]:
    """The thresholds that classified the pairs, at the first and at the last snapshot.

    ``report.thresholds`` holds every snapshot's own quantile; the default rule
    (``threshold_reference="first"``) classifies both ends with the first snapshot's.
    """
    first, last = report.thresholds[0], report.thresholds[-1]
    if report.threshold_rule.endswith("at the first snapshot"):
        last = first
    return float(first), float(last)


def trajectory_caption(report: TrajectoryReport, width: int = 190) -> str:
    """The figure's caption: how pairs are classified and what the starred share counts."""
    all_negatives = report.num_samples * (report.num_samples - 1)
    identical = (
        f" {report.num_identical_text_pairs:,} pairs with identical texts (false negatives) are left out."
        if report.num_identical_text_pairs and report.num_pairs < all_negatives
        else ""
    )
    lines = [
        "A negative pair is classified by its similarity at the first and the last snapshot: "
        f"{report.threshold_rule}.{identical}",
        "* pushed away at every step: the share of negative pairs whose similarity decreased from each "
        "snapshot to the next, i.e. that the contrastive loss kept pushing apart throughout.",
    ]
    return "\n".join(textwrap.fill(line, width) for line in lines)


def write_trajectory_report(report: TrajectoryReport, output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``trajectories.json`` and ``trajectories.png`` into ``output_dir``."""
    output_dir = Path(output_dir)
    return report.save_json(output_dir / "trajectories.json"), plot_trajectories(
        report, output_dir / "trajectories.png"
    )
