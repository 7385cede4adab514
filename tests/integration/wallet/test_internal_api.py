"""The publisher's internal endpoints for a wallet in another process: service token,
key registration, publishing on an account's behalf, and the HTTP forwarder against them."""

from __future__ import annotations

import json

import coincurve
import pytest
from sqlalchemy import select

from raregen.db import db
from raregen.wallet import forward
from raregen.wallet.keyreg import KeyProof
from raregen.wallet.models import Account
from tests.integration.wallet.conftest import expect_error, publish_body

TOKEN = "s3rvice-t0ken"


@pytest.fixture
def internal(app, monkeypatch):
    monkeypatch.setitem(app.config, "SERVICE_TOKEN", TOKEN)
    return app.test_client()


def _auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _keys_body(ref: str, key: coincurve.PrivateKey, purpose: str = "identity") -> dict:
    return {
        "accountRef": ref,
        "keys": [{"purpose": purpose, "pubkey": key.public_key.format().hex()}],
    }


def test_token_required(internal, app, monkeypatch):
    body = _keys_body("acct:1", coincurve.PrivateKey())
    expect_error(internal.post("/internal/keys", json=body), 401, "AUTH_REQUIRED")
    expect_error(
        internal.post("/internal/keys", json=body, headers=_auth("wrong")), 401, "AUTH_REQUIRED"
    )
    expect_error(
        internal.post("/internal/keys", json=body, headers={"Authorization": TOKEN}),
        401,
        "AUTH_REQUIRED",
    )
    monkeypatch.setitem(app.config, "SERVICE_TOKEN", None)  # no token configured: never open
    expect_error(
        internal.post("/internal/keys", json=body, headers=_auth("")), 401, "AUTH_REQUIRED"
    )


def test_register_and_publish(internal):
    key = coincurve.PrivateKey()
    resp = internal.post("/internal/keys", json=_keys_body("acct:7", key), headers=_auth())
    assert resp.status_code == 200
    assert resp.json == {
        "registered": [{"purpose": "identity", "pubkey": key.public_key.format().hex()}]
    }
    expect_error(
        internal.post("/internal/keys", json=_keys_body("acct:8", key), headers=_auth()),
        409,
        "KEY_TAKEN",
    )
    expect_error(
        internal.post("/internal/keys", json=_keys_body("someone", key), headers=_auth()),
        400,
        "MISSING_FIELD",
    )
    expect_error(
        internal.post("/internal/keys", json=_keys_body("acct:7", key, "savings"), headers=_auth()),
        400,
        "BAD_PURPOSE",
    )
    # account 7 has no ledger row and no account: the credit check refuses
    headers = {**_auth(), "X-RareGen-Account": "acct:7"}
    resp = internal.post("/internal/publish", json=publish_body(key), headers=headers)
    expect_error(resp, 402, "NO_CREDITS")
    other = {**_auth(), "X-RareGen-Account": "acct:8"}
    expect_error(
        internal.post("/internal/publish", json=publish_body(key), headers=other),
        403,
        "KEY_NOT_REGISTERED",
    )


def test_publish_for_an_account(internal, signed_in):
    account_id = db.session.scalar(select(Account.id).where(Account.email == "alice@example.com"))
    key = coincurve.PrivateKey()
    ref = f"acct:{account_id}"
    assert (
        internal.post("/internal/keys", json=_keys_body(ref, key), headers=_auth()).status_code
        == 200
    )
    body = publish_body(key)
    headers = {**_auth(), "X-RareGen-Account": ref}
    resp = internal.post(
        "/internal/publish", data=json.dumps(body), content_type="application/json", headers=headers
    )
    assert resp.status_code == 202, resp.json
    assert resp.json["statusUrl"] == f"/v1/jobs/{resp.json['jobId']}"
    again = internal.post("/internal/publish", json=body, headers=headers)
    assert again.status_code == 200 and again.json["jobId"] == resp.json["jobId"]
    assert signed_in.get("/wallet/api/me").json["credits"] == 19


def test_http_forwarder_unreachable_publisher(app, monkeypatch):
    from raregen.errors import ServiceError

    monkeypatch.setitem(app.config, "ROLE", "wallet")
    monkeypatch.setitem(app.config, "PUBLISHER_URL", "http://127.0.0.1:9")
    monkeypatch.setitem(app.config, "SERVICE_TOKEN", TOKEN)
    pub = forward.publisher()
    assert isinstance(pub, forward.HttpPublisher)
    with pytest.raises(ServiceError):
        pub.register_keys("acct:1", [KeyProof("identity", "02" + "11" * 32)])
    monkeypatch.setitem(app.config, "PUBLISHER_URL", None)
    with pytest.raises(ServiceError):
        forward.publisher()
