"""A worker killed with SIGKILL right after committing a job's state change, before any
delivery: the event is in the outbox, and a restarted worker delivers it (nothing lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

import coincurve
from sqlalchemy import select, update

from raregen import ROOT, signing
from raregen.db import db, transaction, utcnow
from raregen.publish import keys
from raregen.publish.models import PublishJob
from raregen.queue import redis_connection
from raregen.webhooks.commands import make_command
from raregen.webhooks.models import WebhookEvent
from tests.webhook_receiver import Receiver


def child_env(app: Any) -> dict[str, str]:
    """The environment of a worker process on the test app's database and Redis."""
    cfg = app.config
    env = dict(os.environ)
    env.update(
        RAREGEN_ENV="test",
        RAREGEN_DATABASE_URL=cfg["SQLALCHEMY_DATABASE_URI"],
        RAREGEN_REDIS_URL=cfg["REDIS_URL"],
        RAREGEN_SERVER_WIF=cfg["SERVER_WIF"],
        RAREGEN_SECRET_KEY="test-secret",
        RAREGEN_INSTANCE_PATH=app.instance_path,
        RAREGEN_QUEUE_NAME=f"whcrash{os.getpid()}",
        RAREGEN_WEBHOOK_ALLOW_PRIVATE_URLS="true",
        RAREGEN_ROLE="publisher",
        PYTHONPATH=str(ROOT),
    )
    return env


def test_sigkill_after_commit_loses_nothing(pg_app) -> None:
    client = pg_app.test_client()
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    with Receiver() as receiver:
        resp = client.post(
            "/v1/webhooks", json=make_command(key, "webhooks.create", {"url": receiver.url})
        )
        assert resp.status_code == 201, resp.get_json()
        receiver.secret = resp.get_json()["endpoint"]["secret"]
        txid = "ee" * 32
        jobs = []
        for i in range(3):
            body = signing.make_request(key, {"n": i})
            jobs.append(client.post("/v1/publish", json=body).get_json()["jobId"])
        with transaction():
            db.session.execute(
                update(PublishJob)
                .where(PublishJob.job_id.in_(jobs))
                .values(status="sent", txid=txid, vout=0, sent_at=utcnow())
            )
        script = str(ROOT / "tests" / "webhook_crash_child.py")
        env = child_env(pg_app)
        child = subprocess.Popen(
            [sys.executable, script, "commit", txid], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            line = child.stdout.readline() if child.stdout else ""
            assert line.startswith("COMMITTED 3"), line
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        # committed, not delivered: the events wait in the outbox
        assert receiver.events == []
        db.session.remove()
        with transaction():
            pending = db.session.scalars(select(WebhookEvent.status)).all()
        assert pending == ["pending"] * 3
        # the nudge the dead worker enqueued is gone too (Redis emptied): only the database
        # carries the events to the restarted worker
        redis_connection().flushdb()
        done = subprocess.run(
            [sys.executable, script, "deliver"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        events = receiver.wait_for(3)
        assert receiver.rejected == []
        assert sorted(e["data"]["jobId"] for e in events) == sorted(jobs)
        assert {e["type"] for e in events} == {"job.confirmed"}
        assert {e["data"]["blockHeight"] for e in events} == {42}
