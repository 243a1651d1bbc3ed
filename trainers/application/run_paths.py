"""Where each recipe output lives inside a run directory (the layout is in ``recipe``'s docstring)."""

from __future__ import annotations

from pathlib import Path


class RunPaths:
    """Where each recipe output lives inside the run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "recipe.yaml"
        self.corpus = self.root / "corpus"
        self.tokenizer = self.root / "tokenizer"
        self.initial = self.root / "initial"
        self.snapshots = self.root / "snapshots"
        self.trajectories = self.root / "trajectories.json"
        self.trajectory_figure = self.root / "trajectories.png"
        self.pair_scores = self.root / "pair_scores.safetensors"
        self.predictions = self.root / "predictions"
        self.metrics = self.root / "metrics.json"
        self.model = self.root / "model"

    def stage(self, name: str) -> Path:
        return self.root / name
