"""Worker threads: results in the items' order, a bounded number of items taken ahead, errors raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from datasets_scripts.workers import map_in_threads


@pytest.mark.parametrize("num_workers", [1, 3])
def test_results_come_in_order_with_at_most_two_items_per_worker_taken_ahead(num_workers: int) -> None:
    taken = 0
    threads = set()

    def items() -> Iterator[int]:
        nonlocal taken
        for value in range(20):
            taken += 1
            yield value

    def square(value: int) -> int:
        threads.add(threading.get_ident())
        return value * value

    handed_out = []
    for result in map_in_threads(square, items(), num_workers):
        handed_out.append(result)
        assert taken - len(handed_out) < 2 * num_workers

    assert handed_out == [value * value for value in range(20)]
    assert (threads == {threading.get_ident()}) == (num_workers == 1)


def test_an_error_is_raised_in_order_and_no_item_past_the_window_is_started() -> None:
    started = []

    def fail_on_two(value: int) -> int:
        started.append(value)
        if value == 2:
            raise ValueError("two")
        return value

    handed_out = []
    with pytest.raises(ValueError, match="two"):
        handed_out.extend(map_in_threads(fail_on_two, range(100), num_workers=2))
    assert handed_out == [0, 1]
    assert max(started) <= 2 + 2 * 2 - 1  # submitted: the results handed out and the window after them
