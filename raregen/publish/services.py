"""Process-wide collaborators of the publisher, built from the app's configuration once.

* :func:`server_wallet`: the server key (docs/PROTOCOL.md §4) from ``SERVER_WIF`` or the key file
  (created with mode 0600 in development). The WIF never reaches a log or a response.
* :func:`broadcaster`: the configured backends in failover order (docs/PROTOCOL.md §5).
* :func:`fee_rate`: satoshis per 1000 bytes, from configuration or the broadcaster's policy,
  never below the configured floor.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import coincurve
from flask import Flask
from flask.globals import app_ctx

from raregen.chain.rpc import NodeRPC
from raregen.proofs import receipt
from raregen.publish import pool
from raregen.publish.broadcasters import build_chain
from raregen.publish.broadcasters.base import Broadcaster
from raregen.publish.txbuilder import ServerWallet
from raregen.server_key import write_key_file

_EXT = "raregen.services"

log = logging.getLogger(__name__)


def app_object() -> Flask:
    """The Flask app of the current app context, itself rather than the ``current_app`` proxy:
    what is built here keeps it in closures that run outside the context (broadcaster
    threads, :func:`_pool_prevouts`). ``flask.globals.app_ctx`` is the current app context
    (the name Flask 2.2 gave it when it retired its context stacks).

    Raises:
        RuntimeError: outside an app context.
    """
    return app_ctx.app


def _cache(app: Flask) -> dict[str, Any]:
    return app.extensions.setdefault(_EXT, {})


def load_or_create_wif(path: Path, network: str, *, create: bool = True) -> str:
    """Read the server WIF from ``path``, creating it (mode 0600) if it does not exist.

    Raises:
        FileNotFoundError: no file and ``create`` is false (production: keys are made only
            by ``flask --app app server-key new``).
    """
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise FileNotFoundError(f"server key file {path} does not exist")
    try:
        return write_key_file(path, network).to_wif()
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()


def server_wallet(app: Flask | None = None) -> ServerWallet:
    """The server's wallet (cached per app)."""
    app = app or app_object()
    cache = _cache(app)
    if "wallet" not in cache:
        cfg = app.config
        wif = cfg.get("SERVER_WIF") or load_or_create_wif(
            Path(cfg["SERVER_KEY_FILE"]),
            cfg["NETWORK"],
            create=cfg.get("ENV_NAME") != "production",
        )
        cache["wallet"] = ServerWallet.from_wif(wif, network=cfg["NETWORK"])
    return cache["wallet"]  # type: ignore[no-any-return]


def node_rpc(app: Flask | None = None) -> NodeRPC:
    """JSON-RPC client of the SV Node: settings, else the dev node's ``rpc.json`` file."""
    app = app or app_object()
    cache = _cache(app)
    if "rpc" not in cache:
        cfg = app.config
        url, user, password = cfg["NODE_RPC_URL"], cfg["NODE_RPC_USER"], cfg["NODE_RPC_PASSWORD"]
        rpc_file = Path(cfg["NODE_RPC_FILE"])
        if not password and rpc_file.exists():
            info = json.loads(rpc_file.read_text())
            url, user, password = info["url"], info["user"], info["password"]
        cache["rpc"] = NodeRPC(url, user, password)
    return cache["rpc"]  # type: ignore[no-any-return]


def broadcaster(app: Flask | None = None) -> Broadcaster:
    """The configured broadcaster chain (``BROADCASTERS``, in failover order)."""
    app = app or app_object()
    cache = _cache(app)
    if "broadcaster" not in cache:
        config = dict(app.config)
        # ARC gets Extended Format transactions: every input is a pool UTXO (docs/PROTOCOL.md §5)
        config.setdefault("ARC_PREVOUTS", lambda outpoints: _pool_prevouts(app, outpoints))
        cache["broadcaster"] = build_chain(config, lambda: node_rpc(app))
    return cache["broadcaster"]  # type: ignore[no-any-return]


def _pool_prevouts(app: Flask, outpoints: list[tuple[str, int]]) -> dict[Any, Any]:
    with app.app_context():
        return pool.prevouts(outpoints)


def fee_rate(app: Flask | None = None) -> int:
    """The fee rate to pay, in satoshis per 1000 bytes (docs/PROTOCOL.md §4).

    ``FEE_RATE_SOURCE``:

    * ``config`` (default): ``FEE_RATE_SAT_PER_KB``;
    * ``policy``: the broadcaster's own minimum (ARC ``/v1/policy`` ``miningFee``, the SV
      node's ``minminingtxfee``), asked at most once per ``FEE_RATE_CACHE_SECONDS`` per
      process; ``FEE_RATE_SAT_PER_KB`` while the backends cannot say (None or unreachable).
      Asking is an explicit call here, never a library's implicit network default.

    Either way the result is never below ``FEE_RATE_FLOOR_SAT_PER_KB``.
    """
    app = app or app_object()
    cfg = app.config
    floor = int(cfg["FEE_RATE_FLOOR_SAT_PER_KB"])
    rate = int(cfg["FEE_RATE_SAT_PER_KB"])
    if str(cfg.get("FEE_RATE_SOURCE") or "config").lower() == "policy":
        rate = _policy_rate(app, default=rate)
    return max(rate, floor)


def _policy_rate(app: Flask, *, default: int) -> int:
    cache = _cache(app)
    now = time.monotonic()
    cached: tuple[float, int | None] | None = cache.get("fee_policy")
    if cached is None or now - cached[0] >= float(app.config["FEE_RATE_CACHE_SECONDS"]):
        try:
            asked: int | None = broadcaster(app).fee_rate_sat_per_kb()
        except Exception as exc:  # a backend bug must not stop publishing: use the default
            log.warning("fee policy query failed: %s", exc.__class__.__name__)
            asked = None
        # an unknown answer is cached too, so an unreachable policy endpoint is not asked
        # on every transaction
        cached = (now, int(asked) if asked is not None else None)
        cache["fee_policy"] = cached
    return default if cached[1] is None else cached[1]


def app_receipt_key(app: Flask | None = None) -> coincurve.PrivateKey:
    """The app's receipt key (cached per app): ``RECEIPT_WIF``, else ``RECEIPT_KEY_FILE``.

    Raises:
        FileNotFoundError: production, and no key file (keys are made only elsewhere).
        RuntimeError: the receipt key is the server's funds key (refused: a receipt key may
            be kept online and handed to more services than the key that spends).
        ValueError: ``RECEIPT_WIF`` is not a WIF.
    """
    app = app or app_object()
    cache = app.extensions.setdefault("raregen.receipt", {})
    key = cache.get("key")
    if key is None:
        cfg = app.config
        if cfg.get("RECEIPT_WIF"):
            # bsv-sdk reads the WIF (imported here: only this branch needs it)
            from bsv import PrivateKey

            key = coincurve.PrivateKey(PrivateKey(cfg["RECEIPT_WIF"]).serialize())
        elif cfg.get("ENV_NAME") == "production":
            # production never makes keys on its own (raregen.config.check_startup refuses
            # to start without one; `flask --app app server-key new --receipt` makes it)
            secret = Path(cfg["RECEIPT_KEY_FILE"]).read_text().strip()
            key = coincurve.PrivateKey(bytes.fromhex(secret))
        else:
            key = receipt.load_or_create_key(Path(cfg["RECEIPT_KEY_FILE"]))
        funds = server_wallet(app).public_key_hex
        if key.public_key.format(compressed=True).hex() == funds:
            raise RuntimeError("the receipt key must not be the server's funds key")
        cache["key"] = key
    return key  # type: ignore[no-any-return]
