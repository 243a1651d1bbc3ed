"""Worker threads for decoding and rendering videos: results in order, a bounded number ahead.

Threads, not processes. The work happens in FFmpeg, Pillow's encoders and whole-array numpy
operations, which release the GIL: on a 2-core box two threads decode 1.5 times and render 1.7
times as fast as one (`benchmarks.video_workers`, RESULTS §14). A process forked from one that
runs threads (torch's intra-op pool, FFmpeg's decoder threads, pyarrow's pool) inherits their
locks in whatever state the fork caught them and can wait on one forever; our CI once hung for
over an hour decoding videos in `datasets`' forked pool. Spawned processes are safe but import for
seconds each, copy every result between processes, and need the ``if __name__ == "__main__":``
guard in the caller's script.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_in_threads(
    function: Callable[[Item], Result], items: Iterable[Item], num_workers: int
) -> Iterator[Result]:
    """``function(item)`` for each item, computed by ``num_workers`` threads, in the items' order.

    At most ``2 * num_workers`` items are taken ahead of the results handed out, so large results
    (a decoded video) never pile up in memory however long ``items`` is. A call's error is raised
    here, and the calls not yet started are cancelled. One worker runs every call in this thread.
    """
    if num_workers == 1:
        yield from map(function, items)
        return
    window = 2 * num_workers
    pending: deque[Future[Result]] = deque()
    with ThreadPoolExecutor(num_workers) as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) == window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
