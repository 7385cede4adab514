"""The wallet's webhook settings page (blueprint ``webhook_pages``, sign-in required; forms
carry the CSRF token, checked by Flask-WTF on every POST).

* ``GET /wallet/webhooks``: the account's endpoints and their latest deliveries;
* ``POST /wallet/webhooks``: add an endpoint (the page then shows its secret, once);
* ``POST /wallet/webhooks/<id>/remove`` and ``/enable``.

Views stay thin: :mod:`raregen.webhooks.service` owns the rules.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from raregen.errors import RareGenError
from raregen.wallet import session
from raregen.wallet.accounts import account_ref
from raregen.webhooks import service

bp = Blueprint("webhook_pages", __name__)


def _owner() -> service.Owner:
    account = session.current_account()
    assert account is not None  # login_required ran first
    return service.Owner(account_ref=account_ref(account.id))


def _actor() -> str:
    return str(_owner().account_ref)


def _render(status: int = 200, **ctx: Any) -> Response:
    owner = _owner()
    html = render_template(
        "wallet/webhooks.html",
        endpoints=service.list_endpoints(owner),
        events=service.deliveries(owner, limit=20),
        **ctx,
    )
    return Response(html, status=status, mimetype="text/html")


@bp.get("/wallet/webhooks")
@session.login_required
def settings() -> Response:
    return _render()


@bp.post("/wallet/webhooks")
@session.login_required
def add() -> Response:
    url = request.form.get("url", "").strip()
    description = request.form.get("description", "").strip() or None
    try:
        created = service.create_endpoint(_owner(), url, description, actor=_actor())
    except RareGenError as err:
        return _render(err.status, error=err, url=url, description=description or "")
    return _render(201, created=created)


@bp.post("/wallet/webhooks/<int:endpoint_id>/remove")
@session.login_required
def remove(endpoint_id: int) -> Any:
    try:
        service.remove_endpoint(_owner(), endpoint_id, actor=_actor())
    except RareGenError as err:
        return _render(err.status, error=err)
    return redirect(url_for("webhook_pages.settings"), code=303)


@bp.post("/wallet/webhooks/<int:endpoint_id>/enable")
@session.login_required
def enable(endpoint_id: int) -> Any:
    try:
        service.enable_endpoint(_owner(), endpoint_id, actor=_actor())
    except RareGenError as err:
        return _render(err.status, error=err)
    return redirect(url_for("webhook_pages.settings"), code=303)
