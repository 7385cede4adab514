"""raregen.signing: every error path of the v1 contract, client helpers, and a bounded fuzz."""

from __future__ import annotations

import ast
import base64
import json
import re
import string
from pathlib import Path
from typing import Any

import coincurve
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from raregen import signing
from raregen.errors import (
    PayloadTooLarge,
    RareGenError,
    RequestError,
    SignatureRejected,
    TimeWindowError,
)
from raregen.signing import (
    SECP256K1_N,
    Payload,
    VerifiedRequest,
    build_payload,
    canonicalize,
    decode_signature,
    is_low_s,
    make_request,
    new_nonce,
    parse_pubkey,
    parse_request_body,
    parse_signed_payload,
    sign_payload,
    validate_payload,
    verify_publish_request,
    verify_signature,
)

NOW = 1_700_000_000
KEY = coincurve.PrivateKey(bytes(range(1, 33)))
OTHER_KEY = coincurve.PrivateKey(bytes(range(2, 34)))
PUB_HEX = KEY.public_key.format(compressed=True).hex()
NONCE = "abcdefghijklmnop_-0123456789"


# ---------------------------------------------------------------------------------------------
# helpers (test-side DER encoding, only to forge high-S / out-of-range signatures)


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    if raw[0] & 0x80:
        raw = b"\x00" + raw
    return b"\x02" + bytes([len(raw)]) + raw


