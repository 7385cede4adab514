"""Bitcoin Signed Message signatures (``signatureScheme: "bsm"``, on-chain layout v2):
checked against the BSM cases of the BSV SDKs' own tests (tests/data/vectors/bsm), against
signatures made by bsv-sdk (Python: ``PrivateKey.sign_text``, ``bsv.compat.bsm.sign``) and by
@bsv/sdk's BSM module (JavaScript, ``tests/js/bsm_cli.mjs``), in both directions."""

from __future__ import annotations

import base64
import json
import time

import coincurve
import pytest
from bsv.compat import bsm as bsv_bsm
from bsv.keys import PrivateKey as BsvPrivateKey
from bsv.keys import verify_signed_text

from raregen import protocol, signing
from raregen.errors import RequestError, SignatureRejected
from tests.jsbridge import run_js
from tests.vectors import REPO_ROOT

VECTORS = json.loads(
    (REPO_ROOT / "tests" / "data" / "vectors" / "bsm" / "bsm_vectors.json").read_text()
)


def bsm_body(signed_payload: str, signature: str, pubkey: str) -> dict[str, str]:
    return {
        "signedPayload": signed_payload,
        "signature": signature,
        "pubkey": pubkey,
        "signatureScheme": "bsm",
    }


def payload() -> str:
    return signing.build_payload({"title": "Wallet-signed", "n": 1}, type="work")


# --- the SDKs' vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["sign"], ids=lambda c: c["message"])
def test_sign_vectors(case: dict[str, str]) -> None:
    secret = bytes.fromhex(BsvPrivateKey(case["wif"]).hex())
    assert signing.sign_bsm(secret, case["message"]) == case["signature"]
    raw = signing.decode_bsm_signature(case["signature"])
    pub = coincurve.PrivateKey(secret).public_key.format()
    signing.verify_bsm(pub, raw, case["message"].encode(), compressed=True)


@pytest.mark.parametrize("case", VECTORS["verify"], ids=lambda c: c["message"])
def test_verify_vectors(case: dict) -> None:  # type: ignore[type-arg]
    raw = signing.decode_bsm_signature(case["signature"])
    assert (raw[0] - 27) & 3 == case["recovery"]
    pub = bytes.fromhex(case["pubkey"])
    signing.verify_bsm(pub, raw, case["message"].encode(), compressed=True)
    recovered, compressed = signing.recover_bsm(raw, case["message"].encode())
    assert recovered == pub and compressed
    with pytest.raises(SignatureRejected):
        signing.verify_bsm(pub, raw, b"Texas!", compressed=True)


# --- bsv-sdk (Python) -----------------------------------------------------------------------


def test_bsv_sdk_sign_text_is_accepted_and_ours_verify_there() -> None:
    key = BsvPrivateKey()
    text = payload()
    address, signature = key.sign_text(text)
    req = signing.verify_publish_request(
        bsm_body(text, signature, key.public_key().hex()), now=int(time.time())
    )
    assert req.scheme == "bsm" and len(req.signature_der) == 65
    assert base64.b64decode(bsv_bsm.sign(text.encode(), key)) == base64.b64decode(signature)
    ours = signing.sign_bsm(bytes.fromhex(key.hex()), text)
    assert verify_signed_text(text, address, ours)
    assert ours == signature  # both deterministic (RFC 6979)


def test_uncompressed_keys_and_the_header_flag() -> None:
    key = BsvPrivateKey()
    key.compressed = False
    text = payload()
    _address, signature = key.sign_text(text)
    assert base64.b64decode(signature)[0] in range(27, 31)
    uncompressed = key.public_key().hex()
    assert len(uncompressed) == 130
    signing.verify_publish_request(bsm_body(text, signature, uncompressed), now=int(time.time()))
    compressed = coincurve.PublicKey(bytes.fromhex(uncompressed)).format().hex()
    with pytest.raises(SignatureRejected) as err:
        signing.verify_publish_request(bsm_body(text, signature, compressed), now=int(time.time()))
    assert err.value.code == "SIGNATURE_INVALID" and "uncompressed" in err.value.message


# --- @bsv/sdk (JavaScript) ------------------------------------------------------------------


