"""Rate limits: fixed-window counters in the `limits` package's storage, one per app.

Every limit of RareGen goes through here: ``POST /v1/publish`` (:mod:`raregen.publish.api`),
the wallet's publish call and the webhook commands (:func:`limit`), and the sign-in limits
counted on an email address or an IP (:mod:`raregen.wallet.limits`, :func:`hit`).

The storage is ``RATELIMIT_STORAGE_URI`` (default ``REDIS_URL``: every web worker and every
process shares the counters; ``memory://`` only for tests that make no request), built with
``limits.storage.storage_from_string`` and the options ``RATELIMIT_STORAGE_OPTIONS`` (e.g. a
Redis ``key_prefix``). A limit is a `limits` string (``"6000 per minute"``), counted with
``limits.strategies.FixedWindowRateLimiter``: one atomic increment per request (on Redis one
round trip), never a read then a write. A counter's key is ``[RATELIMIT_KEY_PREFIX,] <what is
counted>..., <scope>``; the scope of a view's limit is its endpoint name (``publish_api.publish``),
the same keys Flask-Limiter used before this module, so counters carry over a deploy.

Settings (app config, read per request): ``RATELIMIT_ENABLED`` (off: nothing is counted),
``RATELIMIT_HEADERS_ENABLED`` (the ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` and
``Retry-After`` headers on every answer of a limited view, docs/API.md; two more storage round
trips per request, so off by default).

A refused request raises :class:`raregen.errors.RateLimited` (429 ``RATE_LIMITED``, docs/API.md)
with ``retry_after`` the seconds until the window frees a slot. A storage that cannot be reached
raises the storage client's error (``redis.ConnectionError``: 503 ``UNAVAILABLE``,
:mod:`raregen.web.errors`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, Response, after_this_request, current_app, request
from limits import RateLimitItem, parse
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from raregen.errors import RateLimited

F = TypeVar("F", bound=Callable[..., Any])

#: The key of the app's :class:`Limiter` in ``app.extensions``.
EXTENSION = "raregen.ratelimit"
#: The answer of a refused request (docs/API.md).
TOO_MANY = "Too many requests; slow down and retry later."


@functools.lru_cache(maxsize=32)
def parse_limit(text: str) -> RateLimitItem:
    """The first limit of ``text`` in `limits` notation (``"5 per 15 minutes"``), parsed once.

    Raises:
        ValueError: ``text`` is not a rate limit.
    """
    return parse(text)


@dataclass(frozen=True)
class Window:
    """Where a counter stands after a hit.

    Attributes:
        allowed: False when the hit went over the limit (the request is refused).
        limit: the limit counted.
        key: the counter's identifiers, key prefix included.
    """

    allowed: bool
    limit: RateLimitItem
    key: tuple[str, ...]


class Limiter:
    """The counters of one app: a `limits` storage and a fixed-window strategy on it.

    Args:
        storage_uri: a `limits` storage URI (``redis://host:6379/0``, ``memory://``).
        key_prefix: put before every counter's identifiers (``RATELIMIT_KEY_PREFIX``).
        storage_options: keyword arguments of the storage (``RATELIMIT_STORAGE_OPTIONS``).

    Raises:
        limits.errors.ConfigurationError: an unknown storage scheme, or its client missing.
        ValueError: an asynchronous storage (``async+redis://``).
    """

    def __init__(
        self,
        storage_uri: str,
        *,
        key_prefix: str = "",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        storage = storage_from_string(storage_uri, **(storage_options or {}))
        if not isinstance(storage, Storage):  # an ``async+...`` URI: not for a WSGI app
            raise ValueError(f"not a synchronous rate-limit storage: {storage_uri.split(':')[0]}")
        self.storage = storage
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.key_prefix = key_prefix

    def hit(self, limit: str, *identifiers: str) -> Window:
        """Count one request against ``limit`` for ``identifiers`` (one storage round trip).

        Args:
            limit: a limit in `limits` notation.
            identifiers: what is counted (a client IP, an account, an address) and the scope.

        Raises:
            ValueError: ``limit`` is not a rate limit.
            redis.RedisError: the storage is unreachable (Redis storages).
        """
        item = parse_limit(limit)
        key = (self.key_prefix, *identifiers) if self.key_prefix else tuple(identifiers)
        return Window(self.strategy.hit(item, *key), item, key)

    def stats(self, window: Window) -> tuple[int, float]:
        """``(remaining, reset)`` of ``window``'s counter now: requests left in the window and
        the Unix time (seconds) it resets at. Two storage round trips."""
        stats = self.strategy.get_window_stats(window.limit, *window.key)
        return stats.remaining, stats.reset_time

    def retry_after(self, window: Window) -> int:
        """Whole seconds (at least 1) until ``window``'s counter resets."""
        return max(1, math.ceil(self.stats(window)[1] - time.time()))

    def reset(self) -> None:
        """Drop every counter of this storage (for a Redis storage: the keys under its
        ``key_prefix``). For tests and operators; not on any request path."""
        self.storage.reset()


def init_app(app: Flask) -> Limiter:
    """Build ``app``'s :class:`Limiter` from its config and keep it in ``app.extensions``.

    Reads ``RATELIMIT_STORAGE_URI`` (required; :func:`raregen.create_app` defaults it to
    ``REDIS_URL``), ``RATELIMIT_KEY_PREFIX`` and ``RATELIMIT_STORAGE_OPTIONS`` (optional).
    No connection is opened here.
    """
    limiter = Limiter(
        str(app.config["RATELIMIT_STORAGE_URI"]),
        key_prefix=str(app.config.get("RATELIMIT_KEY_PREFIX") or ""),
        storage_options=dict(app.config.get("RATELIMIT_STORAGE_OPTIONS") or {}),
    )
    app.extensions[EXTENSION] = limiter
    return limiter


def get_limiter(app: Flask | None = None) -> Limiter:
    """The :class:`Limiter` of ``app`` (default: the current app).

    Raises:
        KeyError: the app was not set up with :func:`init_app`.
    """
    return (app or current_app).extensions[EXTENSION]  # type: ignore[no-any-return]


def enabled() -> bool:
    """True unless the current app's ``RATELIMIT_ENABLED`` is off."""
    return bool(current_app.config.get("RATELIMIT_ENABLED", True))


def count(limit: str, *identifiers: str, message: str = TOO_MANY) -> None:
    """Count this request against ``limit`` for ``identifiers``; refuse it once spent.

    With ``RATELIMIT_HEADERS_ENABLED`` the answer to this request carries the counter's
    ``X-RateLimit-*`` headers (written after the view, from the storage).

    Args:
        limit: a limit in `limits` notation (``PUBLISH_RATE_LIMIT``).
        identifiers: what is counted and the scope, e.g. ``(client_ip, "publish_api.publish")``.
        message: the sentence of the 429 answer.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``; ``retry_after`` the seconds until the window resets.
        redis.RedisError: the storage is unreachable (503 ``UNAVAILABLE``).
    """
    if not enabled():
        return
    limiter = get_limiter()
    window = limiter.hit(limit, *identifiers)
    if current_app.config.get("RATELIMIT_HEADERS_ENABLED"):
        after_this_request(functools.partial(_write_headers, limiter, window))
    if not window.allowed:
        raise RateLimited(message, retry_after=limiter.retry_after(window))


def _write_headers(limiter: Limiter, window: Window, response: Response) -> Response:
    """The counter's headers, as Flask-Limiter wrote them: the limit's amount, the requests
    left, the reset time (Unix seconds) and ``Retry-After`` (seconds to the reset; a 429's own
    ``Retry-After`` is kept)."""
    remaining, reset = limiter.stats(window)
    reset_at = int(reset + 1)
    response.headers["X-RateLimit-Limit"] = str(window.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    response.headers.setdefault("Retry-After", str(max(0, int(reset_at - time.time()))))
    return response


def client_ip() -> str:
    """The client address the limits count (``request.remote_addr``; behind
    ``TRUSTED_PROXIES`` the one werkzeug's ProxyFix took from ``X-Forwarded-For``)."""
    return request.remote_addr or "unknown"


def limit(limit_of: Callable[[], str], key_of: Callable[[], str] = client_ip) -> Callable[[F], F]:
    """Decorate a view: each call counts against ``limit_of()`` for ``key_of()`` in the scope
    of the view's endpoint name, before the view runs (:func:`count`).

    Args:
        limit_of: returns the limit (read per request, e.g. from the app config).
        key_of: returns what is counted (default: the client IP).
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            count(limit_of(), key_of(), str(request.endpoint))
            return view(*args, **kwargs)

        return limited  # type: ignore[return-value]

    return decorate
