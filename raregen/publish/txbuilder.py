"""Build and sign the server's BSV transactions (docs/PROTOCOL.md §3, §4).

A pure module: no Flask, no database, no network. Transaction objects, serialization, the
BIP143/FORKID signature hash and ECDSA signing all come from bsv-sdk (package ``bsv``);
this module only decides the outputs, sizes and fees, and keeps bsv-sdk away from the
parts of it that could reach the network (its default ``LivePolicy`` fee model, which a
bare ``Transaction.fee()`` fetches, and its chain trackers, which ``Transaction.verify()``
uses): fees are computed here from sizes and a configured rate, never by the library.

Units used throughout:

* amounts are integer **satoshis**;
* sizes are **bytes** of the serialized transaction;
* fee rates are integer **satoshis per kilobyte** (1 kB = 1000 bytes), as in ARC's
  ``/v1/policy`` ``miningFee`` and the SV Node's ``-minminingtxfee`` (docs/PROTOCOL.md §4).

Shapes:

* a *record script* is the complete locking script of one record output, ``OP_FALSE
  OP_RETURN <pushes...>`` (bytes starting ``00 6a``), built elsewhere from the layout of
  docs/PROTOCOL.md §3; it is published with 0 satoshis;
* the server wallet pays with P2PKH UTXOs locked to its own compressed public key, and takes
  change back to the same script, so the pool lives on (docs/PROTOCOL.md §4).

Fee rule: ``fee = ceil(size * rate / 1000)`` where ``size`` is an upper bound of the signed
transaction's size: every P2PKH input is counted with the largest unlocking script a
signature can make (``MAX_P2PKH_UNLOCKING_SCRIPT_SIZE``), so the real size is never larger
than the estimate and the fee is never below the rate (checked after signing).

Errors raised:

* :class:`raregen.errors.InsufficientFunds` when the inputs cannot pay the outputs and fee;
* ``ValueError`` for malformed arguments (bad hex, negative amounts, a UTXO that is not the
  wallet's, a record script that is not ``OP_FALSE OP_RETURN``, a bad WIF), ``TypeError`` for
  an amount, count or rate that is not an ``int``;
* :class:`TxInvariantError` if a signed transaction breaks the size or fee bound (a bug; it
  is raised instead of returning a transaction a broadcaster would reject).

Speed: with bsv-sdk's native extension (``_bsv_native``, libsecp256k1, shipped in the
manylinux wheel) one ``build_publish_tx`` takes about 80-125 µs on a development VM, of
which the ECDSA signature is about 40 µs (``bench/bench_txbuilder.py``). Without it bsv-sdk
falls back to pure-Python elliptic-curve arithmetic, about 30 ms a signature, far too slow
for batch mode; :func:`native_crypto_available` tells which backend is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bsv.base58 import base58check_decode  # type: ignore[import-untyped]
from bsv.constants import SIGHASH  # type: ignore[import-untyped]
from bsv.constants import Network as _BsvNetwork
from bsv.curve import curve as _secp256k1  # type: ignore[import-untyped]
from bsv.hash import hash256  # type: ignore[import-untyped]
from bsv.keys import PrivateKey  # type: ignore[import-untyped]
from bsv.native import NATIVE_AVAILABLE as _NATIVE_AVAILABLE  # type: ignore[import-untyped]
from bsv.script.script import Script  # type: ignore[import-untyped]
from bsv.script.type import P2PKH  # type: ignore[import-untyped]
from bsv.script.unlocking_template import (  # type: ignore[import-untyped]
    UnlockingScriptTemplate,
)
from bsv.transaction import Transaction  # type: ignore[import-untyped]
from bsv.transaction_input import TransactionInput  # type: ignore[import-untyped]
from bsv.transaction_output import TransactionOutput  # type: ignore[import-untyped]
from bsv.utils import encode_pushdata  # type: ignore[import-untyped]

from raregen.errors import InsufficientFunds

__all__ = [
    "DUST_LIMIT",
    "MAX_P2PKH_UNLOCKING_SCRIPT_SIZE",
    "P2PKH_INPUT_MAX_SIZE",
    "P2PKH_SCRIPT_SIZE",
    "BuiltTx",
    "NetworkName",
    "ServerWallet",
    "SpendableUtxo",
    "TxInvariantError",
    "build_packed_tx",
    "build_publish_tx",
    "build_split_tx",
    "estimate_size",
    "fee_for_size",
    "native_crypto_available",
    "required_satoshis",
    "varint_size",
]

NetworkName = Literal["mainnet", "testnet", "regtest"]
"""Which address and WIF prefixes to use. Regtest shares testnet's prefixes."""

