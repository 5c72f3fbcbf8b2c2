"""Group commit: what concurrent requests submit together is done in one go, each still getting its own result.

A caller submits an item and waits. If nobody is working, it becomes the
leader: it takes every item queued so far (its own among them), runs them
in one call, and hands each caller its result; callers that arrive meanwhile
queue up for the next round, which one of them leads. Alone, a caller runs
its own item at once (a group of one); under a burst, the group grows with
the load. The leader runs the work in its own thread (so in its own network
namespace: groups are keyed by namespace).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
RunAll = Callable[[list[T]], list[R | BaseException]]  # one result (or exception) per item, in order


class _Slot(Generic[T, R]):
    __slots__ = ("done", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | BaseException | None = None
        self.done = False


class Group(Generic[T, R]):
    """Items submitted while a round is running go together in the next round."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[_Slot] = []
        self._busy = False
        self.rounds = 0  # how many calls of run_all (for benchmarks and tests)
        self.items = 0

    def submit(self, item: T, run_all: RunAll) -> R:
        """Run *item* (in a round with whatever else is queued); its result, or its exception raised.

        A leader runs its round with its own *run_all* (its own executor: a libnftables context
        is not shared between threads)."""
        slot: _Slot = _Slot(item)
        with self._cond:
            self._queue.append(slot)
            while not slot.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True
                batch, self._queue = self._queue, []
                self._cond.release()
                try:
                    results = _run(run_all, [s.item for s in batch])
                finally:
                    self._cond.acquire()
                for s, result in zip(batch, results, strict=True):
                    s.result, s.done = result, True
                self._busy = False
                self.rounds += 1
                self.items += len(batch)
                self._cond.notify_all()
        if isinstance(slot.result, BaseException):
            raise slot.result
        return slot.result  # type: ignore[return-value]

    def idle(self) -> bool:
        with self._cond:
            return not self._busy and not self._queue


def _run(run_all: RunAll, items: list) -> list:
    try:
        results = run_all(items)
    except BaseException as e:  # noqa: BLE001 - every caller of the round gets it
        return [e] * len(items)
    if len(results) != len(items):
        return [RuntimeError("group commit: one result per item expected")] * len(items)
    return results


_groups: dict[Hashable, Group] = {}
_groups_lock = threading.Lock()


def group(key: Hashable) -> Group:
    """The group for *key*; idle groups are dropped as new ones come."""
    with _groups_lock:
        found = _groups.get(key)
        if found is None:
            if len(_groups) >= 64:  # namespaces come and go: forget the idle groups of gone ones
                for stale in [k for k, g in _groups.items() if g.idle()]:
                    del _groups[stale]
            found = _groups[key] = Group()
        return found


def netns_key() -> tuple[int, int]:
    """This thread's network namespace (hotplugd threads join their caller's)."""
    st = os.stat("/proc/thread-self/ns/net")
    return st.st_dev, st.st_ino
