"""Tests of raregen.publish.txbuilder: sizes, fees, change, signing, and BSV vectors.

Vectors come from ``tests/data/vectors`` (or ``$RAREGEN_VECTORS``, located by ``tests.vectors``);
see the README.md there. A missing vectors folder fails the vector tests, it does not skip them.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import socket

import coincurve
import pytest
from bsv.hash import hash256  # type: ignore[import-untyped]
from bsv.script.script import Script  # type: ignore[import-untyped]
from bsv.script.spend import Spend  # type: ignore[import-untyped]
from bsv.transaction import Transaction  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from raregen.errors import InsufficientFunds
from raregen.publish import txbuilder as tb
from raregen.publish.txbuilder import (
    MAX_P2PKH_UNLOCKING_SCRIPT_SIZE,
    BuiltTx,
    ServerWallet,
    SpendableUtxo,
    build_packed_tx,
    build_publish_tx,
    build_split_tx,
    estimate_size,
    fee_for_size,
    required_satoshis,
)
from tests.vectors import vector_file

FORKID = 0x40
CHRONICLE = 0x20
OP_CODESEPARATOR = 0xAB

# Private key 1 (the generator point's key): the classic WIF/address examples.
KEY1_WIF_MAINNET = "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
KEY1_ADDRESS_MAINNET = "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
KEY1_WIF_TESTNET = "cMahea7zqjxrtgAbB7LSGbcQUr1uX1ojuat9jZodMN87JcbXMTcA"
KEY1_ADDRESS_TESTNET = "mrCDrCybB6J1vRfbwM5hemdJz73FwDBC8r"
# An uncompressed-key WIF (Bitcoin wiki example).
UNCOMPRESSED_WIF = "5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ"


# --------------------------------------------------------------------------------------------
# Helpers


def push(data: bytes) -> bytes:
    """A single data push (not the minimal-opcode forms; the layout module owns §3 exactly)."""
    n = len(data)
    if n < 0x4C:
        return bytes([n]) + data
    if n <= 0xFF:
        return b"\x4c" + bytes([n]) + data
    if n <= 0xFFFF:
        return b"\x4d" + n.to_bytes(2, "little") + data
    return b"\x4e" + n.to_bytes(4, "little") + data


def record_script(payload: bytes) -> bytes:
    """An OP_FALSE OP_RETURN record shaped like docs/PROTOCOL.md §3 (random sig and key bytes)."""
    return (
        b"\x00\x6a"
        + push(b"raregen")
        + push(b"\x01")
        + push(payload)
        + push(os.urandom(71))
        + push(b"\x02" + os.urandom(32))
    )


def utxo_for(wallet: ServerWallet, satoshis: int, vout: int = 0) -> SpendableUtxo:
    return SpendableUtxo(os.urandom(32).hex(), vout, satoshis, wallet.locking_script_hex)


def parse(built: BuiltTx) -> Transaction:
    tx = Transaction.from_hex(built.raw_hex)
    assert tx is not None
    return tx


def spend_valid(tx: Transaction, index: int, locking_script: bytes, satoshis: int) -> bool:
    """bsv-sdk's script interpreter: does input ``index`` unlock the given output?"""
    tx_input = tx.inputs[index]
    others = [inp for j, inp in enumerate(tx.inputs) if j != index]
    try:
        return bool(
            Spend(
                {
                    "sourceTXID": tx_input.source_txid,
                    "sourceOutputIndex": tx_input.source_output_index,
                    "sourceSatoshis": satoshis,
                    "lockingScript": Script(locking_script),
                    "transactionVersion": tx.version,
                    "otherInputs": others,
                    "inputIndex": index,
                    "unlockingScript": tx_input.unlocking_script,
                    "outputs": tx.outputs,
                    "inputSequence": tx_input.sequence,
                    "lockTime": tx.locktime,
                }
            ).validate()
        )
    except RuntimeError:
        return False


