"""Webhooks (docs/API.md "Webhooks"): events written in the transaction of the job's state
change, delivered to a real receiver on loopback that checks every Standard Webhooks
signature with the ``standardwebhooks`` package; order per job, retries with backoff, giving
up, disabling a failing endpoint, SSRF rules, the signed command API, the operator commands,
and no cost for keys without webhooks."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import coincurve
import pytest
from sqlalchemy import func, select, update

from raregen import signing
from raregen.db import db, transaction, utcnow
from raregen.publish import confirm, keys, pipeline
from raregen.publish.broadcasters.base import BroadcastResult, Outcome, TxStatus
from raregen.publish.models import PublishJob, RegisteredKey
from raregen.webhooks import delivery, service, urls
from raregen.webhooks.commands import make_command
from raregen.webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookEvent
from tests.webhook_receiver import Receiver


def command(client: Any, key: coincurve.PrivateKey, op: str, args: dict | None = None, **kw: Any):
    return client.post("/v1/webhooks", json=make_command(key, op, args, **kw))


def publish(client: Any, key: coincurve.PrivateKey, title: str = "A work") -> str:
    resp = client.post("/v1/publish", json=signing.make_request(key, {"title": title}))
    assert resp.status_code == 202, resp.get_json()
    return str(resp.get_json()["jobId"])


@pytest.fixture
def author(app):
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    return key


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def subscribe(client: Any, key: coincurve.PrivateKey, receiver: Receiver) -> dict[str, Any]:
    resp = command(client, key, "webhooks.create", {"url": receiver.url, "description": "t"})
    assert resp.status_code == 201, resp.get_json()
    endpoint = resp.get_json()["endpoint"]
    assert endpoint["secret"].startswith("whsec_")
    receiver.secret = endpoint["secret"]
    return endpoint


def fake_sent(job_id: str, txid: str) -> None:
    """Put a job in ``sent`` with ``txid`` (what a broadcast would have done)."""
    with transaction():
        db.session.execute(
            update(PublishJob)
            .where(PublishJob.job_id == job_id)
            .values(status="sent", txid=txid, vout=0, sent_at=utcnow())
        )


def fail_one(job_id: str) -> None:
    """The real failure path of the immediate pipeline: claim, then a rejected broadcast."""
    job = pipeline.claim(job_id)
    assert job is not None
    step = pipeline.settle(
        job_id, BroadcastResult("", Outcome.REJECTED, "fee too low", "test"), lease=job.lease_until
    )
    assert step.action == "failed"


# ---------------------------------------------------------------------------------------


def test_no_webhooks_no_flag_no_events(client, author) -> None:
    job_id = publish(client, author)
    with transaction():
        assert (
            db.session.scalar(select(PublishJob.notify).where(PublishJob.job_id == job_id)) is False
        )
    fail_one(job_id)
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_failed_event_signed_and_delivered(client, author, receiver) -> None:
    subscribe(client, author, receiver)
    with transaction():
        assert db.session.scalar(select(RegisteredKey.webhooks)) is True
    job_id = publish(client, author)
    fail_one(job_id)
    counts = delivery.deliver_due()
    assert counts["delivered"] == 1
    events = receiver.wait_for(1)
    assert receiver.rejected == []
    assert [e["type"] for e in events] == ["job.failed"]
    data = events[0]["data"]
    assert data["jobId"] == job_id and data["status"] == "failed"
    assert data["errorCode"] == "BROADCAST_REJECTED"
    assert events[0]["id"].startswith("msg_")


def test_sent_then_confirmed_in_order_per_job(client, author, receiver) -> None:
    subscribe(client, author, receiver)
    jobs = [publish(client, author, f"w{i}") for i in range(3)]
    # state changes of the real confirmation path; the sent events are written by hand here
    # (the node tests drive the real broadcast), through the same outbox function
    from raregen.webhooks import outbox

    for i, job_id in enumerate(jobs):
        fake_sent(job_id, f"{i:064x}")
        with transaction():
            job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id))
            outbox.emit(outbox.SENT, [job])
    # the first job's "sent" delivery fails once: its "confirmed" must wait behind it
    receiver.status = 503
    delivery.deliver_due()
    receiver.status = 204
    for i, _job_id in enumerate(jobs):
        with transaction():
            confirm.mark_confirmed(f"{i:064x}", TxStatus("confirmed", f"{i:064x}", "ab" * 32, 7))
    with transaction():  # the retries are due now
        db.session.execute(update(WebhookEvent).values(next_attempt_at=utcnow()))
    delivery.deliver_due()
    events = receiver.wait_for(6)
    assert receiver.rejected == []
    for job_id in jobs:
        kinds = [e["type"] for e in events if e["data"]["jobId"] == job_id]
        assert kinds == ["job.sent", "job.confirmed"], receiver.dump()
    confirmed = [e for e in events if e["type"] == "job.confirmed"]
    assert all(e["data"]["blockHeight"] == 7 for e in confirmed)
    # same webhook-id on the retry: one delivered id per event
    assert len({e["id"] for e in events}) == 6


def test_retry_backoff_give_up_and_disable(client, author, receiver, app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_DISABLE_AFTER_FAILURES", 3)
    endpoint = subscribe(client, author, receiver)
    receiver.status = 500
    job_id = publish(client, author)
    fail_one(job_id)
    t0 = utcnow()
    assert delivery.deliver_due()["retry"] == 1
    with transaction():
        event = db.session.scalar(select(WebhookEvent))
        assert event.status == "pending" and event.attempts == 1
        delay = (event.next_attempt_at - t0).total_seconds()
        assert 4 <= delay <= 6  # WEBHOOK_RETRY_BASE_SECONDS
    assert delivery.deliver_due()["retry"] == 0  # not due yet
    with transaction():
        db.session.execute(update(WebhookEvent).values(next_attempt_at=utcnow()))
    delivery.deliver_due()
    with transaction():
        event = db.session.scalar(select(WebhookEvent))
        delay = (event.next_attempt_at - utcnow()).total_seconds()
        assert 8 <= delay <= 11  # doubled
        # past WEBHOOK_RETRY_HOURS: the next failure gives up
        event.created_at = utcnow() - timedelta(hours=25)
        event.next_attempt_at = utcnow()
    assert delivery.deliver_due()["failed"] == 1
    with transaction():
        ep = db.session.get(WebhookEndpoint, endpoint["id"])
        assert ep.enabled is False and ep.failures == 3
        assert db.session.scalar(select(func.count()).select_from(WebhookAttempt)) == 3
    # the key owner sees it in the API
    listed = command(client, author, "webhooks.list").get_json()["endpoints"]
    assert listed[0]["status"] == "disabled" and "3 failed attempts" in listed[0]["disabledReason"]
    history = command(client, author, "webhooks.deliveries").get_json()["deliveries"]
    assert history[0]["status"] == "failed" and len(history[0]["history"]) == 3
    assert history[0]["history"][0]["statusCode"] == 500
    # a disabled endpoint gets no new events; enabled again, it does
    fail_one(publish(client, author, "again"))
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    assert command(client, author, "webhooks.enable", {"id": endpoint["id"]}).status_code == 200
    receiver.status = 204
    fail_one(publish(client, author, "third"))
    delivery.deliver_due()
    assert [e["type"] for e in receiver.wait_for(1)] == ["job.failed"]


def test_open_jobs_are_flagged_when_an_endpoint_is_added(client, author, receiver) -> None:
    job_id = publish(client, author)  # accepted before the endpoint exists
    subscribe(client, author, receiver)
    fail_one(job_id)
    delivery.deliver_due()
    assert [e["data"]["jobId"] for e in receiver.wait_for(1)] == [job_id]


def test_removing_the_last_endpoint_clears_the_flag(client, author, receiver) -> None:
    endpoint = subscribe(client, author, receiver)
    assert command(client, author, "webhooks.remove", {"id": endpoint["id"]}).status_code == 200
    with transaction():
        assert db.session.scalar(select(RegisteredKey.webhooks)) is False
    job_id = publish(client, author)
    with transaction():
        assert (
            db.session.scalar(select(PublishJob.notify).where(PublishJob.job_id == job_id)) is False
        )


# --- the signed command API -------------------------------------------------------------


def test_command_errors(client, author, receiver) -> None:
    def code(resp):
        return resp.status_code, resp.get_json()["error"]["code"]

    stranger = coincurve.PrivateKey()
    assert code(command(client, stranger, "webhooks.list")) == (403, "KEY_NOT_REGISTERED")
    assert code(command(client, author, "webhooks.nope")) == (400, "UNKNOWN_OPERATION")
    assert code(command(client, author, "webhooks.list", now=int(time.time()) - 4000)) == (
        422,
        "EXPIRED",
    )
    body = make_command(author, "webhooks.list")
    body["signature"] = make_command(author, "webhooks.create", {"url": "x"})["signature"]
    assert code(client.post("/v1/webhooks", json=body)) == (401, "SIGNATURE_INVALID")
    body = make_command(author, "webhooks.list")
    assert client.post("/v1/webhooks", json=body).status_code == 200
    assert code(client.post("/v1/webhooks", json=body)) == (409, "NONCE_REUSED")
    assert code(command(client, author, "webhooks.create", {"url": "ftp://x/"})) == (
        400,
        "BAD_WEBHOOK_URL",
    )
    assert code(command(client, author, "webhooks.remove", {"id": 999})) == (404, "NOT_FOUND")
    # a publish body is not a command, and a command is not a publish
    pub = signing.make_request(author, {"t": 1})
    assert code(client.post("/v1/webhooks", json=pub)) == (400, "MISSING_FIELD")
    cmd = make_command(author, "webhooks.list")
    assert code(client.post("/v1/publish", json=cmd)) == (400, "MISSING_FIELD")
    # BSM-signed commands work too
    assert command(client, author, "webhooks.list", scheme="bsm").status_code == 200


def test_endpoint_limit(client, author, receiver, app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_MAX_ENDPOINTS", 1)
    subscribe(client, author, receiver)
    resp = command(client, author, "webhooks.create", {"url": receiver.url})
    assert (resp.status_code, resp.get_json()["error"]["code"]) == (409, "WEBHOOK_LIMIT")


# --- SSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.5.5",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "2002:7f00:1::1",
        "100.64.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert urls.forbidden_reason(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert urls.forbidden_reason(address) is None


def test_ssrf_refused_in_production_at_registration_and_delivery(
    client, author, receiver, app, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_URLS", False)
    for url in (receiver.url, "http://localhost:9/x", "http://[::1]/x", "http://0x7f000001/"):
        resp = command(client, author, "webhooks.create", {"url": url})
        assert resp.status_code == 400, url
        assert resp.get_json()["error"]["code"] in ("WEBHOOK_URL_FORBIDDEN", "BAD_WEBHOOK_URL")
    # registered while allowed; the name now resolves to a refused address (as after DNS
    # rebinding): the delivery checks again and sends nothing
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_URLS", True)
    subscribe(client, author, receiver)
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_URLS", False)
    fail_one(publish(client, author))
    assert delivery.deliver_due()["retry"] == 1
    assert receiver.events == [] and receiver.rejected == []
    with transaction():
        attempt = db.session.scalar(select(WebhookAttempt))
        assert attempt.status_code is None and attempt.error.startswith("WEBHOOK_URL_FORBIDDEN")


def test_production_default_refuses_private(app, monkeypatch) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_URLS", None)
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    assert urls.allow_private() is False
    monkeypatch.setitem(app.config, "ENV_NAME", "test")
    assert urls.allow_private() is True


# --- operator commands --------------------------------------------------------------------


def test_operator_commands(app, author, receiver) -> None:
    runner = app.test_cli_runner()
    pub = author.public_key.format().hex()
    out = runner.invoke(args=["webhooks", "add", receiver.url, "--key", pub])
    assert out.exit_code == 0, out.output
    assert "whsec_" in out.output
    import json

    receiver.secret = json.loads(out.output)["secret"]
    listed = runner.invoke(args=["webhooks", "list"])
    assert receiver.url in listed.output and "enabled" in listed.output
    client = app.test_client()
    fail_one(publish(client, author))
    out = runner.invoke(args=["webhooks", "deliver"])
    assert '"delivered": 1' in out.output
    out = runner.invoke(args=["webhooks", "deliveries"])
    assert "job.failed" in out.output and "delivered" in out.output
    endpoint_id = service.list_endpoints()[0]["id"]
    assert runner.invoke(args=["webhooks", "remove", str(endpoint_id)]).exit_code == 0
    assert runner.invoke(args=["webhooks", "list"]).output.strip() == ""
    bad = runner.invoke(args=["webhooks", "add", "gopher://x", "--key", pub])
    assert bad.exit_code != 0 and "BAD_WEBHOOK_URL" in bad.output


def test_no_webhook_sql_for_jobs_without_webhooks(client, author, app) -> None:
    """A key without endpoints: its state changes run no statement on the webhook tables."""
    from sqlalchemy import event

    job_id = publish(client, author)
    seen: list[str] = []

    def spy(conn, cursor, statement, *args):
        seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", spy)
    try:
        fail_one(job_id)
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert seen and not [s for s in seen if "webhook_" in s.lower()]


def test_a_state_change_enqueues_a_delivery_run(client, author, receiver, app) -> None:
    from rq import Queue

    from raregen.queue import periodic_queue_name, redis_connection

    subscribe(client, author, receiver)
    queue = Queue(periodic_queue_name(app.config["QUEUE_NAME"]), connection=redis_connection())
    queue.empty()
    redis_connection().delete("raregen:webhooks:nudge")
    fail_one(publish(client, author))
    jobs = queue.get_jobs()
    assert [j.func_name for j in jobs] == ["raregen.publish.tasks.deliver_webhooks"]
    queue.empty()


def test_reorganisation_sends_job_reorged(client, author, receiver) -> None:
    from raregen.proofs import capture

    subscribe(client, author, receiver)
    job_id = publish(client, author)
    txid = "ab" * 32
    fake_sent(job_id, txid)
    with transaction():
        confirm.mark_confirmed(txid, TxStatus("confirmed", txid, "cd" * 32, 5))
    with transaction():
        assert capture.revert_txids([txid]) == 1
    delivery.deliver_due()
    events = receiver.wait_for(2)
    assert [e["type"] for e in events] == ["job.confirmed", "job.reorged"]
    assert events[1]["data"]["status"] == "sent" and events[1]["data"]["blockHash"] is None
