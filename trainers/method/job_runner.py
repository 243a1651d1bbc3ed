"""Independent jobs (tiles of a similarity block, chunks of pairs) on a pool of CPU threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch


class JobRunner:
    """Runs independent jobs: on the CPU on ``workers`` threads, elsewhere in order.

    Each worker thread uses ONE intra-op thread: per-operation OpenMP parallelism stalls on
    every small operation of a tile when the cores are shared, threads over whole tiles do not.

    Args:
        device: Where the jobs compute; on any device but the CPU they run one after the other.
        workers: Number of threads on the CPU (1 or less: in order, in the calling thread).
    """

    def __init__(self, device: torch.device, workers: int):
        self.device = device
        self.workers = workers

    def run(self, jobs: Sequence[Callable[[], None]]) -> None:
        """Run ``jobs`` (each writes its own part of a shared result) and re-raise their errors."""
        if self.device.type != "cpu" or self.workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                job()
            return
        # torch.set_num_threads in a worker thread only sets that thread's OpenMP team size
        with ThreadPoolExecutor(self.workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()  # re-raises a worker's exception