def script_opcodes(script: bytes) -> list[int]:
    """Opcodes of a script, skipping push data; a truncated push ends the walk."""
    ops: list[int] = []
    i = 0
    while i < len(script):
        op = script[i]
        ops.append(op)
        i += 1
        if 0x01 <= op <= 0x4B:
            i += op
        elif op == 0x4C:
            i += 1 + (script[i] if i < len(script) else 0)
        elif op == 0x4D:
            i += 2 + int.from_bytes(script[i : i + 2], "little")
        elif op == 0x4E:
            i += 4 + int.from_bytes(script[i : i + 4], "little")
    return ops


def without_codeseparators(script: bytes) -> bytes:
    """``script`` minus its OP_CODESEPARATOR opcodes (not bytes 0xab inside push data)."""
    out = bytearray()
    i = 0
    while i < len(script):
        start = i
        op = script[i]
        i += 1
        if 0x01 <= op <= 0x4B:
            i += op
        elif op == 0x4C:
            i += 1 + (script[i] if i < len(script) else 0)
        elif op == 0x4D:
            i += 2 + int.from_bytes(script[i : i + 2], "little")
        elif op == 0x4E:
            i += 4 + int.from_bytes(script[i : i + 4], "little")
        if op != OP_CODESEPARATOR:
            out += script[start:i]
    return bytes(out)


@pytest.fixture(scope="module")
def wallet() -> ServerWallet:
    return ServerWallet.generate("regtest")


# --------------------------------------------------------------------------------------------
# Backend


def test_native_secp256k1_backend_is_loaded() -> None:
    # Without bsv-sdk's C extension a signature takes ~30 ms: batch mode could not keep up.
    assert tb.native_crypto_available()


# --------------------------------------------------------------------------------------------
# Fees and sizes


@pytest.mark.parametrize(
    ("size", "rate", "fee"),
    [
        (0, 50, 0),
        (1, 1, 1),
        (192, 1, 1),
        (1000, 1, 1),
        (1001, 1, 2),
        (250, 0, 0),
        (226, 500, 113),
        (227, 500, 114),
        (1999, 1000, 1999),
        (100_000, 50, 5000),
        (100_001, 50, 5001),
    ],
)
def test_fee_for_size_rounds_up(size: int, rate: int, fee: int) -> None:
    assert fee_for_size(size, rate) == fee


@pytest.mark.parametrize(
    ("size", "rate", "error"),
    [(-1, 1, ValueError), (1, -1, ValueError), (1, 1.5, TypeError), (True, 1, TypeError)],
)
def test_fee_for_size_rejects_bad_arguments(size: object, rate: object, error: type) -> None:
    with pytest.raises(error):
        fee_for_size(size, rate)  # type: ignore[arg-type]


def test_estimate_size_counts_every_field() -> None:
    # version 4 + 1 + input 149 + 1 + (8+1+12) + change (8+1+25) + locktime 4
    assert MAX_P2PKH_UNLOCKING_SCRIPT_SIZE == 108
    assert estimate_size(1, [b"\x00" * 12], with_change=True) == 4 + 1 + 149 + 1 + 21 + 34 + 4
    assert estimate_size(1, [b"\x00" * 12], with_change=False) == 4 + 1 + 149 + 1 + 21 + 4
    # Script length varint grows at 253 bytes; output count varint at 253 outputs.
    assert estimate_size(1, [b"\x00" * 253], False) - estimate_size(1, [b"\x00" * 252], False) == 3
    many = [b"\x00\x6a"] * 252
    assert estimate_size(1, many, with_change=True) - estimate_size(1, many, False) == 34 + 2
    assert estimate_size(2, [], False) - estimate_size(1, [], False) == 149
    with pytest.raises(ValueError):
        estimate_size(0, [], False)


def test_required_satoshis_is_the_no_change_fee() -> None:
    scripts = [record_script(b"x" * 300)]
    for rate in (0, 1, 50, 500):
        assert required_satoshis(scripts, rate) == fee_for_size(
            estimate_size(1, scripts, with_change=False), rate
        )


def _real_unlocking_sizes(tx: Transaction) -> list[int]:
    return [len(inp.unlocking_script.serialize()) for inp in tx.inputs]


