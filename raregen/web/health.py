"""``/healthz`` (liveness and pool health) and a trivial JSON endpoint used as a ceiling."""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("health", __name__)


@bp.get("/v1/ping")
def ping():  # type: ignore[no-untyped-def]
    """Trivial JSON endpoint: the ceiling the ingest benchmark compares against."""
    return jsonify({"ok": True})


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Database reachability and pool counts; 503 when the database is down."""
    from raregen.publish import pool

    try:
        summary = pool.status_summary()
    except Exception:
        return jsonify({"ok": False, "database": "unreachable"}), 503
    healthy = summary["available_count"] > 0
    return jsonify({"ok": True, "pool": summary, "poolHealthy": healthy})
