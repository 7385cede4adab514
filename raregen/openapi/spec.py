"""Build the OpenAPI 3.1 document of RareGen's JSON API (:func:`build_spec`).

The document is built from Python data rather than kept as YAML so that the error responses
of every operation come from one table (:data:`ERROR_CODES`, the error table of docs/API.md)
and the limits it states (payload size, time window) are the running server's settings.

Each operation lists exactly the statuses it can answer, each error status with the codes it
carries there (one example per code). ``tests/integration/test_openapi_live.py`` checks the
live app against it with schemathesis.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from raregen.proofs.receipt import ALGORITHM as RECEIPT_ALGORITHM

#: Every error code an HTTP client can receive: code -> (status, when). docs/API.md's table.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "BAD_REQUEST": (400, "Malformed HTTP framing, or a body that ended early or stalled."),
    "MALFORMED_JSON": (400, "The body or a member is not the JSON this endpoint takes."),
    "MISSING_FIELD": (400, "A required member is absent."),
    "UNKNOWN_FIELD": (400, "A member that is not allowed there."),
    "DUPLICATE_MEMBER": (400, "A member name appears twice in one object."),
    "NON_CANONICAL_PAYLOAD": (400, "signedPayload is not byte for byte its RFC 8785 form."),
    "LEGACY_CONTRACT": (400, "The pre-v1 body {publickey, signature, nonce, record}."),
    "BAD_PUBKEY": (400, "Not a secp256k1 key in 66 or 130 hex characters."),
    "BAD_SIGNATURE_ENCODING": (
        400,
        "Not canonical standard base64 of a strict DER signature "
        "(with signatureScheme bsm: of 65 bytes, header 27 to 34).",
    ),
    "BAD_SIGNATURE_SCHEME": (400, "signatureScheme is present and neither der nor bsm."),
    "BAD_NONCE": (400, "The nonce is not 16 to 128 characters of [A-Za-z0-9_-]."),
    "BAD_TIMESTAMPS": (400, "iat/exp not integers, exp <= iat, or exp - iat > MAX_TTL."),
    "BAD_PURPOSE": (400, "Key registration: purpose not identity, financial or tokens."),
    "BAD_BACKUP": (400, "Backup upload: a member is malformed (field names it)."),
    "CSRF_FAILED": (400, "A wallet call without a valid X-CSRFToken header."),
    "BAD_WEBHOOK_URL": (
        400,
        "Webhooks: not an http(s) URL as allowed, or its host does not resolve.",
    ),
    "WEBHOOK_URL_FORBIDDEN": (
        400,
        "Webhooks: the host resolves to a private, loopback or "
        "otherwise non-global address (production).",
    ),
    "UNKNOWN_OPERATION": (400, "POST /v1/webhooks: op is not one of the commands."),
    "SIGNATURE_INVALID": (401, "The signature does not verify."),
    "HIGH_S_SIGNATURE": (401, "The signature verifies only in its high-S form: send low-S."),
    "AUTH_REQUIRED": (401, "No signed-in session, service token or metrics token."),
    "CHALLENGE_INVALID": (401, "Key registration: unknown, used or expired challenge."),
    "NO_CREDITS": (402, "The key's account has no publishing credit left."),
    "KEY_NOT_REGISTERED": (403, "The key is unknown (or not this account's)."),
    "KEY_REVOKED": (403, "The key was revoked."),
    "FORBIDDEN": (403, "/metrics asked from outside loopback while no token is configured."),
    "NOT_FOUND": (404, "No such job, record, backup or page."),
    "NONCE_REUSED": (409, "This key used this nonce before with other content."),
    "JOB_FAILED": (409, "Proof file: the job failed, its record was never published."),
    "PROOF_NOT_READY": (
        409,
        "Proof file: the job is queued or processing, not in a "
        "transaction yet; ask again once it is sent.",
    ),
    "KEY_TAKEN": (409, "The key is registered to another account or is an operator key."),
    "WEBHOOK_LIMIT": (409, "Webhooks: the owner has WEBHOOK_MAX_ENDPOINTS endpoints already."),
    "PAYLOAD_TOO_LARGE": (413, "The body or signedPayload is over its limit."),
    "UNSUPPORTED_MEDIA_TYPE": (415, "Not application/json, or a charset other than UTF-8."),
    "EXPIRED": (422, "exp is not after the server's clock."),
    "NOT_YET_VALID": (422, "iat is too far ahead of the server's clock."),
    "RATE_LIMITED": (429, "Too many requests; Retry-After says how many seconds to wait."),
    "UNAVAILABLE": (503, "A dependency (database, Redis, node, publisher) is down; retry."),
}

_STATUS_TEXT = {
    400: "Bad request",
    401: "Not authenticated or signature refused",
    402: "No credit",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Outside the signature's time window",
    429: "Rate limited",
    503: "Unavailable",
}

HEX64 = "^[0-9a-fA-F]{64}$"
PUBKEY = "^([0-9a-fA-F]{66}|[0-9a-fA-F]{130})$"
JOB_STATES = ["queued", "processing", "sent", "confirmed", "failed"]

_EXAMPLE_JOB_ID = "0b4c5a2e-3f0d-4a8e-9a51-2c6f1d9e7b10"
_EXAMPLE_TXID = "6f1e0c4b" * 8
_EXAMPLE_PUBKEY = "02" + "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
_EXAMPLE_PAYLOAD = (
    '{"exp":1767226200,"iat":1767225600,"nonce":"q3H9x1uZ0aYkT7bV","record":'
    '{"contentHash":"ab12","title":"Lion"},"type":"work","v":1}'
)
_EXAMPLE_SIGNATURE = "MEQCIFxvj3p8x3v0k0q1WwJ1sQ0X8p8M2xZk0F7u6l2n0o5QAiBi3m9lJ0zq2m0yYx1l3H9v0Xj7m3d2kQ1b7m9n3o2pXw=="

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_DATETIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(
    props: Mapping[str, Any],
    required: Iterable[str] | None = None,
    extra: bool = False,
    **more: Any,
) -> dict[str, Any]:
    """A JSON object schema; every property required unless ``required`` says otherwise."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(props),
        "required": list(props) if required is None else list(required),
        "additionalProperties": extra,
    }
    schema.update(more)
    return schema


#: The proof file's JSON Schema (docs/PROOFS.md), the one source of its shape.
PROOF_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "raregen-proof-v1.schema.json"

