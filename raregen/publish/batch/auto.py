"""Auto mode (docs/PROTOCOL.md §6): group commit. A record is sent at once when the service is
quiet; the records that arrive while a send is under way are taken together, as many as wait
(up to ``BATCH_SIZE``), broadcast in one call and settled in one database transaction.

The wake. After its commit, intake calls :func:`wake`: ``SET <wake key> NX EX`` in Redis, and
only when the key was absent, one collector run is enqueued on the collector's queue. While
a collector is awake, an accept costs that one ``SET NX`` round trip and nothing else (no
enqueue, no stacked runs).

The loop (:func:`run_auto`): take a batch of what waits (:func:`.batch_mode.collect_batch`,
``FOR UPDATE SKIP LOCKED``: one record is a batch of one, sent at once) and go on while a
step took something. When a step finds nothing, the run deletes the wake key and looks
once more: a job committed before an accept's ``SET NX`` failed was committed before that
delete, so this last look sees it (or another collector holds it); a job whose accept came
after the delete set the key again and enqueued a new run. No wake is lost, and no window
decides when a lone record goes.

Under load: a step that took a full batch, or a tenth of one, asks for up to
``AUTO_COLLECTORS - 1`` helper runs (one ``SET NX`` key each), which take batches beside it
(their claims never overlap: one signs while the other broadcasts) and stop at the first
step that took less. ``AUTO_PACK`` puts each step's records into
one transaction (:func:`.packed.collect_packed`) instead of one transaction each.

Guarantees are the batch and packed modes' (claim, sign and store in one transaction; the
reaper and :func:`.recovery.resume_stale` recover a crashed collector's jobs). The wake is
only a trigger: with the key or the RQ job lost (Redis flushed, a worker killed), the
periodic ``batch-collector`` run (every ``BATCH_WINDOW_SECONDS``) runs the same loop and
takes every due queued job from the database, and its delete of the wake key frees a key a
killed collector left behind (the key also expires after :data:`WAKE_TTL_SECONDS`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from flask import current_app

from raregen.publish.batch.batch_mode import collect_batch
from raregen.publish.batch.common import RunReport, log
from raregen.publish.batch.packed import collect_packed
from raregen.publish.wake import WAKE_TTL_SECONDS, start, wake, wake_key
from raregen.queue import redis_connection


def _redis(call: Callable[[], object]) -> None:
    try:
        call()
    except Exception as exc:  # the key is only a trigger; the periodic run is the guarantee
        log.warning("auto wake key: %s", exc.__class__.__name__)


def step() -> RunReport:
    """One group commit: everything due that waits, up to ``BATCH_SIZE`` (``AUTO_PACK``: up
    to ``PACKED_MAX_RECORDS`` in one transaction), built, broadcast in one call, settled in
    one transaction."""
    cfg = current_app.config
    if not cfg.get("AUTO_PACK"):
        return collect_batch()
    # jobs that kept a signed transaction (a transient failure) are sent again as they are,
    # never re-signed into a packed transaction
    report = collect_batch(with_tx=True)
    if report.claimed:
        return report
    return collect_packed()


def _busy(report: RunReport) -> bool:
    """A step that found a load worth a second collector: a full batch, or at least a tenth
    of one (``BATCH_SIZE`` // 10, at least 2): records arrive faster than one collector's
    cycle, so a helper beside it overlaps one's signing with the other's broadcast."""
    cfg = current_app.config
    size = int(cfg["PACKED_MAX_RECORDS"] if cfg.get("AUTO_PACK") else cfg["BATCH_SIZE"])
    return report.more or report.claimed >= max(2, size // 10)


def run_auto(slot: int = 0, *, budget_seconds: float | None = None) -> dict[str, int]:
    """Take what waits until nothing does (see the module doc).

    Args:
        slot: 0 for the run :func:`wake` starts (and the periodic run); 1.. for a helper,
            which stops at its first step that took less than a tenth of a batch.
        budget_seconds: at most this long (default ``BATCH_RUN_SECONDS``); a run stopped by
            it hands over to a new one.

    Returns:
        Counts: ``batches``, ``claimed`` and one per outcome (``sent``, ``retry``,
        ``dirty``, ``failed``, ``waiting``).
    """
    cfg = current_app.config
    budget = float(cfg["BATCH_RUN_SECONDS"] if budget_seconds is None else budget_seconds)
    deadline = time.monotonic() + budget
    helpers = int(cfg.get("AUTO_COLLECTORS") or 1)
    conn = redis_connection()
    key = wake_key(slot)
    totals: Counter[str] = Counter()
    handover = False
    try:
        while True:
            report = step()
            report.add_to(totals)
            if report.claimed:
                if _busy(report):
                    for other in range(1, helpers):
                        if other != slot:
                            start(other)
                elif slot:
                    break  # a helper stops when the load is gone
                if time.monotonic() > deadline:
                    handover = slot == 0
                    break
                continue
            if slot:
                break
            # nothing waits: give the wake back, then look once more (module doc)
            _redis(lambda: conn.delete(key))
            report = step()
            report.add_to(totals)
            if not report.claimed:
                return dict(totals)  # the key may be a newer accept's: left alone
            _redis(lambda: conn.set(key, "1", ex=WAKE_TTL_SECONDS))
    except BaseException:
        _redis(lambda: conn.delete(key))  # the periodic run takes over
        raise
    _redis(lambda: conn.delete(key))
    if handover:
        wake()
    return dict(totals)
