"""The wallet's webhook settings page: sign-in and CSRF required, add (secret shown once),
list, remove, enable; the account's jobs get events; a disabled endpoint is mailed about."""

from __future__ import annotations

import re
from typing import Any

import coincurve
from sqlalchemy import select, update

from raregen.db import db, transaction, utcnow
from raregen.publish import pipeline
from raregen.publish.broadcasters.base import BroadcastResult, Outcome
from raregen.publish.models import PublishJob
from raregen.wallet import mail
from raregen.webhooks import delivery
from raregen.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.integration.wallet.conftest import WalletClient, publish_body, register_keys
from tests.webhook_receiver import Receiver

_SECRET = re.compile(r'data-role="secret">(whsec_[^<]+)<')


def test_page_needs_a_session_and_csrf(wallet: WalletClient) -> None:
    resp = wallet.get("/wallet/webhooks")
    assert resp.status_code == 302 and "/signin" in resp.headers["Location"]
    wallet.sign_in("bob@example.com")
    resp = wallet.http.post("/wallet/webhooks", data={"url": "http://127.0.0.1:9/x"})
    assert resp.status_code == 400  # no CSRF token
    with transaction():
        assert db.session.scalar(select(WebhookEndpoint)) is None


def test_add_events_remove_and_disable_notice(
    signed_in: WalletClient, app: Any, monkeypatch
) -> None:
    monkeypatch.setitem(app.config, "WEBHOOK_DISABLE_AFTER_FAILURES", 1)
    identity = coincurve.PrivateKey()
    assert register_keys(signed_in, {"identity": identity}).status_code in (200, 201)
    with Receiver() as receiver:
        page = signed_in.form("/wallet/webhooks", {"url": receiver.url, "description": "shop"})
        assert page.status_code == 201, page.get_data(as_text=True)[:500]
        secret = _SECRET.search(page.get_data(as_text=True))
        assert secret, page.get_data(as_text=True)
        receiver.secret = secret.group(1)
        listing = signed_in.get("/wallet/webhooks").get_data(as_text=True)
        assert receiver.url in listing and "whsec_" not in listing  # shown once only
        bad = signed_in.form("/wallet/webhooks", {"url": "javascript:alert(1)"})
        assert bad.status_code == 400 and 'data-code="BAD_WEBHOOK_URL"' in bad.get_data(
            as_text=True
        )

        resp = signed_in.post("/wallet/api/publish", publish_body(identity))
        assert resp.status_code == 202, resp.get_data(as_text=True)
        job_id = resp.json["jobId"]
        with transaction():
            assert (
                db.session.scalar(select(PublishJob.notify).where(PublishJob.job_id == job_id))
                is True
            )
        job = pipeline.claim(job_id)
        assert job is not None
        pipeline.settle(
            job_id, BroadcastResult("", Outcome.REJECTED, "no", "t"), lease=job.lease_until
        )
        delivery.deliver_due()
        assert [e["data"]["jobId"] for e in receiver.wait_for(1)] == [job_id]
        assert "job.failed" in signed_in.get("/wallet/webhooks").get_data(as_text=True)

        # a failing endpoint is disabled and the account told by mail
        receiver.status = 500
        with transaction():
            db.session.execute(
                update(WebhookEvent).values(status="pending", next_attempt_at=utcnow())
            )
        delivery.deliver_due()
        with transaction():
            endpoint = db.session.scalar(select(WebhookEndpoint))
            assert endpoint.enabled is False
            endpoint_id = endpoint.id
        with app.test_request_context():
            mails = [m for m in mail.outbox() if m["to"] == "alice@example.com"]
        assert any("webhook endpoint was disabled" in m["subject"] for m in mails)
        assert receiver.url in mails[0]["body"]
        page = signed_in.get("/wallet/webhooks").get_data(as_text=True)
        assert "disabled" in page
        resp = signed_in.form(f"/wallet/webhooks/{endpoint_id}/enable", {})
        assert resp.status_code == 303
        with transaction():
            assert db.session.get(WebhookEndpoint, endpoint_id).enabled is True
        resp = signed_in.form(f"/wallet/webhooks/{endpoint_id}/remove", {})
        assert resp.status_code == 303
        with transaction():
            assert db.session.scalar(select(WebhookEndpoint)) is None


def test_another_account_cannot_remove(signed_in: WalletClient, app: Any) -> None:
    with Receiver() as receiver:
        assert signed_in.form("/wallet/webhooks", {"url": receiver.url}).status_code == 201
    with transaction():
        endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    other = WalletClient(app)
    other.sign_in("mallory@example.com")
    resp = other.form(f"/wallet/webhooks/{endpoint_id}/remove", {})
    assert resp.status_code == 404
    with transaction():
        assert db.session.get(WebhookEndpoint, endpoint_id) is not None


def test_wallet_json_api(signed_in: WalletClient, wallet: WalletClient, app: Any) -> None:
    with Receiver() as receiver:
        resp = signed_in.post("/wallet/api/webhooks", {"url": receiver.url, "description": "api"})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        endpoint = resp.json["endpoint"]
        assert endpoint["secret"].startswith("whsec_")
        listed = signed_in.get("/wallet/api/webhooks").json["endpoints"]
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
        assert signed_in.get("/wallet/api/webhooks/deliveries").json == {"deliveries": []}
        # CSRF and session are required; errors are JSON
        no_csrf = signed_in.post("/wallet/api/webhooks", {"url": receiver.url}, csrf=False)
        assert no_csrf.status_code == 400 and no_csrf.json["error"]["code"] == "CSRF_FAILED"
        anonymous = WalletClient(app)
        resp = anonymous.get("/wallet/api/webhooks")
        assert resp.status_code == 401 and resp.json["error"]["code"] == "AUTH_REQUIRED"
        bad = signed_in.post("/wallet/api/webhooks", {"url": "file:///etc/passwd"})
        assert bad.status_code == 400 and bad.json["error"]["code"] == "BAD_WEBHOOK_URL"
        # the body is {url, description?}: another member is refused, nothing stored
        extra = signed_in.post("/wallet/api/webhooks", {"url": receiver.url, "secret": "x"})
        assert extra.status_code == 400 and extra.json["error"] == {
            "code": "UNKNOWN_FIELD",
            "message": extra.json["error"]["message"],
            "field": "secret",
        }
        assert len(signed_in.get("/wallet/api/webhooks").json["endpoints"]) == 1
        resp = signed_in.post(f"/wallet/api/webhooks/{endpoint['id']}/enable")
        assert resp.status_code == 200 and resp.json["endpoint"]["status"] == "enabled"
        resp = signed_in.send("DELETE", f"/wallet/api/webhooks/{endpoint['id']}")
        assert resp.status_code == 200
        assert signed_in.get("/wallet/api/webhooks").json["endpoints"] == []
        resp = signed_in.send("DELETE", f"/wallet/api/webhooks/{endpoint['id']}")
        assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND"
        # ids past the integer column (2**31 - 1 in PostgreSQL) name no endpoint: 404
        for huge in (2**31, 2**64):
            for resp in (
                signed_in.post(f"/wallet/api/webhooks/{huge}/enable"),
                signed_in.send("DELETE", f"/wallet/api/webhooks/{huge}"),
                signed_in.get(f"/wallet/api/webhooks/deliveries?endpoint={huge}"),
            ):
                assert resp.status_code == 404, (huge, resp.status_code)
                assert resp.json["error"]["code"] == "NOT_FOUND"
