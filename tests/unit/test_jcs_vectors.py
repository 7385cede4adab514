"""RFC 8785 (JCS) vectors: canonical output, canonical-form check, numbers, key order."""

from __future__ import annotations

import base64
import csv
import json
import struct

import coincurve
import pytest
import rfc8785

from raregen.errors import RareGenError, RequestError
from raregen.signing import canonicalize, parse_signed_payload, verify_publish_request
from tests.vectors import vector_file, vectors_dir

NAMES = ["arrays", "french", "structures", "unicode", "values", "weird"]
MAX_SAFE = 2**53 - 1
NOW = 1_700_000_000
KEY = coincurve.PrivateKey(bytes(range(1, 33)))


def _signed_body(payload_text: str) -> dict[str, str]:
    der = KEY.sign(payload_text.encode("utf-8"))
    return {
        "signedPayload": payload_text,
        "signature": base64.b64encode(der).decode(),
        "pubkey": KEY.public_key.format().hex(),
    }


def _code(exc_info: pytest.ExceptionInfo[RareGenError]) -> str:
    return exc_info.value.code


@pytest.mark.parametrize("name", NAMES)
def test_input_canonicalizes_to_expected_bytes(name: str) -> None:
    source = vector_file("jcs", "input", f"{name}.json").read_bytes()
    expected = vector_file("jcs", "output", f"{name}.json").read_bytes()
    outhex = vector_file("jcs", "outhex", f"{name}.txt").read_text().split()
    assert bytes.fromhex("".join(outhex)) == expected
    obj = json.loads(source.decode("utf-8"))
    assert rfc8785.dumps(obj) == expected
    assert canonicalize(obj).encode("utf-8") == expected


@pytest.mark.parametrize("name", NAMES)
def test_canonical_output_accepted_and_input_rejected(name: str) -> None:
    source = vector_file("jcs", "input", f"{name}.json").read_text(encoding="utf-8")
    expected = vector_file("jcs", "output", f"{name}.json").read_text(encoding="utf-8")
    top_is_object = expected.startswith("{")
    if top_is_object:
        assert parse_signed_payload(expected) == json.loads(expected)
    else:
        with pytest.raises(RequestError) as exc:
            parse_signed_payload(expected)
        assert _code(exc) == "MALFORMED_JSON"
        return
    with pytest.raises(RequestError) as exc:
        parse_signed_payload(source)
    assert _code(exc) == "NON_CANONICAL_PAYLOAD"
    variants = [
        expected.replace("{", "{ ", 1),
        expected + "\n",
        " " + expected,
        expected.replace(":", ": ", 1),
    ]
    obj = json.loads(expected)
    if len(obj) > 1:
        reordered = json.dumps(
            dict(reversed(list(obj.items()))), ensure_ascii=False, separators=(",", ":")
        )
        assert reordered != expected
        variants.append(reordered)
    for text in variants:
        with pytest.raises(RequestError) as exc:
            parse_signed_payload(text)
        assert _code(exc) == "NON_CANONICAL_PAYLOAD", text


def _number_rows(filename: str) -> list[tuple[str, str]]:
    path = vector_file("jcs", "numbers", filename)
    rows = []
    with path.open(newline="") as fh:
        for row in csv.reader(fh):
            if not row or row[0] == "hex_ieee754":
                continue
            rows.append((row[0], row[1]))
    assert rows, f"no rows in {path}"
    return rows


def _double(hex_ieee: str) -> float:
    return struct.unpack(">d", bytes.fromhex(hex_ieee.zfill(16)))[0]


@pytest.mark.parametrize("filename", ["rfc8785-appendix-b.csv", "es6testfile-sample-lines.csv"])
def test_number_serialization(filename: str) -> None:
    for hex_ieee, expected in _number_rows(filename):
        value = _double(hex_ieee)
        if expected == "ERROR":
            with pytest.raises(rfc8785.FloatDomainError):
                rfc8785.dumps(value)
            continue
        assert rfc8785.dumps(value).decode() == expected, hex_ieee
        text = '{"n":' + expected + "}"
        is_integer_literal = expected.lstrip("-").isdigit()
        if is_integer_literal and abs(int(expected)) > MAX_SAFE:
            # Policy: integers outside +-(2**53-1) are refused (I-JSON, RFC 7493 §2.2).
            with pytest.raises(RequestError) as exc:
                parse_signed_payload(text)
            assert _code(exc) == "NON_CANONICAL_PAYLOAD"
        else:
            assert parse_signed_payload(text)["n"] == value, hex_ieee


