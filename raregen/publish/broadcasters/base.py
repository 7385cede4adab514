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

Modules: :mod:`~raregen.publish.broadcasters.outcomes` (outcomes, results, statuses, txid),
:mod:`~raregen.publish.broadcasters.interface` (the protocol),
:mod:`~raregen.publish.broadcasters.classify` (helpers every backend uses),
:mod:`~raregen.publish.broadcasters.cache` (a remembered answer),
:mod:`~raregen.publish.broadcasters.failover` and
:mod:`~raregen.publish.broadcasters.registry`. This module re-exports their names.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

from raregen.publish.broadcasters.cache import CachedValue
from raregen.publish.broadcasters.classify import recheck_missing_inputs, transient_results
from raregen.publish.broadcasters.failover import FailoverBroadcaster, statuses_of
from raregen.publish.broadcasters.interface import Broadcaster
from raregen.publish.broadcasters.outcomes import (
    BroadcasterUnavailable,
    BroadcastResult,
    Outcome,
    OutputState,
    TxState,
    TxStatus,
    txid_of,
)
from raregen.publish.broadcasters.registry import (
    REGISTRY,
    build_broadcaster,
    build_chain,
    register_broadcaster,
    settings_from_config,
)

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
    "statuses_of",
    "transient_results",
    "txid_of",
]
