"""raregen.protocol: pushes, record scripts, tx parser, record extraction (docs/PROTOCOL.md §3)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path

import coincurve
import pytest
from bsv.utils import unsigned_to_varint
from hypothesis import given, settings
from hypothesis import strategies as st

from raregen.protocol import (
    PROTOCOL_PREFIX,
    VERSION,
    ExtractedRecord,
    MalformedRecord,
    ScriptError,
    TxParseError,
    extract_records,
    parse_pushes,
    parse_record_script,
    parse_transaction,
    push_data,
    record_script,
    txid,
)
from raregen.signing import SECP256K1_N, make_request
from tests.vectors import vector_file, vectors_dir

KEY = coincurve.PrivateKey(bytes(range(1, 33)))
PUB = KEY.public_key.format(compressed=True)
NOW = 1_700_000_000


def build_tx(outputs: list[tuple[int, bytes]], n_inputs: int = 1) -> bytes:
    """A test-side serializer: version 1, dummy inputs, the given outputs, locktime 0."""
    raw = (1).to_bytes(4, "little") + unsigned_to_varint(n_inputs)
    for i in range(n_inputs):
        script_sig = bytes([0x51]) * (i + 1)
        raw += hashlib.sha256(bytes([i])).digest() + i.to_bytes(4, "little")
        raw += unsigned_to_varint(len(script_sig)) + script_sig + b"\xff\xff\xff\xff"
    raw += unsigned_to_varint(len(outputs))
    for sats, script in outputs:
        raw += sats.to_bytes(8, "little") + unsigned_to_varint(len(script)) + script
    return raw + (0).to_bytes(4, "little")


P2PKH = bytes.fromhex("76a914") + bytes(20) + bytes.fromhex("88ac")


def signed_record(record: dict[str, object], key: coincurve.PrivateKey = KEY) -> bytes:
    req = make_request(key, record, "work", 600, now=NOW, nonce="n" * 20)
    return record_script(
        req["signedPayload"].encode("utf-8"),
        base64.b64decode(req["signature"]),
        bytes.fromhex(req["pubkey"]),
    )


# ---------------------------------------------------------------------------------------------
# pushes


@pytest.mark.parametrize(
    ("size", "opcode"),
    [(1, 0x01), (75, 0x4B), (76, 0x4C), (255, 0x4C), (256, 0x4D), (65535, 0x4D), (65536, 0x4E)],
)
def test_push_sizes_round_trip(size: int, opcode: int) -> None:
    payload = bytes(random.Random(size).randbytes(size))
    sig = b"\x30" + bytes(70)
    script = record_script(payload, sig, PUB)
    chunks = parse_pushes(script)
    assert [c.opcode for c in chunks[:4]] == [0x00, 0x6A, 7, 1]
    assert chunks[2].data == PROTOCOL_PREFIX and chunks[3].data == b"\x01"
    assert chunks[4].opcode == opcode and chunks[4].data == payload
    assert push_data(payload)[0] == opcode
    parsed = parse_record_script(script)
    assert parsed is not None
    assert (parsed.version, parsed.signed_payload, parsed.signature_der, parsed.pubkey33) == (
        VERSION,
        payload,
        sig,
        PUB,
    )


def test_push_data_encodings() -> None:
    assert push_data(b"") == b"\x00"
    assert push_data(b"\x01") == b"\x01\x01"  # data push, not OP_1 (module docstring)
    assert push_data(b"x" * 76)[:2] == b"\x4c\x4c"
    assert push_data(b"x" * 256)[:3] == b"\x4d\x00\x01"
    assert push_data(b"x" * 65536)[:5] == b"\x4e\x00\x00\x01\x00"


def test_record_script_layout() -> None:
    sig = KEY.sign(b"p")
    script = record_script(b"p", sig, PUB)
    assert script == (b"\x00\x6a\x07raregen\x01\x01\x01p" + bytes([len(sig)]) + sig + b"\x21" + PUB)
    with pytest.raises(ValueError):
        record_script(b"", sig, PUB)
    with pytest.raises(ValueError):
        record_script(b"p", b"", PUB)
    with pytest.raises(ValueError):
        record_script(b"p", sig, PUB[:32])
    with pytest.raises(ValueError):
        record_script(b"p", sig, b"\x04" + PUB[1:])


def test_parse_pushes_truncation_raises_value_error_only() -> None:
    script = record_script(b"x" * 300, KEY.sign(b"x"), PUB)
    for cut in range(len(script)):
        try:
            parse_pushes(script[:cut])
        except ScriptError as exc:
            assert isinstance(exc, ValueError)
    with pytest.raises(ScriptError):
        parse_pushes(b"\x4c")
    with pytest.raises(ScriptError):
        parse_pushes(b"\x4d\x01")
    with pytest.raises(ScriptError):
        parse_pushes(b"\x4e\xff\xff\xff\xff")
    with pytest.raises(ScriptError):
        parse_pushes(b"\x05abc")
    chunks = parse_pushes(b"\x00\x51\x6a\x4c\x00")
    assert [(c.opcode, c.data) for c in chunks] == [
        (0, b""),
        (0x51, None),
        (0x6A, None),
        (0x4C, b""),
    ]


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=40))
def test_parse_pushes_fuzz(data: bytes) -> None:
    try:
        parse_pushes(data)
        parse_record_script(data)
        parse_record_script(b"\x00\x6a\x07raregen" + data)
        parse_record_script(b"\x00\x6a\x07raregen\x01\x01" + data)
    except ValueError:
        pass


def test_version_forms_and_foreign_scripts() -> None:
    script = signed_record({"t": "x"})
    with_op1 = script.replace(b"raregen\x01\x01", b"raregen\x51", 1)
    parsed, parsed_op1 = parse_record_script(script), parse_record_script(with_op1)
    assert parsed is not None and parsed == parsed_op1
    # version 2 is the Bitcoin Signed Message layout: a DER signature there is malformed
    with pytest.raises(MalformedRecord):
        parse_record_script(script.replace(b"raregen\x01\x01", b"raregen\x01\x02", 1))
    assert parse_record_script(script.replace(b"raregen\x01\x01", b"raregen\x01\x03", 1)) is None
    assert parse_record_script(script.replace(b"raregen\x01\x01", b"raregen\x53", 1)) is None
    assert parse_record_script(script.replace(b"raregen\x01\x01", b"raregen\x00", 1)) is None
    assert parse_record_script(script[1:]) is None  # bare OP_RETURN
    assert parse_record_script(script.replace(b"raregen", b"raregem", 1)) is None
    assert parse_record_script(P2PKH) is None
    assert parse_record_script(b"") is None
    assert parse_record_script(b"\x00\x6a\x07raregen") is None  # no version at all


def test_malformed_records() -> None:
    script = signed_record({"t": "x"})
    head = b"\x00\x6a\x07raregen\x01\x01"
    sig = KEY.sign(b"p")
    cases = [
        script[:-1],  # truncated pubkey push
        script + b"\x01\x00",  # a fourth element
        head + b"\x01p" + push_data(sig),  # no pubkey
        head + b"\x4c\x01p" + push_data(sig) + push_data(PUB),  # non-minimal payload push
        head + b"\x00" + push_data(sig) + push_data(PUB),  # empty payload
        head + b"\x01p" + push_data(sig) + push_data(PUB[:32]),  # short key
        head + b"\x01p" + push_data(sig) + b"\x76",  # opcode instead of key
    ]
    for case in cases:
        with pytest.raises(MalformedRecord):
            parse_record_script(case)


# ---------------------------------------------------------------------------------------------
# transactions


def _tx_files() -> list[Path]:
    files = sorted((vectors_dir() / "bsv" / "op_return_txs").glob("*.hex"))
    assert len(files) == 3, "expected the 3 transactions of bsv/op_return_txs"
    return files


def test_vector_transactions_parse_and_are_not_ours() -> None:
    index = {
        e["txid_computed"]: e
        for e in json.loads(vector_file("bsv", "op_return_txs", "index.json").read_text())
    }
    for path in _tx_files():
        raw = bytes.fromhex(path.read_text().strip())
        tx = parse_transaction(raw)
        assert tx.txid == path.stem == txid(raw)
        entry = index[path.stem]
        assert len(raw) == entry["bytes"]
        assert [(i.prev_txid, i.vout) for i in tx.inputs] == [
            (i["prev_txid"], i["vout"]) for i in entry["inputs"]
        ]
        assert [(o.satoshis, o.script.hex()) for o in tx.outputs] == [
            (o["satoshis"], o["lockingScript"]) for o in entry["outputs"]
        ]
        assert any(o.script.startswith(b"\x00\x6a") for o in tx.outputs)
        assert extract_records(raw) == []


def test_bsv_tx_valid_vectors_parse() -> None:
    rows = json.loads(vector_file("bsv", "tx_valid.json").read_text())
    parsed = 0
    for row in rows:
        if isinstance(row, list) and len(row) == 3 and isinstance(row[1], str):
            raw = bytes.fromhex(row[1])
            assert parse_transaction(raw).txid == txid(raw)
            parsed += 1
    assert parsed > 50


def test_transaction_parse_errors() -> None:
    raw = build_tx([(0, signed_record({"t": "x"})), (1000, P2PKH)])
    parse_transaction(raw)
    for cut in range(len(raw)):
        with pytest.raises(TxParseError):
            parse_transaction(raw[:cut])
    with pytest.raises(TxParseError):
        parse_transaction(raw + b"\x00")
    with pytest.raises(TxParseError):
        parse_transaction(b"\x01\x00\x00\x00" + b"\xff" + b"\xff" * 8 + b"\x00" * 10)
    with pytest.raises(TxParseError):
        parse_transaction(b"\x01\x00\x00\x00\xfd\x01\x00" + b"\x00" * 100)  # non-canonical
    with pytest.raises(TxParseError):
        parse_transaction(bytes.fromhex("010000000000000000ef") + b"\x00" * 60)  # EF


@settings(max_examples=500, deadline=None)
@given(raw=st.binary(max_size=120))
def test_parse_transaction_fuzz(raw: bytes) -> None:
    try:
        parse_transaction(raw)
    except TxParseError:
        pass


# ---------------------------------------------------------------------------------------------
# record extraction


def test_record_tx_round_trip_valid() -> None:
    raw = build_tx([(0, signed_record({"title": "Song"})), (1000, P2PKH)])
    records = extract_records(raw)
    assert len(records) == 1
    rec = records[0]
    assert isinstance(rec, ExtractedRecord)
    assert rec.vout == 0 and rec.valid is True and rec.error is None
    assert rec.pubkey33 == PUB
    assert json.loads(rec.signed_payload)["record"] == {"title": "Song"}
    assert rec.payload is not None and rec.payload.nonce == "n" * 20
    d = rec.to_dict()
    assert set(d) == {
        "vout",
        "version",
        "signatureScheme",
        "signedPayload",
        "signature",
        "pubkey",
        "valid",
        "error",
    }
    assert (d["version"], d["signatureScheme"]) == (1, "der")
    assert d["pubkey"] == PUB.hex() and d["valid"] is True


def test_flipping_a_payload_byte_invalidates() -> None:
    raw = build_tx([(1000, P2PKH), (0, signed_record({"title": "Song"}))])
    pos = raw.index(b"Song")
    flipped = raw[:pos] + b"Sonh" + raw[pos + 4 :]
    rec = extract_records(flipped)[0]
    assert rec.vout == 1 and rec.valid is False
    assert rec.error is not None and rec.error.startswith("SIGNATURE_INVALID")
    # any single-bit flip inside the payload invalidates the record
    payload_at = raw.index(b'{"exp"')
    for offset in (0, 5, 40):
        i = payload_at + offset
        mutated = raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1 :]
        assert extract_records(mutated)[0].valid is False


def test_batch_tx_and_other_checks() -> None:
    other = coincurve.PrivateKey(bytes(range(3, 35)))
    good = signed_record({"n": 1})
    # high-S version of a good record
    req = make_request(KEY, {"n": 2}, None, 600, now=NOW, nonce="m" * 20)
    der = base64.b64decode(req["signature"])
    len_r = der[3]
    r = der[4 : 4 + len_r]
    s = int.from_bytes(der[6 + len_r :], "big")
    s_high = (SECP256K1_N - s).to_bytes(33, "big").lstrip(b"\x00")
    if s_high[0] & 0x80:
        s_high = b"\x00" + s_high
    body = b"\x02" + bytes([len(r)]) + r + b"\x02" + bytes([len(s_high)]) + s_high
    high = record_script(req["signedPayload"].encode(), b"\x30" + bytes([len(body)]) + body, PUB)
    # signed fine, but the payload is not contract v1 (not canonical)
    text = '{"v": 1}'
    non_canonical = record_script(text.encode(), KEY.sign(text.encode()), PUB)
    # signed bytes that are not UTF-8
    binary = record_script(b"\xff\xfe", KEY.sign(b"\xff\xfe"), PUB)
    wrong_key = record_script(
        req["signedPayload"].encode(), der, other.public_key.format(compressed=True)
    )
    malformed = b"\x00\x6a\x07raregen\x01\x01\x01p"
    raw = build_tx(
        [
            (0, good),
            (0, high),
            (500, P2PKH),
            (0, non_canonical),
            (0, binary),
            (0, wrong_key),
            (0, malformed),
        ],
        n_inputs=2,
    )
    recs = {r.vout: r for r in extract_records(raw)}
    assert sorted(recs) == [0, 1, 3, 4, 5, 6]
    assert recs[0].valid and recs[0].error is None
    assert not recs[1].valid and recs[1].error and recs[1].error.startswith("HIGH_S_SIGNATURE")
    assert recs[3].valid and recs[3].error and recs[3].error.startswith("NON_CANONICAL_PAYLOAD")
    assert recs[3].payload is None
    assert recs[4].valid and recs[4].error == "MALFORMED_JSON: payload is not UTF-8"
    assert not recs[5].valid and recs[5].error and recs[5].error.startswith("SIGNATURE_INVALID")
    assert not recs[6].valid and recs[6].error and recs[6].error.startswith("MALFORMED_RECORD")