def _random_payload(data: st.DataObject, rng: random.Random, large: bool) -> bytes:
    # Lengths around the push-opcode and varint boundaries (75/76, 255/256, 65535/65536).
    sizes = [0, 1, 60, 75, 76, 200, 252, 253, 255, 256, 600]
    n = data.draw(st.sampled_from(sizes + [4000, 65_535, 65_536] if large else sizes))
    return rng.randbytes(n)  # the bytes do not matter, only how many


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_estimate_bounds_real_size_and_fee_pays_rate_for_random_builds(
    wallet: ServerWallet, data: st.DataObject
) -> None:
    rng = data.draw(st.randoms(use_true_random=False))
    n_records = data.draw(st.sampled_from([1, 1, 1, 2, 3, 7, 252, 253]))
    scripts = [record_script(_random_payload(data, rng, n_records < 5)) for _ in range(n_records)]
    rate = data.draw(st.sampled_from([0, 1, 5, 50, 100, 500, 1000]))
    need = required_satoshis(scripts, rate)
    extra = data.draw(st.sampled_from([0, 1, 40]) | st.integers(1, 10**6 - 1))
    satoshis = need + extra
    utxo = utxo_for(wallet, satoshis, vout=data.draw(st.integers(0, 4)))

    built = build_publish_tx(wallet, utxo, scripts, rate)
    tx = parse(built)
    real = len(bytes.fromhex(built.raw_hex))
    with_change = built.change_vout is not None
    estimate = estimate_size(1, scripts, with_change)

    assert built.size == real
    assert real <= estimate
    # Exact apart from the signature: the estimate counts the 108-byte maximum.
    shortfall = MAX_P2PKH_UNLOCKING_SCRIPT_SIZE - _real_unlocking_sizes(tx)[0]
    assert 1 <= shortfall <= 3
    assert real == estimate - shortfall
    assert built.fee >= fee_for_size(real, rate)
    assert built.fee == satoshis - (built.change_satoshis or 0)
    if with_change:
        assert built.fee == fee_for_size(estimate, rate)
        assert built.change_satoshis is not None and built.change_satoshis >= 1
    assert built.txid == hash256(bytes.fromhex(built.raw_hex))[::-1].hex() == tx.txid()
    assert built.record_vouts == list(range(n_records))
    assert spend_valid(tx, 0, bytes.fromhex(utxo.script_pub_key), satoshis)


def test_exact_fee_utxo_spends_with_no_change_and_is_valid(wallet: ServerWallet) -> None:
    scripts = [record_script(b"p" * 250)]
    for rate in (1, 50, 500):
        need = required_satoshis(scripts, rate)
        utxo = utxo_for(wallet, need)
        built = build_publish_tx(wallet, utxo, scripts, rate)
        tx = parse(built)
        assert built.change_vout is None and built.change_satoshis is None
        assert len(tx.outputs) == 1
        assert built.fee == need >= fee_for_size(built.size, rate)
        assert spend_valid(tx, 0, wallet.locking_script, need)

        with pytest.raises(InsufficientFunds):
            build_publish_tx(wallet, utxo_for(wallet, need - 1), scripts, rate)


def test_change_appears_from_one_satoshi(wallet: ServerWallet) -> None:
    scripts = [record_script(b"q" * 100)]
    rate = 50
    fee_with_change = fee_for_size(estimate_size(1, scripts, with_change=True), rate)

    one = build_publish_tx(wallet, utxo_for(wallet, fee_with_change + 1), scripts, rate)
    assert one.change_satoshis == 1 and one.change_vout == 1
    assert one.fee == fee_with_change

    # Zero change: no change output, everything is fee (more than the no-change fee needs).
    zero = build_publish_tx(wallet, utxo_for(wallet, fee_with_change), scripts, rate)
    assert zero.change_vout is None
    assert zero.fee == fee_with_change


def test_change_goes_to_the_wallet_script_by_default(wallet: ServerWallet) -> None:
    built = build_publish_tx(wallet, utxo_for(wallet, 50_000), [record_script(b"c")], 50)
    tx = parse(built)
    assert built.change_vout == len(tx.outputs) - 1 == 1
    change = tx.outputs[built.change_vout]
    assert change.locking_script.hex() == wallet.locking_script_hex
    assert change.satoshis == built.change_satoshis == 50_000 - built.fee