_EXAMPLE_HEADER = "00000020" + "5a" * 32 + "3c" * 32 + "80e3a065" + "ffff7f20" + "02000000"
_EXAMPLE_RECEIPT = {
    "receipt": {
        "jobId": _EXAMPLE_JOB_ID,
        "bodySha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "acceptedAt": "2026-01-01T00:00:00Z",
        "deadline": "2026-01-01T06:00:00Z",
    },
    "pubkey": "03" + "4f355bdcb7cc0af728ef3cceb9615d90684bb5b2ca5f859ab0f0b704075871aa",
    "signature": "3044" + "0220" + "1d" * 32 + "0220" + "2e" * 32,
}
_EXAMPLE_PENDING = {
    "format": "raregen-proof",
    "version": 1,
    "record": {
        "signedPayload": _EXAMPLE_PAYLOAD,
        "signature": _EXAMPLE_SIGNATURE,
        "pubkey": _EXAMPLE_PUBKEY,
    },
    "txid": _EXAMPLE_TXID,
    "vout": 0,
    "rawTx": "0100000001" + "c4" * 32 + "00000000" + "6a" + "ffffffff" + "00000000",
    "status": "pending",
    "jobId": _EXAMPLE_JOB_ID,
    "acceptance": _EXAMPLE_RECEIPT,
}
_EXAMPLE_COMPLETE = {
    **_EXAMPLE_PENDING,
    "status": "complete",
    "merklePath": "fe" + "39650c00" + "01" + "02" + "00" + "02" + "6f1e0c4b" * 8 + "01" + "3a" * 32,
    "blockHeader": _EXAMPLE_HEADER,
    "blockHeight": 812345,
    "blockHash": "0" * 8 + "3a" * 28,
    "headers": [_EXAMPLE_HEADER] * 2,
}


def _to_components(node: Any, names: Mapping[str, str]) -> Any:
    """``node`` with every ``#/$defs/<name>`` reference pointed at its component."""
    if isinstance(node, dict):
        return {
            key: (
                f"#/components/schemas/{names[value[len('#/$defs/') :]]}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                else _to_components(value, names)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_to_components(item, names) for item in node]
    return node


def proof_schemas(path: Path = PROOF_SCHEMA_PATH) -> dict[str, Any]:
    """The proof file's components, made from its JSON Schema file (docs/PROOFS.md).

    The file is a JSON Schema 2020-12 resource of its own (``$id``), whose ``#/$defs/...``
    references are relative to it; inside the OpenAPI document they would resolve against
    the document. So ``$schema`` and ``$id`` are dropped, each ``$defs`` entry becomes the
    component ``Proof<Name>`` (``ProofHash``, ``ProofHeader``, ``ProofTime``) and the
    references are rewritten; the ``acceptance`` member becomes the component ``Receipt``
    (also the ``receipt`` member of ``POST /v1/publish``'s answer).

    Returns:
        ``{"ProofFile", "Receipt", "Proof<Name>"...}`` as schemas. Without the file (an
        install without docs/) ``ProofFile`` and ``Receipt`` are plain objects that say so.

    Raises:
        ValueError: the file is not JSON.
    """
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        missing = "Shape in docs/raregen-proof-v1.schema.json (not installed here)."
        return {
            "ProofFile": {"type": "object", "description": missing},
            "Receipt": {"type": "object", "description": missing},
        }
    defs = schema.pop("$defs", {})
    names = {name: "Proof" + name[:1].upper() + name[1:] for name in defs}
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    schema = _to_components(schema, names)
    receipt = schema["properties"]["acceptance"]
    receipt.update(
        description="A signed acceptance receipt (docs/PROOFS.md): ECDSA secp256k1 (low-S, "
        "DER hex) of `pubkey` over SHA-256 of the RFC 8785 bytes of `receipt`. `pubkey` is "
        "the one GET /.well-known/raregen/receipt-key serves.",
        examples=[_EXAMPLE_RECEIPT],
    )
    schema["properties"]["acceptance"] = _ref("Receipt")
    schema["examples"] = [_EXAMPLE_COMPLETE]
    out = {"ProofFile": schema, "Receipt": receipt}
    out.update({names[name]: _to_components(value, names) for name, value in defs.items()})
    return out


_SIGNATURE_SCHEME = {
    "type": "string",
    "enum": ["der", "bsm"],
    "default": "der",
    "description": "Optional. `der` (the default): `signature` is base64 of a strict DER "
    "signature. `bsm`: base64 of a 65-byte Bitcoin Signed Message signature whose recovered "
    "key is `pubkey` (docs/API.md, docs/PROTOCOL.md §2).",
}

_WEBHOOK_EVENT_TYPES = ["job.sent", "job.confirmed", "job.failed", "job.reorged"]
_EXAMPLE_SECRET = "whsec_" + "c2VjcmV0LWV4YW1wbGUtb25seS0xMjM0"
_EXAMPLE_ENDPOINT = {
    "id": 7,
    "url": "https://hooks.example.com/raregen",
    "description": "orders service",
    "status": "enabled",
    "failures": 0,
    "disabledAt": None,
    "disabledReason": None,
    "createdAt": "2026-01-01T00:00:00Z",
}
_EXAMPLE_DELIVERY = {
    "msgId": "msg_" + "5d" * 16,
    "endpointId": 7,
    "jobId": _EXAMPLE_JOB_ID,
    "type": "job.sent",
    "status": "delivered",
    "attempts": 1,
    "nextAttemptAt": None,
    "createdAt": "2026-01-01T00:00:01Z",
    "deliveredAt": "2026-01-01T00:00:01Z",
    "lastError": None,
    "history": [
        {
            "at": "2026-01-01T00:00:01Z",
            "statusCode": 204,
            "ok": True,
            "error": None,
            "durationMs": 41,
        }
    ],
}
_EXAMPLE_COMMAND_PAYLOAD = (
    '{"args":{"url":"https://hooks.example.com/raregen"},"exp":1767226200,"iat":1767225600,'
    '"nonce":"Zp4c8Qe1rT6yU2iW","op":"webhooks.create","v":1}'
)


def _webhook_schemas() -> dict[str, Any]:
    """The webhook components (docs/API.md "Webhooks"): endpoints, deliveries, the signed
    command body and its payload, the wallet's create body and the event sent to a URL."""
    endpoint = _obj(
        {
            "id": {"type": "integer", "minimum": 1},
            "url": {"type": "string", "maxLength": 2000},
            "description": _NULLABLE_STR,
            "status": {"type": "string", "enum": ["enabled", "disabled"]},
            "failures": {
                "type": "integer",
                "minimum": 0,
                "description": "Failed attempts in a row.",
            },
            "disabledAt": _DATETIME,
            "disabledReason": _NULLABLE_STR,
            "createdAt": _DATETIME,
            "secret": {
                "type": "string",
                "pattern": "^whsec_[A-Za-z0-9+/=]+$",
                "description": "The signing secret: only in the answer that created the endpoint.",
            },
        },
        required=[
            "id",
            "url",
            "description",
            "status",
            "failures",
            "disabledAt",
            "disabledReason",
            "createdAt",
        ],
        description="A callback URL of an owner (a key or a wallet account).",
        examples=[_EXAMPLE_ENDPOINT],
    )
    attempt = _obj(
        {
            "at": _DATETIME,
            "statusCode": {
                **_NULLABLE_INT,
                "description": "The URL's status; null when there was no answer.",
            },
            "ok": {"type": "boolean"},
            "error": _NULLABLE_STR,
            "durationMs": _NULLABLE_INT,
        }
    )
    delivery = _obj(
        {
            "msgId": {"type": "string", "description": "The `webhook-id` header."},
            "endpointId": {"type": "integer"},
            "jobId": {"type": "string"},
            "type": {"type": "string", "enum": _WEBHOOK_EVENT_TYPES},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "nextAttemptAt": _DATETIME,
            "createdAt": _DATETIME,
            "deliveredAt": _DATETIME,
            "lastError": _NULLABLE_STR,
            "history": {"type": "array", "items": _ref("WebhookAttempt")},
        },
        description="An event for one endpoint and its delivery attempts.",
        examples=[_EXAMPLE_DELIVERY],
    )
    command = _obj(
        {
            "signedPayload": {
                "type": "string",
                "description": "RFC 8785 canonical JSON text of a `WebhookCommandPayload`.",
            },
            "signature": {
                "type": "string",
                "description": "As in a publish: base64 of the DER (or, with `bsm`, 65-byte "
                "compact) signature of the key over signedPayload.",
            },
            "pubkey": {
                "type": "string",
                "pattern": PUBKEY,
                "description": "The registered key that owns the endpoints.",
            },
            "signatureScheme": _SIGNATURE_SCHEME,
        },
        required=["signedPayload", "signature", "pubkey"],
        description="A signed webhook command of a key owner: the publish body's shape, "
        "with a command payload instead of a record payload.",
        examples=[
            {
                "signedPayload": _EXAMPLE_COMMAND_PAYLOAD,
                "signature": _EXAMPLE_SIGNATURE,
                "pubkey": _EXAMPLE_PUBKEY,
            }
        ],
    )
    payload = _obj(
        {
            "v": {"type": "integer", "const": 1},
            "nonce": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_-]{16,128}$",
                "description": "Used once per key.",
            },
            "iat": {"type": "integer", "description": "Unix seconds."},
            "exp": {
                "type": "integer",
                "description": "Unix seconds, after iat, within MAX_TTL_SECONDS of it.",
            },
            "op": {
                "type": "string",
                "enum": [
                    "webhooks.create",
                    "webhooks.list",
                    "webhooks.remove",
                    "webhooks.enable",
                    "webhooks.deliveries",
                ],
            },
            "args": {
                "type": "object",
                "description": "`webhooks.create`: `url`, optional "
                "`description`; `webhooks.remove`, `webhooks.enable`: `id`; "
                "`webhooks.deliveries`: optional `id`, `limit` (at most 500); "
                "`webhooks.list`: nothing.",
            },
        },
        description="The signed text of a webhook command (inside signedPayload, never sent "
        "as a body of its own).",
        examples=[json.loads(_EXAMPLE_COMMAND_PAYLOAD)],
    )
    event = _obj(
        {
            "type": {"type": "string", "enum": _WEBHOOK_EVENT_TYPES},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": _obj(
                {
                    "jobId": {"type": "string"},
                    "status": {"type": "string", "enum": ["sent", "confirmed", "failed"]},
                    "txid": _NULLABLE_STR,
                    "vout": _NULLABLE_INT,
                    "blockHash": _NULLABLE_STR,
                    "blockHeight": _NULLABLE_INT,
                    "errorCode": _NULLABLE_STR,
                    "errorDetail": _NULLABLE_STR,
                },
                description="The job after the change; members that do not apply are null.",
            ),
        },
        description="The body RareGen POSTs to an endpoint, signed per Standard Webhooks "
        "(headers `webhook-id`, `webhook-timestamp`, `webhook-signature`: `v1,` + base64 "
        "HMAC-SHA256 of `<id>.<timestamp>.<body>` under the endpoint's secret).",
        examples=[
            {
                "type": "job.confirmed",
                "timestamp": "2026-01-01T00:10:02.000Z",
                "data": {
                    "jobId": _EXAMPLE_JOB_ID,
                    "status": "confirmed",
                    "txid": _EXAMPLE_TXID,
                    "vout": 0,
                    "blockHash": "0" * 8 + "3a" * 28,
                    "blockHeight": 812345,
                    "errorCode": None,
                    "errorDetail": None,
                },
            }
        ],
    )
    return {
        "WebhookEndpoint": endpoint,
        "WebhookAttempt": attempt,
        "WebhookDelivery": delivery,
        "WebhookCommand": command,
        "WebhookCommandPayload": payload,
        "WebhookCreate": _obj(
            {
                "url": {
                    "type": "string",
                    "maxLength": 2000,
                    "description": "http(s), no user info or fragment (docs/API.md).",
                },
                "description": {**_NULLABLE_STR, "maxLength": 200},
            },
            required=["url"],
            examples=[
                {"url": "https://hooks.example.com/raregen", "description": "orders service"}
            ],
        ),
        "WebhookEvent": event,
    }


