"""The operator console's chart data (``GET /ops/api/charts``) and the pool level sampler.

Everything comes from data the service already keeps: the ``publish_jobs`` timestamps
(``created_at``: accepted, ``sent_at``, ``confirmed_at``; failures by ``updated_at`` and
``error_code``) and ``pool_samples`` (migration 0010), written once a minute by the cron
process's ``pool-sample`` job (:func:`sample_pool`).

Windows (:data:`WINDOWS`): ``hour`` in 1-minute buckets, ``day`` in 15-minute buckets.
Rates are records per minute (a bucket's count divided by its minutes); latencies are
seconds from acceptance (``created_at``) to ``sent_at`` / ``confirmed_at``, p50 and p99 by
the nearest-rank method, for the jobs sent (confirmed) in the bucket; an empty bucket has
``null``. Times are Unix seconds (UTC), each bucket named by its start.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from raregen.db import db, transaction, utcnow
from raregen.publish import pool
from raregen.publish.models import FAILED, RESERVED, PoolSample, PublishJob

#: window name -> (length, bucket size)
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
}
#: pool samples older than this are deleted by the sampler
KEEP_SAMPLES = timedelta(days=2)


def _unix(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp())


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0 < p <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def chart_data(window: str, now: datetime | None = None) -> dict[str, Any]:
    """The series of every console chart over ``window`` (``"hour"`` or ``"day"``).

    Returns:
        ``{"window", "bucketSeconds", "t": [bucket starts], "accepted", "sent",
        "confirmed" (records per minute), "sentP50", "sentP99", "confirmedP50",
        "confirmedP99" (seconds or null), "poolT", "poolAvailable", "poolDirty",
        "poolReserved" (the samples), "failures": {code: [count per bucket]},
        "failureTotals": {code: count}}``.

    Raises:
        KeyError: an unknown window (the view answers 400 first).
    """
    length, size = WINDOWS[window]
    now = now or utcnow()
    step = int(size.total_seconds())
    end = _unix(now) // step * step + step
    n = int(length.total_seconds()) // step
    start = end - n * step
    since = datetime.fromtimestamp(start, UTC).replace(tzinfo=None)
    minutes = step / 60

    def slot(value: datetime) -> int | None:
        i = (_unix(value) - start) // step
        return i if 0 <= i < n else None

    accepted = [0] * n
    for (created,) in db.session.execute(
        select(PublishJob.created_at).where(PublishJob.created_at >= since)
    ):
        if (i := slot(created)) is not None:
            accepted[i] += 1

    def latencies(column: Any) -> tuple[list[int], list[list[float]]]:
        counts = [0] * n
        waits: list[list[float]] = [[] for _ in range(n)]
        for at, created in db.session.execute(
            select(column, PublishJob.created_at).where(column >= since)
        ):
            if (i := slot(at)) is not None:
                counts[i] += 1
                waits[i].append(max(0.0, (at - created).total_seconds()))
        return counts, waits

    sent, sent_waits = latencies(PublishJob.sent_at)
    confirmed, confirmed_waits = latencies(PublishJob.confirmed_at)

    failures: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for at, code in db.session.execute(
        select(PublishJob.updated_at, PublishJob.error_code).where(
            PublishJob.status == FAILED, PublishJob.updated_at >= since
        )
    ):
        if (i := slot(at)) is not None:
            failures[code or "UNKNOWN"][i] += 1

    samples = db.session.execute(
        select(
            PoolSample.sampled_at,
            PoolSample.available_count,
            PoolSample.dirty_count,
            PoolSample.reserved_count,
        )
        .where(PoolSample.sampled_at >= since)
        .order_by(PoolSample.sampled_at)
    ).all()

    def rate(counts: list[int]) -> list[float]:
        return [round(c / minutes, 3) for c in counts]

    return {
        "window": window,
        "bucketSeconds": step,
        "t": [start + i * step for i in range(n)],
        "accepted": rate(accepted),
        "sent": rate(sent),
        "confirmed": rate(confirmed),
        "sentP50": [percentile(w, 50) for w in sent_waits],
        "sentP99": [percentile(w, 99) for w in sent_waits],
        "confirmedP50": [percentile(w, 50) for w in confirmed_waits],
        "confirmedP99": [percentile(w, 99) for w in confirmed_waits],
        "poolT": [_unix(s[0]) for s in samples],
        "poolAvailable": [int(s[1]) for s in samples],
        "poolDirty": [int(s[2]) for s in samples],
        "poolReserved": [int(s[3]) for s in samples],
        "failures": dict(sorted(failures.items())),
        "failureTotals": {code: sum(v) for code, v in sorted(failures.items())},
    }


def sample_pool(now: datetime | None = None) -> dict[str, int]:
    """Store the pool level now as a :class:`PoolSample` and delete samples older than
    :data:`KEEP_SAMPLES` (own transaction).

    Returns:
        ``{"available", "dirty", "reserved"}`` (UTXO counts) as stored.
    """
    now = now or utcnow()
    with transaction():
        summary = pool.status_summary(now)
        reserved = int(summary["by_status"].get(RESERVED, {}).get("count", 0))
        db.session.add(
            PoolSample(
                sampled_at=now,
                available_count=summary["available_count"],
                available_satoshis=summary["available_satoshis"],
                reserved_count=reserved,
                dirty_count=summary["dirty_count"],
            )
        )
        db.session.execute(
            delete(PoolSample)
            .where(PoolSample.sampled_at < now - KEEP_SAMPLES)
            .execution_options(synchronize_session=False)
        )
    return {
        "available": summary["available_count"],
        "dirty": summary["dirty_count"],
        "reserved": reserved,
    }
