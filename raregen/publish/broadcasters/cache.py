"""A remembered answer with its age (a backend's fee policy), for the backends."""

from __future__ import annotations

from typing import Any


class CachedValue:
    """One remembered answer (a backend's fee policy) and when it was stored. Times are
    ``time.monotonic`` seconds passed in by the caller, so the age counts from when the
    question was asked."""

    def __init__(self) -> None:
        self._entry: tuple[float, Any] | None = None

    def fresh(self, now: float, max_age: float) -> bool:
        """True when a value was stored less than ``max_age`` seconds before ``now``."""
        return self._entry is not None and now - self._entry[0] < max_age

    @property
    def value(self) -> Any:
        """The stored value (None if nothing was stored)."""
        return self._entry[1] if self._entry is not None else None

    def store(self, now: float, value: Any) -> None:
        """Keep ``value``, stored at ``now``."""
        self._entry = (now, value)