def _schemas(max_payload: int) -> dict[str, Any]:
    job_props = {
        "jobId": {"type": "string", "description": "The job's id (a UUID)."},
        "status": {"type": "string", "enum": JOB_STATES},
        "txid": {**_NULLABLE_STR, "description": "Set once the job is sent."},
        "vout": {**_NULLABLE_INT, "description": "The record's output index once sent."},
        "blockHash": _NULLABLE_STR,
        "blockHeight": _NULLABLE_INT,
        "errorCode": {
            **_NULLABLE_STR,
            "description": "Set when failed: BROADCAST_REJECTED, BROADCAST_CONFLICT or "
            "BAD_RECORD (docs/API.md, Job error codes).",
        },
        "errorDetail": {**_NULLABLE_STR, "description": "Why it failed, or why it will retry."},
        "attempts": {"type": "integer", "minimum": 0},
        "createdAt": _DATETIME,
        "updatedAt": _DATETIME,
        "sentAt": _DATETIME,
        "confirmedAt": _DATETIME,
    }
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {
                            "type": "string",
                            "enum": sorted(ERROR_CODES) + ["HTTP_ERROR"],
                            "description": "Stable code (docs/API.md, Error codes).",
                        },
                        "message": {"type": "string", "description": "A sentence for people."},
                        "field": {**_NULLABLE_STR, "description": "The member at fault."},
                    }
                )
            },
            description='Every error: `{"error": {"code", "message", "field"}}`.',
        ),
        "PublishRequest": _obj(
            {
                "signedPayload": {
                    "type": "string",
                    "maxLength": max_payload,
                    "description": "RFC 8785 canonical JSON text of {v: 1, nonce, iat, exp, "
                    "record, type?} (docs/PROTOCOL.md §2), at most MAX_PAYLOAD_BYTES "
                    f"({max_payload}) UTF-8 bytes.",
                },
                "signature": {
                    "type": "string",
                    "description": "Standard base64 of the strict DER (BIP 66), low-S ECDSA "
                    "secp256k1 signature over SHA-256 of signedPayload's UTF-8 bytes.",
                },
                "pubkey": {
                    "type": "string",
                    "pattern": PUBKEY,
                    "description": "SEC1 public key, compressed (66 hex) or uncompressed "
                    "(130 hex).",
                },
                "signatureScheme": _SIGNATURE_SCHEME,
            },
            required=["signedPayload", "signature", "pubkey"],
            description="The v1 publish body: these three members and, optionally, "
            "`signatureScheme` (docs/API.md).",
            examples=[
                {
                    "signedPayload": _EXAMPLE_PAYLOAD,
                    "signature": _EXAMPLE_SIGNATURE,
                    "pubkey": _EXAMPLE_PUBKEY,
                }
            ],
        ),
        **_webhook_schemas(),
        "Accepted": _obj(
            {
                "jobId": {"type": "string"},
                "status": {"type": "string", "enum": JOB_STATES},
                "statusUrl": {"type": "string", "description": "Path of GET /v1/jobs/{jobId}."},
            },
            examples=[
                {
                    "jobId": _EXAMPLE_JOB_ID,
                    "status": "queued",
                    "statusUrl": f"/v1/jobs/{_EXAMPLE_JOB_ID}",
                }
            ],
        ),
        "Published": _obj(
            {
                "jobId": {"type": "string"},
                "status": {"type": "string", "enum": JOB_STATES},
                "statusUrl": {"type": "string", "description": "Path of GET /v1/jobs/{jobId}."},
                "receipt": {
                    **_ref("Receipt"),
                    "description": "The signed acceptance receipt: always on a 202; on "
                    "a 200 when the job was accepted with one.",
                },
            },
            required=["jobId", "status", "statusUrl"],
            examples=[
                {
                    "jobId": _EXAMPLE_JOB_ID,
                    "status": "queued",
                    "statusUrl": f"/v1/jobs/{_EXAMPLE_JOB_ID}",
                    "receipt": _EXAMPLE_RECEIPT,
                }
            ],
        ),
        "ReceiptKey": _obj(
            {
                "pubkey": {
                    "type": "string",
                    "pattern": "^0[23][0-9a-f]{64}$",
                    "description": "SEC1 compressed public key, lowercase hex.",
                },
                "algorithm": {"type": "string", "const": RECEIPT_ALGORITHM},
            },
            description="The key that signs acceptance receipts (docs/PROOFS.md); never the "
            "server's funds key.",
            examples=[{"pubkey": _EXAMPLE_RECEIPT["pubkey"], "algorithm": RECEIPT_ALGORITHM}],
        ),
        **proof_schemas(),
        "Job": _obj(
            job_props,
            examples=[
                {
                    "jobId": _EXAMPLE_JOB_ID,
                    "status": "confirmed",
                    "txid": _EXAMPLE_TXID,
                    "vout": 0,
                    "blockHash": "0" * 8 + "3a" * 28,
                    "blockHeight": 812345,
                    "errorCode": None,
                    "errorDetail": None,
                    "attempts": 1,
                    "createdAt": "2026-01-01T00:00:00Z",
                    "updatedAt": "2026-01-01T00:10:02Z",
                    "sentAt": "2026-01-01T00:00:01Z",
                    "confirmedAt": "2026-01-01T00:10:02Z",
                }
            ],
        ),
        "Record": _obj(
            {
                "vout": {"type": "integer", "minimum": 0},
                "version": {
                    "type": ["integer", "null"],
                    "enum": [1, 2, None],
                    "description": "The layout version: 1 (DER signature), 2 (Bitcoin "
                    "Signed Message); null for a malformed record.",
                },
                "signatureScheme": {
                    "type": ["string", "null"],
                    "enum": ["der", "bsm", None],
                    "description": "`der` (layout 1), `bsm` (layout 2); null "
                    "for a malformed record.",
                },
                "signedPayload": {"type": "string"},
                "signature": {
                    "type": "string",
                    "description": "Base64: DER, or the 65-byte compact Bitcoin "
                    "Signed Message signature.",
                },
                "pubkey": {"type": "string", "description": "Compressed SEC1, hex."},
                "valid": {"type": "boolean", "description": "The signature verifies."},
                "error": {
                    **_NULLABLE_STR,
                    "description": "`CODE: message` for the first problem, or null.",
                },
            }
        ),
        "Records": _obj(
            {
                "txid": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "rawTx": {"type": "string", "description": "The raw transaction, hex."},
                "blockHash": _NULLABLE_STR,
                "blockHeight": _NULLABLE_INT,
                "records": {"type": "array", "items": _ref("Record")},
            }
        ),
        "Health": _obj(
            {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "reasons": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Why unavailable, in words.",
                },
                "details": {
                    "type": "object",
                    "description": "Pool, jobs, queue and workers: for clients that "
                    "may read /metrics only.",
                },
            },
            required=["status"],
        ),
        "Key": _obj(
            {
                "purpose": {"type": "string", "enum": ["identity", "financial", "tokens"]},
                "pubkey": {"type": "string"},
            }
        ),
        "Account": _obj(
            {
                "email": {"type": "string"},
                "plan": {"type": "string", "enum": ["free", "paid"]},
                "credits": {"type": "integer", "description": "Spendable now."},
                "keys": {"type": "array", "items": _ref("Key")},
                "hasBackup": {"type": "boolean"},
                "backupVersion": _NULLABLE_INT,
            }
        ),
        "Challenge": _obj(
            {
                "challenge": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "expiresIn": {"type": "integer"},
            }
        ),
        "KeyProof": _obj(
            {
                "purpose": {"type": "string"},
                "pubkey": {"type": "string"},
                "signature": {"type": "string"},
            }
        ),
        "KeyRegistration": _obj(
            {
                "challenge": {"type": "string"},
                "keys": {"type": "array", "items": _ref("KeyProof"), "minItems": 1, "maxItems": 3},
            },
            description="Each signature is over SHA-256 of `raregen-key-registration:` + "
            "challenge + `:` + purpose + `:` + pubkey (docs/WALLET_API.md).",
        ),
        "Registered": _obj({"registered": {"type": "array", "items": _ref("Key")}}),
        "BackupEnvelope": _obj(
            {
                "ciphertext": {"type": "string", "description": "Standard base64."},
                "kdf": {
                    "type": "object",
                    "description": "PBKDF2 {iterations, hash, salt} or "
                    "scrypt {N, r, p, salt}; stored as given.",
                    "properties": {"name": {"type": "string", "enum": ["PBKDF2", "scrypt"]}},
                },
                "cipher": {
                    "type": "object",
                    "description": "AES-GCM {iv, tagLength}.",
                    "properties": {"name": {"type": "string", "enum": ["AES-GCM"]}},
                },
                "identityPubkey": {"type": "string"},
            }
        ),
        "Backup": _obj(
            {
                "version": {"type": "integer", "minimum": 1},
                "ciphertext": {"type": "string"},
                "kdf": {"type": "object"},
                "cipher": {"type": "object"},
                "identityPubkey": {"type": "string"},
                "createdAt": _DATETIME,
            }
        ),
        "BackupVersion": _obj(
            {
                "version": {"type": "integer", "minimum": 1},
                "createdAt": _DATETIME,
                "identityPubkey": {"type": "string"},
                "kdf": _NULLABLE_STR,
                "size": {"type": "integer", "minimum": 0},
            }
        ),
        "WalletJob": _obj(
            {
                **job_props,
                "recordType": _NULLABLE_STR,
                "title": _NULLABLE_STR,
                "panelUrl": {"type": "string"},
            }
        ),
        "WalletAccepted": _obj(
            {
                "jobId": {"type": "string"},
                "status": {"type": "string", "enum": JOB_STATES},
                "statusUrl": {"type": "string"},
                "panelUrl": {"type": "string"},
            }
        ),
        "InternalKeys": _obj(
            {
                "accountRef": {"type": "string", "pattern": "^acct:[0-9]+$"},
                "keys": {"type": "array", "items": _ref("Key")},
            }
        ),
    }


