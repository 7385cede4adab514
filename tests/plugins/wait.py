"""Waiting on a condition instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float, what: str = "the condition", every: float = 0.05
) -> T:
    """Call ``predicate`` every ``every`` seconds until it returns a true value; return it.

    Args:
        predicate: the condition; an exception it raises propagates.
        timeout: seconds to wait at most (monotonic clock).
        what: named in the failure message.
        every: seconds between two calls.

    Raises:
        AssertionError: ``predicate`` was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