def der_encode(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def der_decode(der: bytes) -> tuple[int, int]:
    len_r = der[3]
    r = int.from_bytes(der[4 : 4 + len_r], "big")
    s = int.from_bytes(der[6 + len_r :], "big")
    return r, s


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def payload_obj(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "v": 1,
        "nonce": NONCE,
        "iat": NOW,
        "exp": NOW + 600,
        "record": {"title": "Song", "contentHash": "ab" * 32},
    }
    for name, value in overrides.items():
        if value is ...:
            obj.pop(name, None)
        else:
            obj[name] = value
    return obj


def sign_text(text: str, key: coincurve.PrivateKey = KEY) -> dict[str, str]:
    der = key.sign(text.encode("utf-8"))
    return {"signedPayload": text, "signature": b64(der), "pubkey": PUB_HEX}


def body_for(key: coincurve.PrivateKey = KEY, **overrides: Any) -> dict[str, str]:
    return sign_text(canonicalize(payload_obj(**overrides)), key)


def raises_code(code: str, body: Any, **kw: Any) -> RareGenError:
    with pytest.raises(RareGenError) as exc:
        verify_publish_request(body, now=kw.pop("now", NOW), **kw)
    assert exc.value.code == code, exc.value.message
    return exc.value


# ---------------------------------------------------------------------------------------------
# purity


_SIGNING_MODULES = sorted(p.name for p in Path(signing.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("module", [f"signing/{m}" for m in _SIGNING_MODULES] + ["protocol.py"])
def test_modules_import_neither_flask_nor_sqlalchemy(module: str) -> None:
    path = Path(signing.__file__).parent.parent / module
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert not [n for n in names if n.split(".")[0].lower() in {"flask", "sqlalchemy"}]
    assert not [n for n in names if n.startswith(("flask_", "raregen.publish", "raregen.db"))]


# ---------------------------------------------------------------------------------------------
# happy path


def test_valid_request_verifies() -> None:
    body = body_for(type="work")
    got = verify_publish_request(body, now=NOW)
    assert isinstance(got, VerifiedRequest)
    assert got.pubkey_hex == PUB_HEX
    assert got.signed_payload == body["signedPayload"]
    assert got.signature_b64 == body["signature"]
    assert base64.b64decode(got.signature_b64) == got.signature_der
    assert got.payload == Payload(
        v=1,
        nonce=NONCE,
        iat=NOW,
        exp=NOW + 600,
        record={"title": "Song", "contentHash": "ab" * 32},
        type="work",
    )


def test_uncompressed_and_uppercase_pubkey_accepted_and_compressed() -> None:
    body = body_for()
    body["pubkey"] = KEY.public_key.format(compressed=False).hex()
    assert verify_publish_request(body, now=NOW).pubkey_hex == PUB_HEX
    body["pubkey"] = PUB_HEX.upper()
    assert verify_publish_request(body, now=NOW).pubkey_hex == PUB_HEX


def test_time_window_edges() -> None:
    verify_publish_request(body_for(iat=NOW + 60, exp=NOW + 120), now=NOW)  # skew edge
    verify_publish_request(body_for(iat=NOW - 3599, exp=NOW + 1), now=NOW)  # exp edge
    verify_publish_request(body_for(exp=NOW + 3600), now=NOW)  # max TTL edge


def test_client_helpers() -> None:
    nonce = new_nonce()
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", nonce)
    assert new_nonce() != nonce
    text = build_payload({"b": 1, "a": [1.5, "x"]}, type="work", ttl=120, now=NOW)
    obj = json.loads(text)
    assert text == canonicalize(obj)
    assert obj["iat"] == NOW and obj["exp"] == NOW + 120 and obj["v"] == 1
    assert obj["type"] == "work" and re.fullmatch(r"[A-Za-z0-9_-]{32}", obj["nonce"])
    sig = sign_payload(KEY.secret, text)
    assert is_low_s(base64.b64decode(sig))
    assert sign_payload(KEY, text) == sig  # RFC 6979: deterministic
    req = make_request(KEY.secret, {"title": "x"}, "work", 300)
    assert set(req) == {"signedPayload", "signature", "pubkey"}
    got = verify_publish_request(req, now=json.loads(req["signedPayload"])["iat"])
    assert got.payload.type == "work" and got.payload.record == {"title": "x"}
    with pytest.raises(TypeError):
        build_payload([1])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_payload({}, ttl=0)
    with pytest.raises(ValueError):
        canonicalize({"a": float("nan")})


@settings(max_examples=50, deadline=None)
@given(message=st.text(max_size=200))
def test_many_signatures_are_low_s(message: str) -> None:
    sig = sign_payload(KEY, message)
    assert is_low_s(base64.b64decode(sig))


# ---------------------------------------------------------------------------------------------
# every error code


def test_malformed_json_codes() -> None:
    assert raises_code("MALFORMED_JSON", [1, 2]).field is None
    assert raises_code("MALFORMED_JSON", "text").field is None
    body = body_for()
    body["signedPayload"] = 5  # type: ignore[assignment]
    assert raises_code("MALFORMED_JSON", body).field == "signedPayload"
    body = body_for()
    body["signature"] = None  # type: ignore[assignment]
    assert raises_code("MALFORMED_JSON", body).field == "signature"
    assert raises_code("MALFORMED_JSON", sign_text("{")).field == "signedPayload"
    assert raises_code("MALFORMED_JSON", sign_text("[1]")).field == "signedPayload"
    assert raises_code("MALFORMED_JSON", sign_text('"str"')).field == "signedPayload"
    assert raises_code("MALFORMED_JSON", sign_text("")).field == "signedPayload"
    assert raises_code("MALFORMED_JSON", body_for(v=2)).field == "v"
    assert raises_code("MALFORMED_JSON", body_for(v=True)).field == "v"
    assert raises_code("MALFORMED_JSON", body_for(v="1")).field == "v"
    assert raises_code("MALFORMED_JSON", body_for(record=[1])).field == "record"
    assert raises_code("MALFORMED_JSON", body_for(record="x")).field == "record"
    assert raises_code("MALFORMED_JSON", body_for(type=5)).field == "type"
    assert raises_code("MALFORMED_JSON", body_for(type=None)).field == "type"
    body = body_for()
    body["signedPayload"] = '{"a":"\ud800"}'
    assert raises_code("MALFORMED_JSON", body).field == "signedPayload"
    deep = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}"
    assert raises_code("MALFORMED_JSON", sign_text(deep), max_payload_bytes=300_000)


def test_missing_field() -> None:
    for name in ("signedPayload", "signature", "pubkey"):
        body = body_for()
        del body[name]
        assert raises_code("MISSING_FIELD", body).field == name
    assert raises_code("MISSING_FIELD", {}).field == "signedPayload"
    for name in ("v", "nonce", "iat", "exp", "record"):
        assert raises_code("MISSING_FIELD", body_for(**{name: ...})).field == name


def test_unknown_field() -> None:
    body: dict[str, Any] = body_for()
    body["extra"] = 1
    assert raises_code("UNKNOWN_FIELD", body).field == "extra"
    body = body_for()
    body["publickey"] = PUB_HEX  # with signedPayload: not legacy, just unknown
    assert raises_code("UNKNOWN_FIELD", body).field == "publickey"
    assert raises_code("UNKNOWN_FIELD", body_for(extra=1)).field == "extra"
    assert raises_code("UNKNOWN_FIELD", body_for(Type="x")).field == "Type"


def test_legacy_contract() -> None:
    legacy = {"publickey": PUB_HEX, "signature": "x", "nonce": NONCE, "record": {}}
    err = raises_code("LEGACY_CONTRACT", legacy)
    assert err.status == 400 and "v1" in err.message
    raises_code("LEGACY_CONTRACT", {"publickey": PUB_HEX})
    raises_code("LEGACY_CONTRACT", {"record": {}, "signature": "x", "pubkey": PUB_HEX})


@pytest.mark.parametrize(
    "pubkey",
    [
        "",
        "02",
        PUB_HEX[:-2],
        PUB_HEX + "00",
        "zz" + PUB_HEX[2:],
        " " + PUB_HEX[1:],
        PUB_HEX[:2] + " " + PUB_HEX[3:],
        PUB_HEX + "\n",
        "04" + PUB_HEX[2:],  # 66 hex with the uncompressed prefix
        "05" + PUB_HEX[2:],
        "02" + "00" * 32,  # x = 0 is not on secp256k1
        "02" + "ff" * 32,  # x >= p
        "06" + KEY.public_key.format(compressed=False).hex()[2:],  # hybrid
        "04" + KEY.public_key.format(compressed=False).hex()[2:-2] + "00",  # y off the curve
        "\u0660" * 66,  # Arabic-Indic digits are not hex
    ],
)
def test_bad_pubkey(pubkey: str) -> None:
    body = body_for()
    body["pubkey"] = pubkey
    err = raises_code("BAD_PUBKEY", body)
    assert err.field == "pubkey" and err.status == 400


def test_bad_pubkey_type() -> None:
    with pytest.raises(RequestError) as exc:
        parse_pubkey(123)  # type: ignore[arg-type]
    assert exc.value.code == "BAD_PUBKEY"


def _good_der() -> bytes:
    return KEY.sign(b"x")


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "not base64!",
        b64(_good_der())[:-1],  # wrong padding
        b64(_good_der()).rstrip("="),
        b64(_good_der()) + "\n",
        " " + b64(_good_der()),
        b64(_good_der()).replace("+", "-").replace("/", "_"),
        "AB==",  # non-zero padding bits
        b64(b"\x30\x06\x02\x01\x01\x02\x01\x01\x00"),  # trailing byte
        b64(b"\x30\x07\x02\x02\x00\x01\x02\x01\x01"),  # padded r
        b64(b"\x30\x06\x02\x01\x81\x02\x01\x01"),  # negative r
        b64(b"\x30\x06\x02\x01\x01\x02\x01\xff"),  # negative s
        b64(b"\x30\x05\x02\x00\x02\x01\x01"),  # empty r
        b64(b"\x30\x07\x02\x01\x01\x02\x02\x00\x01"),  # padded s
        b64(b"\x31\x06\x02\x01\x01\x02\x01\x01"),  # not a SEQUENCE
        b64(b"\x30\x07\x02\x01\x01\x02\x01\x01"),  # SEQUENCE length
        b64(b"\x30\x06\x03\x01\x01\x02\x01\x01"),  # r tag
        b64(b"\x30\x06\x02\x01\x01\x03\x01\x01"),  # s tag
        b64(b"\x30\x06\x02\x04\x01\x02\x01\x01"),  # r length runs past
        b64(b"\x30\x81\x06\x02\x01\x01\x02\x01\x01"),  # long-form length (BER)
        b64(_good_der() + b"\x01"),  # a sighash byte is not part of the contract
        b64(
            b"\x30" + bytes([71]) + b"\x02\x21\x00" + b"\x80" * 32 + b"\x02\x22\x00" + b"\x80" * 33
        ),
        "A" * 200,
        "é" * 8,
    ],
)
def test_bad_signature_encoding(signature: str) -> None:
    body = body_for()
    body["signature"] = signature
    err = raises_code("BAD_SIGNATURE_ENCODING", body)
    assert err.field == "signature" and err.status == 400


