"""The wallet's JSON API for the browser (blueprint ``/wallet/api``; docs/WALLET_API.md).

Every endpoint needs a signed-in session (401 ``AUTH_REQUIRED``); every non-GET call needs
the CSRF token in the ``X-CSRFToken`` header (400 ``CSRF_FAILED``). Errors have the shape of
docs/PROTOCOL.md §2. Views stay thin: services own the rules.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue

import raregen.signing as signing
from raregen.errors import RequestError, UnsupportedMediaType
from raregen.wallet import backup, forward, keyreg, overview
from raregen.wallet.accounts import account_ref
from raregen.wallet.session import api_login_required, current_account
from raregen.web import ratelimit

bp = Blueprint("wallet_api", __name__, url_prefix="/wallet/api")


@bp.after_request
def _no_store(resp: Response) -> Response:
    # account facts and backup ciphertext: never kept by a shared cache
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _account_id() -> int:
    account = current_account()
    assert account is not None  # api_login_required ran first
    return account.id


def _json_body() -> Any:
    mime = (request.content_type or "").split(";")[0].strip().lower()
    if mime != "application/json":
        raise UnsupportedMediaType("Send the request as application/json.")
    try:
        text = request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("The body is not UTF-8.", code="MALFORMED_JSON") from None
    return signing.loads_strict(text, field=None)


def _answer(answer: forward.Answer, extra: dict[str, Any] | None = None) -> Response:
    body = dict(answer.body)
    if answer.ok and extra:
        body.update(extra)
    resp = jsonify(body)
    resp.status_code = answer.status
    for name, value in answer.headers.items():
        resp.headers[name] = value
    return resp


def _publish_limit() -> str:
    return str(current_app.config["PUBLISH_RATE_LIMIT"])


def _limit_key() -> str:
    account = current_account()
    return f"acct:{account.id}" if account is not None else (request.remote_addr or "unknown")


@bp.get("/me")
@api_login_required
def me() -> ResponseReturnValue:
    """The account: email, plan, spendable credits, registered keys, backup state."""
    account = current_account()
    assert account is not None
    return jsonify(overview.account_view(account))


@bp.post("/challenge")
@api_login_required
def challenge() -> ResponseReturnValue:
    """A single-use challenge (64 hex, 300 s) for the key-registration proof."""
    return jsonify(keyreg.issue_challenge(_account_id()))


@bp.post("/keys")
@api_login_required
def register_keys() -> ResponseReturnValue:
    """Verify the proofs of possession, then register the keys with the publisher.

    A body that cannot be a proof (shape, challenge form, encodings) is refused before the
    challenge is spent; once the form is right the challenge is spent, whatever follows.
    """
    value, entries = keyreg.parse_keys(_json_body())
    decoded = keyreg.decode_proofs(entries)
    account_id = _account_id()
    keyreg.consume_challenge(account_id, value)
    proofs = keyreg.verify_proofs(value, decoded)
    return _answer(forward.publisher().register_keys(account_ref(account_id), proofs))


@bp.put("/backup")
@api_login_required
def put_backup() -> ResponseReturnValue:
    """Store a new version of the encrypted backup."""
    version = backup.store(_account_id(), _json_body())
    return jsonify({"version": version})


@bp.get("/backup")
@api_login_required
def get_backup() -> ResponseReturnValue:
    """The newest backup (404 ``NOT_FOUND`` without one)."""
    return jsonify(backup.get(_account_id()))


@bp.get("/backup/<int:version>")
@api_login_required
def get_backup_version(version: int) -> ResponseReturnValue:
    """One version of the backup (404 ``NOT_FOUND`` if it does not exist)."""
    return jsonify(backup.get(_account_id(), version))


@bp.get("/backup/versions")
@api_login_required
def backup_versions() -> ResponseReturnValue:
    """Every version, newest first, without ciphertext."""
    return jsonify({"versions": backup.versions(_account_id())})


@bp.post("/publish")
@api_login_required
@ratelimit.limit(_publish_limit, _limit_key)
def publish() -> ResponseReturnValue:
    """Hand a v1 body signed in the browser to the publisher, for this account's key."""
    answer = forward.publisher().publish(
        account_ref(_account_id()), request.get_data(cache=False), request.content_type
    )
    job_id = answer.body.get("jobId")
    extra = (
        {"panelUrl": overview.PANEL_URL.format(job_id=job_id)} if isinstance(job_id, str) else None
    )
    return _answer(answer, extra)


def _page_args() -> tuple[int, int]:
    try:
        page = int(request.args.get("page", 1))
        per_page = int(request.args.get("perPage", overview.PER_PAGE_DEFAULT))
    except ValueError:
        raise RequestError("page and perPage are integers.", code="MALFORMED_JSON") from None
    return page, per_page


@bp.get("/jobs")
@api_login_required
def jobs() -> ResponseReturnValue:
    """The account's publish jobs, newest first, paginated (``page``, ``perPage`` <= 100)."""
    account = current_account()
    assert account is not None
    page, per_page = _page_args()
    return jsonify(overview.jobs_page(account, page, per_page))
