"""Signed webhook commands of key owners (``POST /v1/webhooks``; docs/API.md "Webhooks").

A key owner proves it holds the key as for a publish (docs/PROTOCOL.md §2): the body is
``{"signedPayload", "signature", "pubkey"[, "signatureScheme"]}`` and ``signedPayload`` the
RFC 8785 (JCS) text of ``{"v": 1, "nonce", "iat", "exp", "op", "args"}``, signed by the key
(DER or Bitcoin Signed Message, as a publish). ``op`` names the command; ``args`` is an
object. The nonce is used once (kept until ``exp``); the time window is the publish one
(``MAX_CLOCK_SKEW_SECONDS``, ``MAX_TTL_SECONDS``). A command payload has no ``record`` and
a publish payload no ``op``: neither signature can be replayed as the other.

Operations (``op``): ``webhooks.create`` (``args``: ``url``, optional ``description``),
``webhooks.list``, ``webhooks.remove`` (``id``), ``webhooks.enable`` (``id``),
``webhooks.deliveries`` (optional ``id``, ``limit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import raregen.signing as signing
from raregen.db import db, transaction
from raregen.errors import KeyRefused, NonceReused, RequestError
from raregen.publish.models import RegisteredKey
from raregen.webhooks import service
from raregen.webhooks.models import CommandNonce

MEMBERS = ("v", "nonce", "iat", "exp", "op", "args")


def _check_members(obj: dict[str, Any]) -> signing.Payload:
    for name in MEMBERS:
        if name not in obj:
            raise RequestError(
                f"signedPayload lacks the member {name!r}", code="MISSING_FIELD", field=name
            )
    extra = sorted(str(k) for k in obj if k not in MEMBERS)
    if extra:
        raise RequestError(
            f"signedPayload has unknown member {extra[0]!r}; allowed: {', '.join(MEMBERS)}",
            code="UNKNOWN_FIELD",
            field=extra[0],
        )
    if not isinstance(obj["args"], dict):
        raise RequestError("args must be a JSON object", code="MALFORMED_JSON", field="args")
    if not isinstance(obj["op"], str):
        raise RequestError("op must be a string", code="MALFORMED_JSON", field="op")
    # the members shared with a publish payload, checked by the same rules
    shared = {k: obj[k] for k in ("v", "nonce", "iat", "exp")}
    shared["record"] = {}
    return signing.check_payload_fields(shared, max_ttl=int(current_app.config["MAX_TTL_SECONDS"]))


def run(body: object, *, now: int | None = None) -> tuple[dict[str, Any], int]:
    """Verify a signed command and run it.

    Order of checks: body shape, pubkey, signature encoding, payload size, JSON and
    canonical form, members, time window, signature, key registered and active, nonce
    unused, ``op``.

    Returns:
        ``(answer, http_status)``: 201 for ``webhooks.create``, else 200.

    Raises:
        RequestError (400: the codes of a publish, ``UNKNOWN_OPERATION``,
        ``BAD_WEBHOOK_URL``, ``WEBHOOK_URL_FORBIDDEN``), SignatureRejected (401),
        KeyRefused (403), NotFound (404), NonceReused (409), ``WEBHOOK_LIMIT`` (409),
        PayloadTooLarge (413), TimeWindowError (422).
    """
    cfg = current_app.config
    now = int(time.time()) if now is None else now
    req = signing.parse_request_body(body)
    obj = signing.parse_signed_payload(req.signed_payload, int(cfg["MAX_PAYLOAD_BYTES"]))
    payload = _check_members(obj)
    signing.check_time_window(payload, now=now, max_skew=int(cfg["MAX_CLOCK_SKEW_SECONDS"]))
    signing.verify_request_signature(req)
    op, args = obj["op"], obj["args"]
    handler = _OPS.get(op)
    if handler is None:
        raise RequestError(
            f"op must be one of {', '.join(sorted(_OPS))}", code="UNKNOWN_OPERATION", field="op"
        )
    with transaction():
        key = db.session.scalar(select(RegisteredKey).where(RegisteredKey.pubkey == req.pubkey_hex))
        if key is None:
            raise KeyRefused(
                "This public key is not registered with the publisher.",
                code="KEY_NOT_REGISTERED",
                field="pubkey",
            )
        if key.status != "active":
            raise KeyRefused("This public key was revoked.", code="KEY_REVOKED", field="pubkey")
        key_id = key.id
        db.session.add(
            CommandNonce(
                pubkey=req.pubkey_hex,
                nonce=payload.nonce,
                expires_at=datetime.fromtimestamp(payload.exp, UTC).replace(tzinfo=None),
            )
        )
        try:
            db.session.flush()
        except IntegrityError:
            raise NonceReused(
                "This nonce was already used by this key; sign the command with a fresh one.",
                field="nonce",
            ) from None
    owner = service.Owner(key_id=key_id)
    actor = f"key:{req.pubkey_hex[:16]}"
    return handler(owner, args, actor)


def _int_arg(args: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise RequestError(f"args.{name} must be an integer", code="MALFORMED_JSON", field=name)
    return value


def _create(owner: service.Owner, args: dict[str, Any], actor: str) -> tuple[dict[str, Any], int]:
    view = service.create_endpoint(owner, args.get("url"), args.get("description"), actor=actor)
    return {"endpoint": view}, 201


def _list(owner: service.Owner, args: dict[str, Any], actor: str) -> tuple[dict[str, Any], int]:
    return {"endpoints": service.list_endpoints(owner)}, 200


def _remove(owner: service.Owner, args: dict[str, Any], actor: str) -> tuple[dict[str, Any], int]:
    endpoint_id = _int_arg(args, "id", required=True)
    service.remove_endpoint(owner, endpoint_id, actor=actor)
    return {"removed": endpoint_id}, 200


def _enable(owner: service.Owner, args: dict[str, Any], actor: str) -> tuple[dict[str, Any], int]:
    view = service.enable_endpoint(owner, _int_arg(args, "id", required=True), actor=actor)
    return {"endpoint": view}, 200


def _deliveries(
    owner: service.Owner, args: dict[str, Any], actor: str
) -> tuple[dict[str, Any], int]:
    limit = _int_arg(args, "limit", required=False) or 50
    events = service.deliveries(owner, _int_arg(args, "id", required=False), limit=limit)
    return {"deliveries": events}, 200


_OPS: dict[str, Callable[[service.Owner, dict[str, Any], str], tuple[dict[str, Any], int]]] = {
    "webhooks.create": _create,
    "webhooks.list": _list,
    "webhooks.remove": _remove,
    "webhooks.enable": _enable,
    "webhooks.deliveries": _deliveries,
}


def make_command(
    private_key: Any,
    op: str,
    args: dict[str, Any] | None = None,
    *,
    ttl: int = 300,
    now: int | None = None,
    scheme: str = "der",
) -> dict[str, str]:
    """Build and sign a command body (client side; tests and the bench use it).

    Args:
        private_key: 32 raw bytes or a ``coincurve.PrivateKey``.
        op: the operation; args: its arguments.
        scheme: ``der`` or ``bsm`` (Bitcoin Signed Message).
    """
    import coincurve

    key = (
        private_key
        if isinstance(private_key, coincurve.PrivateKey)
        else coincurve.PrivateKey(bytes(private_key))
    )
    iat = int(time.time()) if now is None else now
    text = signing.canonicalize(
        {
            "v": 1,
            "nonce": signing.new_nonce(),
            "iat": iat,
            "exp": iat + ttl,
            "op": op,
            "args": args or {},
        }
    )
    body = {
        "signedPayload": text,
        "pubkey": key.public_key.format(compressed=True).hex(),
    }
    if scheme == "bsm":
        body["signature"] = signing.sign_bsm(key, text)
        body["signatureScheme"] = "bsm"
    else:
        body["signature"] = signing.sign_payload(key, text)
    return body
