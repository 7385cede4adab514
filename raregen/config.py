"""Settings from the environment, with safe defaults for the embedded development run.

Every setting can be given as an environment variable named ``RAREGEN_<NAME>`` (a few
well-known ones also without the prefix: ``DATABASE_URL``, ``REDIS_URL``, ``PORT``).
Units are in the names: ``_SECONDS``, ``_SAT_PER_KB`` (satoshis per 1000 bytes), ``_BYTES``,
``_SATS`` (satoshis).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}

#: RQ worker processes of the development run (``RAREGEN_WORKER_PROCESSES``): one per core
#: of the 2-core development machine.
DEFAULT_WORKER_PROCESSES = 2


def _env(name: str, default: str | None = None, *aliases: str) -> str | None:
    for key in (f"RAREGEN_{name}", *aliases):
        value = os.environ.get(key)
        if value not in (None, ""):
            return value
    return default


def _int(name: str, default: int, *aliases: str) -> int:
    value = _env(name, None, *aliases)
    return int(value) if value is not None else default


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    return value.lower() in _TRUE if value is not None else default


def load_settings(instance_path: str) -> dict[str, Any]:
    """Read all settings.

    Args:
        instance_path: the Flask instance folder; the SQLite file, the dev server key and
            the regtest node's data live there by default.

    Returns:
        A dict of upper-case setting names for ``app.config``.
    """
    inst = Path(instance_path)
    default_db = f"sqlite:///{inst / 'raregen.sqlite'}"
    payload_limit = _int("MAX_PAYLOAD_BYTES", 100_000)
    return {
        # roles: "all" (one app), "publisher" (component A only), "wallet" (component B only)
        "ROLE": _env("ROLE", "all"),
        # "development" (set by scripts/run) serves the sign-in codes at /dev/outbox; anything
        # else, the default, never does
        "ENV_NAME": _env("ENV", "production"),
        "SECRET_KEY": _env("SECRET_KEY", None, "SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL", default_db, "DATABASE_URL"),
        "REDIS_URL": _env("REDIS_URL", "redis://127.0.0.1:6379/0", "REDIS_URL"),
        "QUEUE_NAME": _env("QUEUE_NAME", "publish"),
        # RQ worker processes `scripts/run` starts (each runs its jobs in-process, one at a
        # time: about one per core keeps the cores busy; `WORKERS` overrides it there)
        "WORKER_PROCESSES": _int("WORKER_PROCESSES", DEFAULT_WORKER_PROCESSES),
        # server wallet (docs/PROTOCOL.md §4): a WIF from the environment or a key file
        "SERVER_WIF": _env("SERVER_WIF"),
        "SERVER_KEY_FILE": _env("SERVER_KEY_FILE", str(inst / "server.key")),
        "NETWORK": _env("NETWORK", "regtest"),
        # broadcasting (docs/PROTOCOL.md §5): ordered list of backends
        "BROADCASTERS": (_env("BROADCASTERS", "node") or "node").split(","),
        "NODE_RPC_URL": _env("NODE_RPC_URL", "http://127.0.0.1:18332"),
        "NODE_RPC_USER": _env("NODE_RPC_USER", "raregen"),
        "NODE_RPC_PASSWORD": _env("NODE_RPC_PASSWORD", ""),
        "NODE_RPC_FILE": _env("NODE_RPC_FILE", str(inst / "node" / "rpc.json")),
        "ARC_URL": _env("ARC_URL"),
        "ARC_API_KEY": _env("ARC_API_KEY"),
        "WOC_URL": _env("WOC_URL"),
        "WOC_NETWORK": _env("WOC_NETWORK", "main"),
        # fees and pool (docs/PROTOCOL.md §4)
        "FEE_RATE_SAT_PER_KB": _int("FEE_RATE_SAT_PER_KB", 100),
        "FEE_RATE_FLOOR_SAT_PER_KB": _int("FEE_RATE_FLOOR_SAT_PER_KB", 1),
        # "config": FEE_RATE_SAT_PER_KB; "policy": the broadcaster's policy (ARC /v1/policy,
        # node getsettings), cached FEE_RATE_CACHE_SECONDS, FEE_RATE_SAT_PER_KB if unknown
        "FEE_RATE_SOURCE": _env("FEE_RATE_SOURCE", "config"),
        "FEE_RATE_CACHE_SECONDS": _int("FEE_RATE_CACHE_SECONDS", 300),
        "RESERVATION_TIMEOUT_SECONDS": _int("RESERVATION_TIMEOUT_SECONDS", 300),
        "MAX_ATTEMPTS": _int("MAX_ATTEMPTS", 8),
        "POOL_TARGET_COUNT": _int("POOL_TARGET_COUNT", 200),
        "POOL_UTXO_SATS": _int("POOL_UTXO_SATS", 0),  # 0: derived from fee rate and payload limit
        "POOL_LOW_WATER": _int("POOL_LOW_WATER", 50),
        "MAX_UNCONFIRMED_DEPTH": _int("MAX_UNCONFIRMED_DEPTH", 20),
        # intake (docs/PROTOCOL.md §2)
        "MAX_PAYLOAD_BYTES": payload_limit,
        "MAX_CONTENT_LENGTH": payload_limit * 2 + 4096,
        "MAX_CLOCK_SKEW_SECONDS": _int("MAX_CLOCK_SKEW_SECONDS", 60),
        "MAX_TTL_SECONDS": _int("MAX_TTL_SECONDS", 3600),
        "PUBLISH_RATE_LIMIT": _env("PUBLISH_RATE_LIMIT", "6000 per minute"),
        # modes: immediate | batch | packed (docs/PROTOCOL.md §6)
        "PUBLISH_MODE": _env("PUBLISH_MODE", "immediate"),
        "BATCH_SIZE": _int("BATCH_SIZE", 500),
        "BATCH_WINDOW_SECONDS": _int("BATCH_WINDOW_SECONDS", 5),
        # one collector run keeps taking batches while full ones wait, for at most this long
        "BATCH_RUN_SECONDS": _int("BATCH_RUN_SECONDS", 60),
        # packed mode: records per transaction, and the transaction's size bound (bytes)
        "PACKED_MAX_RECORDS": _int("PACKED_MAX_RECORDS", 1000),
        "PACKED_MAX_BYTES": _int("PACKED_MAX_BYTES", 1_000_000),
        # periodic tasks
        "CONFIRM_INTERVAL_SECONDS": _int("CONFIRM_INTERVAL_SECONDS", 5),
        "REAPER_INTERVAL_SECONDS": _int("REAPER_INTERVAL_SECONDS", 30),
        "SWEEP_GRACE_SECONDS": _int("SWEEP_GRACE_SECONDS", 30),
        "SETTLE_DIRTY_INTERVAL_SECONDS": _int("SETTLE_DIRTY_INTERVAL_SECONDS", 60),
        "REPLENISH_INTERVAL_SECONDS": _int("REPLENISH_INTERVAL_SECONDS", 30),
        # expired wallet one-time codes and key challenges (raregen.wallet.purge)
        "PURGE_INTERVAL_SECONDS": _int("PURGE_INTERVAL_SECONDS", 3600),
        "DEV_MINE_INTERVAL_SECONDS": _int("DEV_MINE_INTERVAL_SECONDS", 5),
        # proof files (docs/PROOFS.md): store merkle proofs at confirmation; re-check the
        # blocks of the last N confirmations for reorganisations; headers after the block
        "PROOF_CAPTURE": _bool("PROOF_CAPTURE", True),
        "PROOF_RECHECK_BLOCKS": _int("PROOF_RECHECK_BLOCKS", 6),
        "PROOF_HEADERS_COUNT": _int("PROOF_HEADERS_COUNT", 6),
        # acceptance receipts: their own key (WIF, or a key file made on first use), and the
        # time a record should be in a block by (the receipt's deadline)
        "RECEIPT_WIF": _env("RECEIPT_WIF"),
        "RECEIPT_KEY_FILE": _env("RECEIPT_KEY_FILE", str(inst / "receipt.key")),
        "RECEIPT_DEADLINE_SECONDS": _int("RECEIPT_DEADLINE_SECONDS", 6 * 3600),
        # wallet / web
        "SERVICE_TOKEN": _env("SERVICE_TOKEN"),
        # reverse proxies in front of the app whose X-Forwarded-For/-Proto/-Host are trusted
        # (0: none; the peer address is the client)
        "TRUSTED_PROXIES": _int("TRUSTED_PROXIES", 0),
        # longest wait for the next bytes of a request body read from gunicorn's socket
        # (raregen.web.bodyread; 0: no bound); behind nginx bodies arrive whole
        "BODY_READ_TIMEOUT_SECONDS": _int("BODY_READ_TIMEOUT_SECONDS", 2),
        "METRICS_TOKEN": _env("METRICS_TOKEN"),  # /metrics bearer token; unset: loopback only
        "PUBLISHER_URL": _env("PUBLISHER_URL"),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL", ""),
        "MAIL_SERVER": _env("MAIL_SERVER"),
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL", False),
        "MAIL_USERNAME": _env("MAIL_USERNAME"),
        "MAIL_PASSWORD": _env("MAIL_PASSWORD"),
        "MAIL_DEFAULT_SENDER": _env("MAIL_SENDER", "RareGen <no-reply@raregen.local>"),
        # email one-time codes (docs/PROTOCOL.md §7): validity, wrong tries, request limits
        # (limits in Flask-Limiter's notation, counted per address and per client IP)
        "OTP_VALIDITY_SECONDS": _int("OTP_VALIDITY_SECONDS", 600),
        "OTP_MAX_TRIES": _int("OTP_MAX_TRIES", 5),
        "OTP_RATE_LIMIT_PER_EMAIL": _env("OTP_RATE_LIMIT_PER_EMAIL", "5 per 15 minutes"),
        "OTP_RATE_LIMIT_PER_IP": _env("OTP_RATE_LIMIT_PER_IP", "20 per hour"),
        "SESSION_LIFETIME_SECONDS": _int("SESSION_LIFETIME_SECONDS", 14 * 86400),
        # plans and credits: monthly allowance granted on the first publish of each month
        "FREE_MONTHLY_CREDITS": _int("FREE_MONTHLY_CREDITS", 20),
        "PAID_MONTHLY_CREDITS": _int("PAID_MONTHLY_CREDITS", 1000),
        # encrypted wallet backups: decoded ciphertext size limit
        "BACKUP_MAX_BYTES": _int("BACKUP_MAX_BYTES", 64 * 1024),
        "PUBLISHER_TIMEOUT_SECONDS": _int("PUBLISHER_TIMEOUT_SECONDS", 15),
        # session cookie Secure flag: true/false when set; unset (None), create_app makes it
        # true in production (ENV) when PUBLIC_BASE_URL is https://
        "SESSION_COOKIE_SECURE": (
            _bool("COOKIE_SECURE", False) if _env("COOKIE_SECURE") is not None else None
        ),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
        # X-RateLimit-* headers on every answer cost two more Redis round trips per request
        # (GET and TTL of the window after the hit); off by default, docs/PROTOCOL.md §2 does not
        # promise them. A 429 carries Retry-After either way (raregen.web.errors).
        "RATELIMIT_HEADERS_ENABLED": _bool("RATELIMIT_HEADERS_ENABLED", False),
        # pool_pre_ping tests every pooled connection with a round trip before each use (RQ
        # workers rely on it after a PostgreSQL restart). Off (DB_POOL_PRE_PING=0) saves that
        # round trip per request: a dropped connection then fails its first statement, the
        # pool is invalidated, a publish retries once on a new connection and other requests
        # answer 503 UNAVAILABLE (raregen.web.errors); docs/API.md
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": _bool("DB_POOL_PRE_PING", True)},
    }
