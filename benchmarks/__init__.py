"""Speed and memory measurements (this folder's modules) and experiments (``benchmarks.experiments``).

Each module runs as ``python -m benchmarks.NAME`` (or ``python -m benchmarks.experiments.NAME``) from
the repository root; results and the machines they came from are in ``benchmarks/RESULTS.md``.
"""
