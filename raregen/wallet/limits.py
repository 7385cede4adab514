"""Rate limits counted on values a decorator cannot see (an email address in a form).

Uses the storage and strategy of the app's Flask-Limiter (``raregen.extensions.limiter``:
Redis in production, ``memory://`` in tests), so limits hold across processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from flask import current_app
from limits import parse

from raregen.errors import RateLimited
from raregen.extensions import limiter


def enforce(checks: Sequence[tuple[str, str, str]], message: str) -> None:
    """Count one request against each ``(limit, namespace, identity)``; refuse if any is spent.

    Each limit is taken with one atomic ``hit`` of the limiter's strategy (on Redis one
    increment that also returns the new count), never a read then a write: however many
    requests arrive together, at most the limit's amount of them are let through in a window.
    The limits are counted in the order given and counting stops at the first one refused:
    that request keeps its place in the limits before it (it was made), and the ones after
    it are not counted. Put the limit of the requester (the IP) before the limit of what is
    asked for (the address), so that a refused requester cannot spend anyone else's slots.

    Args:
        checks: limits in Flask-Limiter notation (``"5 per 15 minutes"``), each with a
            namespace (``"otp-email"``) and the identity counted (the address, the IP).
        message: the sentence shown to the user when refused.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``; ``retry_after`` is the number of seconds until
            the refusing limit's window frees a slot.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True) or not limiter.enabled:
        return
    strategy = limiter.limiter
    for limit, namespace, identity in checks:
        item = parse(limit)
        if not strategy.hit(item, namespace, identity):
            reset = strategy.get_window_stats(item, namespace, identity).reset_time
            raise RateLimited(message, retry_after=max(1, math.ceil(reset - time.time())))
