"""JSON log lines with request and job ids (raregen.logs), and one cron leader at a time
(worker.py: the Redis lock ``<QUEUE_NAME>:cron-leader``)."""

from __future__ import annotations

import json
import logging
import threading
import uuid

import pytest
import redis

import worker
from raregen import logs


def test_request_id_taken_when_sane_else_made() -> None:
    assert logs.request_id_from("abc-123_X.y") == "abc-123_X.y"
    for bad in (None, "", "a b", "x" * 129, "<script>", "id\r\nSet-Cookie: a=b"):
        made = logs.request_id_from(bad)
        assert made != bad and len(made) == 32 and int(made, 16) >= 0


def test_json_lines_carry_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    record = logging.LogRecord(
        "raregen.x", logging.INFO, __file__, 1, "publish job %s", ("j1",), None
    )
    record.action = "sent"
    logs.bind(job_id="j1", request_id="r1")
    try:
        line = json.loads(formatter.format(record))
    finally:
        logs.unbind()
    assert line == {
        "event": "publish job j1",
        "job_id": "j1",
        "request_id": "r1",
        "level": "info",
        "action": "sent",
    }
    assert logs.current_request_id() is None


def test_app_echoes_the_request_id(app) -> None:
    client = app.test_client()
    resp = client.get("/v1/ping", headers={"X-Request-ID": "nginx-given-1"})
    assert resp.headers["X-Request-ID"] == "nginx-given-1"
    made = client.get("/v1/ping").headers["X-Request-ID"]
    assert len(made) == 32


def test_a_second_cron_stands_by_until_the_leader_goes(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    name = f"test-{uuid.uuid4().hex}:cron-leader"
    first = conn.lock(name, timeout=3, thread_local=False)
    second = conn.lock(name, timeout=3, thread_local=False)
    stop = threading.Event()
    assert worker.wait_for_lead(first, stop, poll=0.1)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(worker.wait_for_lead(second, stop, 0.1)))
    waiter.start()
    renewing = threading.Event()
    lost = threading.Event()
    worker.keep_lead(first, renewing, lost.set)
    waiter.join(4)  # longer than the TTL: the renewals keep the lead
    assert waiter.is_alive() and not got and not lost.is_set()
    renewing.set()
    first.release()
    waiter.join(5)
    assert got == [True]
    # the old leader's renewal now finds the lock taken: it is told it lost the lead
    renewing2 = threading.Event()
    worker.keep_lead(first, renewing2, lost.set)
    assert lost.wait(3)
    renewing2.set()
    second.release()
    # a standby stops when asked
    holder = conn.lock(name, timeout=3, thread_local=False)
    assert holder.acquire(blocking=False)
    stop_now = threading.Event()
    stop_now.set()
    assert worker.wait_for_lead(second, stop_now, 0.1) is False
    holder.release()
