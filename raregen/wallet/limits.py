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

    Args:
        checks: limits in Flask-Limiter notation (``"5 per 15 minutes"``), each with a
            namespace (``"otp-email"``) and the identity counted (the address, the IP).
        message: the sentence shown to the user when refused.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``; ``retry_after`` is the number of seconds until
            the longest-spent window frees a slot. Nothing is counted then.
    """
    if not current_app.config.get("RATELIMIT_ENABLED", True) or not limiter.enabled:
        return
    strategy = limiter.limiter
    parsed = [(parse(limit), namespace, identity) for limit, namespace, identity in checks]
    spent = [(item, ns, ident) for item, ns, ident in parsed if not strategy.test(item, ns, ident)]
    if spent:
        now = time.time()
        wait = max(
            strategy.get_window_stats(item, ns, ident).reset_time - now for item, ns, ident in spent
        )
        raise RateLimited(message, retry_after=max(1, math.ceil(wait)))
    for item, ns, ident in parsed:
        strategy.hit(item, ns, ident)
