"""One collector run (the RQ job ``batch-collector``): recover stale batches, then take
batches while full ones wait."""

from __future__ import annotations

import time
from collections import Counter

from flask import current_app

from raregen.publish.batch.auto import run_auto
from raregen.publish.batch.batch_mode import collect_batch
from raregen.publish.batch.packed import collect_packed
from raregen.publish.batch.recovery import resume_stale
from raregen.publish.batch.trigger import reset_pending


def run_collector(*, budget_seconds: float | None = None) -> dict[str, int]:
    """One collector run: recover stale batches, then take batches while full ones wait, for
    at most ``budget_seconds`` seconds (default ``BATCH_RUN_SECONDS``).

    In immediate mode only the recovery runs (packed batches left by an earlier mode); in
    auto mode the recovery, then :func:`.auto.run_auto` (until nothing waits).

    Returns:
        Counts: ``batches``, ``claimed``, ``resumed`` and one per outcome (``sent``,
        ``retry``, ``dirty``, ``failed``, ``waiting``).
    """
    cfg = current_app.config
    mode = cfg["PUBLISH_MODE"]
    budget = float(cfg["BATCH_RUN_SECONDS"] if budget_seconds is None else budget_seconds)
    deadline = time.monotonic() + budget
    totals: Counter[str] = Counter()
    totals["resumed"] = resume_stale()
    if mode == "auto":
        # the periodic run of auto mode: the same loop as a woken run (it also frees a wake
        # key a killed collector left behind)
        for name, count in run_auto(0, budget_seconds=budget).items():
            totals[name] += count
        return dict(totals)
    if mode not in ("batch", "packed"):
        return dict(totals)
    if mode == "packed":
        # jobs that kept a signed transaction (a transient failure in batch or immediate
        # mode) are sent again as they are, never re-signed into a packed transaction
        while True:
            report = collect_batch(with_tx=True)
            report.add_to(totals)
            if not report.more or time.monotonic() > deadline:
                break
    while True:
        reset_pending()
        report = collect_packed() if mode == "packed" else collect_batch()
        report.add_to(totals)
        if not report.more or time.monotonic() > deadline:
            break
    return dict(totals)
