"""Webhook endpoints: register, list, remove, enable; the delivery history; telling an
owner that an endpoint was disabled.

An endpoint belongs to an :class:`Owner`: a registered publishing key (its events: the jobs
that key publishes) or a wallet account (the jobs of all the account's keys). Registering
the first endpoint sets the ``webhooks`` flag of the owner's keys and ``notify`` on their
jobs still ``queued`` or ``processing``; jobs accepted from then on carry ``notify`` from
the start (:mod:`raregen.webhooks.outbox`). Jobs already ``sent`` earlier get no events.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import delete, exists, func, or_, select, update

from raregen.account_link import parse_account_ref
from raregen.account_link import services as account_services
from raregen.audit import audit
from raregen.db import db, transaction
from raregen.errors import NotFound, RareGenError, RequestError
from raregen.publish.models import PROCESSING, QUEUED, PublishJob, RegisteredKey
from raregen.webhooks import urls
from raregen.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookEvent

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"


class LimitReached(RareGenError):
    """409 ``WEBHOOK_LIMIT``: the owner has ``WEBHOOK_MAX_ENDPOINTS`` endpoints already."""

    status = 409
    default_code = "WEBHOOK_LIMIT"


@dataclass(frozen=True)
class Owner:
    """Whose endpoints: a key (``key_id``) or a wallet account (``account_ref``)."""

    key_id: int | None = None
    account_ref: str | None = None

    def where(self) -> Any:
        if self.key_id is not None:
            return WebhookEndpoint.key_id == self.key_id
        return WebhookEndpoint.account_ref == self.account_ref

    @property
    def label(self) -> str:
        return f"key#{self.key_id}" if self.key_id is not None else str(self.account_ref)


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 24 random bytes (Standard Webhooks)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def endpoint_view(endpoint: WebhookEndpoint, *, with_secret: bool = False) -> dict[str, Any]:
    """The public shape of an endpoint: ``id``, ``url``, ``description``, ``status``
    (``enabled``/``disabled``), ``failures``, ``disabledAt``, ``disabledReason``,
    ``createdAt``; ``secret`` only when just created."""
    view: dict[str, Any] = {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "status": "enabled" if endpoint.enabled else "disabled",
        "failures": endpoint.failures,
        "disabledAt": _iso(endpoint.disabled_at),
        "disabledReason": endpoint.disabled_reason,
        "createdAt": _iso(endpoint.created_at),
    }
    if with_secret:
        view["secret"] = endpoint.secret
    return view


def _key_ids(owner: Owner) -> list[int]:
    if owner.key_id is not None:
        return [owner.key_id]
    return list(
        db.session.scalars(
            select(RegisteredKey.id).where(RegisteredKey.account_ref == owner.account_ref)
        )
    )


def owner_has_endpoints(key_id: int | None, account_ref: str | None) -> bool:
    """Whether a key (or the account it belongs to) has any endpoint (current transaction):
    the value of its ``webhooks`` flag."""
    clauses = []
    if key_id is not None:
        clauses.append(WebhookEndpoint.key_id == key_id)
    if account_ref:
        clauses.append(WebhookEndpoint.account_ref == account_ref)
    if not clauses:
        return False
    return bool(db.session.scalar(select(exists().where(or_(*clauses)))))


def _refresh_flags(owner: Owner) -> None:
    """Set each of the owner's keys' ``webhooks`` flag from its endpoints (and its
    account's); flag the open jobs of flagged keys (current transaction)."""
    for key in db.session.scalars(
        select(RegisteredKey).where(RegisteredKey.id.in_(_key_ids(owner)))
    ):
        key.webhooks = owner_has_endpoints(key.id, key.account_ref)
        if key.webhooks:
            db.session.execute(
                update(PublishJob)
                .where(
                    PublishJob.status.in_((QUEUED, PROCESSING)),
                    PublishJob.key_id == key.id,
                    PublishJob.notify.is_(False),
                )
                .values(notify=True)
                .execution_options(synchronize_session=False)
            )


def create_endpoint(
    owner: Owner, url: object, description: object = None, *, actor: str
) -> dict[str, Any]:
    """Register a callback URL for ``owner``.

    Returns:
        :func:`endpoint_view` with ``secret`` (shown this once).

    Raises:
        RequestError: 400 ``BAD_WEBHOOK_URL``, ``WEBHOOK_URL_FORBIDDEN`` (field ``url``),
            ``MALFORMED_JSON`` (field ``description``: not a string of at most 200
            characters).
        LimitReached: 409 ``WEBHOOK_LIMIT``.
    """
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        raise RequestError(
            "description must be a string of at most 200 characters.",
            code="MALFORMED_JSON",
            field="description",
        )
    target = urls.resolve(url)  # type: ignore[arg-type]  # parse() checks the type
    del target
    with transaction():
        count = db.session.scalar(
            select(func.count()).select_from(WebhookEndpoint).where(owner.where())
        )
        if int(count or 0) >= int(current_app.config["WEBHOOK_MAX_ENDPOINTS"]):
            raise LimitReached(
                "This owner has as many webhook endpoints as allowed; remove one first.",
                field="url",
            )
        endpoint = WebhookEndpoint(
            key_id=owner.key_id,
            account_ref=owner.account_ref,
            url=str(url),
            description=description or None,
            secret=new_secret(),
            enabled=True,
            failures=0,
        )
        db.session.add(endpoint)
        db.session.flush()
        _refresh_flags(owner)
        audit(actor, "webhooks:endpoint:created", str(endpoint.id), owner=owner.label)
        return endpoint_view(endpoint, with_secret=True)


def list_endpoints(owner: Owner | None = None) -> list[dict[str, Any]]:
    """The endpoints of ``owner`` (None: all, with ``owner``), oldest first."""
    with transaction():
        query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
        if owner is not None:
            query = query.where(owner.where())
        views = []
        for endpoint in db.session.scalars(query):
            view = endpoint_view(endpoint)
            if owner is None:
                owner_of = Owner(endpoint.key_id, endpoint.account_ref)
                view["owner"] = owner_of.label
            views.append(view)
        return views


#: The largest endpoint id: the column is a 32-bit signed integer (PostgreSQL ``integer``).
#: A larger number names no endpoint; sent to the database it would fail the query.
MAX_ENDPOINT_ID = 2**31 - 1


def _owned(owner: Owner | None, endpoint_id: object) -> WebhookEndpoint:
    if not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
        raise RequestError("id must be an integer.", code="MALFORMED_JSON", field="id")
    if not 1 <= endpoint_id <= MAX_ENDPOINT_ID:
        raise NotFound("No webhook endpoint with this id.", field="id")
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    if owner is not None:
        query = query.where(owner.where())
    endpoint = db.session.scalar(query.with_for_update())
    if endpoint is None:
        raise NotFound("No webhook endpoint with this id.", field="id")
    return endpoint


def remove_endpoint(owner: Owner | None, endpoint_id: object, *, actor: str) -> None:
    """Delete an endpoint with its undelivered events and history.

    Args:
        owner: the caller's owner; None (operator) may remove any endpoint.

    Raises:
        NotFound: 404 ``NOT_FOUND``: no such endpoint of this owner.
    """
    with transaction():
        endpoint = _owned(owner, endpoint_id)
        real_owner = Owner(endpoint.key_id, endpoint.account_ref)
        db.session.execute(delete(WebhookAttempt).where(WebhookAttempt.endpoint_id == endpoint.id))
        db.session.execute(delete(WebhookEvent).where(WebhookEvent.endpoint_id == endpoint.id))
        db.session.delete(endpoint)
        db.session.flush()
        _refresh_flags(real_owner)
        audit(actor, "webhooks:endpoint:removed", str(endpoint_id), owner=real_owner.label)


def enable_endpoint(owner: Owner | None, endpoint_id: object, *, actor: str) -> dict[str, Any]:
    """Enable a disabled endpoint again (its failure count reset); its pending events are
    delivered again (those past ``WEBHOOK_RETRY_HOURS`` get one last attempt).

    Raises:
        NotFound: 404 ``NOT_FOUND``.
    """
    with transaction():
        endpoint = _owned(owner, endpoint_id)
        endpoint.enabled = True
        endpoint.failures = 0
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
        audit(actor, "webhooks:endpoint:enabled", str(endpoint.id))
        return endpoint_view(endpoint)


def deliveries(
    owner: Owner | None, endpoint_id: object = None, *, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest events (newest first, at most ``limit``) of the owner's endpoints (or of
    one), each with its attempts: ``[{"msgId", "endpointId", "jobId", "type", "status",
    "attempts", "nextAttemptAt", "createdAt", "deliveredAt", "lastError", "history":
    [{"at", "statusCode", "ok", "error", "durationMs"}]}]``.

    Raises:
        NotFound: ``endpoint_id`` given and not the owner's.
    """
    limit = max(1, min(int(limit), 500))
    with transaction():
        query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(limit)
        if endpoint_id is not None:
            endpoint = _owned(owner, endpoint_id)
            query = query.where(WebhookEvent.endpoint_id == endpoint.id)
        elif owner is not None:
            ids = select(WebhookEndpoint.id).where(owner.where())
            query = query.where(WebhookEvent.endpoint_id.in_(ids))
        events = list(db.session.scalars(query))
        history: dict[int, list[dict[str, Any]]] = {e.id: [] for e in events}
        if events:
            for attempt in db.session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.event_id.in_(list(history)))
                .order_by(WebhookAttempt.id)
            ):
                history[attempt.event_id].append(
                    {
                        "at": _iso(attempt.attempted_at),
                        "statusCode": attempt.status_code,
                        "ok": attempt.ok,
                        "error": attempt.error,
                        "durationMs": attempt.duration_ms,
                    }
                )
        return [
            {
                "msgId": e.msg_id,
                "endpointId": e.endpoint_id,
                "jobId": e.job_id,
                "type": e.event_type,
                "status": e.status,
                "attempts": e.attempts,
                "nextAttemptAt": _iso(e.next_attempt_at) if e.status == "pending" else None,
                "createdAt": _iso(e.created_at),
                "deliveredAt": _iso(e.delivered_at),
                "lastError": e.last_error,
                "history": history[e.id],
            }
            for e in events
        ]


def tell_owner_disabled(endpoint_id: int, reason: str) -> None:
    """Tell an endpoint's owner it was disabled: a wallet account by mail (the wallet's
    mail settings); a key owner reads it in ``list`` (``status``, ``disabledReason``).
    Best effort: a mail failure is logged (the endpoint stays disabled either way). The mail
    is the wallet's (:func:`raregen.account_link.services`)."""
    with transaction():
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or endpoint.account_ref is None:
            return
        account_id = parse_account_ref(endpoint.account_ref)
        url = endpoint.url
    if account_id is None:
        return
    account_services().tell_webhook_disabled(account_id, endpoint_id, url, reason)
