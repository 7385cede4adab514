"""``/metrics``: Prometheus text exposition of the publisher's state and counters.

Where each number comes from, and why it is right with many processes (gunicorn workers, RQ
work horses forked per job, the cron process, several hosts):

* gauges computed at scrape time from the database, the source of truth:
  ``raregen_jobs{status}`` (jobs by state), ``raregen_jobs_processing_overdue`` (leases
  expired, waiting for the reaper), ``raregen_pool_utxos{status,purpose}`` and
  ``raregen_pool_satoshis{status,purpose}``, ``raregen_pool_available`` /
  ``raregen_pool_available_satoshis`` (clean publish UTXOs), ``raregen_pool_dirty``,
  ``raregen_pool_reserved_past_timeout``, ``raregen_pool_below_low_water``;
* gauges from RQ at scrape time: ``raregen_queue_jobs{state}`` (queued, scheduled, started,
  failed, periodic);
* counters and a histogram kept in Redis hashes (``HINCRBY``) by whichever process saw the
  event, read at scrape time: ``raregen_broadcast_outcomes_total{backend,outcome}``,
  ``raregen_reaper_actions_total{action}``, and
  ``raregen_submit_to_sent_seconds`` (submit -> sent latency, observed when a job is
  settled ``sent``, from the database timestamps ``created_at`` and ``sent_at``).

This avoids prometheus-client's multiprocess mode, which needs a shared directory per host
and leaves one file per process: with a fork per RQ job that is one file per job. A Redis
flush resets the counters; Prometheus treats that as a counter reset (``rate()`` is
unaffected). Scrape failures of one source (Redis down) leave its series out instead of
failing the whole answer; ``raregen_metrics_source_up{source}`` says which answered.

Access (docs/OPERATIONS.md, "Watching it"): the numbers describe the server's funds and
traffic, so they are not public.

* ``METRICS_TOKEN`` set (``RAREGEN_METRICS_TOKEN``): every client, loopback included, must
  send ``Authorization: Bearer <token>`` (RFC 6750 §2.1; Prometheus's ``authorization``
  scrape setting sends exactly this). Without it or with another token: ``401`` with the
  error JSON of docs/PROTOCOL.md §2 (code ``AUTH_REQUIRED``) and ``WWW-Authenticate: Bearer
  realm="metrics"`` (RFC 6750 §3; ``error="invalid_token"`` for a wrong token). The token
  is compared in constant time.
* ``METRICS_TOKEN`` unset: only a direct loopback client (``127.0.0.0/8``, ``::1``,
  ``::ffff:127.0.0.0/104``) is served; a request carrying a proxy's forwarding header
  (``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``) is not direct, even from loopback (a
  reverse proxy on the same host would otherwise make every client look local). Others get
  ``403`` ``FORBIDDEN``: the endpoint exists, but no credential would help.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import func, select

from raregen.db import db, utcnow
from raregen.publish import pool
from raregen.publish.models import JOB_STATES, PROCESSING, PublishJob, Utxo
from raregen.queue import LATENCY_BUCKETS, queue_depths, read_counters

bp = Blueprint("metrics", __name__)

log = logging.getLogger(__name__)


class _Collector:
    """Collects everything at scrape time (see the module docstring)."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "raregen_metrics_source_up",
            "1 when the source answered this scrape",
            labels=["source"],
        )
        try:
            yield from self._database()
            up.add_metric(["database"], 1)
        except Exception as exc:
            log.warning("metrics: database unavailable: %s", exc.__class__.__name__)
            up.add_metric(["database"], 0)
        try:
            yield from self._redis()
            up.add_metric(["redis"], 1)
        except Exception as exc:
            log.warning("metrics: redis unavailable: %s", exc.__class__.__name__)
            up.add_metric(["redis"], 0)
        yield up

    def _database(self) -> Iterator[Metric]:
        counts = dict.fromkeys(JOB_STATES, 0)
        for status, n in db.session.execute(
            select(PublishJob.status, func.count()).group_by(PublishJob.status)
        ):
            counts[status] = int(n)
        jobs = GaugeMetricFamily("raregen_jobs", "Publish jobs by state", labels=["status"])
        for status, n in sorted(counts.items()):
            jobs.add_metric([status], n)
        yield jobs
        overdue = db.session.scalar(
            select(func.count()).where(
                PublishJob.status == PROCESSING, PublishJob.lease_until < utcnow()
            )
        )
        yield GaugeMetricFamily(
            "raregen_jobs_processing_overdue",
            "Jobs in processing whose lease expired (the reaper settles them)",
            value=int(overdue or 0),
        )
        utxos = GaugeMetricFamily(
            "raregen_pool_utxos", "Pool UTXOs by status and purpose", labels=["status", "purpose"]
        )
        sats = GaugeMetricFamily(
            "raregen_pool_satoshis",
            "Pool satoshis by status and purpose",
            labels=["status", "purpose"],
        )
        for status, purpose, n, total in db.session.execute(
            select(
                Utxo.status, Utxo.purpose, func.count(), func.coalesce(func.sum(Utxo.satoshis), 0)
            ).group_by(Utxo.status, Utxo.purpose)
        ):
            utxos.add_metric([status, purpose], int(n))
            sats.add_metric([status, purpose], int(total))
        yield utxos
        yield sats
        summary = pool.status_summary()
        yield GaugeMetricFamily(
            "raregen_pool_available",
            "Clean available publish UTXOs",
            value=summary["available_count"],
        )
        yield GaugeMetricFamily(
            "raregen_pool_available_satoshis",
            "Satoshis in clean available publish UTXOs",
            value=summary["available_satoshis"],
        )
        yield GaugeMetricFamily(
            "raregen_pool_dirty",
            "Dirty UTXOs waiting for settlement",
            value=summary["dirty_count"],
        )
        yield GaugeMetricFamily(
            "raregen_pool_reserved_past_timeout",
            "Reservations past their timeout",
            value=summary["reserved_past_timeout"],
        )
        yield GaugeMetricFamily(
            "raregen_pool_below_low_water",
            "1 when the pool is under POOL_LOW_WATER",
            value=int(summary["below_low_water"]),
        )

    def _redis(self) -> Iterator[Metric]:
        depths = queue_depths()
        queue = GaugeMetricFamily("raregen_queue_jobs", "RQ jobs by state", labels=["state"])
        for state, n in sorted(depths.items()):
            queue.add_metric([state], n)
        yield queue
        stored = read_counters(["broadcast", "reaper", "hist:submit_to_sent"])
        outcomes = CounterMetricFamily(
            "raregen_broadcast_outcomes",
            "Broadcast answers by backend and outcome class",
            labels=["backend", "outcome"],
        )
        for label, total in sorted(stored["broadcast"].items()):
            backend, _, outcome = label.partition("|")
            outcomes.add_metric([backend, outcome], total)
        yield outcomes
        reaper = CounterMetricFamily(
            "raregen_reaper_actions",
            "What the reaper and dirty-UTXO settlement did",
            labels=["action"],
        )
        for action, times in sorted(stored["reaper"].items()):
            reaper.add_metric([action], times)
        yield reaper
        hist = stored["hist:submit_to_sent"]
        buckets = [(repr(float(b)), hist.get(repr(float(b)), 0.0)) for b in LATENCY_BUCKETS]
        buckets.append(("+Inf", hist.get("+Inf", 0.0)))
        yield HistogramMetricFamily(
            "raregen_submit_to_sent_seconds",
            "Seconds from acceptance (202) to sent, per job",
            buckets=buckets,
            sum_value=hist.get("sum", 0.0),
        )


