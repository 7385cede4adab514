"""The node's wallet: mining, waiting for the mempool and for blocks, and paying addresses or
scripts from the node wallet (:class:`NodeWallet`, :func:`fund_address`, :func:`fund_p2pkh`).

Node wallet (checked with ``help``): the BSV node keeps the classic wallet: ``getnewaddress``,
``getbalance``, ``sendtoaddress`` (amount in BSV), ``sendmany``, ``listunspent``,
``fundrawtransaction``, ``signrawtransaction``, ``importaddress`` all exist. Two timing
quirks of this version, handled here: a wallet send is put into the mempool asynchronously
(``getrawtransaction`` right after ``sendtoaddress`` may say -5 "No such mempool or blockchain
transaction"), and the wallet's balance follows new blocks asynchronously ("Insufficient
funds" for a moment after mining). Regtest coinbase outputs mature after 100 blocks; the
block subsidy is 50 BSV and halves every 150 blocks.

The one transaction built here (outputs only, for ``fundrawtransaction``) is serialised by
bsv-sdk's ``Transaction``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from bsv import Script, Transaction, TransactionOutput

from raregen.chain.rpc import NodeRPC, RPCError, btc_to_sats, sats_to_btc

#: Blocks before a coinbase output can be spent.
COINBASE_MATURITY = 100


class FundingError(RuntimeError):
    """The node wallet could not fund an address (no mature coins, or a send failed)."""


def p2pkh_script_hex(pubkey_hash: bytes) -> str:
    """Hex of the P2PKH locking script ``OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY
    OP_CHECKSIG`` for a 20-byte public key hash."""
    if len(pubkey_hash) != 20:
        raise ValueError("pubkey_hash must be 20 bytes")
    return "76a914" + pubkey_hash.hex() + "88ac"


class NodeWallet:
    """The wallet half of :class:`raregen_dev.devnet.RegtestNode`: every method talks to the
    node through :attr:`rpc`, which the process half (:class:`~.process.NodeProcess`) gives."""

    _mining_address: str | None = None

    @property
    def rpc(self) -> NodeRPC:
        """The node's RPC client (given by :class:`~.process.NodeProcess`)."""
        raise NotImplementedError

    def mining_address(self) -> str:
        """A node-wallet address (made once per node object) that receives mined coins."""
        if self._mining_address is None:
            self._mining_address = str(self.rpc.call("getnewaddress"))
        return self._mining_address

    def mine(self, n: int = 1, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks (``generatetoaddress``) to ``address`` or the node wallet.

        Returns:
            the new block hashes, oldest first.

        Raises:
            RPCError / RPCTransportError: from the node.
        """
        if n <= 0:
            return []
        addr = address or self.mining_address()
        read_timeout = max(30.0, 0.2 * n)
        return list(self.rpc.call("generatetoaddress", n, addr, timeout=(3.05, read_timeout)))

    def wait_in_mempool(self, txids: Iterable[str], timeout: float = 10) -> None:
        """Wait until every txid is in the node's mempool (or already mined).

        Raises:
            TimeoutError: after ``timeout`` seconds, naming the missing txids.
        """
        pending = set(txids)
        deadline = time.monotonic() + timeout
        while pending:
            mempool = set(self.rpc.call("getrawmempool"))
            for txid in list(pending):
                if txid in mempool:
                    pending.discard(txid)
                    continue
                with contextlib.suppress(RPCError):
                    info = self.rpc.call("getrawtransaction", txid, 1)
                    if info.get("blockhash"):
                        pending.discard(txid)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not in mempool after {timeout} s: {sorted(pending)}")
            time.sleep(0.02)

    def confirm(self, txids: Iterable[str], max_blocks: int = 5) -> list[str]:
        """Mine blocks until every txid is in a block (the node's journaling block
        assembler picks up new mempool transactions asynchronously, so one block may come
        too early). Returns the hashes of the blocks mined.

        Raises:
            TimeoutError: a txid is still unconfirmed after ``max_blocks`` blocks (e.g. it
                pays less than ``-minminingtxfee``).
        """
        pending = set(txids)
        self.wait_in_mempool(pending)
        mined: list[str] = []
        for _ in range(max_blocks):
            mined += self.mine(1)
            for txid in list(pending):
                info = self.rpc.call("getrawtransaction", txid, 1)
                if info.get("blockhash"):
                    pending.discard(txid)
            if not pending:
                return mined
            time.sleep(0.05)
        raise TimeoutError(f"still unconfirmed after {max_blocks} blocks: {sorted(pending)}")

    def balance_sats(self) -> int:
        """The node wallet's spendable balance in satoshis (``getbalance``)."""
        return btc_to_sats(self.rpc.call("getbalance"))

    def ensure_wallet_funds(self, satoshis: int, timeout: float = 10) -> None:
        """Make sure the node wallet can spend ``satoshis``: mine until enough coinbase
        outputs are mature (101 blocks on a fresh chain), then wait for the wallet to see
        them (it follows blocks asynchronously).

        Raises:
            FundingError: the balance stays short after ``timeout`` seconds (more blocks are
                mined, 10 at a time, while the wallet stays short for 2 s).
        """
        height = int(self.rpc.call("getblockcount"))
        if height <= COINBASE_MATURITY:
            self.mine(COINBASE_MATURITY + 1 - height)
        extra = 0
        deadline = time.monotonic() + timeout
        sync_until = time.monotonic() + 2.0
        while self.balance_sats() < satoshis:
            now = time.monotonic()
            if now > deadline or extra >= COINBASE_MATURITY + 50:
                raise FundingError(f"node wallet has {self.balance_sats()} sat, needs {satoshis}")
            if now > sync_until:
                # Still short after giving the wallet time to catch up: mature more coinbases.
                self.mine(10)
                extra += 10
                sync_until = time.monotonic() + 2.0
            time.sleep(0.02)

    def send_to_address(self, address: str, satoshis: int) -> tuple[str, int]:
        """Pay ``satoshis`` from the node wallet to ``address`` (``sendtoaddress``); the
        wallet pays the fee. Waits until the transaction is in the mempool (the wallet
        submits it asynchronously) so a following :meth:`mine` includes it.

        Args:
            address: a regtest (testnet-form, ``m…``/``n…``) P2PKH address.
            satoshis: amount (> 0).

        Returns:
            ``(txid, vout)`` of the output paying ``address``.

        Raises:
            FundingError: the wallet refused (insufficient funds after waiting...).
            RPCError: a bad address etc.
        """
        if satoshis <= 0:
            raise ValueError("satoshis must be > 0")
        self.ensure_wallet_funds(satoshis + 100_000)
        txid = str(self._wallet_call("sendtoaddress", address, sats_to_btc(satoshis)))
        raw = self.rpc.call("gettransaction", txid)["hex"]
        decoded = self.rpc.call("decoderawtransaction", raw)
        for out in decoded["vout"]:
            if (
                address in (out["scriptPubKey"].get("addresses") or [])
                and btc_to_sats(out["value"]) == satoshis
            ):
                self.wait_in_mempool([txid])
                return txid, int(out["n"])
        raise FundingError(f"transaction {txid} has no output of {satoshis} sat to {address}")

    def send_outputs(self, outputs: Sequence[tuple[str, int]]) -> tuple[str, str]:
        """Pay arbitrary outputs ``[(locking_script_hex, satoshis), ...]`` from the node
        wallet in one transaction (``fundrawtransaction`` adds inputs and change,
        ``signrawtransaction`` signs, ``sendrawtransaction`` broadcasts).

        Returns:
            ``(txid, raw_hex)`` of the transaction (outputs keep their order; the wallet's
            change output may be put anywhere).

        Raises:
            FundingError: the wallet could not fund or sign it.
            RPCError: the node refused the transaction.
        """
        if not outputs:
            raise ValueError("no outputs")
        total = sum(s for _, s in outputs)
        self.ensure_wallet_funds(total + 1_000_000)
        raw = _unfunded_tx_hex(outputs)
        funded = self._wallet_call("fundrawtransaction", raw)
        signed = self.rpc.call("signrawtransaction", funded["hex"])
        if not signed.get("complete"):
            raise FundingError(f"node wallet could not sign: {signed.get('errors')}")
        txid = str(self.rpc.call("sendrawtransaction", signed["hex"]))
        self._wait_wallet_knows(txid)
        return txid, str(signed["hex"])

    def _wallet_call(self, method: str, *params: Any) -> Any:
        # The wallet follows blocks and its own sends asynchronously: retry "Insufficient
        # funds" (-6) for a moment.
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.rpc.call(method, *params)
            except RPCError as exc:
                if exc.code == -6 and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if exc.code == -6:
                    raise FundingError(f"node wallet: {exc.message}") from exc
                raise

    def _wait_wallet_knows(self, txid: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rpc.call("gettransaction", txid)
                return
            except RPCError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node wallet did not see {txid}") from None
                time.sleep(0.02)


def _unfunded_tx_hex(outputs: Sequence[tuple[str, int]]) -> str:
    """Version 1, no inputs, the given outputs, locktime 0 (for ``fundrawtransaction``)."""
    tx = Transaction(
        tx_outputs=[
            TransactionOutput(Script(script_hex), int(sats)) for script_hex, sats in outputs
        ],
        version=1,
        locktime=0,
    )
    return str(tx.hex())


def fund_address(
    node: NodeWallet, address: str, satoshis: int, *, confirmations: int = 1
) -> tuple[str, int]:
    """Give ``address`` one output of ``satoshis`` from the node wallet, mined.

    Mines 101 blocks first on a fresh chain (coinbase maturity), sends with
    ``sendtoaddress``, then mines until the payment has ``confirmations`` confirmations
    (0: leave it in the mempool).

    Returns:
        ``(txid, vout)`` of the payment.

    Raises:
        FundingError, RPCError, TimeoutError: see :meth:`RegtestNode.send_to_address` and
        :meth:`RegtestNode.confirm`.
    """
    txid, vout = node.send_to_address(address, satoshis)
    if confirmations > 0:
        node.confirm([txid])
        if confirmations > 1:
            node.mine(confirmations - 1)
    return txid, vout


def fund_p2pkh(
    node: NodeWallet,
    address: str,
    satoshis: int,
    count: int = 1,
    *,
    confirmations: int = 1,
) -> list[tuple[str, int, int, str]]:
    """Create ``count`` P2PKH outputs of ``satoshis`` each to ``address`` in one node-wallet
    transaction, and mine it (``confirmations`` blocks; 0 leaves it in the mempool).

    Args:
        node: a started :class:`RegtestNode`.
        address: regtest P2PKH address (testnet form, e.g. from
            ``bsv.PrivateKey(network=Network.TESTNET).address()``).
        satoshis: value of each output (>= 1).
        count: number of outputs (1..2000).

    Returns:
        ``[(txid, vout, satoshis, locking_script_hex), ...]`` in output order: everything a
        signer needs to spend them.

    Raises:
        FundingError, RPCError, TimeoutError.
    """
    if satoshis < 1:
        raise ValueError("satoshis must be >= 1")
    if not 1 <= count <= 2000:
        raise ValueError("count must be between 1 and 2000")
    info = node.rpc.call("validateaddress", address)
    if not info.get("isvalid"):
        raise ValueError(f"not a valid regtest address: {address}")
    script_hex = str(info["scriptPubKey"])
    txid, raw = node.send_outputs([(script_hex, satoshis)] * count)
    decoded = node.rpc.call("decoderawtransaction", raw)
    found = [
        (txid, int(o["n"]), satoshis, script_hex)
        for o in decoded["vout"]
        if o["scriptPubKey"]["hex"] == script_hex and btc_to_sats(o["value"]) == satoshis
    ]
    if len(found) < count:
        raise FundingError(f"funding tx {txid} has {len(found)} of {count} outputs")
    if confirmations > 0:
        node.confirm([txid])
        if confirmations > 1:
            node.mine(confirmations - 1)
    return found[:count]
