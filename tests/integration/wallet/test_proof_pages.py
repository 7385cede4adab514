"""The proof pages without a browser: /verify (public, no connection allowed), the record
page's "Download proof" and certificate links, the certificate page and its errors. The
browser side is in tests/browser/test_proof_pages.py."""

from __future__ import annotations

import re
from typing import Any

import pytest

from raregen.errors import NotFound, ServiceError
from raregen.wallet import certificate
from tests.integration.wallet.conftest import WalletClient
from tests.integration.wallet.test_pages import _fake_records, _publish, _set_job

TXID = "12" * 32


def test_verify_page_is_public_and_may_not_connect(client: Any) -> None:
    resp = client.get("/verify")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "connect-src 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert re.search(r'<script type="module" src="/static/dist/verify\.js\?v=\d+">', html)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script
    assert " style=" not in html
    assert 'id="proof-file"' in html and 'id="original-file"' in html
    assert "<form" not in html.split('<main id="main"')[1]  # the files are never submitted


def test_every_page_links_to_the_verifier(client: Any) -> None:
    html = client.get("/").get_data(as_text=True)
    assert html.count('href="/verify"') >= 2  # header and footer


def _patch(monkeypatch: pytest.MonkeyPatch, valid: bool = True, **changes: Any) -> None:
    from raregen.publish import records

    found = _fake_records(valid)
    found.update(changes)
    monkeypatch.setattr(records, "read_records", lambda txid: found)
    monkeypatch.setattr(certificate, "_block_time", lambda block_hash: "2023-11-14 22:20:00 UTC")


def test_record_page_offers_proof_only_for_outputs_published_here(
    signed_in: WalletClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch(monkeypatch)
    html = signed_in.get(f"/records/{TXID}").get_data(as_text=True)
    assert 'data-role="download-proof"' not in html  # not one of ours
    assert f'href="/records/{TXID}/0/certificate"' in html  # a valid work
    assert 'href="/verify"' in html

    job_id = _publish(signed_in, "Kaya")
    _set_job(job_id, status="sent", txid=TXID, vout=0)
    html = signed_in.get(f"/records/{TXID}").get_data(as_text=True)
    assert f'href="/v1/records/{TXID}/0/proof"' in html and 'data-role="download-proof"' in html
    panel = signed_in.get(f"/wallet/jobs/{job_id}/panel").get_data(as_text=True)
    assert f'href="/v1/jobs/{job_id}/proof"' in panel

    _set_job(job_id, status="failed")
    html = signed_in.get(f"/records/{TXID}").get_data(as_text=True)
    assert 'data-role="download-proof"' not in html


def test_forged_record_gets_no_proof_or_certificate_link(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _patch(monkeypatch, valid=False)
    html = client.get(f"/records/{TXID}").get_data(as_text=True)
    assert "/certificate" not in html and "download-proof" not in html


def test_certificate_page(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch)
    resp = client.get(f"/records/{TXID}/0/certificate")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'data-role="title">Kaya &lt;b&gt;<' in html
    assert 'data-role="creator">Ras<' in html
    assert f'data-role="content-hash">{"ef" * 32}<' in html
    assert f'data-role="signer">02{"11" * 32}<' in html
    assert 'data-role="block-height">77<' in html and f'data-role="block-hash">{"34" * 32}<' in html
    assert "2023-11-14 22:20:00 UTC" in html
    assert f'data-qr-text="http://localhost/records/{TXID}"' in html
    assert "certificate.js" in html and "css/proofs.css" in html


@pytest.mark.parametrize(
    ("path", "patch", "status", "text"),
    [
        ("/records/nothex/0/certificate", None, 400, "64 hexadecimal"),
        (f"/records/{TXID}/1/certificate", {}, 404, "no registered work"),
        (f"/records/{TXID}/0/certificate", {"valid": False}, 404, "no registered work"),
        (f"/records/{TXID}/0/certificate", NotFound("no"), 404, "no registered work"),
        (f"/records/{TXID}/0/certificate", ServiceError("down"), 503, "cannot be reached"),
    ],
)
def test_certificate_errors(
    client: Any, monkeypatch: pytest.MonkeyPatch, path: str, patch: Any, status: int, text: str
) -> None:
    from raregen.publish import records

    if isinstance(patch, Exception):

        def fail(txid: str) -> Any:
            raise patch

        monkeypatch.setattr(records, "read_records", fail)
    elif patch is not None:
        _patch(monkeypatch, **patch)
    resp = client.get(path)
    assert resp.status_code == status
    assert text in resp.get_data(as_text=True)
    assert "certificate.js" not in resp.get_data(as_text=True)


def test_certificate_of_a_record_that_is_not_a_work(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _fake_records(True)
    found["records"][0]["signedPayload"] = found["records"][0]["signedPayload"].replace(
        '"type":"work"', '"type":"note"'
    )
    _patch(monkeypatch, records=found["records"])
    assert client.get(f"/records/{TXID}/0/certificate").status_code == 404
    html = client.get(f"/records/{TXID}").get_data(as_text=True)
    assert "/certificate" not in html
