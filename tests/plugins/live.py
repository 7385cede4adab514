"""The real app served on a loopback port for HTTP clients (schemathesis, the ``raregen``
command): registered by ``tests/conftest.py``, so a test module names ``live_api`` as a parameter.

* ``live_api`` (module): ``create_app`` with the migrations applied on a fresh PostgreSQL
  database (tests/plugins/db.py; SQLite when PostgreSQL is absent and services are not
  required), the session's Redis, ``ENV_NAME`` test, the regtest node's RPC and a pool
  funded and split from it, ``python worker.py`` (the real RQ worker) on a queue of its own,
  the app served by werkzeug in a thread, with a service token for the internal API.
  Confirmations are driven by the tests (:meth:`LiveAPI.settle`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.db import services_required
from tests.plugins.procs import stop_worker

REPO = Path(__file__).resolve().parents[2]


@dataclass
class LiveAPI:
    """The running app: ``base_url``, the Flask ``app`` (database look-ups), the node, the
    ``service_token`` of the internal API."""

    base_url: str
    app: Any
    node: Any
    service_token: str
    instance: Path

    def settle(self, blocks: int = 1) -> int:
        """Mine ``blocks`` and mark mined ``sent`` jobs confirmed; returns how many."""
        from raregen.publish import confirm

        self.node.mine(blocks)
        with self.app.app_context():
            return confirm.confirm_sent()

    def register_key(self, pubkey_hex: str, credits: int | None = None) -> None:
        """Register an operator key (``flask keys add``)."""
        from raregen.publish import keys

        with self.app.app_context():
            keys.register_key(pubkey_hex, credits=credits)


def throwaway_database(tmp: Path, label: str) -> tuple[str, str | None]:
    """PostgreSQL (a fresh database ``raregen_<label>_...``) when reachable, else a SQLite file
    in ``tmp``; under CI a missing PostgreSQL fails the test. Returns the URL and the
    PostgreSQL database name to drop afterwards (None for SQLite)."""
    from tests.plugins import db as dbplugin

    try:
        import psycopg

        psycopg.connect(dbplugin.PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error:
        if services_required():
            pytest.fail(
                f"required service missing: PostgreSQL at {dbplugin.PG_ADMIN_URL}", pytrace=False
            )
        return f"sqlite:///{tmp / (label + '.sqlite')}", None
    name = f"raregen_{label}_{uuid.uuid4().hex[:10]}"
    return dbplugin._pg_database(name), name


def serve(app: Any) -> tuple[Any, str]:
    """Serve ``app`` with werkzeug on a free loopback port in a daemon thread; returns the
    server (``shutdown()`` it) and its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="live-app", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


@contextmanager
def funded_app_with_worker(
    url: str,
    pg_name: str | None,
    instance: Path,
    redis_url: str,
    config: dict[str, Any],
    regtest_node: Any,
    *,
    utxos: int,
    actor: str,
) -> Iterator[Any]:
    """The migrated app of ``config`` with a pool of ``utxos`` confirmed UTXOs funded from
    the regtest node, and one real RQ worker process (``worker.py``) on its queue; on exit
    the worker is stopped (SIGTERM, then SIGKILL), the engine disposed and the PostgreSQL
    database dropped."""
    from raregen.publish import funding
    from tests.plugins import db as dbplugin

    # rate limits in the test Redis (dbplugin.ratelimit_config), empty for this app
    dbplugin.clear_rate_limits(redis_url)
    app = dbplugin._migrated_app(url, instance, redis_url, config)
    with app.app_context():
        funding.fund_dev(50_000_000)
        funding.split(utxos, funding.default_utxo_sats(), actor=actor)
    regtest_node.mine(1)
    env = {
        **os.environ,
        "RAREGEN_INSTANCE_PATH": str(instance),
        "RAREGEN_DATABASE_URL": url,
        "RAREGEN_REDIS_URL": redis_url,
        "RAREGEN_QUEUE_NAME": config["QUEUE_NAME"],
        "RAREGEN_SERVER_WIF": config["SERVER_WIF"],
        "RAREGEN_NODE_RPC_URL": regtest_node.url,
        "RAREGEN_NODE_RPC_USER": regtest_node.user,
        "RAREGEN_NODE_RPC_PASSWORD": regtest_node.password,
        "RAREGEN_SECRET_KEY": config["SECRET_KEY"],
        "RAREGEN_ENV": "test",
    }
    log = open(instance / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, str(REPO / "worker.py")],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a process group of its own, stopped as one
    )
    try:
        yield app
    finally:
        stop_worker(worker, grace=20)  # and RQ's scheduler child: the worker's process group
        log.close()
        from raregen.db import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if pg_name:
            dbplugin._drop_pg_database(pg_name)


@pytest.fixture(scope="module")
def live_api(
    regtest_node: Any, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveAPI]:
    from raregen.publish.txbuilder import ServerWallet

    instance = tmp_path_factory.mktemp("live-instance")
    url, pg_name = throwaway_database(instance, "live")
    service_token = uuid.uuid4().hex
    config = {
        "TESTING": False,
        "ENV_NAME": "test",
        "SECRET_KEY": "live-" + uuid.uuid4().hex,
        "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
        "QUEUE_NAME": "live-" + uuid.uuid4().hex[:8],
        "NODE_RPC_URL": regtest_node.url,
        "NODE_RPC_USER": regtest_node.user,
        "NODE_RPC_PASSWORD": regtest_node.password,
        "SERVICE_TOKEN": service_token,
        "PUBLISH_MODE": "immediate",
    }
    with funded_app_with_worker(
        url, pg_name, instance, redis_url, config, regtest_node, utxos=8, actor="live-tests"
    ) as app:
        server, base_url = serve(app)
        try:
            yield LiveAPI(
                base_url=base_url,
                app=app,
                node=regtest_node,
                service_token=service_token,
                instance=instance,
            )
        finally:
            server.shutdown()
