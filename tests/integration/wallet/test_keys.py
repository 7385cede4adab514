"""Key registration: proof of possession over a single-use challenge, KEY_TAKEN, and the
registered keys as the publisher and ``/wallet/api/me`` see them."""

from __future__ import annotations

import base64
from datetime import timedelta

import coincurve
from sqlalchemy import select

from raregen.db import db, utcnow
from raregen.publish.models import RegisteredKey
from raregen.wallet.models import Account
from tests.integration.wallet.conftest import WalletClient, expect_error, proof, register_keys

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _three() -> dict[str, coincurve.PrivateKey]:
    return {p: coincurve.PrivateKey() for p in ("identity", "financial", "tokens")}


def test_challenge_shape(signed_in):
    body = signed_in.post("/wallet/api/challenge").json
    assert body["expiresIn"] == 300
    assert len(body["challenge"]) == 64 and int(body["challenge"], 16) >= 0
    assert signed_in.post("/wallet/api/challenge").json["challenge"] != body["challenge"]


def test_registers_three_keys(signed_in):
    keys = _three()
    resp = register_keys(signed_in, keys)
    assert resp.status_code == 200, resp.json
    expected = [{"purpose": p, "pubkey": k.public_key.format().hex()} for p, k in keys.items()]
    assert resp.json == {"registered": expected}
    assert signed_in.get("/wallet/api/me").json["keys"] == expected
    account = db.session.scalar(select(Account).where(Account.email == "alice@example.com"))
    rows = db.session.scalars(select(RegisteredKey).order_by(RegisteredKey.id)).all()
    assert [(r.purpose, r.account_ref, r.credits, r.status) for r in rows] == [
        (p, f"acct:{account.id}", None, "active") for p in keys
    ]
    # registering the same keys again is harmless
    assert register_keys(signed_in, keys).status_code == 200
    assert len(signed_in.get("/wallet/api/me").json["keys"]) == 3


def test_bad_signature_refused_and_challenge_spent(signed_in):
    key, other = coincurve.PrivateKey(), coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    forged = proof(other, challenge, "identity")
    forged["pubkey"] = key.public_key.format().hex()  # signed by another key
    resp = signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [forged]})
    expect_error(resp, 401, "SIGNATURE_INVALID")
    # the challenge was spent by the failed attempt: the right proof needs a new one
    resp = signed_in.post(
        "/wallet/api/keys", {"challenge": challenge, "keys": [proof(key, challenge, "identity")]}
    )
    expect_error(resp, 401, "CHALLENGE_INVALID")
    assert signed_in.get("/wallet/api/me").json["keys"] == []


def test_signature_over_other_purpose_refused(signed_in):
    key = coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    entry = proof(key, challenge, "financial")
    entry["purpose"] = "identity"
    resp = signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [entry]})
    expect_error(resp, 401, "SIGNATURE_INVALID")


def test_high_s_refused(signed_in):
    key = coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    entry = proof(key, challenge, "identity")
    der = base64.b64decode(entry["signature"])
    rlen = der[3]
    r = int.from_bytes(der[4 : 4 + rlen], "big")
    s = N - int.from_bytes(der[6 + rlen :], "big")

    def enc(x: int) -> bytes:
        b = x.to_bytes((x.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(b)]) + b

    body = enc(r) + enc(s)
    entry["signature"] = base64.b64encode(b"\x30" + bytes([len(body)]) + body).decode()
    resp = signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [entry]})
    expect_error(resp, 401, "HIGH_S_SIGNATURE")


def test_challenge_single_use(signed_in):
    key = coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    body = {"challenge": challenge, "keys": [proof(key, challenge, "identity")]}
    assert signed_in.post("/wallet/api/keys", body).status_code == 200
    expect_error(signed_in.post("/wallet/api/keys", body), 401, "CHALLENGE_INVALID")


def test_challenge_expires(signed_in, time_machine):
    key = coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    later = utcnow() + timedelta(seconds=301)
    time_machine.move_to(later, tick=False)
    body = {"challenge": challenge, "keys": [proof(key, challenge, "identity")]}
    expect_error(signed_in.post("/wallet/api/keys", body), 401, "CHALLENGE_INVALID")


def test_challenge_of_another_account_refused(signed_in):
    bob = WalletClient(signed_in.app, ip="10.1.1.1")
    bob.sign_in("bob@example.com")
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    key = coincurve.PrivateKey()
    body = {"challenge": challenge, "keys": [proof(key, challenge, "identity")]}
    expect_error(bob.post("/wallet/api/keys", body), 401, "CHALLENGE_INVALID")