def test_change_script_can_be_given(wallet: ServerWallet) -> None:
    other = ServerWallet.generate("regtest")
    built = build_publish_tx(
        wallet, utxo_for(wallet, 50_000), [record_script(b"c")], 50, other.locking_script_hex
    )
    change = parse(built).outputs[built.change_vout]
    assert change.locking_script.hex() == other.locking_script_hex


def test_record_outputs_are_zero_satoshi_op_return_at_their_vouts(wallet: ServerWallet) -> None:
    scripts = [record_script(bytes([i]) * (10 + i)) for i in range(3)]
    utxo = utxo_for(wallet, 10_000, vout=7)
    built = build_publish_tx(wallet, utxo, scripts, 50)
    tx = parse(built)
    assert built.record_vouts == [0, 1, 2]
    for vout, script in zip(built.record_vouts, scripts, strict=True):
        out = tx.outputs[vout]
        assert out.satoshis == 0
        assert out.locking_script.hex().startswith("006a")
        assert out.locking_script.serialize() == script
    assert built.inputs == [(utxo.txid, 7)]
    assert tx.inputs[0].source_txid == utxo.txid and tx.inputs[0].source_output_index == 7
    assert tx.inputs[0].sequence == 0xFFFFFFFF and tx.version == 1 and tx.locktime == 0


def test_packed_tx_with_a_thousand_records(wallet: ServerWallet) -> None:
    scripts = [record_script(os.urandom(300)) for _ in range(1000)]
    need = required_satoshis(scripts, 50)
    built = build_packed_tx(wallet, utxo_for(wallet, need + 5000), scripts, 50)
    tx = parse(built)
    assert built.record_vouts == list(range(1000))
    assert built.change_vout == 1000 and len(tx.outputs) == 1001
    assert all(tx.outputs[v].satoshis == 0 for v in built.record_vouts)
    assert built.fee >= fee_for_size(built.size, 50)
    assert spend_valid(tx, 0, wallet.locking_script, need + 5000)


@pytest.mark.parametrize(
    "scripts",
    [[], [b"\x6a\x01x"], [b"\x76\xa9"], ["006a"]],
    ids=["none", "no-op-false", "not-data", "hex-string"],
)
def test_publish_rejects_bad_record_scripts(wallet: ServerWallet, scripts: list[bytes]) -> None:
    with pytest.raises(ValueError):
        build_publish_tx(wallet, utxo_for(wallet, 10_000), scripts, 50)


def test_publish_rejects_a_utxo_the_wallet_cannot_sign(wallet: ServerWallet) -> None:
    other = ServerWallet.generate("regtest")
    with pytest.raises(ValueError, match="not locked to the server wallet"):
        build_publish_tx(wallet, utxo_for(other, 10_000), [record_script(b"r")], 50)


def test_publish_rejects_a_negative_rate(wallet: ServerWallet) -> None:
    with pytest.raises(ValueError):
        build_publish_tx(wallet, utxo_for(wallet, 10_000), [record_script(b"r")], -1)


@pytest.mark.parametrize(
    ("txid", "vout", "satoshis", "script"),
    [
        ("ab" * 31, 0, 1, "76"),
        ("zz" * 32, 0, 1, "76"),
        ("ab" * 32, -1, 1, "76"),
        ("ab" * 32, 2**32, 1, "76"),
        ("ab" * 32, 0, -1, "76"),
        ("ab" * 32, 0, 1, "7g"),
    ],
)
def test_spendable_utxo_validates_fields(txid: str, vout: int, satoshis: int, script: str) -> None:
    with pytest.raises(ValueError):
        SpendableUtxo(txid, vout, satoshis, script)


def test_spendable_utxo_rejects_non_int_amounts() -> None:
    with pytest.raises(TypeError):
        SpendableUtxo("ab" * 32, 0, 1.0, "76")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SpendableUtxo("ab" * 32, True, 1, "76")