def test_non_canonical_payload() -> None:
    obj = payload_obj()
    for text in (
        json.dumps(obj),
        json.dumps(obj, separators=(",", ":")),  # insertion order, not sorted
        canonicalize(obj) + " ",
        canonicalize(obj).replace('"v":1', '"v":1.0'),
        canonicalize(obj).replace('"title"', '"\\u0074itle"'),
    ):
        err = raises_code("NON_CANONICAL_PAYLOAD", sign_text(text))
        assert err.field == "signedPayload"


def test_duplicate_member() -> None:
    text = canonicalize(payload_obj())
    top = text[:-1] + ',"v":1}'
    nested = text.replace('"record":{', '"record":{"a":1,"a":1,')
    deep = text.replace('"record":{', '"record":{"x":[{"b":{"c":1,"c":2}}],')
    escaped = text.replace('"record":{', '"record":{"a":1,"\\u0061":2,')
    for candidate in (top, nested, deep, escaped):
        err = raises_code("DUPLICATE_MEMBER", sign_text(candidate))
        assert err.field == "signedPayload"


@pytest.mark.parametrize(
    "nonce",
    [
        "short",
        "a" * 15,
        "a" * 129,
        "abcdefghijklmnop!",
        "abcdefghijklmnop ",
        "abcdefghijklmnop\n",
        "abcdéfghijklmnopq",
        "abcdefghijklmnop+/",
        1234567890123456,
        None,
        ["abcdefghijklmnopq"],
    ],
)
def test_bad_nonce(nonce: Any) -> None:
    assert raises_code("BAD_NONCE", body_for(nonce=nonce)).field == "nonce"


