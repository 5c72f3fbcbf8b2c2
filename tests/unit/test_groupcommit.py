"""Group commit: concurrent submissions share rounds, each gets its own result, a failure stays its own."""

from __future__ import annotations

import threading
import time

import pytest

from xenscripts.core.groupcommit import Group


def test_alone_a_submission_runs_at_once_in_a_round_of_one():
    g: Group = Group()
    assert g.submit(3, lambda items: [i * 2 for i in items]) == 6
    assert (g.rounds, g.items) == (1, 1)


def test_submissions_that_arrive_during_a_round_go_together_in_the_next():
    g: Group = Group()
    rounds: list[list[int]] = []
    first_running = threading.Event()

    def run_all(items: list[int]) -> list[int]:
        rounds.append(items)
        if len(rounds) == 1:
            first_running.set()
            time.sleep(0.3)  # the others queue up meanwhile
        return [i + 100 for i in items]

    results: dict[int, int] = {}
    first = threading.Thread(target=lambda: results.update({0: g.submit(0, run_all)}))
    first.start()
    assert first_running.wait(5)
    others = [threading.Thread(target=lambda i=i: results.update({i: g.submit(i, run_all)})) for i in range(1, 9)]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(10)
    assert results == {i: i + 100 for i in range(9)}
    assert rounds[0] == [0] and sorted(rounds[1]) == list(range(1, 9)), rounds  # 9 items, 2 rounds


def test_each_caller_gets_its_own_exception_and_the_others_their_results():
    g: Group = Group()

    def run_all(items: list[int]) -> list:
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    assert g.submit(1, run_all) == 1
    with pytest.raises(ValueError, match="bad -1"):
        g.submit(-1, run_all)


def test_a_round_that_raises_fails_every_caller_of_it_and_the_group_goes_on():
    g: Group = Group()

    def broken(items: list[int]) -> list[int]:
        raise RuntimeError("executor crashed")

    with pytest.raises(RuntimeError, match="executor crashed"):
        g.submit(1, broken)
    assert g.submit(2, lambda items: items) == 2
    assert g.idle()
