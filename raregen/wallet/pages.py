"""The wallet's web pages (Lion Rasta theme) and HTMX fragments.

Views are thin: the keys, shares, backups and signatures are made in the browser by the
bundle built from ``raregen/static/js/src`` (docs/BROWSER_CRYPTO.md); these views only render
pages and read job and record state from the publisher's services.

Routes (blueprint ``wallet_pages``):

* ``/`` landing page;
* ``/wallet`` dashboard, ``/wallet/setup``, ``/wallet/backup``, ``/wallet/restore``,
  ``/wallet/register-work``, ``/wallet/records``: sign-in required;
* ``/wallet/jobs/<job_id>/panel``: the ``_job_status.html`` fragment that HTMX polls. It needs
  no session (a job id is an unguessable UUID and ``/v1/jobs/<id>`` shows the same facts), so
  an expired session never swaps a sign-in page into the panel. The fragment carries its
  polling trigger only while the job is not terminal; an unknown job answers 404 with a
  terminal fragment;
* ``/records/<txid>``: a public record page with the verification result of every RareGen
  record in the transaction, a "Download proof" link for the records this server published
  and a certificate link for works;
* ``/records/<txid>/<vout>/certificate``: a work's printable certificate (print stylesheet,
  QR code of the public record page drawn by ``certificate.js``);
* ``/verify``: check a proof file (and the original file) in the browser; public. Its policy
  adds ``connect-src 'none'`` (:data:`VERIFY_CSP`): once loaded, the page can send nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, make_response, render_template, url_for
from sqlalchemy.exc import SQLAlchemyError

from raregen.errors import NotFound, RareGenError, RequestError
from raregen.publish import records as publish_records
from raregen.publish.jobs import get_job_view
from raregen.wallet import display, session
from raregen.wallet.certificate import certificate_facts, published_outputs
from raregen.wallet.overview import account_jobs, account_view

bp = Blueprint("wallet_pages", __name__)

TERMINAL = frozenset({"confirmed", "failed"})
STEPS = ("queued", "processing", "sent", "confirmed")

# No inline script or style anywhere: the pages run under raregen.web.headers.CSP, which
# the app's header hook sets on every HTML answer (with nosniff, Referrer-Policy, ...).

#: /verify's policy: the app's, with no connection allowed at all (the files stay local).
VERIFY_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'none'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@bp.app_context_processor
def _layout_context() -> dict[str, Any]:
    """What base.html needs on every page: the signed-in account and the asset helper."""
    try:
        account = session.current_account()
    except SQLAlchemyError:  # an error page rendered while the database is down
        account = None
    return {
        "wallet_account": account,
        "dev_mode": current_app.config.get("ENV_NAME") == "development",
        "asset": asset_url,
    }


def asset_url(name: str) -> str:
    """URL of a built bundle file (``raregen/static/dist/<name>``) with a cache-busting stamp."""
    path = Path(current_app.static_folder or "") / "dist" / name
    try:
        stamp = int(path.stat().st_mtime)
    except OSError:
        stamp = 0
    return url_for("static", filename=f"dist/{name}", v=stamp)


bp.add_app_template_filter(display.email_breaks, "email_breaks")
bp.add_app_template_filter(display.licence_name, "licence_name")


# ---------------------------------------------------------------------------------------------
# Pages


@bp.get("/")
def index() -> str:
    return render_template("index.html")


@bp.get("/wallet")
@session.login_required
def dashboard() -> str:
    return render_template("wallet/dashboard.html", account=_account_summary())


@bp.get("/wallet/setup")
@session.login_required
def setup() -> str:
    return render_template("wallet/setup.html")


@bp.get("/wallet/backup")
@session.login_required
def backup() -> str:
    return render_template("wallet/backup.html")


@bp.get("/wallet/restore")
@session.login_required
def restore() -> str:
    return render_template("wallet/restore.html")


@bp.get("/wallet/register-work")
@session.login_required
def register_work() -> str:
    return render_template("wallet/register_work.html", licences=display.LICENCES)


@bp.get("/wallet/records")
@session.login_required
def records() -> str:
    return render_template("wallet/records.html", jobs=_account_jobs(), terminal=TERMINAL)


@bp.get("/wallet/jobs/<job_id>/panel")
def job_panel(job_id: str) -> tuple[str, int]:
    try:
        job = _job_view(job_id)
    except NotFound:
        return render_template("_job_status.html", job=None, job_id=job_id, polling=False), 404
    polling = job["status"] not in TERMINAL
    return render_template(
        "_job_status.html", job=job, job_id=job_id, polling=polling, steps=STEPS
    ), 200


@bp.get("/records/<txid>")
def record(txid: str) -> tuple[str, int]:
    try:
        found = publish_records.read_records(txid)
    except RequestError:
        return render_template("records/show.html", txid=txid, found=None, problem="bad-txid"), 400
    except NotFound:
        return render_template("records/show.html", txid=txid, found=None, problem="unknown"), 404
    except RareGenError:
        return render_template(
            "records/show.html", txid=txid, found=None, problem="unavailable"
        ), 503
    shown = [_record_view(r) for r in found["records"]]
    return render_template(
        "records/show.html",
        txid=txid,
        found=found,
        records=shown,
        problem=None,
        published=published_outputs(txid),
    ), 200


@bp.get("/records/<txid>/<int:vout>/certificate")
def certificate(txid: str, vout: int) -> tuple[str, int]:
    try:
        facts = certificate_facts(txid, vout)
    except RequestError:
        return render_template("records/certificate.html", facts=None, problem="bad-txid"), 400
    except NotFound:
        return render_template("records/certificate.html", facts=None, problem="unknown"), 404
    except RareGenError:
        return render_template("records/certificate.html", facts=None, problem="unavailable"), 503
    record_url = url_for("wallet_pages.record", txid=facts["txid"], _external=True)
    return render_template(
        "records/certificate.html", facts=facts, record_url=record_url, problem=None
    ), 200


@bp.get("/verify")
def verify() -> Response:
    resp = make_response(render_template("proofs/verify.html"))
    resp.headers["Content-Security-Policy"] = VERIFY_CSP
    return resp


# ---------------------------------------------------------------------------------------------
# Helpers (reading only; the services own the rules)


def _account_summary() -> dict[str, Any]:
    """The dashboard's facts, from the wallet API's own view of the account when it has one."""
    account = session.current_account()
    assert account is not None  # login_required
    return dict(account_view(account))


def _account_jobs() -> list[dict[str, Any]]:
    """The signed-in account's jobs, newest first, as the wallet API lists them."""
    account = session.current_account()
    assert account is not None
    return list(account_jobs(account))


def _job_view(job_id: str) -> dict[str, Any]:
    return get_job_view(job_id)


def _record_view(rec: dict[str, Any]) -> dict[str, Any]:
    """One on-chain record, with its payload members parsed for display (never trusted: the
    ``valid`` flag comes from the signature check in :mod:`raregen.protocol`)."""
    payload: dict[str, Any] = {}
    try:
        parsed = json.loads(rec["signedPayload"])
        if isinstance(parsed, dict):
            payload = parsed
    except (TypeError, ValueError):
        payload = {}
    record = payload.get("record") if isinstance(payload.get("record"), dict) else {}
    iat = payload.get("iat")
    signed_at = (
        datetime.fromtimestamp(iat, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if isinstance(iat, int) and 0 < iat < 2**33
        else None
    )
    return {
        **rec,
        "payload": payload,
        "record": record,
        "type": payload.get("type"),
        "signedAt": signed_at,
    }
