"""Delivering webhook events from the outbox (at least once, in order per job and endpoint).

A delivery run (:func:`deliver_due`) repeats until nothing is due:

1. claim due events: ``pending``, ``next_attempt_at`` reached, endpoint enabled, no
   earlier ``pending`` event of the same job for the same endpoint (so ``job.sent`` always
   arrives before ``job.confirmed``), not claimed by a live run. The claim is a conditional
   UPDATE setting ``locked_until``; a run that dies holding claims (``kill -9``) leaves
   them to expire, and a later run takes them over: nothing is lost.
2. for each, resolve the endpoint's host again and refuse internal addresses
   (:mod:`raregen.webhooks.urls`, DNS rebinding), then POST the stored JSON to the checked
   address, signed per the Standard Webhooks specification (``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 over
   ``id.timestamp.body`` with the endpoint's ``whsec_`` secret; the ``standardwebhooks``
   package signs). Redirects are not followed. A 2xx answer is a delivery.
3. record the attempt (``webhook_attempts``) and the event's new state: ``delivered``
   (the successes of one claim together, one transaction); or a retry after
   ``WEBHOOK_RETRY_BASE_SECONDS`` * 2^(attempts-1) (capped
   at ``WEBHOOK_RETRY_MAX_SECONDS``, the last try at ``WEBHOOK_RETRY_HOURS`` after the
   event); or ``failed`` (given up) once that time has passed. The endpoint counts
   consecutive failed attempts; at ``WEBHOOK_DISABLE_AFTER_FAILURES`` it is disabled and its
   owner told (a wallet account by mail; a key owner sees ``status: "disabled"`` and the
   reason in ``list``).

Runs start from RQ: after the commit of a state change (:func:`nudge`, at most one enqueue
per 200 ms) and periodically (``WEBHOOK_INTERVAL_SECONDS``, cron name ``webhooks``), which
catches everything a lost nudge or a crash left behind.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from flask import current_app
from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.orm import aliased
from standardwebhooks.webhooks import Webhook

from raregen.audit import audit
from raregen.db import db, rows_matched, transaction, utcnow
from raregen.errors import RareGenError
from raregen.queue import periodic_queue_name, redis_connection
from raregen.webhooks import service, urls
from raregen.webhooks.models import (
    DELIVERED,
    GAVE_UP,
    PENDING,
    CommandNonce,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEvent,
)

log = logging.getLogger(__name__)

USER_AGENT = "RareGen-Webhooks/1"
_NUDGE_KEY = "raregen:webhooks:nudge"


@dataclass(frozen=True)
class Claimed:
    """An event claimed by this run: what the POST needs, and the claim's token."""

    event_id: int
    msg_id: str
    payload: str
    endpoint_id: int
    url: str
    secret: str
    token: datetime


@dataclass(frozen=True)
class Outcome:
    """The result of one POST: ``ok`` (2xx), the status (None: no answer), an error text."""

    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def _cfg(name: str) -> Any:
    return current_app.config[name]


def _lease_seconds() -> int:
    return int(_cfg("WEBHOOK_TIMEOUT_SECONDS")) * 2 + 30


def claim_due(limit: int = 10, now: datetime | None = None) -> list[Claimed]:
    """Claim up to ``limit`` due events, oldest first (see the module docstring, step 1).

    Returns:
        The claimed events; empty when nothing is due.
    """
    now = now or utcnow()
    earlier = aliased(WebhookEvent)
    with transaction():
        candidates = list(
            db.session.scalars(
                select(WebhookEvent.id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookEvent.endpoint_id)
                .where(
                    WebhookEvent.status == PENDING,
                    WebhookEvent.next_attempt_at <= now,
                    or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < now),
                    WebhookEndpoint.enabled.is_(True),
                    ~exists().where(
                        and_(
                            earlier.endpoint_id == WebhookEvent.endpoint_id,
                            earlier.job_id == WebhookEvent.job_id,
                            earlier.id < WebhookEvent.id,
                            earlier.status == PENDING,
                        )
                    ),
                )
                .order_by(WebhookEvent.next_attempt_at, WebhookEvent.id)
                .limit(limit)
            )
        )
        if not candidates:
            return []
        token = now + timedelta(seconds=_lease_seconds())
        taken = set(
            db.session.scalars(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id.in_(candidates),
                    WebhookEvent.status == PENDING,
                    or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < now),
                )
                .values(locked_until=token)
                .returning(WebhookEvent.id)
                .execution_options(synchronize_session=False)
            )
        )
        if not taken:
            return []
        rows = db.session.execute(
            select(
                WebhookEvent.id,
                WebhookEvent.msg_id,
                WebhookEvent.payload,
                WebhookEndpoint.id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret,
            )
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookEvent.endpoint_id)
            .where(WebhookEvent.id.in_(taken))
            .order_by(WebhookEvent.id)
        ).all()
    return [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], token) for r in rows]