def _error_responses(codes: Iterable[str]) -> dict[str, Any]:
    """One response per status, with an example per code the operation can answer."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    out: dict[str, Any] = {}
    for status in sorted(by_status):
        listed = by_status[status]
        response: dict[str, Any] = {
            "description": f"{_STATUS_TEXT[status]}: " + ", ".join(f"`{c}`" for c in listed),
            "content": {
                "application/json": {
                    "schema": _ref("Error"),
                    "examples": {
                        code: {
                            "summary": ERROR_CODES[code][1],
                            "value": {
                                "error": {
                                    "code": code,
                                    "message": ERROR_CODES[code][1],
                                    "field": None,
                                }
                            },
                        }
                        for code in listed
                    },
                }
            },
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}
        if status == 401 and "AUTH_REQUIRED" in listed:
            response["headers"] = {
                "WWW-Authenticate": {
                    "description": '`Bearer realm="metrics"` on /metrics (RFC 6750 §3).',
                    "schema": {"type": "string"},
                }
            }
        out[str(status)] = response
    return out


def _json(
    schema: dict[str, Any], description: str, examples: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = examples
    return {"description": description, "content": {"application/json": media}, **more}


# the error codes each kind of request can meet
_BODY = ["BAD_REQUEST", "MALFORMED_JSON", "PAYLOAD_TOO_LARGE", "UNSUPPORTED_MEDIA_TYPE"]
_PUBLISH = _BODY + [
    "MISSING_FIELD",
    "UNKNOWN_FIELD",
    "DUPLICATE_MEMBER",
    "NON_CANONICAL_PAYLOAD",
    "LEGACY_CONTRACT",
    "BAD_PUBKEY",
    "BAD_SIGNATURE_SCHEME",
    "BAD_SIGNATURE_ENCODING",
    "BAD_NONCE",
    "BAD_TIMESTAMPS",
    "SIGNATURE_INVALID",
    "HIGH_S_SIGNATURE",
    "NO_CREDITS",
    "KEY_NOT_REGISTERED",
    "KEY_REVOKED",
    "NONCE_REUSED",
    "EXPIRED",
    "NOT_YET_VALID",
    "UNAVAILABLE",
]
# a signed command (POST /v1/webhooks): a publish's checks up to the nonce
_COMMAND = _BODY + [
    "MISSING_FIELD",
    "UNKNOWN_FIELD",
    "DUPLICATE_MEMBER",
    "NON_CANONICAL_PAYLOAD",
    "LEGACY_CONTRACT",
    "BAD_PUBKEY",
    "BAD_SIGNATURE_SCHEME",
    "BAD_SIGNATURE_ENCODING",
    "BAD_NONCE",
    "BAD_TIMESTAMPS",
    "SIGNATURE_INVALID",
    "HIGH_S_SIGNATURE",
    "KEY_NOT_REGISTERED",
    "KEY_REVOKED",
    "NONCE_REUSED",
    "EXPIRED",
    "NOT_YET_VALID",
    "UNAVAILABLE",
]
_WEBHOOK_CREATE = ["BAD_WEBHOOK_URL", "WEBHOOK_URL_FORBIDDEN", "WEBHOOK_LIMIT"]
_WALLET_GET = ["AUTH_REQUIRED", "UNAVAILABLE"]
_WALLET_CALL = ["CSRF_FAILED", "AUTH_REQUIRED", "UNAVAILABLE"]
_PUBLISHED = {
    "202": _json(_ref("Accepted"), "Accepted: a new job, queued."),
    "200": _json(
        _ref("Accepted"),
        "An exact resubmission (same payload and signature): the stored job, whatever its state.",
    ),
}


def _publish_links() -> dict[str, Any]:
    return {
        "GetJob": {
            "operationId": "getJob",
            "parameters": {"jobId": "$response.body#/jobId"},
            "description": "The job this publish made.",
        },
        "GetJobProof": {
            "operationId": "getJobProof",
            "parameters": {"jobId": "$response.body#/jobId"},
            "description": "The proof file of the job this publish made.",
        },
    }


def _proof_response() -> dict[str, Any]:
    return {
        "description": "The proof file, as a download: `pending` until the transaction is "
        "in a block, then `complete` (docs/PROOFS.md). Not cached: it changes once.",
        "headers": {
            "Content-Disposition": {
                "description": '`attachment; filename="raregen-proof-<txid>-<vout>.json"` '
                "(RFC 6266).",
                "schema": {
                    "type": "string",
                    "pattern": '^attachment; filename="raregen-proof-[0-9a-fA-F]{64}'
                    '-[0-9]+\\.json"$',
                },
                "example": f'attachment; filename="raregen-proof-{_EXAMPLE_TXID}-0.json"',
            },
            "Cache-Control": {"schema": {"type": "string", "const": "no-store"}},
        },
        "content": {
            "application/json": {
                "schema": _ref("ProofFile"),
                "examples": {
                    "pending": {
                        "summary": "Sent, not in a block yet (values illustrative)",
                        "value": _EXAMPLE_PENDING,
                    },
                    "complete": {
                        "summary": "In a block, with the headers after it (values illustrative)",
                        "value": _EXAMPLE_COMPLETE,
                    },
                },
            }
        },
    }


def _paths() -> dict[str, Any]:
    wallet_get: list[dict[str, list[str]]] = [{"sessionCookie": []}]
    wallet_call: list[dict[str, list[str]]] = [{"sessionCookie": [], "csrfToken": []}]
    publish_body = {
        "required": True,
        "content": {"application/json": {"schema": _ref("PublishRequest")}},
    }
    published = {
        "202": _json(
            {"allOf": [_ref("Published"), {"required": ["receipt"]}]},
            _PUBLISHED["202"]["description"],
        ),
        "200": _json(_ref("Published"), _PUBLISHED["200"]["description"]),
    }
    for status in ("200", "202"):
        published[status]["links"] = _publish_links()
    wallet_published = {
        status: _json(_ref("WalletAccepted"), resp["description"])
        for status, resp in _PUBLISHED.items()
    }
    no_store = {"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}}
    webhook_list = _obj({"endpoints": {"type": "array", "items": _ref("WebhookEndpoint")}})
    webhook_one = _obj({"endpoint": _ref("WebhookEndpoint")})
    webhook_removed = _obj(
        {"removed": {"type": "integer", "description": "The id of the removed endpoint."}}
    )
    webhook_deliveries = _obj({"deliveries": {"type": "array", "items": _ref("WebhookDelivery")}})
    webhook_created = _json(
        _obj({"endpoint": {"allOf": [_ref("WebhookEndpoint"), {"required": ["secret"]}]}}),
        "Registered: the endpoint with its signing secret (shown this once).",
        headers=no_store,
        examples={
            "created": {"value": {"endpoint": {**_EXAMPLE_ENDPOINT, "secret": _EXAMPLE_SECRET}}}
        },
    )
    endpoint_id = {
        "name": "endpointId",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
        "example": 7,
    }
    return {
        "/v1/publish": {
            "post": {
                "operationId": "publish",
                "tags": ["publish"],
                "summary": "Publish a signed record",
                "description": "Contract v1 (docs/API.md, docs/PROTOCOL.md §2). The checks run "
                "in order and the first failure answers. Rate limited per client IP "
                "(PUBLISH_RATE_LIMIT). A retry of the same signed body is safe: it answers 200 "
                "with the job made the first time.",
                "requestBody": publish_body,
                "responses": {**published, **_error_responses(_PUBLISH + ["RATE_LIMITED"])},
            }
        },
        "/v1/jobs/{jobId}": {
            "get": {
                "operationId": "getJob",
                "tags": ["publish"],
                "summary": "A publish job's state",
                "parameters": [
                    {
                        "name": "jobId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": _EXAMPLE_JOB_ID,
                    }
                ],
                "responses": {
                    "200": _json(_ref("Job"), "The job."),
                    **_error_responses(["NOT_FOUND", "UNAVAILABLE"]),
                },
            }
        },
        "/v1/records/{txid}": {
            "get": {
                "operationId": "getRecords",
                "tags": ["publish"],
                "summary": "The records of a transaction, verified",
                "description": "Read from the node; every RareGen output is parsed and its "
                "signature verified (docs/PROTOCOL.md §3).",
                "parameters": [
                    {
                        "name": "txid",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": HEX64},
                        "example": _EXAMPLE_TXID,
                    }
                ],
                "responses": {
                    "200": _json(_ref("Records"), "The transaction's records."),
                    **_error_responses(["MALFORMED_JSON", "NOT_FOUND", "UNAVAILABLE"]),
                },
            }
        },
        "/v1/webhooks": {
            "post": {
                "operationId": "webhookCommand",
                "tags": ["webhooks"],
                "summary": "A signed webhook command of a key owner",
                "description": "Manage the webhook endpoints of a registered key (docs/API.md, "
                "Webhooks). The body is signed as a publish is, over a command payload "
                "(`WebhookCommandPayload`: `op` and `args`). Checks in order: the body, the "
                "payload, the time window and the signature (the codes of a publish), the key "
                "(`KEY_NOT_REGISTERED`, `KEY_REVOKED`), the nonce (once per key, "
                "`NONCE_REUSED`), then `op` (`UNKNOWN_OPERATION`) and its arguments. Rate "
                "limited per client IP (PUBLISH_RATE_LIMIT). Answers are not cached.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookCommand")}},
                },
                "responses": {
                    "200": _json(
                        {"oneOf": [webhook_list, webhook_one, webhook_removed, webhook_deliveries]},
                        "`webhooks.list` (`endpoints`), `webhooks.enable` (`endpoint`), "
                        "`webhooks.remove` (`removed`) or `webhooks.deliveries` "
                        "(`deliveries`).",
                        headers=no_store,
                        examples={
                            "list": {"value": {"endpoints": [_EXAMPLE_ENDPOINT]}},
                            "removed": {"value": {"removed": 7}},
                            "deliveries": {"value": {"deliveries": [_EXAMPLE_DELIVERY]}},
                        },
                    ),
                    "201": webhook_created,
                    **_error_responses(
                        _COMMAND
                        + _WEBHOOK_CREATE
                        + ["UNKNOWN_OPERATION", "NOT_FOUND", "RATE_LIMITED"]
                    ),
                },
            }
        },
        "/v1/jobs/{jobId}/proof": {
            "get": {
                "operationId": "getJobProof",
                "tags": ["proofs"],
                "summary": "The proof file of a publish job",
                "description": "The `raregen-proof` v1 file of the job's record (docs/PROOFS.md): "
                "the request as published, the transaction, the acceptance receipt and, once "
                "confirmed, the merkle path and block headers. A job not yet in a transaction "
                "answers 409 `PROOF_NOT_READY`; a failed job 409 `JOB_FAILED`.",
                "parameters": [
                    {
                        "name": "jobId",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "example": _EXAMPLE_JOB_ID,
                    }
                ],
                "responses": {
                    "200": _proof_response(),
                    **_error_responses(
                        ["NOT_FOUND", "JOB_FAILED", "PROOF_NOT_READY", "UNAVAILABLE"]
                    ),
                },
            }
        },
        "/v1/records/{txid}/{vout}/proof": {
            "get": {
                "operationId": "getRecordProof",
                "tags": ["proofs"],
                "summary": "The proof file of a record output",
                "description": "As GET /v1/jobs/{jobId}/proof, for the record this server "
                "published at output `vout` of transaction `txid` (the newest job there). A "
                "txid that is not 64 hex characters answers 400 `MALFORMED_JSON`; an output "
                "without a record of ours 404 `NOT_FOUND`.",
                "parameters": [
                    {
                        "name": "txid",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": HEX64},
                        "example": _EXAMPLE_TXID,
                    },
                    {
                        "name": "vout",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 2**32 - 1,
                            "description": "Output index (a uint32 in the transaction).",
                        },
                        "example": 0,
                    },
                ],
                "responses": {
                    "200": _proof_response(),
                    **_error_responses(
                        [
                            "MALFORMED_JSON",
                            "NOT_FOUND",
                            "JOB_FAILED",
                            "PROOF_NOT_READY",
                            "UNAVAILABLE",
                        ]
                    ),
                },
            }
        },
        "/.well-known/raregen/receipt-key": {
            "get": {
                "operationId": "getReceiptKey",
                "tags": ["proofs"],
                "summary": "The public key that signs acceptance receipts",
                "description": "Compare it with a receipt's `pubkey` (docs/PROOFS.md).",
                "responses": {"200": _json(_ref("ReceiptKey"), "The receipt key.")},
            }
        },
        "/v1/ping": {
            "get": {
                "operationId": "ping",
                "tags": ["service"],
                "summary": "Trivial JSON answer",
                "responses": {
                    "200": _json(_obj({"ok": {"type": "boolean", "const": True}}), "Always.")
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["service"],
                "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1.")},
            }
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "tags": ["service"],
                "summary": "Whether the publisher can do its work",
                "description": "Everyone gets the status (and reasons); clients that may read "
                "/metrics (the metrics bearer token, or loopback without one) also get "
                "`details`. A wrong token is not refused: the answer is the public one.",
                "security": [{}, {"metricsToken": []}],
                "responses": {
                    "200": _json(
                        _ref("Health"),
                        "Able to work.",
                        headers={"Cache-Control": {"schema": {"type": "string"}}},
                    ),
                    "503": _json(_ref("Health"), "Unavailable: `reasons` says why."),
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["service"],
                "summary": "Prometheus text exposition",
                "description": "With METRICS_TOKEN set, every client needs the bearer token; "
                "without it only direct loopback clients are served.",
                "security": [{"metricsToken": []}, {}],
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(["AUTH_REQUIRED", "FORBIDDEN"]),
                },
            }
        },
        "/wallet/api/me": {
            "get": {
                "operationId": "walletMe",
                "tags": ["wallet"],
                "summary": "The signed-in account",
                "security": wallet_get,
                "responses": {
                    "200": _json(_ref("Account"), "The account."),
                    **_error_responses(_WALLET_GET),
                },
            }
        },
        "/wallet/api/challenge": {
            "post": {
                "operationId": "walletChallenge",
                "tags": ["wallet"],
                "summary": "A single-use key-registration challenge (300 s)",
                "security": wallet_call,
                "responses": {
                    "200": _json(_ref("Challenge"), "The challenge."),
                    **_error_responses(_WALLET_CALL),
                },
            }
        },
        "/wallet/api/keys": {
            "post": {
                "operationId": "walletRegisterKeys",
                "tags": ["wallet"],
                "summary": "Register the account's keys with proofs of possession",
                "security": wallet_call,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("KeyRegistration")}},
                },
                "responses": {
                    "200": _json(_ref("Registered"), "All registered (or already were)."),
                    **_error_responses(
                        _WALLET_CALL
                        + _BODY
                        + [
                            "MISSING_FIELD",
                            "UNKNOWN_FIELD",
                            "DUPLICATE_MEMBER",
                            "BAD_PURPOSE",
                            "BAD_PUBKEY",
                            "BAD_SIGNATURE_ENCODING",
                            "CHALLENGE_INVALID",
                            "SIGNATURE_INVALID",
                            "HIGH_S_SIGNATURE",
                            "KEY_REVOKED",
                            "KEY_TAKEN",
                        ]
                    ),
                },
            }
        },
        "/wallet/api/backup": {
            "put": {
                "operationId": "walletPutBackup",
                "tags": ["wallet"],
                "summary": "Store a new version of the encrypted backup",
                "security": wallet_call,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("BackupEnvelope")}},
                },
                "responses": {
                    "200": _json(
                        _obj({"version": {"type": "integer", "minimum": 1}}),
                        "Stored as this version.",
                    ),
                    **_error_responses(
                        _WALLET_CALL
                        + _BODY
                        + ["DUPLICATE_MEMBER", "UNKNOWN_FIELD", "BAD_BACKUP", "BAD_PUBKEY"]
                    ),
                },
            },
            "get": {
                "operationId": "walletGetBackup",
                "tags": ["wallet"],
                "summary": "The newest backup",
                "security": wallet_get,
                "responses": {
                    "200": _json(_ref("Backup"), "The newest version."),
                    **_error_responses(_WALLET_GET + ["NOT_FOUND"]),
                },
            },
        },
        "/wallet/api/backup/{version}": {
            "get": {
                "operationId": "walletGetBackupVersion",
                "tags": ["wallet"],
                "summary": "One version of the backup",
                "security": wallet_get,
                "parameters": [
                    {
                        "name": "version",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1},
                    }
                ],
                "responses": {
                    "200": _json(_ref("Backup"), "That version."),
                    **_error_responses(_WALLET_GET + ["NOT_FOUND"]),
                },
            }
        },
        "/wallet/api/backup/versions": {
            "get": {
                "operationId": "walletBackupVersions",
                "tags": ["wallet"],
                "summary": "Every backup version, newest first, without ciphertext",
                "security": wallet_get,
                "responses": {
                    "200": _json(
                        _obj({"versions": {"type": "array", "items": _ref("BackupVersion")}}),
                        "The versions.",
                    ),
                    **_error_responses(_WALLET_GET),
                },
            }
        },
        "/wallet/api/publish": {
            "post": {
                "operationId": "walletPublish",
                "tags": ["wallet"],
                "summary": "Publish a body signed in the browser with one of the account's keys",
                "description": "The publisher's answer unchanged, plus panelUrl on success. "
                "Rate limited per account (PUBLISH_RATE_LIMIT).",
                "security": wallet_call,
                "requestBody": publish_body,
                "responses": {
                    **wallet_published,
                    **_error_responses(_WALLET_CALL + _PUBLISH + ["RATE_LIMITED"]),
                },
            }
        },
        "/wallet/api/jobs": {
            "get": {
                "operationId": "walletJobs",
                "tags": ["wallet"],
                "summary": "The account's jobs, newest first",
                "security": wallet_get,
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "default": 1}},
                    {
                        "name": "perPage",
                        "in": "query",
                        "schema": {"type": "integer", "default": 20, "maximum": 100},
                    },
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "jobs": {"type": "array", "items": _ref("WalletJob")},
                                "page": {"type": "integer"},
                                "perPage": {"type": "integer"},
                                "total": {"type": "integer"},
                                "hasMore": {"type": "boolean"},
                            }
                        ),
                        "One page.",
                    ),
                    **_error_responses(_WALLET_GET + ["MALFORMED_JSON"]),
                },
            }
        },
        "/wallet/api/webhooks": {
            "get": {
                "operationId": "walletWebhooks",
                "tags": ["wallet", "webhooks"],
                "summary": "The account's webhook endpoints, oldest first",
                "security": wallet_get,
                "responses": {
                    "200": _json(webhook_list, "The endpoints.", headers=no_store),
                    **_error_responses(_WALLET_GET),
                },
            },
            "post": {
                "operationId": "walletCreateWebhook",
                "tags": ["wallet", "webhooks"],
                "summary": "Register a webhook endpoint for the account",
                "description": "Events for the jobs of all the account's keys. The answer "
                "carries the endpoint's signing secret, shown this once.",
                "security": wallet_call,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookCreate")}},
                },
                "responses": {
                    "201": webhook_created,
                    **_error_responses(
                        _WALLET_CALL
                        + _BODY
                        + _WEBHOOK_CREATE
                        + ["DUPLICATE_MEMBER", "UNKNOWN_FIELD"]
                    ),
                },
            },
        },
        "/wallet/api/webhooks/{endpointId}": {
            "delete": {
                "operationId": "walletRemoveWebhook",
                "tags": ["wallet", "webhooks"],
                "summary": "Remove an endpoint with its pending events and history",
                "security": wallet_call,
                "parameters": [endpoint_id],
                "responses": {
                    "200": _json(webhook_removed, "Removed.", headers=no_store),
                    **_error_responses(_WALLET_CALL + ["NOT_FOUND"]),
                },
            }
        },
        "/wallet/api/webhooks/{endpointId}/enable": {
            "post": {
                "operationId": "walletEnableWebhook",
                "tags": ["wallet", "webhooks"],
                "summary": "Enable a disabled endpoint again (its failure count reset)",
                "security": wallet_call,
                "parameters": [endpoint_id],
                "responses": {
                    "200": _json(webhook_one, "The endpoint.", headers=no_store),
                    **_error_responses(_WALLET_CALL + ["NOT_FOUND"]),
                },
            }
        },
        "/wallet/api/webhooks/deliveries": {
            "get": {
                "operationId": "walletWebhookDeliveries",
                "tags": ["wallet", "webhooks"],
                "summary": "The latest webhook events of the account, newest first",
                "security": wallet_get,
                "parameters": [
                    {
                        "name": "endpoint",
                        "in": "query",
                        "description": "Only this endpoint's.",
                        "schema": {"type": "integer", "minimum": 1},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
                    },
                ],
                "responses": {
                    "200": _json(webhook_deliveries, "The events.", headers=no_store),
                    **_error_responses(_WALLET_GET + ["NOT_FOUND"]),
                },
            }
        },
        "/internal/keys": {
            "post": {
                "operationId": "internalRegisterKeys",
                "tags": ["internal"],
                "summary": "Register an account's keys (wallet process to publisher)",
                "security": [{"serviceToken": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("InternalKeys")}},
                },
                "responses": {
                    "200": _json(_ref("Registered"), "All registered."),
                    **_error_responses(
                        ["AUTH_REQUIRED"]
                        + _BODY
                        + [
                            "MISSING_FIELD",
                            "UNKNOWN_FIELD",
                            "DUPLICATE_MEMBER",
                            "BAD_PURPOSE",
                            "BAD_PUBKEY",
                            "KEY_REVOKED",
                            "KEY_TAKEN",
                            "UNAVAILABLE",
                        ]
                    ),
                },
            }
        },
        "/internal/publish": {
            "post": {
                "operationId": "internalPublish",
                "tags": ["internal"],
                "summary": "Publish on behalf of an account (wallet process to publisher)",
                "security": [{"serviceToken": []}],
                "parameters": [
                    {
                        "name": "X-RareGen-Account",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^acct:[0-9]+$"},
                    }
                ],
                "requestBody": publish_body,
                "responses": {
                    **copy.deepcopy(_PUBLISHED),
                    **_error_responses(["AUTH_REQUIRED"] + _PUBLISH),
                },
            }
        },
    }


def build_spec(max_payload_bytes: int = 65536, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document as a JSON-ready dict.

    Args:
        max_payload_bytes: ``MAX_PAYLOAD_BYTES`` of the server (the signedPayload limit).
        server_url: the public base URL for ``servers``; the document's own origin if None.

    Returns:
        A fresh dict (callers may change it).
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "RareGen API",
            "version": "1",
            "summary": "Publish signed records on the BSV blockchain; the wallet's JSON API.",
            "description": (
                'Every error is JSON `{"error": {"code", "message", "field"}}` with a '
                "stable code (docs/API.md, Error codes). A 429 `RATE_LIMITED` carries "
                "`Retry-After` (seconds); a 503 `UNAVAILABLE` from the database or Redis "
                "carries `Retry-After: 1`. The HTTP layer (nginx in front of the app) may also "
                "answer 408 `REQUEST_TIMEOUT`, 414 `URI_TOO_LONG` and 431 `HEADERS_TOO_LARGE` "
                "in the same shape on any path."
            ),
        },
        "servers": [{"url": server_url or "/"}],
        "tags": [
            {"name": "publish", "description": "The publish contract v1 (docs/API.md)."},
            {
                "name": "wallet",
                "description": "The browser wallet's JSON API "
                "(docs/WALLET_API.md): a signed-in session cookie, and X-CSRFToken on every "
                "call that is not a GET.",
            },
            {
                "name": "internal",
                "description": "Wallet process to publisher, with the service "
                "token (ROLE=publisher).",
            },
            {
                "name": "webhooks",
                "description": "Webhook endpoints of key owners (signed "
                "commands) and wallet accounts; the events (`WebhookEvent`) RareGen POSTs to "
                "them (docs/API.md, Webhooks).",
            },
            {
                "name": "proofs",
                "description": "Proof files and the acceptance-receipt key (docs/PROOFS.md).",
            },
            {"name": "service", "description": "Health, metrics and this document."},
        ],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(max_payload_bytes),
            "headers": {
                "RetryAfter": {
                    "description": "Seconds to wait before retrying (RFC 9110 §10.2.3).",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            },
            "securitySchemes": {
                "sessionCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "The wallet's signed session cookie, set by "
                    "the email one-time-code sign-in (/signin).",
                },
                "csrfToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRFToken",
                    "description": 'The page\'s `<meta name="csrf-token">`.',
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "METRICS_TOKEN (RFC 6750).",
                },
                "serviceToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "SERVICE_TOKEN shared by the wallet and the "
                    "publisher processes.",
                },
            },
        },
    }
