"""Rate limits counted on values a decorator cannot see (an email address in a form).

Counted by the app's limiter (:mod:`raregen.web.ratelimit`: Redis, shared by every process),
so limits hold across processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from raregen.errors import RateLimited
from raregen.web import ratelimit


def enforce(checks: Sequence[tuple[str, str, str]], message: str) -> None:
    """Count one request against each ``(limit, namespace, identity)``; refuse if any is spent.

    Each limit is taken with one atomic hit of the app's limiter
    (:meth:`raregen.web.ratelimit.Limiter.hit`; on Redis one increment that also returns the
    new count), never a read then a write: however many
    requests arrive together, at most the limit's amount of them are let through in a window.
    The limits are counted in the order given and counting stops at the first one refused:
    that request keeps its place in the limits before it (it was made), and the ones after
    it are not counted. Put the limit of the requester (the IP) before the limit of what is
    asked for (the address), so that a refused requester cannot spend anyone else's slots.

    Args:
        checks: limits in `limits` notation (``"5 per 15 minutes"``), each with a
            namespace (``"otp-email"``) and the identity counted (the address, the IP).
        message: the sentence shown to the user when refused.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``; ``retry_after`` is the number of seconds until
            the refusing limit's window frees a slot.
    """
    if not ratelimit.enabled():
        return
    limiter = ratelimit.get_limiter()
    for limit, namespace, identity in checks:
        window = limiter.hit(limit, namespace, identity)
        if not window.allowed:
            raise RateLimited(message, retry_after=limiter.retry_after(window))
