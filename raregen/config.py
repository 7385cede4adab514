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
        "ENV_NAME": _env("ENV", "development"),
        "SECRET_KEY": _env("SECRET_KEY", None, "SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": _env("DATABASE_URL", default_db, "DATABASE_URL"),
        "REDIS_URL": _env("REDIS_URL", "redis://127.0.0.1:6379/0", "REDIS_URL"),
        "QUEUE_NAME": _env("QUEUE_NAME", "publish"),
        # server wallet (DESIGN.md §4): a WIF from the environment or a key file
        "SERVER_WIF": _env("SERVER_WIF"),
        "SERVER_KEY_FILE": _env("SERVER_KEY_FILE", str(inst / "server.key")),
        "NETWORK": _env("NETWORK", "regtest"),
        # broadcasting (DESIGN.md §5): ordered list of backends
        "BROADCASTERS": (_env("BROADCASTERS", "node") or "node").split(","),
        "NODE_RPC_URL": _env("NODE_RPC_URL", "http://127.0.0.1:18332"),
        "NODE_RPC_USER": _env("NODE_RPC_USER", "raregen"),
        "NODE_RPC_PASSWORD": _env("NODE_RPC_PASSWORD", ""),
        "NODE_RPC_FILE": _env("NODE_RPC_FILE", str(inst / "node" / "rpc.json")),
        "ARC_URL": _env("ARC_URL"),
        "ARC_API_KEY": _env("ARC_API_KEY"),
        "WOC_URL": _env("WOC_URL"),
        "WOC_NETWORK": _env("WOC_NETWORK", "main"),
        # fees and pool (DESIGN.md §4)
        "FEE_RATE_SAT_PER_KB": _int("FEE_RATE_SAT_PER_KB", 100),
        "FEE_RATE_FLOOR_SAT_PER_KB": _int("FEE_RATE_FLOOR_SAT_PER_KB", 1),
        "RESERVATION_TIMEOUT_SECONDS": _int("RESERVATION_TIMEOUT_SECONDS", 300),
        "MAX_ATTEMPTS": _int("MAX_ATTEMPTS", 8),
        "POOL_TARGET_COUNT": _int("POOL_TARGET_COUNT", 200),
        "POOL_UTXO_SATS": _int("POOL_UTXO_SATS", 0),  # 0: derived from fee rate and payload limit
        "POOL_LOW_WATER": _int("POOL_LOW_WATER", 50),
        "MAX_UNCONFIRMED_DEPTH": _int("MAX_UNCONFIRMED_DEPTH", 20),
        # intake (DESIGN.md §2)
        "MAX_PAYLOAD_BYTES": payload_limit,
        "MAX_CONTENT_LENGTH": payload_limit * 2 + 4096,
        "MAX_CLOCK_SKEW_SECONDS": _int("MAX_CLOCK_SKEW_SECONDS", 60),
        "MAX_TTL_SECONDS": _int("MAX_TTL_SECONDS", 3600),
        "PUBLISH_RATE_LIMIT": _env("PUBLISH_RATE_LIMIT", "6000 per minute"),
        # modes: immediate | batch | packed (DESIGN.md §6)
        "PUBLISH_MODE": _env("PUBLISH_MODE", "immediate"),
        "BATCH_SIZE": _int("BATCH_SIZE", 500),
        "BATCH_WINDOW_SECONDS": _int("BATCH_WINDOW_SECONDS", 5),
        # periodic tasks
        "CONFIRM_INTERVAL_SECONDS": _int("CONFIRM_INTERVAL_SECONDS", 5),
        "REAPER_INTERVAL_SECONDS": _int("REAPER_INTERVAL_SECONDS", 30),
        "DEV_MINE_INTERVAL_SECONDS": _int("DEV_MINE_INTERVAL_SECONDS", 5),
        # wallet / web
        "SERVICE_TOKEN": _env("SERVICE_TOKEN"),
        "PUBLISHER_URL": _env("PUBLISHER_URL"),
        "PUBLIC_BASE_URL": _env("PUBLIC_BASE_URL", ""),
        "MAIL_SERVER": _env("MAIL_SERVER"),
        "MAIL_PORT": _int("MAIL_PORT", 25),
        "MAIL_DEFAULT_SENDER": _env("MAIL_SENDER", "RareGen <no-reply@raregen.local>"),
        "SESSION_COOKIE_SECURE": _bool("COOKIE_SECURE", False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
    }
