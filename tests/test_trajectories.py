"""Trajectory analysis: categories, thresholds, push-away shares, blocking, report files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from trainers.method.snapshots import Snapshot
from trainers.method.trajectories import CATEGORIES, analyze_trajectories, write_trajectory_report

# Hand-made trajectories of the 6 negatives of 3 samples over 3 snapshots (row = video, col = text):
#   pair   s0    s1    s2    category (t=0.5)  decreasing at step 0→1, 1→2
#   (0,1)  0.9   0.5   0.1   H->L              yes, yes
#   (0,2)  0.8   0.85  0.9   H->H              no,  no
#   (1,0)  0.1   0.2   0.8   L->H              no,  no
#   (1,2)  0.2   0.1   0.0   L->L              yes, yes
#   (2,0)  0.7   0.6   0.65  H->H              yes, no
#   (2,1)  0.3   0.4   0.2   L->L              no,  yes
TRAJECTORIES = {
    (0, 1): [0.9, 0.5, 0.1],
    (0, 2): [0.8, 0.85, 0.9],
    (1, 0): [0.1, 0.2, 0.8],
    (1, 2): [0.2, 0.1, 0.0],
    (2, 0): [0.7, 0.6, 0.65],
    (2, 1): [0.3, 0.4, 0.2],
}


def hand_series() -> torch.Tensor:
    similarities = torch.ones(3, 3, 3)  # positives at 1.0
    for (i, j), values in TRAJECTORIES.items():
        similarities[:, i, j] = torch.tensor(values)
    return similarities


def test_categories_and_push_away_shares_by_hand() -> None:
    report = analyze_trajectories(hand_series(), thresholds=(0.5, 0.5))
    assert report.counts == {"H->L": 1, "H->H": 2, "L->H": 1, "L->L": 2}
    assert report.shares == pytest.approx({"H->L": 1 / 6, "H->H": 2 / 6, "L->H": 1 / 6, "L->L": 2 / 6})
    assert sum(report.shares.values()) == pytest.approx(1.0)
    assert report.push_away_shares == pytest.approx([3 / 6, 3 / 6])
    assert report.consistently_pushed_share == pytest.approx(2 / 6)
    assert (report.num_pairs, report.num_samples, report.num_snapshots) == (6, 3, 3)


def test_median_thresholds_per_snapshot() -> None:
    report = analyze_trajectories(hand_series(), threshold_reference="each")
    # s0 sorted: .1 .2 .3 .7 .8 .9 → median .5; s1: .1 .2 .4 .5 .6 .85 → .45; s2: 0 .1 .2 .65 .8 .9 → .425
    assert report.thresholds == pytest.approx([0.5, 0.45, 0.425])
    assert report.counts == {"H->L": 1, "H->H": 2, "L->H": 1, "L->L": 2}
    assert "0.5-quantile" in report.threshold_rule


def test_quantile_rule_is_configurable() -> None:
    report = analyze_trajectories(hand_series(), threshold_quantile=0.0, threshold_reference="each")
    # s0 minimum .1 → high: all but (1,0); s2 minimum 0 → high: all but (1,2)
    assert report.counts == {"H->L": 1, "H->H": 4, "L->H": 1, "L->L": 0}


def test_identical_texts_are_counted_separately() -> None:
    report = analyze_trajectories(hand_series(), texts=["a", "b", "a"], thresholds=(0.5, 0.5))
    assert report.num_identical_text_pairs == 2  # (0,2) and (2,0)
    assert report.identical_text_counts == {"H->L": 0, "H->H": 2, "L->H": 0, "L->L": 0}
    assert report.counts == {"H->L": 1, "H->H": 0, "L->H": 1, "L->L": 2}
    assert report.push_away_shares == pytest.approx([2 / 4, 3 / 4])
    kept = analyze_trajectories(
        hand_series(), texts=["a", "b", "a"], thresholds=(0.5, 0.5), exclude_identical_texts=False
    )
    assert kept.num_pairs == 6 and kept.counts["H->H"] == 2


def test_blocks_smaller_than_n_give_the_same_report() -> None:
    similarities = torch.rand(4, 30, 30, generator=torch.Generator().manual_seed(0)) * 2 - 1
    texts = [f"t{i % 11}" for i in range(30)]
    whole = analyze_trajectories(similarities, texts=texts, block_size=100)
    blocked = analyze_trajectories(similarities, texts=texts, block_size=7)
    assert whole.counts == blocked.counts and whole.identical_text_counts == blocked.identical_text_counts
    assert whole.thresholds == pytest.approx(blocked.thresholds)
    assert whole.push_away_shares == pytest.approx(blocked.push_away_shares)
    assert whole.consistently_pushed_share == pytest.approx(blocked.consistently_pushed_share)
    assert whole.sample_trajectories == blocked.sample_trajectories


def test_sampled_thresholds_estimate_the_exact_ones() -> None:
    similarities = torch.rand(2, 60, 60, generator=torch.Generator().manual_seed(1)) * 2 - 1
    exact = analyze_trajectories(similarities)
    sampled = analyze_trajectories(similarities, max_threshold_pairs=800, block_size=16)
    assert sampled.thresholds != exact.thresholds
    assert sampled.thresholds == pytest.approx(exact.thresholds, abs=0.2)
    assert sum(sampled.shares.values()) == pytest.approx(1.0)


def test_pooled_snapshots_match_their_similarity_tensor() -> None:
    generator = torch.Generator().manual_seed(2)
    snapshots = [
        Snapshot.from_embeddings(
            list(range(12)),
            step=10 * k,
            epoch=k,
            video_pooled=torch.randn(12, 4, generator=generator),
            text_pooled=torch.randn(12, 4, generator=generator),
            aggregation="mean",
        )
        for k in range(3)
    ]
    tensor = torch.stack([s.video_pooled @ s.text_pooled.T for s in snapshots])
    from_snapshots = analyze_trajectories(snapshots, block_size=5)
    from_tensor = analyze_trajectories(tensor)
    assert from_snapshots.counts == from_tensor.counts
    assert from_snapshots.push_away_shares == pytest.approx(from_tensor.push_away_shares)


def test_report_files(tmp_path: Path) -> None:
    report = analyze_trajectories(hand_series(), thresholds=(0.5, 0.5))
    json_path, png_path = write_trajectory_report(report, tmp_path)
    assert json_path.name == "trajectories.json" and png_path.name == "trajectories.png"
    saved = json.loads(json_path.read_text())
    assert set(saved["shares"]) == set(CATEGORIES)
    assert saved["thresholds"] == [0.5, None, 0.5]
    assert saved["sample_trajectories"]["H->L"][0] == pytest.approx([0.9, 0.5, 0.1])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_snapshot_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 snapshots"):
        analyze_trajectories(torch.rand(1, 4, 4))


def test_trainers_modules_import_matplotlib_only_inside_functions() -> None:
    package = Path(__file__).resolve().parents[1] / "trainers"
    for path in package.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:  # top-level statements only
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.startswith("matplotlib") for name in names), path


def test_first_snapshot_threshold_sees_a_run_that_pushes_negatives_apart() -> None:
    first = torch.rand(40, 40, generator=torch.Generator().manual_seed(0))
    similarities = torch.stack([first, first - 0.3])  # every pair moves apart by 0.3
    pushed = analyze_trajectories(similarities)
    assert pushed.counts["L->H"] == 0 and pushed.counts["H->L"] > 0
    assert "first snapshot" in pushed.threshold_rule
    # With each snapshot's own median both ends have the same number of high pairs: H->L = L->H.
    relative = analyze_trajectories(similarities, threshold_reference="each")
    assert relative.counts["H->L"] == relative.counts["L->H"]


def test_figure_explains_its_threshold_line_and_starred_share_with_whole_epoch_ticks() -> None:
    from dataclasses import replace

    import matplotlib.pyplot as plt

    from trainers.method.trajectories import classification_thresholds, trajectory_figure

    report = replace(analyze_trajectories(hand_series()), positions=[2.0, 3.0, 4.0])  # epochs 2..4
    figure = trajectory_figure(report)
    try:
        legend = [text.get_text() for legend in figure.legends for text in legend.get_texts()]
        assert any("threshold" in text for text in legend) and any("negative pair" in text for text in legend)
        caption = figure.get_supxlabel()
        assert "pushed away at every step" in caption and report.threshold_rule in caption.replace("\n", " ")
        panels = [axis for axis in figure.axes if axis.get_xlabel() == "snapshot (epoch)"]
        assert len(panels) == len(CATEGORIES)
        for axis in panels:
            ticks = [tick for tick in axis.get_xticks() if 2.0 <= tick <= 4.0]
            assert ticks and all(float(tick).is_integer() for tick in ticks), ticks
            dashed = [line for line in axis.get_lines() if line.get_linestyle() == "--"]
            # The default rule classifies both ends with the first snapshot's threshold: a flat line.
            assert [tuple(line.get_ydata()) for line in dashed] == [classification_thresholds(report)]
        first, last = classification_thresholds(report)
        assert first == last == report.thresholds[0]
    finally:
        plt.close(figure)
