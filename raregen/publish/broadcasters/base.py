"""The broadcasting interface (docs/PROTOCOL.md §5): one protocol, one outcome classification,
a registry of backends, and failover across them.

Outcomes (:class:`Outcome`) and what the publisher does with each:

=================  ============================================================  ==========
outcome            meaning                                                       UTXO
=================  ============================================================  ==========
ACCEPTED           the backend took the transaction (mempool)                    spent
ALREADY_KNOWN      the backend already has it (mempool or block): success        spent
CONFLICT           an input is spent by another transaction in the mempool       dirty
MISSING_INPUTS     an input is unknown or spent in a block (and the tx itself    dirty
                   is not known: see ``SVNodeBroadcaster.broadcast``)
REJECTED           permanent for this transaction: fee too low, policy, dust,    released
                   script/signature failure, malformed
TOO_LONG_CHAIN     too many unconfirmed ancestors: wait for a block, then send   kept,
                   the same transaction again                                    not dirty
ORPHAN             the backend holds it as an orphan (parent unknown): not       kept
                   success; check again later
TRANSIENT          network error, timeout, 5xx, backend busy: retry with         kept
                   backoff (the failover tries the next backend)
=================  ============================================================  ==========

``BroadcastResult.ok`` is True for ACCEPTED and ALREADY_KNOWN only.

Status queries (``tx_status``, ``output_status``) raise :class:`BroadcasterUnavailable`
when the backend cannot be asked (never answer "unknown" for "could not ask").

Registry: backends register a class under a name (:func:`register_broadcaster`);
:func:`build_broadcaster` makes one from keyword settings (the class's ``from_settings``
classmethod if it has one, else its constructor); :func:`build_chain` builds the configured
failover order from an app-config-like mapping. ARC and WhatsOnChain backends register
themselves the same way ("arc", "woc").

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "REGISTRY",
    "BroadcastResult",
    "Broadcaster",
    "BroadcasterUnavailable",
    "CachedValue",
    "FailoverBroadcaster",
    "Outcome",
    "OutputState",
    "TxState",
    "TxStatus",
    "build_broadcaster",
    "build_chain",
    "recheck_missing_inputs",
    "register_broadcaster",
    "settings_from_config",
    "transient_results",
    "txid_of",
]

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    """How a backend answered one transaction (see the module table)."""

    ACCEPTED = "accepted"
    ALREADY_KNOWN = "already_known"
    CONFLICT = "conflict"
    MISSING_INPUTS = "missing_inputs"
    REJECTED = "rejected"
    TOO_LONG_CHAIN = "too_long_chain"
    ORPHAN = "orphan"
    TRANSIENT = "transient"

    @property
    def ok(self) -> bool:
        """ACCEPTED or ALREADY_KNOWN: the transaction is on its way."""
        return self in (Outcome.ACCEPTED, Outcome.ALREADY_KNOWN)

    @property
    def dirties_input(self) -> bool:
        """CONFLICT or MISSING_INPUTS: mark the UTXO dirty, retry with another."""
        return self in (Outcome.CONFLICT, Outcome.MISSING_INPUTS)

    @property
    def retry_later(self) -> bool:
        """TRANSIENT, TOO_LONG_CHAIN or ORPHAN: send the same transaction again later."""
        return self in (Outcome.TRANSIENT, Outcome.TOO_LONG_CHAIN, Outcome.ORPHAN)


@dataclass(frozen=True)
class BroadcastResult:
    """The answer for one transaction.

    Attributes:
        txid: the transaction id (hex, display order); "" if the raw hex was not hex.
        outcome: the classification.
        detail: the backend's own text (for the node: its exact reject message, e.g.
            ``"258: txn-mempool-conflict"``); "" on plain acceptance.
        backend: name of the backend that answered (e.g. ``"node"``).
    """

    txid: str
    outcome: Outcome
    detail: str
    backend: str

    @property
    def ok(self) -> bool:
        """True for ACCEPTED and ALREADY_KNOWN."""
        return self.outcome.ok


TxState = Literal["unknown", "mempool", "confirmed"]
OutputState = Literal["unspent", "spent", "unknown"]


@dataclass(frozen=True)
class TxStatus:
    """Where a transaction is.

    Attributes:
        txid: the transaction id.
        state: ``"unknown"`` (the backend does not know it), ``"mempool"`` or ``"confirmed"``.
        block_hash: hex hash of the containing block when confirmed, else None.
        block_height: height of that block when confirmed, else None.
        confirmations: 0 unless confirmed (1 = in the tip block).
        merkle_path: the backend's BRC-74 merkle path (BUMP hex) of the transaction in that
            block, when its status answer carries one (ARC's ``merklePath``), else None.
    """

    txid: str
    state: TxState
    block_hash: str | None = None
    block_height: int | None = None
    confirmations: int = 0
    merkle_path: str | None = None


class BroadcasterUnavailable(Exception):
    """A status or policy query could not be answered (backend unreachable, timeout, 5xx).

    Attributes:
        backend: name of the backend.
    """

    def __init__(self, backend: str, message: str):
        super().__init__(f"{backend}: {message}")
        self.backend = backend


@runtime_checkable
class Broadcaster(Protocol):
    """What every backend provides. ``broadcast``/``broadcast_many`` never raise for backend
    trouble: they return TRANSIENT results."""

    name: str

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        """Send one raw transaction (hex) and classify the answer."""
        ...

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        """Send several raw transactions (parents before children); one result per input,
        in the same order."""
        ...

    def tx_status(self, txid: str) -> TxStatus:
        """Where ``txid`` is. Raises :class:`BroadcasterUnavailable`."""
        ...

    def output_status(self, txid: str, vout: int) -> OutputState:
        """``"unspent"`` (in the UTXO set, mempool spends counted), ``"spent"``, or
        ``"unknown"`` (no such output known). Raises :class:`BroadcasterUnavailable`."""
        ...

    def fee_rate_sat_per_kb(self) -> int | None:
        """The backend's minimum fee rate in satoshis per 1000 bytes, or None if unknown."""
        ...


def txid_of(raw_hex: str) -> str:
    """The txid of a raw transaction: SHA-256d of its bytes, byte-reversed, hex.

    Returns "" when ``raw_hex`` is not hex (such a transaction can only be REJECTED).
    """
    try:
        raw = bytes.fromhex(raw_hex)
    except (ValueError, TypeError):
        return ""
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


# ---------------------------------------------------------------------------------------
# Helpers every backend uses
# ---------------------------------------------------------------------------------------


def transient_results(txids: Sequence[str], detail: str, backend: str) -> list[BroadcastResult]:
    """One TRANSIENT result per txid, all with ``detail`` (a whole call that failed)."""
    return [BroadcastResult(t, Outcome.TRANSIENT, detail, backend) for t in txids]


def recheck_missing_inputs(
    results: Sequence[BroadcastResult],
    knows: Callable[[list[str]], Mapping[str, bool]],
    *,
    errors: tuple[type[Exception], ...] = (BroadcasterUnavailable,),
    known_note: str = "(the transaction itself is known)",
) -> list[BroadcastResult]:
    """Settle the MISSING_INPUTS results by looking their txids up (docs/PROTOCOL.md §5: "Missing
    inputs" can also mean the input was spent by our own transaction, already mined).

    Args:
        results: results of one backend; only MISSING_INPUTS ones with a txid are looked up.
        knows: ``knows(txids) -> {txid: does the backend know it (mempool or block)}``,
            called at most once, with the sorted distinct txids to look up.
        errors: what ``knows`` raises when it cannot ask (the backend's transport errors).
        known_note: appended to the detail of a result that becomes ALREADY_KNOWN.

    Returns:
        The results in the same order: a looked-up txid that is known becomes
        ALREADY_KNOWN (``"<detail> <known_note>"``); when the lookup raised one of
        ``errors``, every looked-up result becomes TRANSIENT (``"<detail>; could not look
        the txid up: <error>"``); everything else is unchanged.
    """
    out = list(results)
    missing = sorted({r.txid for r in out if r.outcome is Outcome.MISSING_INPUTS and r.txid})
    if not missing:
        return out
    try:
        known: Mapping[str, bool] | None = knows(missing)
        why = ""
    except errors as exc:
        known, why = None, str(exc)
    for i, r in enumerate(out):
        if r.outcome is not Outcome.MISSING_INPUTS or not r.txid:
            continue
        if known is None:
            out[i] = BroadcastResult(
                r.txid,
                Outcome.TRANSIENT,
                f"{r.detail}; could not look the txid up: {why}",
                r.backend,
            )
        elif known.get(r.txid):
            out[i] = BroadcastResult(
                r.txid, Outcome.ALREADY_KNOWN, f"{r.detail} {known_note}", r.backend
            )
    return out


class CachedValue:
    """One remembered answer (a backend's fee policy) and when it was stored. Times are
    ``time.monotonic`` seconds passed in by the caller, so the age counts from when the
    question was asked."""

    def __init__(self) -> None:
        self._entry: tuple[float, Any] | None = None

    def fresh(self, now: float, max_age: float) -> bool:
        """True when a value was stored less than ``max_age`` seconds before ``now``."""
        return self._entry is not None and now - self._entry[0] < max_age

    @property
    def value(self) -> Any:
        """The stored value (None if nothing was stored)."""
        return self._entry[1] if self._entry is not None else None

    def store(self, now: float, value: Any) -> None:
        """Keep ``value``, stored at ``now``."""
        self._entry = (now, value)


def statuses_of(backend: Any, txids: Sequence[str]) -> list[TxStatus]:
    """Where each of ``txids`` is: the backend's ``tx_statuses`` (many txids in one call,
    e.g. one JSON-RPC batch to the SV Node) when it has one, else :meth:`Broadcaster.tx_status`
    one by one.

    Returns:
        One :class:`TxStatus` per txid, same order.

    Raises:
        BroadcasterUnavailable: the backend cannot be asked now.
    """
    many = getattr(backend, "tx_statuses", None)
    if callable(many):
        return list(many(list(txids)))
    return [backend.tx_status(txid) for txid in txids]


# ---------------------------------------------------------------------------------------
# Failover
# ---------------------------------------------------------------------------------------


class FailoverBroadcaster:
    """Several backends in order: a transaction goes to the next backend only when the
    previous one answered TRANSIENT. Any other answer (success or a real rejection) is
    final.

    Status queries ask the backends in order and return the first answer that is not
    "unknown"; a backend that raises :class:`BroadcasterUnavailable` is skipped; if every
    backend raised, the last error is raised.
    """

    def __init__(self, backends: Sequence[Broadcaster]):
        if not backends:
            raise ValueError("FailoverBroadcaster needs at least one backend")
        self.backends: list[Broadcaster] = list(backends)
        self.name = "failover(" + ",".join(b.name for b in self.backends) + ")"

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        result: BroadcastResult | None = None
        for backend in self.backends:
            result = backend.broadcast(raw_hex)
            if result.outcome is not Outcome.TRANSIENT:
                return result
            log.info("broadcast via %s transient (%s); trying next", backend.name, result.detail)
        assert result is not None
        return result

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        raws = list(raw_hexes)
        results: list[BroadcastResult | None] = [None] * len(raws)
        pending = list(range(len(raws)))
        for backend in self.backends:
            if not pending:
                break
            answers = backend.broadcast_many([raws[i] for i in pending])
            if len(answers) != len(pending):
                raise RuntimeError(
                    f"{backend.name} returned {len(answers)} results for {len(pending)}"
                )
            still: list[int] = []
            for i, answer in zip(pending, answers):
                results[i] = answer
                if answer.outcome is Outcome.TRANSIENT:
                    still.append(i)
            pending = still
        return [r for r in results if r is not None]

    def tx_status(self, txid: str) -> TxStatus:
        last_error: BroadcasterUnavailable | None = None
        answered: TxStatus | None = None
        for backend in self.backends:
            try:
                status = backend.tx_status(txid)
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            if status.state != "unknown":
                return status
            answered = status
        if answered is not None:
            return answered
        assert last_error is not None
        raise last_error

    def tx_statuses(self, txids: Sequence[str]) -> list[TxStatus]:
        """:meth:`tx_status` of many txids, each backend asked once for all the txids no
        earlier backend placed (:func:`statuses_of`). Same rules: the first answer that is
        not "unknown" wins; a backend that raises :class:`BroadcasterUnavailable` is
        skipped; a txid no backend answered raises the last error."""
        wanted = list(txids)
        found: dict[int, TxStatus] = {}
        answered: set[int] = set()
        last_error: BroadcasterUnavailable | None = None
        pending = list(range(len(wanted)))
        for backend in self.backends:
            if not pending:
                break
            try:
                answers = statuses_of(backend, [wanted[i] for i in pending])
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            still = []
            for i, status in zip(pending, answers, strict=True):
                found[i] = status
                answered.add(i)
                if status.state == "unknown":
                    still.append(i)
            pending = still
        if len(answered) < len(wanted):
            assert last_error is not None
            raise last_error
        return [found[i] for i in range(len(wanted))]

    def output_status(self, txid: str, vout: int) -> OutputState:
        last_error: BroadcasterUnavailable | None = None
        answered = False
        for backend in self.backends:
            try:
                state = backend.output_status(txid, vout)
            except BroadcasterUnavailable as exc:
                last_error = exc
                continue
            if state != "unknown":
                return state
            answered = True
        if answered:
            return "unknown"
        assert last_error is not None
        raise last_error

    def fee_rate_sat_per_kb(self) -> int | None:
        for backend in self.backends:
            try:
                rate = backend.fee_rate_sat_per_kb()
            except BroadcasterUnavailable:
                continue
            if rate is not None:
                return rate
        return None


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------

#: name -> backend class. Open: other modules add "arc", "woc", ... with
#: :func:`register_broadcaster`.
REGISTRY: dict[str, type] = {}


def register_broadcaster(name: str, cls: type | None = None) -> Any:
    """Register a backend class under ``name``; usable as ``@register_broadcaster("arc")``.

    Raises:
        ValueError: another class is already registered under that name.
    """

    def add(klass: type) -> type:
        existing = REGISTRY.get(name)
        if existing is not None and existing is not klass:
            raise ValueError(f"broadcaster {name!r} already registered ({existing.__name__})")
        REGISTRY[name] = klass
        return klass

    return add(cls) if cls is not None else add


def build_broadcaster(name: str, **settings: Any) -> Broadcaster:
    """Make the backend registered as ``name`` from keyword settings.

    Uses the class's ``from_settings(**settings)`` classmethod if it has one (it should
    ignore settings it does not know), else ``cls(**settings)``.

    Raises:
        ValueError: no backend of that name (the message lists the registered ones).
    """
    cls = REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"unknown broadcaster {name!r}; registered: {', '.join(sorted(REGISTRY)) or 'none'}"
        )
    factory = getattr(cls, "from_settings", None)
    backend = factory(**settings) if callable(factory) else cls(**settings)
    return backend  # type: ignore[no-any-return]


