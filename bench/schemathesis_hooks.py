"""Schemathesis hooks of bench/bench_schemathesis.py (``SCHEMATHESIS_HOOKS``).

Generated publish bodies cannot carry a valid signature, so every one would be refused and
the stateful links publish -> job would never be followed. Half of the generated bodies of
``POST /v1/publish`` (and of ``POST /wallet/api/publish``) are replaced by a body signed now
with a key the server knows (``RAREGEN_ST_PUBLISH_KEY``, ``RAREGEN_ST_WALLET_KEY``: private
keys in hex), so those publishes are accepted and their jobs read back. Likewise half of the
bodies of ``POST /v1/webhooks`` become commands signed by the publish key (``webhooks.list``,
``webhooks.deliveries`` or ``webhooks.create`` of a loopback URL), so the answers of real
commands are checked too.
"""

from __future__ import annotations

import os
from typing import Any

import coincurve
import schemathesis

from raregen import signing
from raregen.webhooks import commands


def _signed(env: str, body: Any) -> Any:
    secret = os.environ.get(env)
    if (
        not secret
        or not isinstance(body, dict)
        or set(body) != {"signedPayload", "signature", "pubkey"}
    ):
        return body
    payload = body.get("signedPayload")
    if not isinstance(payload, str) or len(payload) % 2:
        return body  # the other half stays as generated (refused with a 4xx)
    record = {"title": "schemathesis", "note": payload[:64]}
    return signing.make_request(coincurve.PrivateKey(bytes.fromhex(secret)), record, "work")


@schemathesis.hook("map_body").apply_to(path="/v1/publish", method="POST")
def map_publish_body(ctx: Any, body: Any) -> Any:
    return _signed("RAREGEN_ST_PUBLISH_KEY", body)


@schemathesis.hook("map_body").apply_to(path="/wallet/api/publish", method="POST")
def map_wallet_body(ctx: Any, body: Any) -> Any:
    return _signed("RAREGEN_ST_WALLET_KEY", body)


_COMMANDS = (
    ("webhooks.list", {}),
    ("webhooks.deliveries", {"limit": 5}),
    ("webhooks.create", {"url": "http://127.0.0.1:9/schemathesis", "description": "st"}),
)


@schemathesis.hook("map_body").apply_to(path="/v1/webhooks", method="POST")
def map_webhook_body(ctx: Any, body: Any) -> Any:
    secret = os.environ.get("RAREGEN_ST_PUBLISH_KEY")
    if not secret or not isinstance(body, dict) or not isinstance(body.get("signedPayload"), str):
        return body
    payload = body["signedPayload"]
    if len(payload) % 2:
        return body  # the other half stays as generated (refused with a 4xx)
    op, args = _COMMANDS[len(payload) // 2 % len(_COMMANDS)]
    return commands.make_command(bytes.fromhex(secret), op, args)
