"""Start-up recovery of ``queued`` jobs (the cron process's first sweep), its quiet shutdown,
and ``/healthz``'s worker count, on both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import NamedTuple

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.cron import CronScheduler

from raregen import ROOT
from raregen.db import db, transaction, utcnow
from raregen.publish import tasks
from raregen.publish.models import QUEUED, PublishJob
from raregen.queue import publish_queue, redis_connection, rq_job_id
from raregen_dev.devnet import free_port
from tests.plugins.wait import wait_until


def add_queued(age_seconds: float) -> str:
    """A ``queued`` job row last updated ``age_seconds`` ago, with no RQ job."""
    job_id = str(uuid.uuid4())
    at = utcnow() - timedelta(seconds=age_seconds)
    with transaction():
        db.session.add(
            PublishJob(
                job_id=job_id,
                pubkey="02" + "11" * 32,
                nonce=uuid.uuid4().hex,
                signed_payload="{}",
                signature="AA==",
                status=QUEUED,
                created_at=at,
                updated_at=at,
            )
        )
    return job_id


def rq_job_exists(job_id: str) -> bool:
    from rq.job import Job

    return bool(Job.exists(rq_job_id(job_id), connection=redis_connection()))


@pytest.fixture
def clean_redis(app):
    redis_connection().flushdb()
    yield app
    redis_connection().flushdb()


def test_recover_at_start_reenqueues_jobs_queued_before_the_restart(clean_redis):
    old = add_queued(600)  # queued long before the restart: Redis (empty now) lost its job
    recent = add_queued(10)  # submitted seconds before a quick stop and start
    fresh = add_queued(0)  # stored this instant: its web process is enqueueing it
    assert not rq_job_exists(old)
    assert tasks.recover_at_start(pause_seconds=0) == 2
    assert rq_job_exists(old) and rq_job_exists(recent) and not rq_job_exists(fresh)
    assert rq_job_id(old) in publish_queue().job_ids
    assert tasks.recover_at_start(pause_seconds=0) == 0  # carried now: not enqueued twice


def test_recover_at_start_does_nothing_in_batch_mode(clean_redis, monkeypatch):
    monkeypatch.setitem(clean_redis.config, "PUBLISH_MODE", "batch")
    old = add_queued(600)
    assert tasks.recover_at_start(pause_seconds=0) == 0  # the collector reads the database
    assert not rq_job_exists(old)


def _cron_env(app) -> dict[str, str]:
    cfg = app.config
    env = dict(os.environ)
    env.update(
        RAREGEN_DATABASE_URL=cfg["SQLALCHEMY_DATABASE_URI"],
        RAREGEN_REDIS_URL=cfg["REDIS_URL"],
        RAREGEN_SERVER_WIF=cfg["SERVER_WIF"],
        RAREGEN_INSTANCE_PATH=app.instance_path,
        RAREGEN_SECRET_KEY="test-secret",
        RAREGEN_PUBLISH_MODE="immediate",
        RAREGEN_ENV="test",  # no production checks (mail server, SQLite shared with tests)
    )
    return env


def test_cron_process_reenqueues_at_start_and_stops_quietly(clean_redis):
    old = add_queued(600)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--cron"],
        env=_cron_env(clean_redis),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not rq_job_exists(old):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the cron process did not re-enqueue the job"
            time.sleep(0.2)
        # into the scheduler's loop: it registers once its signal handlers are in place
        wait_until(
            lambda: CronScheduler.all(connection=publish_queue().connection),
            20,
            "the cron scheduler registered",
        )
        # Ctrl-C in scripts/run: SIGINT to the process group, then SIGTERM from the run script
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "StopRequested" not in err, err


# ---------------------------------------------------------------------------------------
# /healthz: live workers
# ---------------------------------------------------------------------------------------


def test_healthz_is_503_with_queued_jobs_and_no_worker(clean_redis):
    from rq import SimpleWorker

    client = clean_redis.test_client()  # a direct loopback client: sees the details
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json["status"] == "ok" and "reasons" not in resp.json
    assert resp.json["details"]["workers"] == 0  # nothing waits: fine

    add_queued(0)
    resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.json
    assert body["status"] == "unavailable" and body["reasons"] == [
        "no live workers while jobs wait"
    ]
    details = body["details"]
    assert details["workers"] == 0 and details["jobs"]["queued"] == 1
    assert {"pool", "poolHealthy", "jobs", "queue"} <= set(details)

    worker = SimpleWorker([publish_queue()], connection=redis_connection())
    worker.register_birth()
    try:
        resp = client.get("/healthz")
        assert resp.status_code == 200
        assert resp.json["status"] == "ok" and resp.json["details"]["workers"] == 1
        assert "reasons" not in resp.json
    finally:
        worker.register_death()
    assert client.get("/healthz").status_code == 503  # a cleanly stopped worker is gone

    # a worker killed without clean-up counts until its hash expires
    worker = SimpleWorker([publish_queue()], connection=redis_connection())
    worker.register_birth()
    redis_connection().delete(worker.key)  # its hash expired
    assert client.get("/healthz").json["details"]["workers"] == 0


class OwnRedis(NamedTuple):
    proc: subprocess.Popen
    url: str


@pytest.fixture
def own_redis(tmp_path) -> Iterator[OwnRedis]:
    """A redis-server of this test's own on a free loopback port (no persistence); stopped
    by its pid at the end if the test has not stopped it."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def up() -> bool:
        assert proc.poll() is None, "redis-server exited"
        try:
            return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
        except RedisConnectionError:
            return False

    try:
        wait_until(up, 20, "the test's redis-server")
        yield OwnRedis(proc, url)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_healthz_workers_is_null_when_redis_is_down(clean_redis, monkeypatch, own_redis):
    # the app on a Redis of its own, which is then really stopped
    monkeypatch.setitem(clean_redis.config, "REDIS_URL", own_redis.url)
    add_queued(0)
    client = clean_redis.test_client()
    resp = client.get("/healthz")
    assert resp.status_code == 503 and resp.json["details"]["workers"] == 0  # Redis up
    own_redis.proc.terminate()
    assert own_redis.proc.wait(10) == 0
    resp = client.get("/healthz")
    assert resp.status_code == 200  # unknown is not zero
    assert resp.json["status"] == "ok" and resp.json["details"]["workers"] is None