def sign_headers(
    secret: str, msg_id: str, payload: str, at: datetime | None = None
) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery (``webhook-id``, ``webhook-timestamp``
    in Unix seconds, ``webhook-signature``), plus ``content-type`` and ``user-agent``."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, payload)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def post(url: str, headers: dict[str, str], body: bytes) -> Outcome:
    """POST ``body`` to ``url`` on an address checked just now (:func:`urls.resolve`),
    without following redirects. Never raises: a refused URL or a network error is an
    unsuccessful :class:`Outcome`."""
    started = time.monotonic()

    def done(ok: bool, status: int | None, error: str | None) -> Outcome:
        return Outcome(ok, status, error, int((time.monotonic() - started) * 1000))

    try:
        target = urls.resolve(url)
    except RareGenError as err:
        return done(False, None, f"{err.code}: {err.message}"[:500])
    seconds = float(_cfg("WEBHOOK_TIMEOUT_SECONDS"))
    timeout = urllib3.Timeout(connect=seconds, read=seconds)
    host_header = target.host if ":" not in target.host else f"[{target.host}]"
    default_port = 443 if target.scheme == "https" else 80
    if target.port != default_port:
        host_header += f":{target.port}"
    error = "no address"
    for address in target.addresses:
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                address,
                target.port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                server_hostname=target.host,
                assert_hostname=target.host,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                address, target.port, timeout=timeout, retries=False, maxsize=1
            )
        try:
            resp = pool.urlopen(
                "POST",
                target.target,
                body=body,
                headers={**headers, "host": host_header},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            status = resp.status
            resp.release_conn()
            ok = 200 <= status < 300
            return done(ok, status, None if ok else f"HTTP {status}")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:500]
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                break  # the request may have arrived: do not send it to another address
        finally:
            pool.close()
    return done(False, None, error)


