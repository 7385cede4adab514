"""Internal endpoints of the publisher for the wallet (blueprint ``/internal``).

Used when the wallet runs as its own process (``ROLE=wallet``) and talks to the publisher
over HTTP. Every call needs ``Authorization: Bearer <SERVICE_TOKEN>`` (compared in constant
time); without a configured token every call is refused. CSRF does not apply (no cookies).

* ``POST /internal/keys`` ``{"accountRef": "acct:<id>", "keys": [{"purpose", "pubkey"}]}``
  -> 200 ``{"registered": [{"purpose", "pubkey"}]}``; 409 ``KEY_TAKEN``. The wallet has
  verified the proof of possession before calling.
* ``POST /internal/publish`` with header ``X-RareGen-Account: acct:<id>`` and the v1 body
  unchanged -> exactly what ``POST /v1/publish`` answers, plus 403 ``KEY_NOT_REGISTERED`` when
  the key is not that account's. Not rate limited per IP (every call comes from the wallet).
"""

from __future__ import annotations

import hmac

from flask import Blueprint, current_app, jsonify, request, url_for
from flask.typing import ResponseReturnValue

from raregen.account_link import parse_account_ref
from raregen.errors import AuthRequired, RequestError
from raregen.publish import account_keys, intake

bp = Blueprint("publish_internal", __name__, url_prefix="/internal")

ACCOUNT_HEADER = "X-RareGen-Account"


@bp.before_request
def _require_service_token() -> None:
    expected = current_app.config.get("SERVICE_TOKEN") or ""
    header = request.headers.get("Authorization", "")
    given = header[7:] if header[:7].lower() == "bearer " else ""
    # compare_digest on bytes: constant time whatever the inputs
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthRequired("A valid service token is required.")


def _account_ref(value: object) -> str:
    if not isinstance(value, str) or parse_account_ref(value) is None:
        raise RequestError(
            "accountRef must read acct:<id>.", code="MISSING_FIELD", field="accountRef"
        )
    return value


@bp.post("/keys")
def register_keys() -> ResponseReturnValue:
    """Register an account's keys (all or none)."""
    body = intake.parse_body(request.get_data(cache=False), request.content_type)
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise RequestError("Send accountRef and keys.", code="MALFORMED_JSON")
    ref = _account_ref(body.get("accountRef"))
    pairs = []
    for entry in body["keys"]:
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("purpose", "pubkey")
        ):
            raise RequestError("Each key needs purpose and pubkey.", code="MALFORMED_JSON")
        pairs.append((entry["purpose"], entry["pubkey"]))
    registered = account_keys.register_account_keys(ref, pairs)
    return jsonify({"registered": registered})


@bp.post("/publish")
def publish() -> ResponseReturnValue:
    """Accept a v1 body on behalf of the account named in ``X-RareGen-Account``."""
    ref = _account_ref(request.headers.get(ACCOUNT_HEADER))
    accepted = account_keys.accept_for_account(
        ref, request.get_data(cache=False), request.content_type
    )
    status_url = url_for("publish_api.job_status", job_id=accepted.job_id)
    body, status = account_keys.accepted_view(accepted, status_url)
    return jsonify(body), status
