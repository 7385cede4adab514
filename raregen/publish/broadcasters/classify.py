"""Classification helpers every backend uses: a whole failed call as TRANSIENT results,
and settling MISSING_INPUTS answers by looking the txids up (docs/PROTOCOL.md §5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from raregen.publish.broadcasters.outcomes import BroadcasterUnavailable, BroadcastResult, Outcome


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
