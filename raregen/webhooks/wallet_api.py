"""The wallet's webhook JSON API (blueprint ``/wallet/api/webhooks``; docs/WALLET_API.md): the
same operations as the signed commands of key owners, for the signed-in account. Every call
needs the session (401 ``AUTH_REQUIRED``); non-GET calls the CSRF token in ``X-CSRFToken``
(400 ``CSRF_FAILED``). Views stay thin: :mod:`raregen.webhooks.service` owns the rules.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

import raregen.signing as signing
from raregen.errors import RequestError, UnsupportedMediaType
from raregen.wallet.accounts import account_ref
from raregen.wallet.session import api_login_required, current_account
from raregen.webhooks import service

bp = Blueprint("webhook_wallet_api", __name__, url_prefix="/wallet/api/webhooks")

#: the members of a create body (docs/WALLET_API.md)
_CREATE_MEMBERS = ("url", "description")


@bp.after_request
def _no_store(resp: Response) -> Response:
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _owner() -> service.Owner:
    account = current_account()
    assert account is not None  # api_login_required ran first
    return service.Owner(account_ref=account_ref(account.id))


def _body() -> dict[str, Any]:
    mime = (request.content_type or "").split(";")[0].strip().lower()
    if mime != "application/json":
        raise UnsupportedMediaType("Send the request as application/json.")
    try:
        text = request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The body is not UTF-8.", code="MALFORMED_JSON") from None
    body = signing.loads_strict(text, field=None)
    if not isinstance(body, dict):
        raise RequestError("The body must be a JSON object.", code="MALFORMED_JSON")
    return body


@bp.get("")
@api_login_required
def list_endpoints() -> ResponseReturnValue:
    """The account's endpoints."""
    return jsonify({"endpoints": service.list_endpoints(_owner())})


@bp.post("")
@api_login_required
def create() -> ResponseReturnValue:
    """``{"url", "description"?}`` -> 201 with the endpoint and its secret (shown once).
    Any other member: 400 ``UNKNOWN_FIELD``."""
    body = _body()
    extra = sorted(str(name) for name in body if name not in _CREATE_MEMBERS)
    if extra:
        raise RequestError(
            f"unknown member {extra[0][:40]!r}; allowed: url, description",
            code="UNKNOWN_FIELD",
            field=extra[0][:40],
        )
    owner = _owner()
    view = service.create_endpoint(
        owner, body.get("url"), body.get("description"), actor=str(owner.account_ref)
    )
    return jsonify({"endpoint": view}), 201


@bp.delete("/<int:endpoint_id>")
@api_login_required
def remove(endpoint_id: int) -> ResponseReturnValue:
    owner = _owner()
    service.remove_endpoint(owner, endpoint_id, actor=str(owner.account_ref))
    return jsonify({"removed": endpoint_id})


@bp.post("/<int:endpoint_id>/enable")
@api_login_required
def enable(endpoint_id: int) -> ResponseReturnValue:
    owner = _owner()
    return jsonify(
        {"endpoint": service.enable_endpoint(owner, endpoint_id, actor=str(owner.account_ref))}
    )


@bp.get("/deliveries")
@api_login_required
def deliveries() -> ResponseReturnValue:
    """``?endpoint=<id>&limit=<n>``: the latest events and their attempts."""
    endpoint = request.args.get("endpoint", type=int)
    limit = request.args.get("limit", default=50, type=int) or 50
    return jsonify({"deliveries": service.deliveries(_owner(), endpoint, limit=limit)})