def test_nonce_bounds_accepted() -> None:
    for nonce in ("a" * 16, "Z" * 128, "-_" * 8):
        verify_publish_request(body_for(nonce=nonce), now=NOW)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"iat": 1.5}, "iat"),
        ({"iat": True}, "iat"),
        ({"iat": "1700000000"}, "iat"),
        ({"exp": None}, "exp"),
        ({"exp": NOW + 0.5}, "exp"),
        ({"exp": NOW}, "exp"),
        ({"exp": NOW - 1}, "exp"),
        ({"exp": NOW + 3601}, "exp"),
    ],
)
def test_bad_timestamps(overrides: dict[str, Any], field: str) -> None:
    assert raises_code("BAD_TIMESTAMPS", body_for(**overrides)).field == field


def test_max_ttl_configurable() -> None:
    raises_code("BAD_TIMESTAMPS", body_for(exp=NOW + 600), max_ttl=300)


def test_signature_invalid() -> None:
    body = body_for(key=OTHER_KEY)
    err = raises_code("SIGNATURE_INVALID", body)
    assert err.status == 401 and err.field == "signature"
    good = body_for()
    r, s = der_decode(base64.b64decode(good["signature"]))
    for r2, s2 in ((0, s), (r, 0), (SECP256K1_N, s), (r, SECP256K1_N), (r + SECP256K1_N, s)):
        good["signature"] = b64(der_encode(r2, s2))
        raises_code("SIGNATURE_INVALID", good)
    # payload signed, then changed: one byte
    body = body_for()
    body["signedPayload"] = body["signedPayload"].replace("Song", "Sonh")
    raises_code("SIGNATURE_INVALID", body)


def test_high_s_signature() -> None:
    body = body_for()
    r, s = der_decode(base64.b64decode(body["signature"]))
    body["signature"] = b64(der_encode(r, SECP256K1_N - s))
    err = raises_code("HIGH_S_SIGNATURE", body)
    assert err.status == 401 and "low-S" in err.message
    # high-S of a signature that does not verify anyway: SIGNATURE_INVALID
    other = body_for(key=OTHER_KEY)
    r, s = der_decode(base64.b64decode(other["signature"]))
    other["signature"] = b64(der_encode(r, SECP256K1_N - s))
    raises_code("SIGNATURE_INVALID", other)


def test_expired_and_not_yet_valid() -> None:
    err = raises_code("EXPIRED", body_for(), now=NOW + 600)
    assert isinstance(err, TimeWindowError) and err.status == 422 and err.field == "exp"
    err = raises_code("NOT_YET_VALID", body_for(iat=NOW + 61, exp=NOW + 200))
    assert err.status == 422 and err.field == "iat"
    raises_code("NOT_YET_VALID", body_for(iat=NOW + 10, exp=NOW + 200), max_skew=5)


def test_payload_too_large() -> None:
    body = body_for(record={"blob": "x" * 200})
    err = raises_code("PAYLOAD_TOO_LARGE", body, max_payload_bytes=200)
    assert isinstance(err, PayloadTooLarge) and err.status == 413
    assert err.field == "signedPayload"
    # counted in UTF-8 bytes, not characters
    text = canonicalize(payload_obj(record={"t": "é" * 100}))
    assert len(text) < 250 < len(text.encode())
    raises_code("PAYLOAD_TOO_LARGE", sign_text(text), max_payload_bytes=250)
    verify_publish_request(sign_text(text), now=NOW, max_payload_bytes=len(text.encode()))