# ---------------------------------------------------------------------------------------
# /healthz: what the public sees, what needs the metrics token
# ---------------------------------------------------------------------------------------

TOKEN = "health-token-0123456789abcdef"


def _health(app, ip: str = "127.0.0.1", **headers: str):
    return app.test_client().get("/healthz", environ_base={"REMOTE_ADDR": ip}, headers=headers)


def _public(resp) -> dict:
    """The body, checked to say only ok / not ok and why."""
    body = resp.json
    assert set(body) <= {"status", "reasons"}, body
    text = resp.get_data(as_text=True)
    assert not any(ch.isdigit() for ch in text), text  # no counts, no satoshis
    return dict(body)


def test_healthz_public_answer_has_no_numbers(clean_redis, monkeypatch):
    monkeypatch.setitem(clean_redis.config, "METRICS_TOKEN", None)
    for ip, headers in (
        ("203.0.113.7", {}),
        ("10.0.0.5", {"Authorization": f"Bearer {TOKEN}"}),  # no token is configured
        ("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"}),  # a proxy on this host
    ):
        resp = _health(clean_redis, ip, **headers)
        assert resp.status_code == 200 and _public(resp) == {"status": "ok"}
    add_queued(0)
    resp = _health(clean_redis, "203.0.113.7")
    assert resp.status_code == 503
    assert _public(resp) == {
        "status": "unavailable",
        "reasons": ["no live workers while jobs wait"],
    }


def test_healthz_details_need_the_token_when_one_is_set(clean_redis, monkeypatch):
    monkeypatch.setitem(clean_redis.config, "METRICS_TOKEN", TOKEN)
    # loopback without the token, or with another one, gets the public answer (not a 401:
    # a load balancer sends no token)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        resp = _health(clean_redis, "127.0.0.1", **headers)
        assert resp.status_code == 200 and _public(resp) == {"status": "ok"}
    for ip in ("127.0.0.1", "203.0.113.7"):
        resp = _health(clean_redis, ip, Authorization=f"Bearer {TOKEN}")
        assert resp.status_code == 200 and resp.json["status"] == "ok"
        details = resp.json["details"]
        assert {"pool", "poolHealthy", "jobs", "queue", "workers"} <= set(details)
        assert "available_satoshis" in details["pool"]


def test_healthz_database_down_says_so_in_words(clean_redis, monkeypatch):
    from raregen.db import db as database

    def broken(*args, **kwargs):
        raise ConnectionError("database down")

    monkeypatch.setattr(database.session, "scalar", broken)
    for ip in ("203.0.113.7", "127.0.0.1"):
        resp = _health(clean_redis, ip)
        assert resp.status_code == 503
        assert _public(resp) == {"status": "unavailable", "reasons": ["database unreachable"]}