def next_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base * 2^(n-1),
    capped (settings ``WEBHOOK_RETRY_BASE_SECONDS``, ``WEBHOOK_RETRY_MAX_SECONDS``)."""
    base = float(_cfg("WEBHOOK_RETRY_BASE_SECONDS"))
    cap = float(_cfg("WEBHOOK_RETRY_MAX_SECONDS"))
    return float(min(cap, base * (2 ** min(max(attempts - 1, 0), 30))))


def record(claimed: Claimed, outcome: Outcome, now: datetime | None = None) -> str | None:
    """Store an attempt's outcome (step 3 of the module docstring), if this run still holds
    the claim.

    Returns:
        The event's new status (``delivered``, ``pending``, ``failed``), or None when the
        claim was lost (another run took the event over; it records its own attempt).
    """
    now = now or utcnow()
    notice: tuple[int, str] | None = None
    with transaction():
        event = db.session.scalar(
            select(WebhookEvent)
            .where(
                WebhookEvent.id == claimed.event_id,
                WebhookEvent.status == PENDING,
                WebhookEvent.locked_until == claimed.token,
            )
            .with_for_update()
        )
        if event is None:
            return None
        db.session.add(
            WebhookAttempt(
                event_id=event.id,
                endpoint_id=claimed.endpoint_id,
                attempted_at=now,
                status_code=outcome.status_code,
                ok=outcome.ok,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
        )
        event.attempts += 1
        event.locked_until = None
        endpoint = db.session.get(WebhookEndpoint, claimed.endpoint_id, with_for_update=True)
        if outcome.ok:
            event.status = DELIVERED
            event.delivered_at = now
            event.last_error = None
            if endpoint is not None and endpoint.failures:
                endpoint.failures = 0
            return DELIVERED
        event.last_error = outcome.error
        deadline = event.created_at + timedelta(hours=int(_cfg("WEBHOOK_RETRY_HOURS")))
        if now >= deadline:
            event.status = GAVE_UP
        else:
            event.next_attempt_at = min(
                now + timedelta(seconds=next_delay(event.attempts)), deadline
            )
        if endpoint is not None:
            endpoint.failures += 1
            limit = int(_cfg("WEBHOOK_DISABLE_AFTER_FAILURES"))
            if endpoint.enabled and endpoint.failures >= limit:
                endpoint.enabled = False
                endpoint.disabled_at = now
                endpoint.disabled_reason = (
                    f"disabled after {endpoint.failures} failed attempts in a row; last: "
                    f"{outcome.error or 'no answer'}"
                )[:1000]
                audit("worker", "webhooks:endpoint:disabled", str(endpoint.id))
                notice = (endpoint.id, endpoint.disabled_reason)
        status = event.status
    if notice is not None:
        service.tell_owner_disabled(*notice)
    return status


def record_delivered(done: list[tuple[Claimed, Outcome]], now: datetime | None = None) -> int:
    """Store several successful attempts at once (one transaction, four statements whatever
    their number): events ``delivered`` (those whose claim this run still holds), their
    attempts, their endpoints' failure counts reset.

    Returns:
        How many events were marked delivered (the others' claims were lost).
    """
    if not done:
        return 0
    now = now or utcnow()
    by_id = {claimed.event_id: (claimed, outcome) for claimed, outcome in done}
    tokens = {claimed.token for claimed, _ in done}
    with transaction():
        marked = set(
            db.session.scalars(
                update(WebhookEvent)
                .where(
                    WebhookEvent.id.in_(list(by_id)),
                    WebhookEvent.status == PENDING,
                    WebhookEvent.locked_until.in_(list(tokens)),
                )
                .values(
                    status=DELIVERED,
                    delivered_at=now,
                    attempts=WebhookEvent.attempts + 1,
                    locked_until=None,
                    last_error=None,
                )
                .returning(WebhookEvent.id)
                .execution_options(synchronize_session=False)
            )
        )
        if not marked:
            return 0
        db.session.execute(
            insert(WebhookAttempt),
            [
                {
                    "event_id": event_id,
                    "endpoint_id": by_id[event_id][0].endpoint_id,
                    "attempted_at": now,
                    "status_code": by_id[event_id][1].status_code,
                    "ok": True,
                    "error": None,
                    "duration_ms": by_id[event_id][1].duration_ms,
                }
                for event_id in sorted(marked)
            ],
        )
        endpoints = sorted({by_id[event_id][0].endpoint_id for event_id in marked})
        db.session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(endpoints), WebhookEndpoint.failures != 0)
            .values(failures=0)
            .execution_options(synchronize_session=False)
        )
    return len(marked)


def attempt(claimed: Claimed) -> Outcome:
    """Sign and POST one claimed event (no database access)."""
    headers = sign_headers(claimed.secret, claimed.msg_id, claimed.payload)
    return post(claimed.url, headers, claimed.payload.encode("utf-8"))


def deliver_one(claimed: Claimed) -> str | None:
    """Sign, POST and record one claimed event. Returns :func:`record`'s answer."""
    return record(claimed, attempt(claimed))


def deliver_due(*, limit: int = 10, budget_seconds: float = 30.0) -> dict[str, int]:
    """Deliver due events until none is due or ``budget_seconds`` have passed.

    Events are claimed ``limit`` at a time and POSTed one after the other; the successes of
    a claim are recorded together (:func:`record_delivered`), each failure at once
    (:func:`record`). A crash between a POST and its record sends that event again later:
    at least once.

    Returns:
        Counts: ``delivered``, ``retry`` (still pending), ``failed`` (given up), ``lost``
        (claim taken over).
    """
    counts = {"delivered": 0, "retry": 0, "failed": 0, "lost": 0}
    stop = time.monotonic() + budget_seconds
    while time.monotonic() < stop:
        batch = claim_due(limit)
        if not batch:
            break
        done: list[tuple[Claimed, Outcome]] = []
        for claimed in batch:
            outcome = attempt(claimed)
            if outcome.ok:
                done.append((claimed, outcome))
                continue
            status = record(claimed, outcome)
            key = {PENDING: "retry", GAVE_UP: "failed"}.get(status or "", "lost")
            counts[key] += 1
        marked = record_delivered(done)
        counts["delivered"] += marked
        counts["lost"] += len(done) - marked
    return counts


def nudge() -> None:
    """Start a delivery run soon (an RQ job on the periodic queue), at most one enqueue per
    200 ms per Redis. Best effort: with Redis down the periodic run delivers."""
    try:
        conn = redis_connection()
        if not conn.set(_NUDGE_KEY, "1", nx=True, px=200):
            return
        from rq import Queue

        Queue(periodic_queue_name(current_app.config["QUEUE_NAME"]), connection=conn).enqueue(
            "raregen.publish.tasks.deliver_webhooks",
            job_timeout=120,
            result_ttl=0,
            failure_ttl=3600,
        )
    except Exception as exc:
        log.debug("webhook nudge not sent: %s", exc.__class__.__name__)


def purge_nonces(now: datetime | None = None) -> int:
    """Delete expired nonces of signed webhook commands. Returns how many."""
    from sqlalchemy import delete

    with transaction():
        result = db.session.execute(
            delete(CommandNonce).where(CommandNonce.expires_at < (now or utcnow()))
        )
        return rows_matched(result)
