"""The JSON API of the publisher (blueprint ``/v1``). Views stay thin: services own the rules."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, url_for

from raregen.errors import PayloadTooLarge
from raregen.extensions import limiter
from raregen.publish import intake, records
from raregen.publish.jobs import get_job_view

bp = Blueprint("publish_api", __name__, url_prefix="/v1")


def _publish_limit() -> str:
    return str(current_app.config["PUBLISH_RATE_LIMIT"])


@bp.post("/publish")
@limiter.limit(_publish_limit)
def publish():  # type: ignore[no-untyped-def]
    """Contract v1 (DESIGN.md §2): 202 for a new job, 200 for an exact resubmission."""
    raw = request.get_data(cache=False)
    if len(raw) >= current_app.config["MAX_CONTENT_LENGTH"]:
        # a chunked body is cut at the limit by the WSGI layer instead of refused: refuse it
        raise PayloadTooLarge("The request body is larger than allowed.")
    body = intake.parse_body(raw, request.content_type)
    accepted = intake.accept(body)
    status_url = url_for("publish_api.job_status", job_id=accepted.job_id)
    payload = {"jobId": accepted.job_id, "status": accepted.status, "statusUrl": status_url}
    return jsonify(payload), (202 if accepted.created else 200)


@bp.get("/jobs/<job_id>")
def job_status(job_id: str):  # type: ignore[no-untyped-def]
    """The job as DESIGN.md §2 lists it; read from the database only."""
    return jsonify(get_job_view(job_id))


@bp.get("/records/<txid>")
def record(txid: str):  # type: ignore[no-untyped-def]
    """The records of transaction ``txid`` read from the chain, each with its verification."""
    return jsonify(records.read_records(txid))