def test_check_order() -> None:
    body = body_for(key=OTHER_KEY, exp=NOW + 1)
    body["pubkey"] = "00"
    body["signature"] = "!"
    raises_code("BAD_PUBKEY", body)  # pubkey before signature encoding
    body["pubkey"] = PUB_HEX
    raises_code("BAD_SIGNATURE_ENCODING", body)  # signature encoding before payload
    body = body_for(key=OTHER_KEY)
    body["signedPayload"] += " "
    raises_code("NON_CANONICAL_PAYLOAD", body)  # payload before signature
    raises_code("EXPIRED", body_for(key=OTHER_KEY), now=NOW + 10_000)  # window before sig


def test_direct_function_contracts() -> None:
    assert parse_pubkey(PUB_HEX) == bytes.fromhex(PUB_HEX)
    der = decode_signature(b64(_good_der()))
    verify_signature(bytes.fromhex(PUB_HEX), der, b"x")
    with pytest.raises(SignatureRejected):
        verify_signature(bytes.fromhex(PUB_HEX), der, b"y")
    with pytest.raises(RequestError) as exc:
        verify_signature(b"\x02" * 5, der, b"x")
    assert exc.value.code == "BAD_PUBKEY"
    with pytest.raises(RequestError) as exc:
        verify_signature(bytes.fromhex(PUB_HEX), b"\x30", b"x")
    assert exc.value.code == "BAD_SIGNATURE_ENCODING"
    with pytest.raises(RequestError):
        is_low_s(b"")
    req = parse_request_body(body_for())
    assert req.pubkey == bytes.fromhex(PUB_HEX) and req.pubkey_hex == PUB_HEX
    assert validate_payload(payload_obj(), now=NOW).nonce == NONCE
    with pytest.raises(RequestError):
        validate_payload([], now=NOW)
    assert parse_signed_payload(canonicalize(payload_obj())) == payload_obj()
    with pytest.raises(RequestError):
        parse_signed_payload(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# fuzz: only RareGenError subclasses may escape


#: characters the generated strings are made of: printable ASCII, non-ASCII, an astral
#: character, a lone surrogate (not encodable as UTF-8) and NUL
_ALPHABET = string.printable + "é€\U0001f600\ud800\x00"
_NAMES = ["v", "nonce", "iat", "exp", "record", "type", "x", "signedPayload", "signature"]
_odd_text = st.lists(st.sampled_from(_ALPHABET), max_size=20).map("".join)
_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 2**53 - 1, 2**53, -(2**60)]),
    st.integers(-(10**6), 10**6),
    st.sampled_from([0.5, -1e-7, 1e21, 1.7976931348623157e308]),
    st.floats(0, 1, exclude_max=True),
    _odd_text,
)
#: JSON-like values up to four levels deep, objects keyed by the request's member names
_json_shapes = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_NAMES), inner, max_size=5)
    ),
    max_leaves=12,
)
_fuzz = settings(max_examples=300, deadline=None)


def _maybe_signed(text: str) -> dict[str, str]:
    try:
        return sign_text(text)
    except UnicodeEncodeError:  # lone surrogates: cannot be signed, send a valid-looking body
        return {**body_for(), "signedPayload": text}


def _call(body: Any) -> None:
    try:
        result = verify_publish_request(body, now=NOW)
    except RareGenError:
        return
    assert isinstance(result, VerifiedRequest)


@_fuzz
@given(raw=st.binary(max_size=120))
def test_fuzz_random_bytes(raw: bytes) -> None:
    base = body_for()
    text = raw.decode("utf-8", errors="surrogateescape")
    latin = raw.decode("latin-1")
    for member in ("signedPayload", "signature", "pubkey"):
        for value in (text, latin):
            body = dict(base)
            body[member] = value
            _call(body)
    _call(_maybe_signed(text))
    _call(_maybe_signed(latin))


@_fuzz
@given(shape=_json_shapes, payload=_json_shapes)
def test_fuzz_random_shapes(shape: Any, payload: Any) -> None:
    base = body_for()
    _call(shape)
    if isinstance(shape, dict):
        _call({**base, **{k: v for k, v in shape.items() if k in base}})
    for text in (json.dumps(payload), json.dumps(payload, ensure_ascii=False)):
        _call(_maybe_signed(text))
    try:
        canonical = rfc8785.dumps(payload).decode()
    except (ValueError, UnicodeError):
        return
    _call(sign_text(canonical))


@_fuzz
@given(data=st.data())
def test_fuzz_mutations_of_a_valid_request(data: st.DataObject) -> None:
    body = dict(body_for())
    member = data.draw(st.sampled_from(list(body)))
    chars = list(body[member])
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(chars) - 1))
        chars[pos] = data.draw(st.sampled_from(string.printable + "é\ud800"))
    body[member] = "".join(chars)
    _call(body)
