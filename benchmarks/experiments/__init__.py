"""Experiments: the selective-contrastive ablation and its report, the gloss oracle, and the real-scale
rehearsal on 2 processes. Each runs as ``python -m benchmarks.experiments.NAME``."""
