"""How the wallet reaches the publisher: in-process (``ROLE=all``) or over HTTP (``ROLE=wallet``).

Both implementations return the publisher's answer as an :class:`Answer` (status, JSON
body, headers worth passing on) so the wallet API hands errors such as 402 ``NO_CREDITS``
to the browser unchanged. Over HTTP the wallet calls the publisher's internal endpoints
(:mod:`raregen.publish.internal_api`) at ``PUBLISHER_URL`` with
``Authorization: Bearer <SERVICE_TOKEN>``; an unreachable publisher is 503 ``UNAVAILABLE``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from flask import current_app, url_for

from raregen.db import db
from raregen.errors import RareGenError, RateLimited, ServiceError
from raregen.publish import account_keys
from raregen.wallet.keyreg import KeyProof

ACCOUNT_HEADER = "X-RareGen-Account"
_PASSED_HEADERS = ("Retry-After",)


@dataclass(frozen=True)
class Answer:
    """A publisher answer: HTTP status, JSON body, headers to pass on (``Retry-After``)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _error_answer(err: RareGenError) -> Answer:
    headers = {"Retry-After": str(err.retry_after)} if isinstance(err, RateLimited) else {}
    return Answer(err.status, err.to_dict(), headers)


class Publisher(Protocol):
    """What the wallet needs from the publisher."""

    def register_keys(self, account_ref: str, keys: Sequence[KeyProof]) -> Answer:
        """Register proven keys for ``account_ref``: 200 ``{"registered": [...]}`` or an error."""
        ...

    def publish(self, account_ref: str, raw: bytes, content_type: str | None) -> Answer:
        """Submit a v1 body for ``account_ref``: 202/200 ``{"jobId", "status", "statusUrl"}``."""
        ...


class InProcessPublisher:
    """The publisher in this process (``ROLE=all``): direct service calls."""

    def register_keys(self, account_ref: str, keys: Sequence[KeyProof]) -> Answer:
        try:
            pairs = [(k.purpose, k.pubkey) for k in keys]
            return Answer(
                200, {"registered": account_keys.register_account_keys(account_ref, pairs)}
            )
        except RareGenError as err:
            return _error_answer(err)

    def publish(self, account_ref: str, raw: bytes, content_type: str | None) -> Answer:
        try:
            accepted = account_keys.accept_for_account(account_ref, raw, content_type)
        except RareGenError as err:
            return _error_answer(err)
        status_url = url_for("publish_api.job_status", job_id=accepted.job_id)
        body, status = account_keys.accepted_view(accepted, status_url)
        return Answer(status, body)


def _end_read_transaction() -> None:
    """End the request's open (read-only) database transaction before calling the publisher.

    Both processes share one database. On SQLite the first read of a request takes the write
    lock (``BEGIN IMMEDIATE``, :mod:`raregen.db`), so a wallet holding it across the HTTP
    call would make the publisher wait for a lock the wallet only frees after the publisher
    answers. The wallet's writes are committed by their own :func:`raregen.db.transaction`
    blocks before it forwards anything, so what is open here is a read and can be dropped.
    """
    session = db.session()
    if session.in_transaction():
        session.rollback()


class HttpPublisher:
    """The publisher in another process (``ROLE=wallet``), reached over HTTP."""

    def __init__(self, base_url: str, token: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _post(self, path: str, data: bytes, headers: dict[str, str]) -> Answer:
        _end_read_transaction()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **headers}
        try:
            resp = requests.post(
                self.base_url + path, data=data, headers=headers, timeout=self.timeout
            )
        except requests.RequestException:
            raise ServiceError("The publisher cannot be reached; try again shortly.") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServiceError("The publisher gave an unreadable answer; try again shortly.")
        passed = {h: resp.headers[h] for h in _PASSED_HEADERS if h in resp.headers}
        return Answer(resp.status_code, body, passed)

    def register_keys(self, account_ref: str, keys: Sequence[KeyProof]) -> Answer:
        payload = {
            "accountRef": account_ref,
            "keys": [{"purpose": k.purpose, "pubkey": k.pubkey} for k in keys],
        }
        return self._post(
            "/internal/keys", json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )

    def publish(self, account_ref: str, raw: bytes, content_type: str | None) -> Answer:
        headers = {ACCOUNT_HEADER: account_ref, "Content-Type": content_type or ""}
        return self._post("/internal/publish", raw, headers)


def publisher() -> Publisher:
    """The publisher for this app's role.

    Raises:
        ServiceError: ``ROLE=wallet`` without ``PUBLISHER_URL`` or ``SERVICE_TOKEN``.
    """
    cfg = current_app.config
    if cfg["ROLE"] != "wallet":
        return InProcessPublisher()
    if not cfg.get("PUBLISHER_URL") or not cfg.get("SERVICE_TOKEN"):
        raise ServiceError("The wallet is not configured to reach the publisher.")
    return HttpPublisher(
        str(cfg["PUBLISHER_URL"]),
        str(cfg["SERVICE_TOKEN"]),
        float(cfg["PUBLISHER_TIMEOUT_SECONDS"]),
    )
