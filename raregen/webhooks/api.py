"""``POST /v1/webhooks``: the signed webhook commands of key owners
(:mod:`raregen.webhooks.commands`; docs/API.md "Webhooks"). Views stay thin."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from raregen.errors import PayloadTooLarge
from raregen.publish import intake
from raregen.web import ratelimit
from raregen.webhooks import commands

bp = Blueprint("webhooks_api", __name__, url_prefix="/v1")


def _limit() -> str:
    return str(current_app.config["PUBLISH_RATE_LIMIT"])


@bp.post("/webhooks")
@ratelimit.limit(_limit)
def command() -> ResponseReturnValue:
    """Run one signed command; 201 for ``webhooks.create``, 200 otherwise."""
    raw = request.get_data(cache=False)
    if len(raw) >= current_app.config["MAX_CONTENT_LENGTH"]:
        raise PayloadTooLarge("The request body is larger than allowed.")
    body = intake.parse_body(raw, request.content_type)
    answer, status = commands.run(body)
    resp = jsonify(answer)
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp
