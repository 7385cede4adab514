"""On-chain layouts v1 and v2 (docs/PROTOCOL.md §3): build, parse and verify RareGen record
outputs.

One output per record, value 0 satoshis, locking script::

    OP_FALSE OP_RETURN <"raregen"> <0x01> <signedPayload bytes> <signature DER> <pubkey 33 bytes>
    OP_FALSE OP_RETURN <"raregen"> <0x02> <signedPayload bytes> <signature BSM> <pubkey 33 bytes>

The version byte names the signature scheme: 1, DER (ECDSA over SHA-256 of the payload);
2, Bitcoin Signed Message (the 65-byte compact recoverable signature over the BSM digest
of the payload, :func:`raregen.signing.bsm_digest`). Everything else is the same; v1 is
unchanged. A v2 record is valid when the key recovered from its signature is the key in
the output (the header's compression flag is not compared: the output always carries the
compressed form).

Pure: imports neither Flask nor SQLAlchemy, does no I/O.

Push encoding and the version byte
----------------------------------
Every element is one data push in its smallest push form (``push_data``): a direct push
(opcode = length) for 1..75 bytes, ``OP_PUSHDATA1`` for 76..255, ``OP_PUSHDATA2`` for
256..65535, ``OP_PUSHDATA4`` beyond. BIP 62 rule 3 would further replace a one-byte push
of 0x01..0x10 by ``OP_1``..``OP_16``; we do *not* do that for the version: the fixed layout
writes ``<0x01>`` as a data element, the bytes after ``OP_FALSE OP_RETURN`` are never
executed (so the node's MINIMALDATA rule does not apply to them), and a generic OP_RETURN
reader that collects data pushes then sees the version as the byte 0x01 like every other
element. So ``record_script`` writes ``01 01``. ``parse_record_script`` accepts both
``01 01`` and ``OP_1`` (0x51) as version 1, so a writer applying BIP 62 literally is read
too. The other four elements must be minimal pushes; anything else after our prefix and
version is reported as a malformed record.

Verification of a record (``extract_records``)
----------------------------------------------
``valid`` is the signature check of docs/PROTOCOL.md §3 only: strict DER, low-S, ECDSA secp256k1
over SHA-256 of the payload bytes, against the 33-byte key in the output (same code as the
server: ``raregen.signing.verify_signature``). ``error`` holds the first problem found, as
``"CODE: message"``: the signature's failure, or else a failure of the contract parse of the
payload (UTF-8, RFC 8785 canonical form, v1 members; the time window and the TTL bound are
not checked, they applied at acceptance). So ``valid=True`` with an ``error`` means "signed
by that key, but the payload does not follow contract v1".

Transactions are parsed by RareGen's one parser, :mod:`raregen.rawtx` (bsv-sdk's reader held
to the exact standard serialization: version, varint-counted inputs and outputs, locktime);
the txid is the reversed double SHA-256 of the raw bytes. Extended Format (BRC-30) and any
trailing byte are refused.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Final

from raregen.errors import RareGenError
from raregen.rawtx import TxParseError, parse_raw
from raregen.signing import (
    Payload,
    check_payload_fields,
    parse_signed_payload,
    signature_scheme_of,
    verify_bsm,
    verify_signature,
)

__all__ = [
    "PROTOCOL_PREFIX",
    "VERSION",
    "VERSION_BSM",
    "ExtractedRecord",
    "MalformedRecord",
    "RecordOutput",
    "ScriptChunk",
    "ScriptError",
    "Transaction",
    "TxInput",
    "TxOutput",
    "TxParseError",
    "extract_records",
    "parse_pushes",
    "parse_record_script",
    "parse_transaction",
    "push_data",
    "record_script",
    "txid",
    "verify_record",
]

PROTOCOL_PREFIX: Final = b"raregen"
VERSION: Final = 1
VERSION_BSM: Final = 2
VERSIONS: Final = (VERSION, VERSION_BSM)

OP_0: Final = 0x00
OP_FALSE: Final = OP_0
OP_PUSHDATA1: Final = 0x4C
OP_PUSHDATA2: Final = 0x4D
OP_PUSHDATA4: Final = 0x4E
OP_1: Final = 0x51
OP_16: Final = 0x60
OP_RETURN: Final = 0x6A

_MAX_DIRECT: Final = 0x4B  # 75


class ScriptError(ValueError):
    """A script cannot be tokenized (a push runs past the end of the script)."""


class MalformedRecord(ValueError):
    """A script carries our prefix and version but does not follow layout v1."""


# ---------------------------------------------------------------------------------------------
# Script pushes


@dataclass(frozen=True)
class ScriptChunk:
    """One script element.

    Attributes:
        opcode: the opcode byte (for a direct push, the length 1..75).
        data: the pushed bytes for push opcodes 0x00..0x4e (``b""`` for OP_0), else None.
    """

    opcode: int
    data: bytes | None


def push_data(data: bytes) -> bytes:
    """Encode ``data`` as one push in its smallest push-opcode form.

    Empty -> ``OP_0``; 1..75 bytes -> direct push; 76..255 -> ``OP_PUSHDATA1``;
    256..65535 -> ``OP_PUSHDATA2``; up to 2**32-1 -> ``OP_PUSHDATA4`` (lengths little
    endian). Single bytes stay data pushes (no ``OP_1``..``OP_16``, see module docstring).

    Raises:
        ValueError: ``data`` is 2**32 bytes or more.
    """
    data = bytes(data)
    n = len(data)
    if n == 0:
        return bytes([OP_0])
    if n <= _MAX_DIRECT:
        return bytes([n]) + data
    if n <= 0xFF:
        return bytes([OP_PUSHDATA1, n]) + data
    if n <= 0xFFFF:
        return bytes([OP_PUSHDATA2]) + n.to_bytes(2, "little") + data
    if n <= 0xFFFFFFFF:
        return bytes([OP_PUSHDATA4]) + n.to_bytes(4, "little") + data
    raise ValueError("push data too long (2**32 bytes or more)")


def parse_pushes(script: bytes) -> list[ScriptChunk]:
    """Tokenize a script into opcodes and pushes.

    Push opcodes (0x00..0x4e) carry their data; every other byte is a bare opcode. No
    opcode is interpreted.

    Raises:
        ScriptError: a push length or its data runs past the end of the script. Nothing else.
    """
    script = bytes(script)
    n = len(script)
    chunks: list[ScriptChunk] = []
    i = 0
    while i < n:
        start = i
        op = script[i]
        i += 1
        if op == OP_0:
            chunks.append(ScriptChunk(op, b""))
            continue
        if op <= _MAX_DIRECT:
            size = op
        elif op in (OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4):
            width = {OP_PUSHDATA1: 1, OP_PUSHDATA2: 2, OP_PUSHDATA4: 4}[op]
            if i + width > n:
                raise ScriptError(f"push length at offset {start} runs past the script end")
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        else:
            chunks.append(ScriptChunk(op, None))
            continue
        if i + size > n:
            raise ScriptError(f"push at offset {start} wants {size} bytes but only {n - i} remain")
        chunks.append(ScriptChunk(op, script[i : i + size]))
        i += size
    return chunks


# ---------------------------------------------------------------------------------------------
# Record scripts


@dataclass(frozen=True)
class RecordOutput:
    """The elements of a record script.

    Attributes:
        version: layout version (1: DER signature; 2: Bitcoin Signed Message).
        signed_payload: the payload bytes (UTF-8 of the canonical JSON when well formed).
        signature_der: the signature bytes (v1: DER; v2: 65-byte compact).
        pubkey33: the SEC1 compressed public key.
    """

    version: int
    signed_payload: bytes
    signature_der: bytes
    pubkey33: bytes


_HEAD: Final = bytes([OP_FALSE, OP_RETURN]) + push_data(PROTOCOL_PREFIX)
_VERSION_PUSH: Final = push_data(bytes([VERSION]))
_VERSION_PUSHES: Final = tuple(push_data(bytes([v])) for v in VERSIONS) + tuple(
    bytes([OP_1 + v - 1]) for v in VERSIONS
)


def record_script(signed_payload: bytes, signature_der: bytes, pubkey33: bytes) -> bytes:
    """Build the locking script of a record output: layout v1 for a DER signature, v2 for a
    65-byte compact (Bitcoin Signed Message) one.

    ``OP_FALSE OP_RETURN <"raregen"> <version> <payload> <signature> <pubkey>``, each
    element a :func:`push_data` push; the version is the data push ``01 01`` or ``01 02``.

    Raises:
        ValueError: empty payload or signature, a signature of neither form, or
            ``pubkey33`` not 33 bytes starting with 02/03.
    """
    signed_payload, signature_der, pubkey33 = (
        bytes(signed_payload),
        bytes(signature_der),
        bytes(pubkey33),
    )
    if not signed_payload:
        raise ValueError("signed_payload is empty")
    if not signature_der:
        raise ValueError("signature_der is empty")
    if len(pubkey33) != 33 or pubkey33[0] not in (2, 3):
        raise ValueError("pubkey33 must be a 33-byte SEC1 compressed key")
    version = VERSION_BSM if signature_scheme_of(signature_der) == "bsm" else VERSION
    return (
        _HEAD
        + push_data(bytes([version]))
        + push_data(signed_payload)
        + push_data(signature_der)
        + push_data(pubkey33)
    )


def _version_of(chunk: ScriptChunk) -> int | None:
    if OP_1 <= chunk.opcode <= OP_16:
        return chunk.opcode - OP_1 + 1
    if chunk.opcode == 1 and chunk.data is not None:
        return chunk.data[0]
    return None


def parse_record_script(script: bytes) -> RecordOutput | None:
    """Read a locking script as a layout-v1 record.

    Returns:
        None if the script does not start with ``OP_FALSE OP_RETURN <"raregen">`` followed
        by version 1 (``01 01`` or ``OP_1``): not ours, or another version. Otherwise the
        record's elements.

    Raises:
        MalformedRecord: prefix and version match but the rest is not exactly three minimal
            non-empty pushes with a 33-byte 02/03 key last, or the script is truncated.
    """
    script = bytes(script)
    if not script.startswith(_HEAD):
        return None
    try:
        chunks = parse_pushes(script[len(_HEAD) :])
    except ScriptError as exc:
        tail = script[len(_HEAD) :]
        if tail.startswith(_VERSION_PUSHES):
            raise MalformedRecord(f"truncated record script: {exc}") from exc
        return None
    version = _version_of(chunks[0]) if chunks else None
    if version not in VERSIONS:
        return None
    elements = chunks[1:]
    if len(elements) != 3:
        raise MalformedRecord(
            f"expected 3 elements after the version (payload, signature, pubkey), "
            f"found {len(elements)}"
        )
    values: list[bytes] = []
    for name, chunk in zip(("payload", "signature", "pubkey"), elements, strict=True):
        if chunk.data is None or not chunk.data:
            raise MalformedRecord(f"{name} is not a non-empty data push")
        if push_data(chunk.data)[0] != chunk.opcode:
            raise MalformedRecord(f"{name} is not a minimal push")
        values.append(chunk.data)
    payload, signature, pubkey = values
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        raise MalformedRecord("pubkey is not 33 bytes SEC1 compressed")
    if version == VERSION_BSM and (len(signature) != 65 or not 27 <= signature[0] <= 34):
        raise MalformedRecord("a v2 signature is 65 bytes with a header byte of 27 to 34")
    return RecordOutput(int(version), payload, signature, pubkey)


# ---------------------------------------------------------------------------------------------
# Transactions


@dataclass(frozen=True)
class TxInput:
    """A transaction input. ``prev_txid`` is in display (reversed) hex."""

    prev_txid: str
    vout: int
    script_sig: bytes
    sequence: int


@dataclass(frozen=True)
class TxOutput:
    """A transaction output: value in satoshis and locking script."""

    satoshis: int
    script: bytes


@dataclass(frozen=True)
class Transaction:
    """A parsed transaction; ``txid`` is reversed double SHA-256 of the raw bytes, hex."""

    version: int
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    locktime: int
    txid: str


def txid(raw_tx: bytes) -> str:
    """Transaction id: SHA-256(SHA-256(raw)) with its bytes reversed, lowercase hex."""
    return hashlib.sha256(hashlib.sha256(bytes(raw_tx)).digest()).digest()[::-1].hex()


def parse_transaction(raw_tx: bytes) -> Transaction:
    """Deserialize a raw transaction (standard Bitcoin serialization, as BSV uses).

    Layout: version (int32 LE), varint input count, inputs (prev txid 32 bytes, vout uint32,
    varint-length unlocking script, sequence uint32), varint output count, outputs (value
    int64 LE satoshis, varint-length locking script), locktime (uint32). Varints must be
    canonical. Read by bsv-sdk through :func:`raregen.rawtx.parse_raw`.

    Raises:
        TxParseError: truncated data, trailing bytes, Extended Format (BRC-30), or counts
            that cannot fit in the remaining bytes. Nothing else.
    """
    data = bytes(raw_tx)
    tx = parse_raw(data)
    inputs = tuple(
        TxInput(i.source_txid, i.source_output_index, i.unlocking_script.serialize(), i.sequence)
        for i in tx.inputs
    )
    outputs = tuple(
        TxOutput(_signed(o.satoshis, 8), o.locking_script.serialize()) for o in tx.outputs
    )
    return Transaction(_signed(tx.version, 4), inputs, outputs, tx.locktime, txid(data))


def _signed(value: int, width: int) -> int:
    """``value`` read unsigned from ``width`` bytes, as the two's complement it encodes."""
    return value - (1 << (8 * width)) if value >> (8 * width - 1) else value