DUST_LIMIT = 1
"""Smallest spendable output value on BSV, satoshis. A change below it is left as fee."""

P2PKH_SCRIPT_SIZE = 25
"""``OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG``, bytes."""

MAX_P2PKH_UNLOCKING_SCRIPT_SIZE = 1 + 72 + 1 + 1 + 33
"""Largest P2PKH unlocking script for a compressed key, bytes (108).

``<push 1> <DER signature, at most 72> <sighash byte 1>`` then ``<push 1> <pubkey 33>``.
A DER signature is 72 bytes at most (r and s each 33 with a sign pad); a low-S signature,
which is what libsecp256k1 makes, is at most 71, so a real script is 105..107 bytes. Using
108 rather than bsv-sdk's estimate of 107 keeps the bound safe even against a high-S
signature (docs/PROTOCOL.md §4, Fees: the estimate must never fall short).
"""

P2PKH_INPUT_MAX_SIZE = 32 + 4 + 1 + MAX_P2PKH_UNLOCKING_SCRIPT_SIZE + 4
"""Largest serialized P2PKH input, bytes (149): outpoint, script varint, script, sequence."""

# Fixed here, not taken from bsv-sdk's defaults, which read BSV_PY_SDK_* environment variables.
_TX_VERSION = 1
_TX_LOCKTIME = 0
_INPUT_SEQUENCE = 0xFFFFFFFF
_SIGHASH_ALL_FORKID = SIGHASH.ALL_FORKID  # 0x41
_MAX_SATOSHIS = 21_000_000 * 100_000_000

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_WIF_PREFIX_MAINNET = 0x80
_WIF_PREFIX_TESTNET = 0xEF
_NETWORKS: dict[str, _BsvNetwork] = {
    "mainnet": _BsvNetwork.MAINNET,
    "testnet": _BsvNetwork.TESTNET,
    "regtest": _BsvNetwork.TESTNET,
}


class TxInvariantError(RuntimeError):
    """A signed transaction broke the size or fee bound this module guarantees (a bug)."""


def native_crypto_available() -> bool:
    """Whether bsv-sdk loaded its libsecp256k1 extension (fast signing); see the module doc."""
    return bool(_NATIVE_AVAILABLE)


# --------------------------------------------------------------------------------------------
# Values


