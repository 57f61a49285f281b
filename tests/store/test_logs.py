"""Log caps: a build keeps lines up to PF_MAX_LOGS_PER_BUILD / PF_MAX_LOG_SIZE, then one marker."""

from __future__ import annotations

import threading

from pf.store import LogBudget
from pf.store.logs import cap_marker


def test_lines_past_the_line_cap_become_one_marker_then_nothing() -> None:
    budget = LogBudget(max_lines=3, max_bytes=1 << 20)
    admitted = [budget.admit(f"line {i}") for i in range(10)]
    marker = cap_marker(3, 1 << 20)
    assert admitted[:4] == [(0, "line 0"), (1, "line 1"), (2, "line 2"), (3, marker)]
    assert admitted[4:] == [None] * 6
    assert budget.exhausted


def test_the_byte_cap_counts_utf8_bytes_and_newlines() -> None:
    budget = LogBudget(max_lines=100, max_bytes=10)
    assert budget.admit("ééé") == (0, "ééé")  # 6 bytes + newline
    admitted = budget.admit("abc")  # 4 more would make 11
    assert admitted is not None and admitted[1].startswith("[log truncated")
    assert budget.admit("x") is None


def test_concurrent_streams_get_distinct_sequence_numbers() -> None:
    budget = LogBudget(max_lines=10_000, max_bytes=1 << 20)
    seqs: list[int] = []
    lock = threading.Lock()

    def feed() -> None:
        for _ in range(1000):
            got = budget.admit("x")
            assert got is not None
            with lock:
                seqs.append(got[0])

    threads = [threading.Thread(target=feed) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seqs) == list(range(4000))