# ---------------------------------------------------------------------------------------------
# Record extraction and verification


@dataclass(frozen=True)
class ExtractedRecord:
    """A record output found in a transaction, with its verification result.

    Attributes:
        vout: output index.
        signed_payload: the payload decoded as UTF-8 (invalid bytes replaced by U+FFFD;
            ``error`` says so); ``""`` if the record is malformed.
        signature_der: the signature bytes (``b""`` if malformed).
        pubkey33: the key bytes (``b""`` if malformed).
        valid: the signature verifies, low-S, over SHA-256 of the payload bytes.
        error: None, or ``"CODE: message"`` for the first problem (see module docstring).
        payload: the contract-v1 members if the payload parses, else None.
        version: the layout version (1: DER, 2: Bitcoin Signed Message; 0 if malformed).
    """

    vout: int
    signed_payload: str
    signature_der: bytes
    pubkey33: bytes
    valid: bool
    error: str | None
    payload: Payload | None = None
    version: int = VERSION

    @property
    def scheme(self) -> str | None:
        """``der`` (layout v1), ``bsm`` (v2), None for a malformed record."""
        return {VERSION: "der", VERSION_BSM: "bsm"}.get(self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: ``{"vout", "version", "signatureScheme", "signedPayload",
        "signature" (base64: DER, or the 65-byte compact BSM signature), "pubkey" (hex),
        "valid", "error"}``."""
        return {
            "vout": self.vout,
            "version": self.version or None,
            "signatureScheme": self.scheme,
            "signedPayload": self.signed_payload,
            "signature": base64.b64encode(self.signature_der).decode("ascii"),
            "pubkey": self.pubkey33.hex(),
            "valid": self.valid,
            "error": self.error,
        }


def verify_record(vout: int, record: RecordOutput) -> ExtractedRecord:
    """Verify one parsed record output (signature, then contract parse; module docstring)."""
    error: str | None = None
    try:
        if record.version == VERSION_BSM:
            verify_bsm(record.pubkey33, record.signature_der, record.signed_payload)
        else:
            verify_signature(record.pubkey33, record.signature_der, record.signed_payload)
        valid = True
    except RareGenError as exc:
        valid = False
        error = f"{exc.code}: {exc.message}"
    payload: Payload | None = None
    try:
        text = record.signed_payload.decode("utf-8")
    except UnicodeDecodeError:
        text = record.signed_payload.decode("utf-8", errors="replace")
        error = error or "MALFORMED_JSON: payload is not UTF-8"
    else:
        try:
            obj = parse_signed_payload(text, max_bytes=len(record.signed_payload))
            payload = check_payload_fields(obj, max_ttl=None)
        except RareGenError as exc:
            error = error or f"{exc.code}: {exc.message}"
    return ExtractedRecord(
        vout=vout,
        signed_payload=text,
        signature_der=record.signature_der,
        pubkey33=record.pubkey33,
        valid=valid,
        error=error,
        payload=payload,
        version=record.version,
    )


def extract_records(raw_tx: bytes) -> list[ExtractedRecord]:
    """Find and verify every layout-v1 record output of a raw transaction.

    Outputs that are not ours (other prefix, other version) are skipped. A malformed record
    (our prefix and version, wrong layout) is returned with ``valid=False`` and
    ``error="MALFORMED_RECORD: ..."``.

    Raises:
        TxParseError: the transaction itself cannot be parsed.
    """
    records: list[ExtractedRecord] = []
    for vout, output in enumerate(parse_transaction(raw_tx).outputs):
        try:
            record = parse_record_script(output.script)
        except MalformedRecord as exc:
            records.append(
                ExtractedRecord(vout, "", b"", b"", False, f"MALFORMED_RECORD: {exc}", None, 0)
            )
            continue
        if record is not None:
            records.append(verify_record(vout, record))
    return records
