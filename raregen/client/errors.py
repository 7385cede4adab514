"""Errors of the RareGen client library (:mod:`raregen.client`).

Tree::

    RareGenError                 anything the client raises on purpose
    ├── APIError                 the server answered an error: code, status, message, field
    │   │                        (docs/API.md, Error codes)
    │   ├── RateLimited          429 RATE_LIMITED, with retry_after (seconds)
    │   └── Unavailable          503 UNAVAILABLE (and other 5xx), after the retries
    ├── TransportError           no answer: connection refused or reset, timeout, not JSON
    ├── JobFailed                the job ended ``failed`` (error_code: BROADCAST_REJECTED, ...)
    └── WaitTimeout              the job did not reach the wanted state in time

This module imports nothing but the standard library.
"""

from __future__ import annotations

from typing import Any


class RareGenError(Exception):
    """Base of every error the client raises."""


class APIError(RareGenError):
    """The server refused the request with ``{"error": {"code", "message", "field"}}``.

    Attributes:
        code: the stable error code (``NONCE_REUSED``, ``KEY_NOT_REGISTERED``, ...).
        status: the HTTP status.
        message: the server's sentence for people.
        field: the request member at fault, or None.
    """

    def __init__(self, code: str, status: int, message: str, field: str | None = None):
        self.code = code
        self.status = status
        self.message = message
        self.field = field
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}{where}: {message}")


class RateLimited(APIError):
    """429 ``RATE_LIMITED``; ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        field: str | None = None,
        retry_after: float = 1.0,
    ):
        super().__init__(code, status, message, field)
        self.retry_after = retry_after


class Unavailable(APIError):
    """A 5xx answer (``UNAVAILABLE``, or ``INTERNAL``) that persisted through the retries."""


class TransportError(RareGenError):
    """No usable answer: the connection failed or timed out, or the answer was not JSON."""


class JobFailed(RareGenError):
    """The job ended ``failed``; ``job`` is its last state (``error_code``, ``error_detail``)."""

    def __init__(self, job: Any):
        self.job = job
        self.error_code = job.error_code
        super().__init__(f"job {job.job_id} failed: {job.error_code}: {job.error_detail}")


class WaitTimeout(RareGenError):
    """The job did not reach the wanted state within the timeout; ``job`` is its last state."""

    def __init__(self, job: Any, until: str, timeout: float):
        self.job = job
        super().__init__(
            f"job {job.job_id} still {job.status} after {timeout:g} s (waiting for {until})"
        )
