"""The JSON API of the publisher (blueprint ``/v1``). Views stay thin: services own the rules."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from raregen.errors import PayloadTooLarge
from raregen.publish import intake, records
from raregen.publish.jobs import get_job_view
from raregen.web import ratelimit

bp = Blueprint("publish_api", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)

#: The rate-limit scope (bucket name) of ``POST /v1/publish``: the endpoint, as every view's
#: own limit is named (:func:`raregen.web.ratelimit.limit`).
_PUBLISH_SCOPE = "publish_api.publish"


def _count_publish() -> None:
    """Count this request against ``PUBLISH_RATE_LIMIT`` per client IP.

    One call of the app's limiter (:mod:`raregen.web.ratelimit`: ``RATELIMIT_STORAGE_URI``,
    Redis shared by every web worker; fixed windows): one Redis round trip, with no per-request
    resolution of decorators. ``RATELIMIT_ENABLED=0`` turns it off.

    Raises:
        RateLimited: 429 ``RATE_LIMITED``, ``retry_after`` the seconds until the window
            resets (read from the storage on this path only).
        redis.RedisError: the storage is unreachable (``raregen.web.errors``: 503).
    """
    ratelimit.count(
        str(current_app.config["PUBLISH_RATE_LIMIT"]), ratelimit.client_ip(), _PUBLISH_SCOPE
    )


@bp.post("/publish")
def publish() -> ResponseReturnValue:
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
    payload: dict[str, Any] = {
        "jobId": accepted.job_id,
        "status": accepted.status,
        "statusUrl": status_url,
    }
    receipt = accepted.receipt_object()
    if receipt:  # the signed acceptance receipt (docs/PROOFS.md)
        payload["receipt"] = receipt
    return jsonify(payload), (202 if accepted.created else 200)


@bp.get("/jobs/<job_id>")
def job_status(job_id: str) -> ResponseReturnValue:
    """The job as docs/PROTOCOL.md §2 lists it; read from the database only."""
    return jsonify(get_job_view(job_id))


@bp.get("/records/<txid>")
def record(txid: str) -> ResponseReturnValue:
    """The records of transaction ``txid`` read from the chain, each with its verification."""
    return jsonify(records.read_records(txid))