def test_appendix_b_present() -> None:
    assert (vectors_dir() / "jcs" / "numbers" / "rfc8785-appendix-b.csv").is_file()


@pytest.mark.parametrize(
    ("literal", "code"),
    [
        ("NaN", "MALFORMED_JSON"),
        ("Infinity", "MALFORMED_JSON"),
        ("-Infinity", "MALFORMED_JSON"),
        ("9007199254740993", "NON_CANONICAL_PAYLOAD"),
        ("-9007199254740993", "NON_CANONICAL_PAYLOAD"),
        ("9007199254740992", "NON_CANONICAL_PAYLOAD"),
        ("123456789012345678901234567890", "NON_CANONICAL_PAYLOAD"),
        ("1" * 5000, "NON_CANONICAL_PAYLOAD"),
        ("1e400", "NON_CANONICAL_PAYLOAD"),
        ("-1e400", "NON_CANONICAL_PAYLOAD"),
        ("1.0", "NON_CANONICAL_PAYLOAD"),
        ("1E3", "NON_CANONICAL_PAYLOAD"),
        ("-0", "NON_CANONICAL_PAYLOAD"),
        ("1e-400", "NON_CANONICAL_PAYLOAD"),
    ],
)
def test_unrepresentable_numbers_are_400(literal: str, code: str) -> None:
    payload = (
        '{"exp":' + str(NOW + 600) + ',"iat":' + str(NOW) + ',"nonce":"abcdefghijklmnop",'
        '"record":{"n":' + literal + '},"v":1}'
    )
    with pytest.raises(RareGenError) as exc:
        verify_publish_request(_signed_body(payload), now=NOW)
    assert exc.value.status == 400
    assert exc.value.code == code
    assert exc.value.field == "signedPayload"


def test_safe_integer_bounds_accepted() -> None:
    for n in (MAX_SAFE, -MAX_SAFE):
        assert parse_signed_payload('{"n":' + str(n) + "}") == {"n": n}


def test_utf16_key_order() -> None:
    # U+1F600 (UTF-16 D83D DE00) sorts before U+FB01 in UTF-16 code units, after it in
    # code points: RFC 8785 §3.2.3 requires the UTF-16 order.
    obj = {"\ufb01": 1, "\U0001f600": 2, "\ue000": 3, "a": 4}
    expected = '{"a":4,"\U0001f600":2,"\ue000":3,"\ufb01":1}'
    assert canonicalize(obj) == expected
    assert parse_signed_payload(expected) == obj
    by_code_point = '{"a":4,"\ue000":3,"\ufb01":1,"\U0001f600":2}'
    with pytest.raises(RequestError) as exc:
        parse_signed_payload(by_code_point)
    assert _code(exc) == "NON_CANONICAL_PAYLOAD"


def test_rfc8785_sorting_example() -> None:
    # The key set of RFC 8785 §3.2.3's sorting example.
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonicalize({k: i for i, k in enumerate(keys)})
    order = [k for k, _ in json.loads(text, object_pairs_hook=list)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"\\ud800"}',
        '{"a":"\\udc00x"}',
        '{"\\ud83d":1}',
        '{"a":["\\ude00"]}',
        '{"a":"\ud800"}',
    ],
)
def test_lone_surrogates_are_400(text: str) -> None:
    with pytest.raises(RequestError) as exc:
        parse_signed_payload(text)
    assert exc.value.code == "MALFORMED_JSON"
    assert exc.value.status == 400


def test_escaped_surrogate_pair_is_non_canonical_not_error() -> None:
    with pytest.raises(RequestError) as exc:
        parse_signed_payload('{"a":"\\ud83d\\ude00"}')
    assert exc.value.code == "NON_CANONICAL_PAYLOAD"
    assert parse_signed_payload('{"a":"\U0001f600"}') == {"a": "\U0001f600"}


def test_control_characters_escaped_lowercase() -> None:
    assert canonicalize({"a": "\u000f\u001f\n\t"}) == '{"a":"\\u000f\\u001f\\n\\t"}'
    with pytest.raises(RequestError) as exc:
        parse_signed_payload('{"a":"\\u000F"}')
    assert exc.value.code == "NON_CANONICAL_PAYLOAD"
