"""The JSON API of the publisher (blueprint ``/v1``). Views stay thin: services own the rules."""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

from flask import Blueprint, current_app, jsonify, request, url_for
from limits import RateLimitItem, parse

from raregen.errors import PayloadTooLarge, RateLimited
from raregen.extensions import _client_ip, limiter
from raregen.publish import intake, records
from raregen.publish.jobs import get_job_view

bp = Blueprint("publish_api", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)

#: The rate-limit scope (bucket name) of ``POST /v1/publish``: the endpoint, as Flask-Limiter
#: names a decorated view's own limit.
_PUBLISH_SCOPE = "publish_api.publish"


@lru_cache(maxsize=8)
def _parsed_limit(text: str) -> RateLimitItem:
    return parse(text)


def _count_publish() -> None:
    """Count this request against ``PUBLISH_RATE_LIMIT`` per client IP.

    The storage and strategy of the app's Flask-Limiter (``RATELIMIT_STORAGE_URI``, Redis:
    shared by every web worker; fixed windows), called directly: one Redis round trip, without
    the extension decorator's per-request limit resolution (about 0.08 ms of CPU per publish,
    in-process measurement). Same key (client IP), same count, same 429 as the decorator
    gave; ``RATELIMIT_ENABLED=0`` turns it off as before.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``, ``retry_after`` the seconds until the window
            resets (read from the storage on this path only).
        redis.RedisError: the storage is unreachable (``raregen.web.errors``: 503).
    """
    if not limiter.enabled or not limiter.initialized:
        return
    item = _parsed_limit(str(current_app.config["PUBLISH_RATE_LIMIT"]))
    prefix = limiter._key_prefix  # RATELIMIT_KEY_PREFIX, as the extension keys its limits
    args = [prefix, _client_ip(), _PUBLISH_SCOPE] if prefix else [_client_ip(), _PUBLISH_SCOPE]
    strategy = limiter.limiter
    allowed = strategy.hit(item, *args)
    if limiter._headers_enabled:
        # X-RateLimit-* headers (RATELIMIT_HEADERS_ENABLED): the extension's after_request
        # hook writes them from the request's current limit
        from flask_limiter import RequestLimit

        current = RequestLimit(limiter, item, args, not allowed, False)
        limiter.context.view_rate_limit = current
        limiter.context.view_rate_limits = [current]
    if not allowed:
        reset = strategy.get_window_stats(item, *args).reset_time
        raise RateLimited(
            "Too many requests; slow down and retry later.",
            retry_after=max(1, math.ceil(reset - time.time())),
        )


@bp.post("/publish")
def publish():  # type: ignore[no-untyped-def]
    """Contract v1 (docs/PROTOCOL.md §2): 202 for a new job, 200 for an exact resubmission."""
    _count_publish()
    raw = request.get_data(cache=False)
    if len(raw) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # a chunked body is cut at the limit by the WSGI layer instead of refused: refuse it
        raise PayloadTooLarge("The request body is larger than allowed.")
    body = intake.parse_body(raw, request.content_type)
    accepted = intake.accept(body, raw=raw)
    log.info(
        "publish accepted %s",
        accepted.job_id,
        extra={"job_id": accepted.job_id, "new_job": accepted.created},
    )
    status_url = url_for("publish_api.job_status", job_id=accepted.job_id)
    payload = {"jobId": accepted.job_id, "status": accepted.status, "statusUrl": status_url}
    receipt = accepted.receipt_object()
    if receipt:  # the signed acceptance receipt (docs/PROOFS.md)
        payload["receipt"] = receipt
    return jsonify(payload), (202 if accepted.created else 200)


@bp.get("/jobs/<job_id>")
def job_status(job_id: str):  # type: ignore[no-untyped-def]
    """The job as docs/PROTOCOL.md §2 lists it; read from the database only."""
    return jsonify(get_job_view(job_id))


@bp.get("/records/<txid>")
def record(txid: str):  # type: ignore[no-untyped-def]
    """The records of transaction ``txid`` read from the chain, each with its verification."""
    return jsonify(records.read_records(txid))
