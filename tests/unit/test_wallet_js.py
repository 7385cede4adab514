"""The browser wallet's JavaScript (raregen/static/js/src), run under Node.js, checked against
independent implementations: Trezor's SLIP-39 reference (vectors and the Python
``shamir-mnemonic`` package), a BIP32 derivation written from the spec, coincurve ECDSA and
the server's own contract verifier.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
from pathlib import Path

import coincurve
import pytest
import shamir_mnemonic

from raregen.signing import is_low_s, verify_publish_request
from tests.jsbridge import PATHS, run_js, wallet_keys
from tests.vectors import vector_file

WORDLIST = Path(shamir_mnemonic.__file__).with_name("wordlist.txt")


@pytest.fixture(scope="module")
def vector_report() -> dict:
    [report] = run_js("slip39_vectors.mjs", str(vector_file("slip39", "vectors.json")))
    return report


def test_wordlist_is_the_reference_list(vector_report: dict) -> None:
    assert vector_report["wordlistSha256"] == hashlib.sha256(WORDLIST.read_bytes()).hexdigest()


def test_valid_vectors_recover_with_passphrase_trezor(vector_report: dict) -> None:
    # the file has 15 entries with a master secret (valid) and 30 without (to be refused)
    valid = [r for r in vector_report["results"] if r["valid"]]
    assert len(valid) == 15
    failures = [r for r in valid if not r["ok"]]
    assert not failures, failures


def test_invalid_vectors_are_refused(vector_report: dict) -> None:
    invalid = [r for r in vector_report["results"] if not r["valid"]]
    assert len(invalid) == 30
    failures = [r for r in invalid if not r["ok"]]
    assert not failures, failures


SPLITS = [
    # (secret bytes, passphrase, extendable, iteration exponent, group threshold, groups)
    (16, "", True, 1, 1, [[3, 5]]),
    (32, "", True, 0, 1, [[3, 5]]),
    (16, "TREZOR", False, 2, 1, [[3, 5]]),
    (32, "correct horse", True, 1, 2, [[2, 3], [3, 5], [1, 1]]),
]


def test_js_shares_recover_with_python_reference() -> None:
    secrets_ = [secrets.token_bytes(n) for n, *_ in SPLITS]
    answers = run_js(
        "slip39_cli.mjs",
        requests=[
            {
                "op": "split",
                "secretHex": s.hex(),
                "passphrase": p,
                "extendable": ext,
                "iterationExponent": e,
                "groupThreshold": gt,
                "groups": groups,
            }
            for s, (_, p, ext, e, gt, groups) in zip(secrets_, SPLITS, strict=True)
        ],
    )
    for secret, (_, passphrase, _ext, _e, _gt, groups), answer in zip(
        secrets_, SPLITS, answers, strict=True
    ):
        made = answer["groups"]
        assert [len(g) for g in made] == [n for _, n in groups]
        if len(made) == 1:
            assert all(len(m.split()) == (20 if len(secret) == 16 else 33) for m in made[0])
            for combo in itertools.combinations(made[0], 3):
                assert shamir_mnemonic.combine_mnemonics(list(combo), passphrase.encode()) == secret
            with pytest.raises(shamir_mnemonic.MnemonicError):
                shamir_mnemonic.combine_mnemonics(made[0][:2], passphrase.encode())
        else:
            assert (
                shamir_mnemonic.combine_mnemonics(made[0][:2] + made[2], passphrase.encode())
                == secret
            )
            assert (
                shamir_mnemonic.combine_mnemonics(made[1][2:] + made[0][1:], passphrase.encode())
                == secret
            )


def test_python_shares_recover_in_js_and_two_shares_are_refused() -> None:
    secret = secrets.token_bytes(16)
    [shares] = shamir_mnemonic.generate_mnemonics(1, [(3, 5)], secret, b"")
    answers = run_js(
        "slip39_cli.mjs",
        requests=[
            {"op": "combine", "mnemonics": [shares[4], shares[0], shares[2]]},
            {"op": "combine", "mnemonics": shares[1:3]},
            {"op": "combine", "mnemonics": shares, "lenient": True},
            {"op": "combine", "mnemonics": shares[:3], "passphrase": "wrong"},
        ],
    )
    assert answers[0] == {"secretHex": secret.hex()}
    assert answers[1]["error"]["code"] == "NOT_ENOUGH_SHARES"
    assert answers[1]["error"]["message"].startswith("3 shares needed")
    assert answers[2] == {"secretHex": secret.hex()}  # the UI accepts more than 3
    # SLIP-39 cannot tell a wrong passphrase: it gives another secret, which is why the pages
    # compare the recovered identity key with the registered one.
    assert "secretHex" in answers[3] and answers[3]["secretHex"] != secret.hex()


def test_derivation_paths_match_an_independent_bip32() -> None:
    seeds = [bytes(range(16)), secrets.token_bytes(16), secrets.token_bytes(32)]
    answers = run_js(
        "wallet_cli.mjs", requests=[{"op": "derive", "secretHex": s.hex()} for s in seeds]
    )
    for seed, answer in zip(seeds, answers, strict=True):
        expected = wallet_keys(seed)
        for purpose, path in PATHS.items():
            got = answer["keys"][purpose]
            assert got["path"] == path
            assert got["privateKeyHex"] == expected[purpose][0].hex()
            assert got["pubkeyHex"] == expected[purpose][1]


def test_registration_proofs_verify() -> None:
    seed, challenge = secrets.token_bytes(16), secrets.token_hex(32)
    [answer] = run_js(
        "wallet_cli.mjs",
        requests=[{"op": "register", "secretHex": seed.hex(), "challenge": challenge}],
    )
    assert [k["purpose"] for k in answer["keys"]] == ["identity", "financial", "tokens"]
    for key in answer["keys"]:
        der = base64.b64decode(key["signature"])
        message = f"raregen-key-registration:{challenge}:{key['purpose']}:{key['pubkey']}".encode()
        assert is_low_s(der)
        assert coincurve.PublicKey(bytes.fromhex(key["pubkey"])).verify(
            der, message, hasher=lambda m: hashlib.sha256(m).digest()
        )


def test_work_request_passes_the_server_checks() -> None:
    seed = secrets.token_bytes(16)
    fields = {
        "title": "  Dub Plate \u00e9 \U0001f981 ",
        "creator": "Ras Tafari",
        "contentHash": "AB" * 32,
        "mediaType": "audio/flac",
        "license": "CC-BY-4.0",
        "note": "",
    }
    [body] = run_js(
        "wallet_cli.mjs", requests=[{"op": "work", "secretHex": seed.hex(), "fields": fields}]
    )
    assert set(body) == {"signedPayload", "signature", "pubkey"}
    payload = json.loads(body["signedPayload"])
    verified = verify_publish_request(body, now=payload["iat"])
    assert verified.pubkey_hex == wallet_keys(seed)["identity"][1]
    assert verified.payload.type == "work"
    assert verified.payload.exp - verified.payload.iat == 600
    assert len(verified.payload.nonce) == 32
    assert verified.payload.record == {
        "title": "Dub Plate \u00e9 \U0001f981",
        "creator": "Ras Tafari",
        "contentHash": "ab" * 32,
        "mediaType": "audio/flac",
        "license": "CC-BY-4.0",
    }


def test_vault_round_trip_and_wrong_password() -> None:
    seed = secrets.token_bytes(16)
    [answer] = run_js(
        "wallet_cli.mjs",
        requests=[
            {
                "op": "vault",
                "secretHex": seed.hex(),
                "password": "correct horse battery",
                "wrongPassword": "correct horse battery!",
                "iterations": 100_000,
            }
        ],
    )
    sealed = answer["sealed"]
    assert answer["opened"] == seed.hex()
    assert answer["wrongError"] == "WRONG_PASSWORD"
    assert sealed["kdf"]["name"] == "PBKDF2" and sealed["kdf"]["hash"] == "SHA-256"
    assert len(base64.b64decode(sealed["kdf"]["salt"])) == 16
    assert (
        sealed["cipher"]["name"] == "AES-GCM"
        and len(base64.b64decode(sealed["cipher"]["iv"])) == 12
    )
    assert len(base64.b64decode(sealed["ciphertext"])) == 16 + 16  # secret + GCM tag
    assert sealed["identityPubkey"] == wallet_keys(seed)["identity"][1]
    assert seed.hex() not in json.dumps(sealed)