#: Headers a reverse proxy adds (RFC 7239 ``Forwarded`` and the de facto ones).
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def _error(status: int, code: str, message: str) -> Response:
    resp = jsonify({"error": {"code": code, "message": message, "field": None}})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _bearer_token() -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header (the scheme name is
    case-insensitive, RFC 9110 §11.1), or None."""
    scheme, _, credentials = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def is_loopback(address: str | None) -> bool:
    """True for a loopback IP address: ``127.0.0.0/8``, ``::1``, or an IPv4-mapped IPv6
    loopback (``::ffff:127.0.0.1``). False for anything else, including None and text that
    is not an IP address (e.g. a Unix socket peer has no address)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def operator_client() -> bool:
    """True when this request may read the server's numbers (``/metrics``, the details of
    ``/healthz``): with ``METRICS_TOKEN`` set, it carries ``Authorization: Bearer <token>``
    (compared in constant time; loopback needs it too); unset, it comes directly from a
    loopback address with no forwarding header (module docstring)."""
    token = str(current_app.config.get("METRICS_TOKEN") or "").strip()
    if token:
        given = _bearer_token()
        return given is not None and hmac.compare_digest(given.encode(), token.encode())
    direct = not any(name in request.headers for name in FORWARDING_HEADERS)
    return direct and is_loopback(request.remote_addr)


def access_refusal() -> Response | None:
    """Who may read ``/metrics`` (module docstring): None when this request may, else the
    refusal to send (401 ``AUTH_REQUIRED`` with ``WWW-Authenticate``, or 403 ``FORBIDDEN``).

    Reads ``current_app.config["METRICS_TOKEN"]`` (a string, or None/empty: unset).
    """
    if operator_client():
        return None
    token = str(current_app.config.get("METRICS_TOKEN") or "").strip()
    if token:
        given = _bearer_token()
        resp = _error(
            401,
            "AUTH_REQUIRED",
            "/metrics needs the header Authorization: Bearer <RAREGEN_METRICS_TOKEN>.",
        )
        challenge = 'Bearer realm="metrics"'
        if given is not None:
            challenge += ', error="invalid_token"'
        resp.headers["WWW-Authenticate"] = challenge
        return resp
    return _error(
        403,
        "FORBIDDEN",
        "/metrics is served only to loopback clients; set RAREGEN_METRICS_TOKEN to scrape "
        "it from elsewhere with a bearer token.",
    )


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format (version 0.0.4), for the clients :func:`access_refusal`
    admits; nothing is read from the database or Redis for a refused request."""
    refusal = access_refusal()
    if refusal is not None:
        return refusal
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())  # type: ignore[arg-type]
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
