"""The request being run: its deadline and whether its caller is still there.

A context variable, so each hotplugd worker thread has its own; the
in-process path sets one too. Code that waits (locks) bounds the wait by
``time_left()``; code about to report success asks ``caller_gone()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

DEFAULT_BUDGET = 30.0  # a run nobody gave a deadline: still well before libxl's 40 s kill


class Request:
    """A deadline (``time.monotonic()`` seconds), a test for a caller that has gone, and what the server
    keeps warm for its requests (*warm*: hotplugd's nft contexts; None in-process)."""

    def __init__(self, deadline: float, caller_gone: Callable[[], bool] | None = None,
                 warm: object | None = None) -> None:
        self.deadline = deadline
        self._caller_gone = caller_gone
        self.warm = warm

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def caller_gone(self) -> bool:
        return self._caller_gone is not None and self._caller_gone()


_current: ContextVar[Request | None] = ContextVar("xenscripts_request", default=None)


def current() -> Request:
    """The request this thread is running (a fresh default one when none was set)."""
    return _current.get() or Request(time.monotonic() + DEFAULT_BUDGET)


@contextmanager
def serving(request: Request) -> Iterator[Request]:
    """Make *request* the current one for the ``with`` body."""
    token = _current.set(request)
    try:
        yield request
    finally:
        _current.reset(token)