def settings_from_config(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of backend ``name`` in an app config: every key ``<NAME>_<KEY>``
    becomes ``key`` (lower case). E.g. ``ARC_URL``, ``ARC_API_KEY`` -> ``url``, ``api_key``;
    ``NODE_RPC_URL`` -> ``rpc_url``. Keys whose value is None are left out."""
    prefix = name.upper() + "_"
    return {
        key[len(prefix) :].lower(): value
        for key, value in config.items()
        if isinstance(key, str) and key.startswith(prefix) and value is not None
    }


def build_chain(
    config: Mapping[str, Any],
    node_rpc: Callable[[], Any] | None = None,
) -> Broadcaster:
    """Build the broadcaster of an app config: the backends named in
    ``config["BROADCASTERS"]`` (a list, or a comma-separated string; default ``["node"]``)
    in failover order.

    Args:
        config: mapping with ``BROADCASTERS`` and each backend's ``<NAME>_*`` settings.
        node_rpc: factory of the :class:`~raregen.chain.rpc.NodeRPC` the "node" backend
            uses (else it builds one from ``NODE_RPC_URL``/``NODE_RPC_USER``/
            ``NODE_RPC_PASSWORD``).

    Returns:
        The single backend, or a :class:`FailoverBroadcaster` over several.

    Raises:
        ValueError: an unknown backend name, or an empty list.
    """
    names = config.get("BROADCASTERS") or ["node"]
    if isinstance(names, str):
        names = names.split(",")
    names = [n.strip() for n in names if n and n.strip()]
    if not names:
        raise ValueError("BROADCASTERS is empty")
    backends: list[Broadcaster] = []
    for name in names:
        settings = settings_from_config(name, config)
        if name == "node" and node_rpc is not None:
            settings["rpc"] = node_rpc()
        backends.append(build_broadcaster(name, **settings))
    return backends[0] if len(backends) == 1 else FailoverBroadcaster(backends)
