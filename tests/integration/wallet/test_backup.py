"""Encrypted backups: every upload a new version, the newest handed back, envelope checks."""

from __future__ import annotations

import base64
import os

import coincurve

from tests.integration.wallet.conftest import WalletClient, expect_error


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def envelope(size: int = 200, **over: object) -> dict:
    body: dict = {
        "ciphertext": _b64(size),
        "kdf": {"name": "PBKDF2", "hash": "SHA-256", "iterations": 600_000, "salt": _b64(16)},
        "cipher": {"name": "AES-GCM", "iv": _b64(12)},
        "identityPubkey": coincurve.PrivateKey().public_key.format().hex(),
    }
    body.update(over)
    return body


def test_versions(signed_in):
    expect_error(signed_in.get("/wallet/api/backup"), 404, "NOT_FOUND")
    assert signed_in.get("/wallet/api/backup/versions").json == {"versions": []}
    first, second = (
        envelope(),
        envelope(kdf={"name": "scrypt", "N": 2**17, "r": 8, "p": 1, "salt": _b64(32)}),
    )
    assert signed_in.put("/wallet/api/backup", first).json == {"version": 1}
    assert signed_in.put("/wallet/api/backup", second).json == {"version": 2}

    latest = signed_in.get("/wallet/api/backup")
    assert latest.status_code == 200
    assert latest.headers["Cache-Control"] == "no-store"
    body = latest.json
    assert body["version"] == 2
    assert {k: body[k] for k in ("ciphertext", "kdf", "cipher", "identityPubkey")} == second
    assert body["createdAt"].endswith("Z")

    old = signed_in.get("/wallet/api/backup/1").json
    assert old["ciphertext"] == first["ciphertext"] and old["kdf"] == first["kdf"]
    expect_error(signed_in.get("/wallet/api/backup/3"), 404, "NOT_FOUND")

    versions = signed_in.get("/wallet/api/backup/versions").json["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert versions[0]["kdf"] == "scrypt" and versions[1]["size"] == 200
    assert "ciphertext" not in versions[0]

    me = signed_in.get("/wallet/api/me").json
    assert me["hasBackup"] is True and me["backupVersion"] == 2


def test_backups_are_per_account(signed_in):
    assert signed_in.put("/wallet/api/backup", envelope()).json == {"version": 1}
    bob = WalletClient(signed_in.app, ip="10.2.2.2")
    bob.sign_in("bob@example.com")
    expect_error(bob.get("/wallet/api/backup"), 404, "NOT_FOUND")
    assert bob.put("/wallet/api/backup", envelope()).json == {"version": 1}


def test_envelope_checks(signed_in):
    def bad(body: dict, status: int = 400, code: str = "BAD_BACKUP") -> None:
        expect_error(signed_in.put("/wallet/api/backup", body), status, code)

    bad(envelope(ciphertext="not base64!"))
    bad(envelope(ciphertext=""))
    bad(envelope(kdf={"name": "PBKDF2", "iterations": 1000, "salt": _b64(16)}))
    bad(envelope(kdf={"name": "PBKDF2", "iterations": 600_000, "salt": _b64(4)}))
    bad(envelope(kdf={"name": "argon2id", "salt": _b64(16)}))
    bad(envelope(kdf={"name": "scrypt", "N": 3000, "r": 8, "p": 1, "salt": _b64(16)}))
    bad(envelope(kdf={"name": "scrypt", "N": 2**10, "r": 8, "p": 1, "salt": _b64(16)}))
    bad(envelope(cipher={"name": "AES-CBC", "iv": _b64(16)}))
    bad(envelope(cipher={"name": "AES-GCM", "iv": _b64(4)}))
    bad(envelope(identityPubkey="02" + "00" * 32), 400, "BAD_PUBKEY")
    bad(dict(envelope(), seed="never"), 400, "UNKNOWN_FIELD")
    bad(envelope(size=64 * 1024 + 1), 413, "PAYLOAD_TOO_LARGE")
    assert signed_in.put("/wallet/api/backup", envelope(size=64 * 1024)).json == {"version": 1}
    expect_error(signed_in.put("/wallet/api/backup", envelope(), csrf=False), 400, "CSRF_FAILED")


def test_huge_numbers_in_urls_are_not_500(signed_in):
    # found by a fresh-user review: integers past 2**63 overflowed the database driver
    expect_error(signed_in.get("/wallet/api/backup/9223372036854775808"), 404, "NOT_FOUND")
    resp = signed_in.get("/wallet/api/jobs?page=99999999999999999999999")
    assert resp.status_code == 200 and resp.json["jobs"] == []