def _check_satoshis(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int of satoshis, got {type(value).__name__}")
    if not 0 <= value <= _MAX_SATOSHIS:
        raise ValueError(f"{what} out of range: {value}")
    return value


def _check_rate(rate_sat_per_kb: object) -> int:
    if not isinstance(rate_sat_per_kb, int) or isinstance(rate_sat_per_kb, bool):
        raise TypeError("rate_sat_per_kb must be an int (satoshis per 1000 bytes)")
    if rate_sat_per_kb < 0:
        raise ValueError(f"rate_sat_per_kb must be >= 0, got {rate_sat_per_kb}")
    return rate_sat_per_kb


@dataclass(frozen=True, slots=True)
class SpendableUtxo:
    """One unspent output the server wallet can sign for (a row of table ``utxos``).

    Attributes:
        txid: the funding transaction's id, 64 hex characters, display (big-endian) order.
        vout: the output's index in that transaction, 0..2**32-1.
        satoshis: the output's value, satoshis (it enters the FORKID signature hash).
        script_pub_key: the output's locking script, hex; for the pool the wallet's P2PKH.

    Raises:
        ValueError: on construction, if a field is malformed or out of range.
        TypeError: on construction, if ``vout`` or ``satoshis`` is not an int.
    """

    txid: str
    vout: int
    satoshis: int
    script_pub_key: str

    def __post_init__(self) -> None:
        if not isinstance(self.txid, str) or not _HEX64.fullmatch(self.txid):
            raise ValueError("txid must be 64 hex characters")
        if not isinstance(self.vout, int) or isinstance(self.vout, bool):
            raise TypeError("vout must be an int")
        if not 0 <= self.vout <= 0xFFFFFFFF:
            raise ValueError(f"vout out of range: {self.vout}")
        _check_satoshis(self.satoshis, "satoshis")
        try:
            bytes.fromhex(self.script_pub_key)
        except (TypeError, ValueError):
            raise ValueError("script_pub_key must be hex") from None

    @property
    def outpoint(self) -> tuple[str, int]:
        """``(txid, vout)``, the identity of this UTXO."""
        return (self.txid.lower(), self.vout)


@dataclass(frozen=True, slots=True)
class BuiltTx:
    """A signed transaction ready to broadcast, with what the pool and jobs need to record.

    Attributes:
        txid: transaction id, 64 hex characters, display order.
        raw_hex: the serialized transaction, lower-case hex.
        size: serialized size, bytes (``len(raw_hex) // 2``).
        fee: satoshis paid to miners, ``sum(inputs) - sum(outputs)``; at least
            ``fee_for_size(size, rate)``.
        change_satoshis: value of the change output, satoshis, or None if there is none.
        change_vout: index of the change output (always the last output), or None.
        record_vouts: indexes of the record (OP_RETURN) outputs, in the order given;
            empty for a split transaction.
        inputs: the spent outpoints ``(txid, vout)``, in input order.
    """

    txid: str
    raw_hex: str
    size: int
    fee: int
    change_satoshis: int | None
    change_vout: int | None
    record_vouts: list[int]
    inputs: list[tuple[str, int]]


# --------------------------------------------------------------------------------------------
# Wallet


class _P2PKHSigner(UnlockingScriptTemplate):  # type: ignore[misc]
    """bsv-sdk unlocking template for the wallet's P2PKH inputs.

    Same script as ``bsv.script.type.P2PKH().unlock(key)``, but the public key push is made
    once per wallet rather than re-derived from the secret at every signature (with the stock
    template that derivation took about 40% of a one-input build: 140 µs against 80 µs). The signature hash is
    bsv-sdk's ``Transaction.preimage`` (BIP143 with FORKID, computed once for all inputs by
    ``Transaction.sign``) and the ECDSA is bsv-sdk's ``PrivateKey.sign`` (hash256 of the
    preimage, RFC 6979 nonce, low-S, strict DER).
    """

    __slots__ = ("_key", "_pubkey_push")

    def __init__(self, key: PrivateKey, pubkey: bytes) -> None:
        self._key = key
        self._pubkey_push = encode_pushdata(pubkey)

    def sign(self, tx: Transaction, input_index: int) -> Script:
        sighash = int(tx.inputs[input_index].sighash)
        der = self._key.sign(tx.preimage(input_index))
        return Script(encode_pushdata(der + bytes((sighash,))) + self._pubkey_push)

    def estimated_unlocking_byte_length(self) -> int:
        return MAX_P2PKH_UNLOCKING_SCRIPT_SIZE

    def __repr__(self) -> str:
        return "<_P2PKHSigner>"


class ServerWallet:
    """The server's signing key (docs/PROTOCOL.md §4) and its P2PKH script and address.

    Make one with :meth:`from_wif` or :meth:`generate`. The key is compressed (the size
    bounds of this module assume a 33-byte public key). The secret never shows in ``repr``,
    ``str``, error messages, or pickles (pickling raises ``TypeError``, so a wallet cannot be
    put into an RQ job by mistake); only :meth:`to_wif` reveals it, for the dev key file.

    Attributes (read-only):
        network: ``"mainnet"``, ``"testnet"`` or ``"regtest"``; chooses the address and WIF
            prefixes only (signing is the same on every network).
        public_key: compressed SEC1 public key, 33 bytes.
        public_key_hex: the same, 66 hex characters.
        pubkey_hash: HASH160 of the public key, 20 bytes.
        address: Base58Check P2PKH address (prefix 0x00 on mainnet, 0x6f on testnet/regtest).
        locking_script: the P2PKH locking script, 25 bytes.
        locking_script_hex: the same, 50 hex characters (as in ``utxos.script_pub_key``).
    """

    __slots__ = (
        "_address",
        "_key",
        "_lock_obj",
        "_locking_script",
        "_locking_script_hex",
        "_network",
        "_pubkey_hash",
        "_public_key",
        "_signer",
    )

    def __init__(self, key: PrivateKey, network: str) -> None:
        """Internal: use :meth:`from_wif` or :meth:`generate`."""
        self._key = key
        self._network: NetworkName = _network_name(network)
        self._public_key: bytes = key.public_key().serialize(compressed=True)
        self._pubkey_hash: bytes = key.public_key().hash160(compressed=True)
        self._lock_obj: Script = P2PKH().lock(self._pubkey_hash)
        self._locking_script: bytes = self._lock_obj.serialize()
        self._locking_script_hex: str = self._locking_script.hex()
        self._address: str = key.public_key().address(
            compressed=True, network=_NETWORKS[self._network]
        )
        self._signer = _P2PKHSigner(key, self._public_key)

    @classmethod
    def from_wif(cls, wif: str, network: str | None = None) -> ServerWallet:
        """Load the server key from a WIF string (compressed key only).

        Args:
            wif: Base58Check WIF, prefix 0x80 (mainnet) or 0xef (testnet/regtest), with the
                0x01 compression flag.
            network: the network the service runs on; None infers it from the WIF prefix
                (0xef gives ``"testnet"``; pass ``"regtest"`` explicitly for regtest).

        Raises:
            ValueError: the WIF is malformed, uncompressed, out of the curve's range, or its
                prefix does not belong to ``network``. The message never contains the WIF.
        """
        problem = _wif_problem(wif)
        if problem is not None:
            raise ValueError(f"invalid server key WIF: {problem}")
        decoded = base58check_decode(wif)
        prefix = decoded[0]
        wif_network: NetworkName = "mainnet" if prefix == _WIF_PREFIX_MAINNET else "testnet"
        network = wif_network if network is None else _network_name(network)
        if (network == "mainnet") != (wif_network == "mainnet"):
            raise ValueError(f"server key WIF is a {wif_network} key but the network is {network}")
        key = PrivateKey(decoded[1:33], network=_NETWORKS[network])
        return cls(key, network)

    @classmethod
    def generate(cls, network: str = "mainnet") -> ServerWallet:
        """A new random key (``os.urandom`` through bsv-sdk), for the dev key file.

        Args:
            network: ``"mainnet"``, ``"testnet"`` or ``"regtest"``.

        Raises:
            ValueError: unknown network.
        """
        name = _network_name(network)
        return cls(PrivateKey(network=_NETWORKS[name]), name)

    def to_wif(self) -> str:
        """The key as a compressed WIF for this wallet's network. Secret: never log it."""
        return str(self._key.wif(compressed=True, network=_NETWORKS[self._network]))

    @property
    def network(self) -> NetworkName:
        return self._network

    @property
    def public_key(self) -> bytes:
        return self._public_key

    @property
    def public_key_hex(self) -> str:
        return self._public_key.hex()

    @property
    def pubkey_hash(self) -> bytes:
        return self._pubkey_hash

    @property
    def address(self) -> str:
        return self._address

    @property
    def locking_script(self) -> bytes:
        return self._locking_script

    @property
    def locking_script_hex(self) -> str:
        return self._locking_script_hex

    def __repr__(self) -> str:
        return f"ServerWallet(network={self._network!r}, address={self._address!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerWallet):
            return NotImplemented
        return self._public_key == other._public_key and self._network == other._network

    def __hash__(self) -> int:
        return hash((self._public_key, self._network))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("ServerWallet holds the server key and cannot be pickled or copied")


def _network_name(network: object) -> NetworkName:
    if network == "mainnet":
        return "mainnet"
    if network == "testnet":
        return "testnet"
    if network == "regtest":
        return "regtest"
    raise ValueError(f"unknown network {network!r}; use mainnet, testnet or regtest")


def _wif_problem(wif: object) -> str | None:
    """Why ``wif`` is not a usable compressed WIF, or None. Never echoes the input."""
    if not isinstance(wif, str):
        return "not a string"
    if wif != wif.strip():
        return "surrounding whitespace"
    try:
        decoded = base58check_decode(wif)
    except Exception:  # noqa: BLE001 - any decoding failure means malformed; keep the WIF out
        return "not Base58Check"
    if len(decoded) == 33:
        return "uncompressed keys are not supported"
    if len(decoded) != 34 or decoded[33] != 0x01:
        return "wrong length"
    if decoded[0] not in (_WIF_PREFIX_MAINNET, _WIF_PREFIX_TESTNET):
        return "unknown prefix"
    secret = int.from_bytes(decoded[1:33], "big")
    if not 0 < secret < _secp256k1.n:
        return "secret out of range"
    return None


# --------------------------------------------------------------------------------------------
# Sizes and fees


def varint_size(n: int) -> int:
    """Bytes of Bitcoin's CompactSize encoding of ``n`` (1, 3, 5 or 9)."""
    if n < 0xFD:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def fee_for_size(size_bytes: int, rate_sat_per_kb: int) -> int:
    """Fee for a transaction of ``size_bytes`` bytes at ``rate_sat_per_kb`` sat/kB, satoshis.

    ``ceil(size_bytes * rate_sat_per_kb / 1000)`` in integer arithmetic, the rounding the
    SV Node and ARC apply (a fraction of a satoshi is paid as a whole one). There is no
    separate minimum: any size > 0 at a rate > 0 already costs at least 1 satoshi, and a
    rate of 0 (regtest set-ups) costs 0.

    Raises:
        ValueError: a negative size or rate.
        TypeError: a size or rate that is not an int.
    """
    if not isinstance(size_bytes, int) or isinstance(size_bytes, bool):
        raise TypeError(f"size_bytes must be an int, got {type(size_bytes).__name__}")
    if size_bytes < 0:
        raise ValueError(f"size_bytes must be >= 0, got {size_bytes}")
    rate = _check_rate(rate_sat_per_kb)
    return (size_bytes * rate + 999) // 1000


def estimate_size(
    n_inputs: int,
    output_scripts: Sequence[bytes],
    with_change: bool,
    *,
    change_script_size: int = P2PKH_SCRIPT_SIZE,
) -> int:
    """Upper bound of the signed size of a transaction spending P2PKH inputs, bytes.

    Exact for everything but the signatures: version (4), input count varint, ``n_inputs``
    inputs of :data:`P2PKH_INPUT_MAX_SIZE` (149) bytes each, output count varint, each output
    as value (8) + script length varint + script, and locktime (4). A real signed transaction
    is 1 to 3 bytes shorter per input (DER signatures are 70 to 72 bytes with the hashtype).

    Args:
        n_inputs: number of P2PKH inputs (compressed key), >= 1.
        output_scripts: the locking scripts of the outputs other than change, in order.
        with_change: add one change output after them.
        change_script_size: the change output's script length, bytes (P2PKH: 25).

    Raises:
        ValueError: ``n_inputs`` < 1.
    """
    if n_inputs < 1:
        raise ValueError("a transaction needs at least one input")
    n_outputs = len(output_scripts) + (1 if with_change else 0)
    size = 4 + varint_size(n_inputs) + n_inputs * P2PKH_INPUT_MAX_SIZE
    size += varint_size(n_outputs)
    for script in output_scripts:
        length = len(script)
        size += 8 + varint_size(length) + length
    if with_change:
        size += 8 + varint_size(change_script_size) + change_script_size
    return size + 4


def required_satoshis(output_scripts: Sequence[bytes], rate_sat_per_kb: int) -> int:
    """Smallest UTXO value that pays for one input, these 0-sat outputs and no change, sat.

    ``fee_for_size(estimate_size(1, output_scripts, with_change=False), rate)``: a pool UTXO
    worth exactly this is spent entirely as fee (no change output); one satoshi less raises
    :class:`~raregen.errors.InsufficientFunds` in :func:`build_publish_tx`. The pool's
    reservation uses it as the lower bound of the UTXO to take (docs/PROTOCOL.md §4).

    Raises:
        ValueError: negative rate.
        TypeError: a rate that is not an int.
    """
    return fee_for_size(estimate_size(1, output_scripts, with_change=False), rate_sat_per_kb)


# --------------------------------------------------------------------------------------------
# Building


def build_publish_tx(
    wallet: ServerWallet,
    utxo: SpendableUtxo,
    record_scripts: Sequence[bytes],
    rate_sat_per_kb: int,
    change_script_hex: str | None = None,
) -> BuiltTx:
    """Spend one pool UTXO into record outputs (0 sat each) and change (docs/PROTOCOL.md §3, §4).

    Outputs: ``record_scripts[i]`` at vout ``i`` with 0 satoshis, then, if it is at least
    :data:`DUST_LIMIT` (1 sat), a change output of ``utxo.satoshis - fee_with_change`` to
    ``change_script_hex`` (default: the wallet's own P2PKH, back into the pool). If the change
    would be below 1 satoshi there is no change output and the whole UTXO is the fee, which
    must still reach the fee of the smaller transaction without change. The input is signed
    with SIGHASH_ALL|FORKID (0x41). Many records (a packed batch, 1000+) are fine.

    Args:
        wallet: the server wallet; ``utxo`` must be locked to its P2PKH script.
        utxo: the pool UTXO to spend.
        record_scripts: complete ``OP_FALSE OP_RETURN ...`` locking scripts, at least one.
        rate_sat_per_kb: fee rate, satoshis per 1000 bytes, >= 0.
        change_script_hex: locking script for the change, hex; None for the wallet's.

    Returns:
        The signed :class:`BuiltTx`, with ``record_vouts == [0, 1, ..., n-1]``.

    Raises:
        InsufficientFunds: ``utxo.satoshis < required_satoshis(record_scripts, rate)``.
        ValueError: no records, a record script not starting ``00 6a``, a UTXO not locked to
            the wallet, bad change script hex, or a negative rate.
        TypeError: a rate that is not an int.
        TxInvariantError: the signed transaction broke the size or fee bound (a bug).
    """
    if not record_scripts:
        raise ValueError("a publish transaction needs at least one record script")
    outputs: list[tuple[bytes, int]] = []
    for i, script in enumerate(record_scripts):
        if not isinstance(script, (bytes, bytearray)) or script[:2] != b"\x00\x6a":
            raise ValueError(f"record script {i} must be bytes starting OP_FALSE OP_RETURN")
        outputs.append((bytes(script), 0))
    if change_script_hex is None:
        change_script = wallet.locking_script
    else:
        try:
            change_script = bytes.fromhex(change_script_hex)
        except (TypeError, ValueError):
            raise ValueError("change_script_hex must be hex") from None
        if not change_script:
            raise ValueError("change_script_hex must not be empty")
    built = _build(wallet, [utxo], outputs, change_script, rate_sat_per_kb)
    return BuiltTx(
        txid=built.txid,
        raw_hex=built.raw_hex,
        size=built.size,
        fee=built.fee,
        change_satoshis=built.change_satoshis,
        change_vout=built.change_vout,
        record_vouts=list(range(len(outputs))),
        inputs=built.inputs,
    )


def build_packed_tx(
    wallet: ServerWallet,
    utxo: SpendableUtxo,
    record_scripts: Sequence[bytes],
    rate_sat_per_kb: int,
    change_script_hex: str | None = None,
) -> BuiltTx:
    """Packed batch mode (docs/PROTOCOL.md §6): many records in one transaction.

    The same as :func:`build_publish_tx` (which accepts any number of records); record ``i``
    is at vout ``i``. Same arguments, result and errors.
    """
    return build_publish_tx(wallet, utxo, record_scripts, rate_sat_per_kb, change_script_hex)


def build_split_tx(
    wallet: ServerWallet,
    utxos: Sequence[SpendableUtxo],
    count: int,
    satoshis_each: int,
    rate_sat_per_kb: int,
) -> BuiltTx:
    """Split/merge wallet UTXOs into ``count`` pool UTXOs of ``satoshis_each``, docs/PROTOCOL.md §4.

    Inputs: ``utxos`` in the given order, all locked to the wallet. Outputs: vouts
    ``0..count-1`` pay ``satoshis_each`` to the wallet's P2PKH (the new pool UTXOs), then a
    change output to the wallet at vout ``count`` if the rest after the fee is at least
    1 satoshi. Thousands of outputs fit in one transaction (BSV has no small size limit;
    3000 outputs are about 100 kB).

    Args:
        wallet: the server wallet.
        utxos: the UTXOs to spend, at least one, no outpoint twice.
        count: number of pool outputs, >= 1.
        satoshis_each: value of each, satoshis, >= 1 (BSV dust).
        rate_sat_per_kb: fee rate, satoshis per 1000 bytes, >= 0.

    Returns:
        The signed :class:`BuiltTx`; its ``record_vouts`` is empty.

    Raises:
        InsufficientFunds: the inputs do not cover ``count * satoshis_each`` plus the fee.
        ValueError: no UTXOs, a duplicate outpoint, a UTXO not locked to the wallet, or a
            count, amount or rate out of range.
        TypeError: a count, amount or rate that is not an int.
        TxInvariantError: the signed transaction broke the size or fee bound (a bug).
    """
    if not utxos:
        raise ValueError("a split transaction needs at least one UTXO")
    if not isinstance(count, int) or isinstance(count, bool):
        raise TypeError(f"count must be an int, got {type(count).__name__}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    _check_satoshis(satoshis_each, "satoshis_each")
    if satoshis_each < DUST_LIMIT:
        raise ValueError(f"satoshis_each must be >= {DUST_LIMIT} (dust)")
    if len({u.outpoint for u in utxos}) != len(utxos):
        raise ValueError("the same UTXO is given twice")
    outputs = [(wallet.locking_script, satoshis_each)] * count
    return _build(wallet, list(utxos), outputs, wallet.locking_script, rate_sat_per_kb)


def _build(
    wallet: ServerWallet,
    utxos: list[SpendableUtxo],
    outputs: list[tuple[bytes, int]],
    change_script: bytes,
    rate_sat_per_kb: int,
) -> BuiltTx:
    """Choose change and fee, then build, sign and check the transaction (bsv-sdk)."""
    rate = _check_rate(rate_sat_per_kb)
    wallet_script_hex = wallet.locking_script_hex
    for u in utxos:
        if u.script_pub_key.lower() != wallet_script_hex:
            raise ValueError(
                f"UTXO {u.txid}:{u.vout} is not locked to the server wallet's P2PKH script"
            )
    total_in = sum(u.satoshis for u in utxos)
    total_out = sum(value for _, value in outputs)
    scripts = [script for script, _ in outputs]
    n_in = len(utxos)

    fee_with_change = fee_for_size(
        estimate_size(n_in, scripts, True, change_script_size=len(change_script)), rate
    )
    change = total_in - total_out - fee_with_change
    if change >= DUST_LIMIT:
        fee = fee_with_change
        change_value: int | None = change
    else:
        fee_no_change = fee_for_size(estimate_size(n_in, scripts, False), rate)
        available = total_in - total_out
        if available < fee_no_change:
            raise InsufficientFunds(
                f"inputs hold {total_in} sat; outputs need {total_out} sat plus a fee of "
                f"{fee_no_change} sat at {rate} sat/kB"
            )
        # Less than one satoshi of change: no change output, the remainder goes to the miner.
        fee = available
        change_value = None

    signer = wallet._signer
    lock_obj = wallet._lock_obj
    tx_inputs = []
    for u in utxos:
        tx_input = TransactionInput(
            source_txid=u.txid,
            source_output_index=u.vout,
            unlocking_script_template=signer,
            sequence=_INPUT_SEQUENCE,
            sighash=_SIGHASH_ALL_FORKID,
        )
        # What the FORKID sighash commits to; set directly so no parent transaction is needed.
        tx_input.satoshis = u.satoshis
        tx_input.locking_script = lock_obj
        tx_inputs.append(tx_input)

    # Outputs sharing one script share one Script object (split: thousands of them).
    script_objs: dict[bytes, Script] = {}
    tx_outputs = []
    for script, value in outputs:
        obj = script_objs.get(script)
        if obj is None:
            obj = script_objs[script] = Script(script)
        tx_outputs.append(TransactionOutput(obj, value))
    change_vout: int | None = None
    if change_value is not None:
        change_vout = len(tx_outputs)
        tx_outputs.append(TransactionOutput(Script(change_script), change_value))

    tx = Transaction(tx_inputs, tx_outputs, version=_TX_VERSION, locktime=_TX_LOCKTIME)
    tx.sign()
    raw = tx.serialize()

    size = len(raw)
    estimate = estimate_size(
        n_in, scripts, change_value is not None, change_script_size=len(change_script)
    )
    if size > estimate:
        raise TxInvariantError(f"signed size {size} B exceeds the estimate {estimate} B")
    if fee < fee_for_size(size, rate) or total_in - total_out - (change_value or 0) != fee:
        raise TxInvariantError(f"fee {fee} sat does not pay {rate} sat/kB for {size} B")

    return BuiltTx(
        txid=hash256(raw)[::-1].hex(),
        raw_hex=raw.hex(),
        size=size,
        fee=fee,
        change_satoshis=change_value,
        change_vout=change_vout,
        record_vouts=[],
        inputs=[u.outpoint for u in utxos],
    )
