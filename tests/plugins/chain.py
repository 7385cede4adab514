"""The app wired to the real regtest SV Node, for the tests that publish on chain (batch, packed,
proofs, audit events, webhooks): registered for every test folder by ``tests/conftest.py``.

* ``chain_app``: the session's ``app`` with the node's RPC, a funded pool of 12 UTXOs and RQ
  queues of its own; the settings are restored afterwards.
* ``author``: a registered publishing key (``coincurve.PrivateKey``) on ``chain_app``.
"""

from __future__ import annotations

import uuid

import coincurve
import pytest

from raregen.db import db, transaction
from raregen.publish import funding, keys


def wire_to_node(app, regtest_node, *, utxos: int, satoshis: int, queue_prefix: str) -> None:
    """Point ``app`` at the regtest node and fund a pool of ``utxos`` outputs of ``satoshis``
    each (confirmed, depth 0), with RQ queues of its own (``<queue_prefix>-<random>``): a
    worker another test left behind does not take its jobs. The session app's settings are
    put back after each test by tests/plugins/db.py."""
    app.config.update(
        NODE_RPC_URL=regtest_node.url,
        NODE_RPC_USER=regtest_node.user,
        NODE_RPC_PASSWORD=regtest_node.password,
        POOL_TARGET_COUNT=utxos,
        POOL_LOW_WATER=0,
        QUEUE_NAME=f"{queue_prefix}-{uuid.uuid4().hex[:10]}",
    )
    app.extensions.pop("raregen.services", None)
    funding.fund_dev(50_000_000)
    funding.split(utxos, satoshis)
    regtest_node.mine(1)
    with transaction():
        db.session.execute(db.text("UPDATE utxos SET depth = 0"))


@pytest.fixture
def chain_app(app, regtest_node):
    """The app wired to the regtest node, with a funded pool of 12 UTXOs and RQ queues of its
    own (Redis is shared with other test runs: nothing here flushes it)."""
    saved = dict(app.config)
    wire_to_node(app, regtest_node, utxos=12, satoshis=40_000, queue_prefix="test-batch")
    yield app
    _drop_queues(app)
    app.config.clear()
    app.config.update(saved)  # the app is shared by the session: leave its settings as found
    app.extensions.pop("raregen.services", None)


def _drop_queues(app) -> None:
    from rq import Queue

    from raregen.queue import batch_queue_name, periodic_queue_name, redis_connection

    conn = redis_connection()
    name = app.config["QUEUE_NAME"]
    for qname in (name, periodic_queue_name(name), batch_queue_name(name)):
        Queue(qname, connection=conn).empty()
    conn.delete(f"raregen:{name}:batch-pending")
    conn.delete(f"rq:job:{name}-batch-collector")


@pytest.fixture
def author(chain_app):
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    return key
