"""The operator console's pages, JSON and actions (blueprint ``ops``, docs/OPERATIONS.md,
"Operator console").

Who: signed-in wallet accounts with the operator role (``accounts.is_operator``, granted by
``flask --app app accounts operator EMAIL``). Everyone else gets 403 ``FORBIDDEN`` on every
``/ops`` URL, signed in or not (no redirect to sign-in: the console does not announce
itself). The check runs before the CSRF check, so an anonymous POST is a 403 too.

Routes:

* ``GET /ops``: pool, job counts, queues and workers, batches, failures, dirty UTXOs,
  overdue reservations, the newest audit entries, and the action forms;
* ``GET /ops/charts`` and ``GET /ops/api/charts?window=hour|day`` (JSON,
  :func:`raregen.ops.charts.chart_data`; ``400 BAD_WINDOW`` for another window);
* ``GET /ops/confirm/<action>``: the confirmation step of an action (a fragment for HTMX,
  else a page), which checks the input and says what will happen;
* ``POST /ops/actions/<action>`` (CSRF token required): runs the action through the same
  service function as its CLI command, then redirects to ``/ops`` with a message.

Every action is audited by its service with the actor ``account:<id>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

import raregen.audit as audit_log
from raregen.db import transaction
from raregen.errors import InsufficientFunds, RareGenError, RequestError
from raregen.extensions import csrf
from raregen.ops import charts, overview
from raregen.publish import funding, keys, operator
from raregen.publish.jobs import get_job_view
from raregen.publish.operator import parse_outpoint
from raregen.signing import parse_pubkey
from raregen.wallet import accounts, credits, session

bp = Blueprint("ops", __name__, url_prefix="/ops")


class OperatorOnly(RareGenError):
    """403 ``FORBIDDEN``: the console is for operator accounts only."""

    status = 403
    default_code = "FORBIDDEN"


@bp.before_request
def _operators_only() -> Response | None:
    account = session.current_account()
    if account is None or not account.is_operator:
        err = OperatorOnly("This page is for operators only.")
        if request.path.startswith("/ops/api/"):
            resp = jsonify(err.to_dict())
            resp.status_code = 403
            return resp
        raise err
    g.ops_actor = f"account:{account.id}"
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # the blueprint is exempt from the app-wide check, so 403 comes first
    return None


# ---------------------------------------------------------------------------------------------
# Actions: input parsing, the confirmation sentence, the service call


def _text(form: Any, name: str, limit: int = 200) -> str:
    value = str(form.get(name, "")).strip()
    if not value:
        raise RequestError(f"{name} is required", code="MISSING_FIELD", field=name)
    return value[:limit]


def _int(form: Any, name: str, low: int, high: int, *, required: bool = True) -> int | None:
    raw = str(form.get(name, "")).strip()
    if not raw and not required:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(
            f"{name} must be a whole number", code="BAD_AMOUNT", field=name
        ) from None
    if not low <= value <= high:
        raise RequestError(
            f"{name} must be between {low} and {high}", code="BAD_AMOUNT", field=name
        )
    return value


@dataclass(frozen=True)
class Action:
    """One console action: ``fields`` (form names carried from the confirmation to the
    POST), ``describe(form)`` -> the confirmation sentence (raises RareGenError on bad
    input), ``run(form, actor)`` -> the result message."""

    title: str
    fields: tuple[str, ...]
    describe: Callable[[Any], str]
    run: Callable[[Any, str], str]
    danger: bool = False


def _describe_retry(form: Any) -> str:
    job_id = _text(form, "job_id", 64)
    job = get_job_view(job_id)
    if job["status"] != "failed":
        raise RequestError(
            f"Only a failed job can be retried; this one is {job['status']}.",
            code="JOB_NOT_FAILED",
            field="job_id",
        )
    return f"Put job {job_id} (failed with {job.get('errorCode') or 'no code'}) back in the queue."


def _run_retry(form: Any, actor: str) -> str:
    result = operator.retry_failed_job(_text(form, "job_id", 64), actor=actor)
    return f"Job {result['jobId']} is queued again."


def _describe_dirty(verb: str) -> Callable[[Any], str]:
    def describe(form: Any) -> str:
        txid, vout = parse_outpoint(_text(form, "utxo", 80))
        if verb == "release":
            return f"Return the dirty UTXO {txid}:{vout} to the pool now (you vouch it is unspent)."
        return f"Ask the chain about the dirty UTXO {txid}:{vout} and settle it."

    return describe


def _run_release(form: Any, actor: str) -> str:
    utxo = _text(form, "utxo", 80)
    operator.release_dirty_utxo(utxo, actor=actor)
    return f"UTXO {utxo} is back in the pool."


def _run_settle(form: Any, actor: str) -> str:
    utxo = _text(form, "utxo", 80)
    result = operator.settle_dirty_utxo(utxo, actor=actor)
    return f"UTXO {utxo}: {result}."


def _describe_split(form: Any) -> str:
    count = _int(form, "count", 1, 1000)
    sats = _int(form, "sats", 546, 100_000_000, required=False) or funding.default_utxo_sats()
    return f"Split a funding coin into {count} publish UTXOs of {sats} satoshis each."


def _run_split(form: Any, actor: str) -> str:
    count = _int(form, "count", 1, 1000)
    sats = _int(form, "sats", 546, 100_000_000, required=False) or funding.default_utxo_sats()
    assert count is not None
    result = funding.split(count, sats, actor=actor)
    return f"Split into {result['count']} × {result['satoshis_each']} sats: {result['txid']}."


def _run_replenish(form: Any, actor: str) -> str:
    return f"Replenishment added {operator.replenish_pool(actor=actor)} UTXOs."


def _describe_revoke(form: Any) -> str:
    pubkey = parse_pubkey(_text(form, "pubkey", 140)).hex()
    return f"Revoke the key {pubkey}: its requests are refused from now on."


def _run_revoke(form: Any, actor: str) -> str:
    pubkey = _text(form, "pubkey", 140)
    keys.revoke_key(pubkey, actor=actor)
    return f"Key {pubkey} revoked."


def _describe_grant(form: Any) -> str:
    email = _text(form, "email", 254)
    amount = _int(form, "amount", -1_000_000, 1_000_000)
    if amount == 0:
        raise RequestError("amount must not be 0", code="BAD_AMOUNT", field="amount")
    with transaction():
        shown = accounts.require_by_email(email).email
    return f"Add {amount:+d} credits to {shown}."


def _run_grant(form: Any, actor: str) -> str:
    amount = _int(form, "amount", -1_000_000, 1_000_000)
    note = str(form.get("note", "")).strip()[:100] or None
    assert amount is not None
    with transaction():
        account = accounts.require_by_email(_text(form, "email", 254))
        balance = credits.grant(account.id, amount, note, actor=actor)
        shown = account.email
    return f"{shown}: {amount:+d} credits, balance {balance}."


ACTIONS: dict[str, Action] = {
    "retry": Action("Retry a failed job", ("job_id",), _describe_retry, _run_retry),
    "release-dirty": Action(
        "Release a dirty UTXO", ("utxo",), _describe_dirty("release"), _run_release, True
    ),
    "settle-dirty": Action(
        "Settle a dirty UTXO", ("utxo",), _describe_dirty("settle"), _run_settle
    ),
    "split": Action("Split the pool", ("count", "sats"), _describe_split, _run_split),
    "replenish": Action(
        "Replenish the pool",
        (),
        lambda form: "Split new publish UTXOs now if the pool is under its low-water mark.",
        _run_replenish,
    ),
    "revoke-key": Action("Revoke a key", ("pubkey",), _describe_revoke, _run_revoke, True),
    "grant": Action("Grant credits", ("email", "amount", "note"), _describe_grant, _run_grant),
}


def _action(name: str) -> Action:
    action = ACTIONS.get(name)
    if action is None:
        abort(404)
    return action


# ---------------------------------------------------------------------------------------------
# Pages


@bp.get("")
def index() -> str:
    with transaction():
        data = {
            "pool": overview.pool_state(),
            "jobs": overview.job_counts(),
            "batches": overview.recent_batches(),
            "failures": overview.recent_failures(),
            "failure_codes": overview.failure_codes(),
            "dirty": overview.dirty_utxos(),
            "overdue": overview.overdue_reservations(),
            "audit": list(reversed(audit_log.tail(15))),
        }
    data["rq"] = overview.queues_and_workers()
    return render_template("ops/index.html", **data)


@bp.get("/charts")
def charts_page() -> str:
    return render_template("ops/charts.html", windows=list(charts.WINDOWS))


@bp.get("/api/charts")
def charts_api() -> Response:
    window = request.args.get("window", "hour")
    if window not in charts.WINDOWS:
        resp = jsonify(
            RequestError(
                f"window must be one of {', '.join(charts.WINDOWS)}",
                code="BAD_WINDOW",
                field="window",
            ).to_dict()
        )
        resp.status_code = 400
        return resp
    with transaction():
        data = charts.chart_data(window)
    resp = jsonify(data)
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/confirm/<name>")
def confirm(name: str) -> tuple[str, int] | str:
    action = _action(name)
    fragment = request.headers.get("HX-Request") == "true"
    template = "ops/_confirm.html" if fragment else "ops/confirm.html"
    values = {f: str(request.args.get(f, "")) for f in action.fields}
    try:
        sentence = action.describe(request.args)
    except RareGenError as err:
        # HTMX swaps only 2xx answers: the fragment explains the refusal with a 200
        return render_template(template, name=name, action=action, error=err, values=values), (
            200 if fragment else err.status
        )
    return render_template(
        template, name=name, action=action, sentence=sentence, values=values, error=None
    )


@bp.post("/actions/<name>")
def run(name: str) -> ResponseReturnValue:
    action = _action(name)
    try:
        message = action.run(request.form, g.ops_actor)
    except RareGenError as err:
        flash(f"{action.title}: {err.code}: {err.message}", "error")
    except (InsufficientFunds, RuntimeError) as exc:
        flash(f"{action.title}: {exc}", "error")
    else:
        flash(message, "ok")
    return redirect(url_for("ops.index"), code=303)