def test_bsv_sdk_js_both_ways() -> None:
    keys = [coincurve.PrivateKey() for _ in range(3)]
    texts = [payload() for _ in keys]
    signed = run_js(
        "bsm_cli.mjs",
        requests=[
            {"op": "sign", "privateKeyHex": k.secret.hex(), "message": t}
            for k, t in zip(keys, texts, strict=True)
        ],
    )
    for key, text, answer in zip(keys, texts, signed, strict=True):
        assert answer["pubkey"] == key.public_key.format().hex()
        req = signing.verify_publish_request(
            bsm_body(text, answer["signature"], answer["pubkey"]), now=int(time.time())
        )
        assert req.scheme == "bsm"
    checks = run_js(
        "bsm_cli.mjs",
        requests=[
            {
                "op": "verify",
                "message": t,
                "signature": signing.sign_bsm(k, t),
                "pubkey": k.public_key.format().hex(),
            }
            for k, t in zip(keys, texts, strict=True)
        ]
        + [
            {
                "op": "verify",
                "message": texts[0] + " ",
                "signature": signing.sign_bsm(keys[0], texts[0]),
                "pubkey": keys[0].public_key.format().hex(),
            }
        ],
    )
    assert [c["valid"] for c in checks] == [True, True, True, False]


# --- the request contract -------------------------------------------------------------------


def test_request_errors() -> None:
    key = coincurve.PrivateKey()
    pub = key.public_key.format().hex()
    text = payload()
    now = int(time.time())
    good = signing.sign_bsm(key, text)

    def code(body: dict) -> str:  # type: ignore[type-arg]
        with pytest.raises((RequestError, SignatureRejected)) as err:
            signing.verify_publish_request(body, now=now)
        return str(err.value.code)

    assert code({**bsm_body(text, good, pub), "signatureScheme": "ecdsa"}) == "BAD_SIGNATURE_SCHEME"
    assert code({**bsm_body(text, good, pub), "signatureScheme": None}) == "BAD_SIGNATURE_SCHEME"
    der = signing.sign_payload(key, text)
    assert code(bsm_body(text, der, pub)) == "BAD_SIGNATURE_ENCODING"  # DER sent as bsm
    body = bsm_body(text, good, pub)
    del body["signatureScheme"]
    assert code(body) == "BAD_SIGNATURE_ENCODING"  # BSM sent without the scheme
    bad_header = base64.b64encode(b"\x23" + base64.b64decode(good)[1:]).decode()
    assert code(bsm_body(text, bad_header, pub)) == "BAD_SIGNATURE_ENCODING"
    other = coincurve.PrivateKey().public_key.format().hex()
    assert code(bsm_body(text, good, other)) == "SIGNATURE_INVALID"
    assert code(bsm_body(payload(), good, pub)) == "SIGNATURE_INVALID"
    zero_r = base64.b64encode(base64.b64decode(good)[:1] + bytes(32) + base64.b64decode(good)[33:])
    assert code(bsm_body(text, zero_r.decode(), pub)) == "SIGNATURE_INVALID"
    # explicit "der" is the default contract
    signing.verify_publish_request(
        {"signedPayload": text, "signature": der, "pubkey": pub, "signatureScheme": "der"}, now=now
    )


# --- layout v2 ------------------------------------------------------------------------------


def test_layout_v2_round_trip_and_tamper() -> None:
    key = coincurve.PrivateKey()
    text = payload()
    sig = base64.b64decode(signing.sign_bsm(key, text))
    script = protocol.record_script(text.encode(), sig, key.public_key.format())
    assert script.startswith(b"\x00\x6a\x07raregen\x01\x02")
    parsed = protocol.parse_record_script(script)
    assert parsed is not None and parsed.version == 2
    rec = protocol.verify_record(0, parsed)
    assert rec.valid and rec.error is None and rec.scheme == "bsm"
    assert rec.to_dict()["signatureScheme"] == "bsm" and rec.to_dict()["version"] == 2
    tampered = protocol.RecordOutput(2, text.encode() + b" ", sig, parsed.pubkey33)
    assert protocol.verify_record(0, tampered).valid is False
    stranger = coincurve.PrivateKey().public_key.format()
    assert (
        protocol.verify_record(0, protocol.RecordOutput(2, text.encode(), sig, stranger)).valid
        is False
    )
    # v1 is unchanged
    der = base64.b64decode(signing.sign_payload(key, text))
    v1 = protocol.record_script(text.encode(), der, key.public_key.format())
    assert v1.startswith(b"\x00\x6a\x07raregen\x01\x01")
    assert protocol.verify_record(0, protocol.parse_record_script(v1)).scheme == "der"  # type: ignore[arg-type]


def test_stored_signature_forms() -> None:
    key = coincurve.PrivateKey()
    text = payload()
    assert signing.decode_stored_signature(signing.sign_bsm(key, text))[0] == "bsm"
    assert signing.decode_stored_signature(signing.sign_payload(key, text))[0] == "der"