def test_builds_make_no_network_call(wallet: ServerWallet, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("txbuilder tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    build_publish_tx(wallet, utxo_for(wallet, 10_000), [record_script(b"n")], 50)
    build_split_tx(wallet, [utxo_for(wallet, 100_000)], 10, 1000, 50)


# --------------------------------------------------------------------------------------------
# Split


def test_split_into_thousands_of_pool_outputs(wallet: ServerWallet) -> None:
    utxos = [utxo_for(wallet, 2_000_000, vout=i) for i in range(3)]
    built = build_split_tx(wallet, utxos, 3000, 1500, 50)
    tx = parse(built)
    assert len(tx.inputs) == 3 and built.inputs == [u.outpoint for u in utxos]
    assert len(tx.outputs) == 3001 and built.change_vout == 3000
    assert built.record_vouts == []
    for out in tx.outputs[:3000]:
        assert out.satoshis == 1500
        assert out.locking_script.serialize() == wallet.locking_script
    assert tx.outputs[3000].locking_script.serialize() == wallet.locking_script
    assert built.change_satoshis == 6_000_000 - 3000 * 1500 - built.fee
    assert built.fee >= fee_for_size(built.size, 50)
    assert built.size <= estimate_size(3, [wallet.locking_script] * 3000, with_change=True)
    for i, u in enumerate(utxos):
        assert spend_valid(tx, i, wallet.locking_script, u.satoshis)


def test_split_without_enough_funds(wallet: ServerWallet) -> None:
    utxos = [utxo_for(wallet, 10_000)]
    with pytest.raises(InsufficientFunds):
        build_split_tx(wallet, utxos, 10, 1000, 50)
    # Exactly the outputs plus the no-change fee: spent with no change.
    fee = fee_for_size(estimate_size(1, [wallet.locking_script] * 9, False), 50)
    built = build_split_tx(wallet, [utxo_for(wallet, 9000 + fee)], 9, 1000, 50)
    assert built.change_vout is None and built.fee == fee


@pytest.mark.parametrize(
    ("count", "each", "error"),
    [
        (0, 1000, ValueError),
        (1, 0, ValueError),
        (-3, 1000, ValueError),
        (2, -1, ValueError),
        (2.0, 1000, TypeError),
        (2, 1000.0, TypeError),
    ],
)
def test_split_rejects_bad_counts_and_amounts(
    wallet: ServerWallet, count: int, each: int, error: type
) -> None:
    with pytest.raises(error):
        build_split_tx(wallet, [utxo_for(wallet, 10**6)], count, each, 50)


def test_split_rejects_duplicate_or_no_utxos(wallet: ServerWallet) -> None:
    utxo = utxo_for(wallet, 10**6)
    with pytest.raises(ValueError):
        build_split_tx(wallet, [utxo, utxo], 2, 1000, 50)
    with pytest.raises(ValueError):
        build_split_tx(wallet, [], 2, 1000, 50)


# --------------------------------------------------------------------------------------------
# Wallet


def test_wallet_from_known_wif() -> None:
    main = ServerWallet.from_wif(KEY1_WIF_MAINNET)
    assert main.network == "mainnet"
    assert main.address == KEY1_ADDRESS_MAINNET
    generator_x = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    assert main.public_key_hex == "02" + generator_x
    assert main.locking_script_hex == "76a914" + main.pubkey_hash.hex() + "88ac"
    assert main.to_wif() == KEY1_WIF_MAINNET

    test = ServerWallet.from_wif(KEY1_WIF_TESTNET, "regtest")
    assert test.network == "regtest"
    assert test.address == KEY1_ADDRESS_TESTNET
    assert test.locking_script_hex == main.locking_script_hex
    assert test.to_wif() == KEY1_WIF_TESTNET
    assert ServerWallet.from_wif(KEY1_WIF_TESTNET).network == "testnet"


@pytest.mark.parametrize("network", ["mainnet", "testnet", "regtest"])
def test_generated_wallet_round_trips_through_wif(network: tb.NetworkName) -> None:
    wallet = ServerWallet.generate(network)
    again = ServerWallet.from_wif(wallet.to_wif(), network)
    assert again == wallet and again.address == wallet.address
    assert wallet.address[0] in ("1" if network == "mainnet" else "mn")


def test_wallet_never_shows_its_secret() -> None:
    wallet = ServerWallet.from_wif(KEY1_WIF_MAINNET)
    secret_hex = "00" * 31 + "01"
    for text in (repr(wallet), str(wallet), f"{wallet}", repr([wallet])):
        assert KEY1_WIF_MAINNET not in text and secret_hex not in text
        assert KEY1_ADDRESS_MAINNET in text
    assert not hasattr(wallet, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(wallet)


@pytest.mark.parametrize(
    ("wif", "network", "why"),
    [
        (KEY1_WIF_MAINNET, "regtest", "mainnet key"),
        (KEY1_WIF_TESTNET, "mainnet", "testnet key"),
        (UNCOMPRESSED_WIF, None, "uncompressed"),
        (KEY1_WIF_MAINNET[:-1] + "X", None, "Base58Check"),
        (" " + KEY1_WIF_MAINNET, None, "whitespace"),
        ("", None, "Base58Check"),
        (KEY1_WIF_MAINNET, "signet", "unknown network"),
    ],
)
def test_wallet_rejects_bad_wifs_without_echoing_them(
    wif: str, network: str | None, why: str
) -> None:
    with pytest.raises(ValueError, match=why) as info:
        ServerWallet.from_wif(wif, network)
    if wif.strip():
        assert wif.strip() not in str(info.value)


# --------------------------------------------------------------------------------------------
# Signature checked independently of bsv-sdk's signer (c)


def test_built_signature_verifies_with_coincurve(wallet: ServerWallet) -> None:
    utxo = utxo_for(wallet, 123_456, vout=3)
    built = build_publish_tx(wallet, utxo, [record_script(b"indep"), record_script(b"x")], 50)
    tx = parse(built)

    chunks = tx.inputs[0].unlocking_script.chunks
    assert len(chunks) == 2
    sig_with_type, pubkey = chunks[0].data, chunks[1].data
    assert pubkey == wallet.public_key
    assert sig_with_type[-1] == 0x41  # SIGHASH_ALL | SIGHASH_FORKID
    der = sig_with_type[:-1]

    # BIP143/FORKID preimage by bsv-sdk from the parsed transaction plus the spent output.
    tx.inputs[0].locking_script = Script(utxo.script_pub_key)
    tx.inputs[0].satoshis = utxo.satoshis
    tx.inputs[0].sighash = 0x41
    digest = hash256(tx.preimage(0))

    key = coincurve.PublicKey(pubkey)
    assert key.verify(der, digest, hasher=None)
    # Low-S (BIP 62/146), and bound to the amount: another amount gives another digest.
    r_len = der[3]
    s_value = int.from_bytes(der[4 + r_len + 2 :], "big")
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    assert s_value <= n // 2
    tx.inputs[0].satoshis = utxo.satoshis + 1
    assert not key.verify(der, hash256(tx.preimage(0)), hasher=None)


# --------------------------------------------------------------------------------------------
# Vectors: bitcoin-sv's sighash.json (a)

# Rows are [raw tx, script, input index, hashType (signed int32), regular hash, no-forkid hash];
# the node computed "regular" with input amount 0 and printed it byte-reversed (README).
#
# Tested: every row with the FORKID bit (0x40) set, 514 of 1000:
# - FORKID without CHRONICLE (254 rows): BIP143 digest, bsv-sdk's preimage as is.
# - FORKID with CHRONICLE (0x20, 260 rows): bsv-sdk routes these to the original digest
#   algorithm (OTDA), as the node does. 175 of them match as is. The other 85 have
#   OP_CODESEPARATOR opcodes in the script: the node's serializer drops those from the
#   scriptCode, while bsv-sdk's preimage takes the scriptCode verbatim (its script interpreter
#   passes the right subscript itself). They are tested with the scriptCode as the node
#   serializes it, i.e. without its OP_CODESEPARATOR opcodes, and separately shown to differ
#   as given, so the reason stays pinned.
# Skipped: the 486 rows without FORKID. They are the pre-fork digest, which BSV consensus
# refuses for signatures (SCRIPT_ENABLE_SIGHASH_FORKID) and this service never makes.


def _sighash_rows() -> list[list[object]]:
    rows = json.loads(vector_file("bsv", "sighash.json").read_text())
    assert len(rows) == 1001  # a header row, then 1000 vectors
    return rows[1:]


def _bsv_sighash(raw: str, script: bytes, index: int, hash_type: int) -> str:
    tx = Transaction.from_hex(raw)
    tx_input = tx.inputs[index]
    tx_input.locking_script = Script(script)
    tx_input.satoshis = 0
    tx_input.sighash = hash_type
    return str(tx.signature_hash(index)[::-1].hex())


def test_sighash_vectors_forkid_rows() -> None:
    counts = {"bip143": 0, "otda": 0, "otda_separator": 0}
    for raw, script_hex, index, hash_type, expected, _no_forkid in _sighash_rows():
        ht = int(hash_type) & 0xFFFFFFFF  # type: ignore[call-overload]
        if not ht & FORKID:
            continue
        script = bytes.fromhex(str(script_hex))
        if not ht & CHRONICLE:
            kind = "bip143"
        elif OP_CODESEPARATOR in script_opcodes(script):
            kind = "otda_separator"
            assert _bsv_sighash(str(raw), script, int(index), ht) != expected  # type: ignore[call-overload]
            script = without_codeseparators(script)
        else:
            kind = "otda"
        got = _bsv_sighash(str(raw), script, int(index), ht)  # type: ignore[call-overload]
        assert got == expected, (kind, raw, script_hex, index, hash_type)
        counts[kind] += 1
    assert counts == {"bip143": 254, "otda": 175, "otda_separator": 85}


# --------------------------------------------------------------------------------------------
# Vectors: OP_RETURN transactions (b)


def _op_return_index() -> list[dict[str, object]]:
    return json.loads(vector_file("bsv", "op_return_txs", "index.json").read_text())


def test_op_return_fixtures_parse_to_their_txids() -> None:
    entries = _op_return_index()
    assert len(entries) == 3
    for entry in entries:
        raw = vector_file("bsv", "op_return_txs", str(entry["file"])).read_text().strip()
        tx = Transaction.from_hex(raw)
        assert tx.txid() == entry["txid_computed"] == str(entry["file"]).removesuffix(".hex")
        assert tx.serialize().hex() == raw
        assert len(raw) // 2 == entry["bytes"]
        outputs = [(o.satoshis, o.locking_script.hex()) for o in tx.outputs]
        expected = [(o["satoshis"], o["lockingScript"]) for o in entry["outputs"]]  # type: ignore[attr-defined]
        assert outputs == expected
        assert any(s == 0 and script.startswith("006a") for s, script in outputs)


def test_op_return_fixture_c52b_input_validates() -> None:
    txid = "c52bc90402833de7faaf4643093057e2b64d5cde349cdad056f00f1238ef09e3"
    raw = vector_file("bsv", "op_return_txs", f"{txid}.hex").read_text().strip()
    entry = next(e for e in _op_return_index() if e["txid_computed"] == txid)
    prevout = entry["prevout_from_fixture"]
    assert isinstance(prevout, dict) and prevout["input"] == 0
    lock = bytes.fromhex(prevout["lockingScript"])
    satoshis = int(prevout["satoshis"])

    tx = Transaction.from_hex(raw)
    assert tx.txid() == txid
    assert hashlib.sha256(hashlib.sha256(bytes.fromhex(raw)).digest()).digest()[::-1].hex() == txid
    assert spend_valid(tx, 0, lock, satoshis)
    # The FORKID digest commits to the amount and the outputs: change either and it fails.
    assert not spend_valid(tx, 0, lock, satoshis - 1)
    tx.outputs[0].satoshis += 1
    assert not spend_valid(tx, 0, lock, satoshis)