def test_key_of_another_account_is_taken(signed_in):
    key = coincurve.PrivateKey()
    assert register_keys(signed_in, {"identity": key}).status_code == 200
    bob = WalletClient(signed_in.app, ip="10.1.1.2")
    bob.sign_in("bob@example.com")
    expect_error(register_keys(bob, {"identity": key}), 409, "KEY_TAKEN")
    # all or none: a fresh key sent with the taken one is not registered either
    fresh = coincurve.PrivateKey()
    expect_error(register_keys(bob, {"identity": fresh, "financial": key}), 409, "KEY_TAKEN")
    assert bob.get("/wallet/api/me").json["keys"] == []


def test_operator_key_is_taken(signed_in):
    from raregen.publish import keys

    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex(), credits=5)
    expect_error(register_keys(signed_in, {"identity": key}), 409, "KEY_TAKEN")


def test_malformed_registrations(signed_in):
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    key = coincurve.PrivateKey()
    good = proof(key, challenge, "identity")
    expect_error(signed_in.post("/wallet/api/keys", {"keys": [good]}), 400, "MISSING_FIELD")
    expect_error(
        signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [good], "x": 1}),
        400,
        "UNKNOWN_FIELD",
    )
    bad_purpose = dict(good, purpose="savings")
    expect_error(
        signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [bad_purpose]}),
        400,
        "BAD_PURPOSE",
    )
    uncompressed = dict(good, pubkey=key.public_key.format(compressed=False).hex())
    expect_error(
        signed_in.post("/wallet/api/keys", {"challenge": challenge, "keys": [uncompressed]}),
        400,
        "BAD_PUBKEY",
    )
    resp = signed_in.http.post(
        "/wallet/api/keys",
        data="challenge=x",
        headers={"X-CSRFToken": signed_in.token, "Content-Type": "text/plain"},
    )
    expect_error(resp, 415, "UNSUPPORTED_MEDIA_TYPE")
    resp = signed_in.http.post(
        "/wallet/api/keys",
        data='{"challenge": "a", "challenge": "b"}',
        headers={"X-CSRFToken": signed_in.token, "Content-Type": "application/json"},
    )
    expect_error(resp, 400, "DUPLICATE_MEMBER")


def test_proof_that_cannot_be_a_proof_leaves_the_challenge(signed_in):
    key = coincurve.PrivateKey()
    challenge = signed_in.post("/wallet/api/challenge").json["challenge"]
    good = proof(key, challenge, "identity")

    def send(value: str, entry: dict[str, str]):
        return signed_in.post("/wallet/api/keys", {"challenge": value, "keys": [entry]})

    # encodings that cannot be a proof: 400, and the challenge is not spent
    expect_error(send(challenge, dict(good, pubkey="zz" * 33)), 400, "BAD_PUBKEY")
    expect_error(send(challenge, dict(good, pubkey="05" + "11" * 32)), 400, "BAD_PUBKEY")
    expect_error(
        send(challenge, dict(good, signature="not base64!")), 400, "BAD_SIGNATURE_ENCODING"
    )
    expect_error(send(challenge, dict(good, signature="MAA=")), 400, "BAD_SIGNATURE_ENCODING")
    # a later entry's bad encoding is found before anything is spent too
    second = proof(coincurve.PrivateKey(), challenge, "financial")
    resp = signed_in.post(
        "/wallet/api/keys",
        {"challenge": challenge, "keys": [good, dict(second, signature="")]},
    )
    expect_error(resp, 400, "BAD_SIGNATURE_ENCODING")
    # a challenge that cannot be one (not 64 lowercase hex, or with a tail) is a 400 too
    for value in ("xyz", challenge.upper(), challenge + "ff", challenge[:63]):
        err = expect_error(send(value, good), 400, "MALFORMED_JSON")
        assert err["field"] == "challenge"
    # the challenge still works
    resp = send(challenge, good)
    assert resp.status_code == 200, resp.json
    assert signed_in.get("/wallet/api/me").json["keys"] == [
        {"purpose": "identity", "pubkey": key.public_key.format().hex()}
    ]
    # an unknown challenge of the right form is still CHALLENGE_INVALID
    expect_error(send("ab" * 32, good), 401, "CHALLENGE_INVALID")
