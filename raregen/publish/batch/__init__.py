"""Batch and packed publishing (docs/PROTOCOL.md §6): the collector.

``PUBLISH_MODE`` chooses how accepted jobs reach the chain; the API answers the same in
every mode (docs/PROTOCOL.md §2):

* ``auto`` (default): group commit, :mod:`.auto`: a record is sent at once when nothing
  else waits; the records waiting are taken together (up to ``BATCH_SIZE``) and sent as a
  batch, with no window (``AUTO_PACK``: packed into one transaction);
* ``immediate``: one RQ job per record (``raregen.publish.pipeline``);
* ``batch``: a collector takes up to ``BATCH_SIZE`` queued jobs at once, gives each its own
  transaction, and broadcasts them in one call (node ``sendrawtransactions``, ARC
  ``/v1/txs``);
* ``packed``: a collector puts up to ``PACKED_MAX_RECORDS`` records (at most
  ``PACKED_MAX_BYTES``) into ONE transaction, one record output per job (docs/PROTOCOL.md §3);
  job ``i`` of the batch is at vout ``i``.

One module a job:

* :mod:`.trigger`: when the collector runs (``notify_queued``, ``enqueue_collector``,
  ``trigger_job_id``);
* :mod:`.run`: one collector run (``run_collector``);
* :mod:`.auto`: auto mode's wake and loop (``wake``, ``run_auto``);
* :mod:`.claim`: locking queued jobs and pool UTXOs, and writing each of them once;
* :mod:`.batch_mode`: one transaction per job (``collect_batch``);
* :mod:`.packed`: many records in one transaction (``collect_packed``);
* :mod:`.settle`: one database transaction per broadcast, by outcome;
* :mod:`.recovery`: stale batches (``resume_stale``) and ``packed_raw_tx``;
* :mod:`.statements`, :mod:`.common`: shared writes, records and statement helpers.

Guarantees: a batch's jobs and inputs are claimed, signed and stored in ONE database
transaction (a crash before its commit leaves them as they were); every job and input is
settled in ONE transaction per broadcast, by each transaction's outcome (one conflicting
transaction does not stop the others); ``FOR UPDATE SKIP LOCKED`` on PostgreSQL keeps
concurrent collectors apart. Batch-mode jobs hold a lease (the reaper recovers them as
single jobs); packed jobs' lease is their batch row (``resume_stale``).

The public names stay importable from ``raregen.publish.batch``.
"""

from __future__ import annotations

from raregen.publish.batch.auto import run_auto, wake
from raregen.publish.batch.batch_mode import collect_batch
from raregen.publish.batch.common import (
    ABANDONED,
    COLLECTING,
    DONE,
    MODES,
    PARTIAL,
    POOL_WAIT_SECONDS,
    RESUMING,
    RETRY,
    SIGNED,
    RunReport,
)
from raregen.publish.batch.packed import collect_packed
from raregen.publish.batch.recovery import packed_raw_tx, resend_packed, resume_stale
from raregen.publish.batch.run import run_collector
from raregen.publish.batch.trigger import enqueue_collector, notify_queued, trigger_job_id

__all__ = [
    "ABANDONED",
    "COLLECTING",
    "DONE",
    "MODES",
    "PARTIAL",
    "POOL_WAIT_SECONDS",
    "RESUMING",
    "RETRY",
    "SIGNED",
    "RunReport",
    "collect_batch",
    "collect_packed",
    "enqueue_collector",
    "notify_queued",
    "packed_raw_tx",
    "resend_packed",
    "resume_stale",
    "run_auto",
    "run_collector",
    "trigger_job_id",
    "wake",
]
