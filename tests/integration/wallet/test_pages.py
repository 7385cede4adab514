"""The wallet's pages and HTMX fragments (raregen.wallet.pages), through the Flask test client
on SQLite and PostgreSQL: what they render, when polling stops, the public record page."""

from __future__ import annotations

import re
from typing import Any

import coincurve
import pytest
from sqlalchemy import select

from raregen.db import db, transaction
from raregen.errors import NotFound, ServiceError
from raregen.publish.models import PublishJob
from tests.integration.wallet.conftest import WalletClient, publish_body, register_keys

PAGES = [
    "/wallet",
    "/wallet/setup",
    "/wallet/backup",
    "/wallet/restore",
    "/wallet/register-work",
    "/wallet/records",
]


def test_landing_page_layout(client: Any) -> None:
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'name="csrf-token" content="' in html
    assert "/static/img/lion.svg" in html
    assert re.search(r'<script src="/static/dist/htmx\.min\.js\?v=\d+" defer>', html)
    # every script is ours: no other origin, no inline code
    for src in re.findall(r"<script[^>]*>", html):
        assert 'src="/static/' in src
    assert "Records are public" in html and "fingerprints" in html
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize("path", PAGES)
def test_wallet_pages_need_a_session(client: Any, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/signin?next=")


@pytest.mark.parametrize("path", PAGES)
def test_wallet_pages_render_signed_in(signed_in: WalletClient, path: str) -> None:
    resp = signed_in.get(path)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200, html[:300]
    assert "alice@example.com" in html.replace("<wbr>", "") or path != "/wallet"
    assert 'id="signout"' in html


def test_register_page_keeps_the_file_out_of_any_form(signed_in: WalletClient) -> None:
    html = signed_in.get("/wallet/register-work").get_data(as_text=True)
    forms = re.findall(r"<form\b.*?</form>", html, re.DOTALL)
    assert forms and not any('type="file"' in f for f in forms)
    assert "multipart" not in html
    assert "Records are public and permanent" in html


def _publish(wc: WalletClient, title: str) -> str:
    key = coincurve.PrivateKey()
    register_keys(wc, {"identity": key})
    resp = wc.post("/wallet/api/publish", publish_body(key, title))
    assert resp.status_code == 202, resp.get_data(as_text=True)
    assert resp.json["panelUrl"] == f"/wallet/jobs/{resp.json['jobId']}/panel"
    return str(resp.json["jobId"])


def _set_job(job_id: str, **values: Any) -> None:
    with transaction():
        job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == job_id))
        for name, value in values.items():
            setattr(job, name, value)


def test_job_panel_polls_until_terminal(signed_in: WalletClient) -> None:
    job_id = _publish(signed_in, "Natty Dread")
    panel = signed_in.get(f"/wallet/jobs/{job_id}/panel")
    html = panel.get_data(as_text=True)
    assert panel.status_code == 200
    assert f'hx-get="/wallet/jobs/{job_id}/panel"' in html and 'hx-trigger="every 2s"' in html
    assert 'data-status="queued"' in html

    txid = "ab" * 32
    _set_job(job_id, status="sent", txid=txid, vout=0)
    html = signed_in.get(f"/wallet/jobs/{job_id}/panel").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and txid in html

    _set_job(job_id, status="confirmed", block_hash="cd" * 32, block_height=321)
    html = signed_in.get(f"/wallet/jobs/{job_id}/panel").get_data(as_text=True)
    assert "hx-trigger" not in html and "hx-get" not in html
    assert 'data-role="block-height">321<' in html
    assert f'href="/records/{txid}"' in html

    records = signed_in.get("/wallet/records").get_data(as_text=True)
    assert "Natty Dread" in records and "confirmed" in records and f"/records/{txid}" in records


def test_failed_job_panel_stops_and_explains(signed_in: WalletClient) -> None:
    job_id = _publish(signed_in, "Exodus")
    _set_job(job_id, status="failed", error_code="FEE_REJECTED", error_detail="fee too low")
    html = signed_in.get(f"/wallet/jobs/{job_id}/panel").get_data(as_text=True)
    assert "hx-trigger" not in html
    assert "FEE_REJECTED" in html and "credit was given back" in html


def test_unknown_job_panel_is_404_without_trigger(client: Any) -> None:
    resp = client.get("/wallet/jobs/00000000-0000-4000-8000-000000000000/panel")
    assert resp.status_code == 404
    assert "hx-trigger" not in resp.get_data(as_text=True)


def _fake_records(valid: bool) -> dict[str, Any]:
    payload = (
        '{"exp":1700000600,"iat":1700000000,"nonce":"abcdefghijklmnopqrstuvwxyz012345",'
        '"record":{"contentHash":"' + "ef" * 32 + '","creator":"Ras","title":"Kaya <b>"},'
        '"type":"work","v":1}'
    )
    return {
        "txid": "12" * 32,
        "rawTx": "00",
        "blockHash": "34" * 32,
        "blockHeight": 77,
        "records": [
            {
                "vout": 0,
                "signedPayload": payload,
                "signature": "MEUC",
                "pubkey": "02" + "11" * 32,
                "valid": valid,
                "error": None if valid else "SIGNATURE_INVALID",
            }
        ],
    }


@pytest.mark.parametrize("valid", [True, False])
def test_record_page_shows_the_verification(
    client: Any, monkeypatch: pytest.MonkeyPatch, valid: bool
) -> None:
    from raregen.publish import records

    monkeypatch.setattr(records, "read_records", lambda txid: _fake_records(valid))
    resp = client.get(f"/records/{'12' * 32}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert ("✓ Signature valid" in html) is valid
    assert ("✗ Not valid" in html) is not valid
    assert "Kaya &lt;b&gt;" in html  # payload text is escaped
    assert "2023-11-14 22:13:20 UTC" in html
    assert ("data-content-hash" in html) is valid  # no file check against a forged record


@pytest.mark.parametrize(
    ("error", "status", "text"),
    [
        (NotFound("no"), 404, "No transaction with this id"),
        (ServiceError("down"), 503, "cannot be reached"),
    ],
)
def test_record_page_errors(
    client: Any, monkeypatch: pytest.MonkeyPatch, error: Exception, status: int, text: str
) -> None:
    from raregen.publish import records

    def fail(txid: str) -> dict[str, Any]:
        raise error

    monkeypatch.setattr(records, "read_records", fail)
    resp = client.get(f"/records/{'12' * 32}")
    assert resp.status_code == status and text in resp.get_data(as_text=True)


def test_record_page_bad_txid(client: Any) -> None:
    resp = client.get("/records/not-a-txid")
    assert resp.status_code == 400 and "64 hexadecimal" in resp.get_data(as_text=True)
