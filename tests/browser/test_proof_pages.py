"""Proof files in a real browser (fixtures in conftest.py: the app, its RQ worker, the regtest
node, Chromium):

a work is published through ``POST /v1/publish`` and confirmed -> its public record page
offers "Download proof" and a printable certificate -> the downloaded proof and the original
file are dropped on ``/verify`` (no session): every check passes, the verdict names the block
that must be on the chain -> tampered files show the failing check's reason code -> bad input
gives a coded message, never a page error -> the page sends no request at all after it has
loaded (its CSP has ``connect-src 'none'``, and every request is recorded) -> the certificate
prints with the facts of the record and a QR code of the record page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import coincurve
import pytest
import requests
from playwright.sync_api import expect

from raregen import signing
from tests.vectors import REPO_ROOT

TIMEOUT_MS = 30_000
VECTORS = REPO_ROOT / "tests" / "data" / "proofs"
ORIGINAL = b"Zion Gate, a dub plate: the bytes of the original file.\n"


@pytest.fixture(scope="module")
def work(live: Any) -> dict[str, Any]:
    """A work published by a registered key and confirmed in a block: its job id, txid,
    vout and record."""
    from raregen.publish import keys

    key = coincurve.PrivateKey()
    with live.app.app_context():
        keys.register_key(key.public_key.format().hex())
    record = {
        "title": "Zion Gate",
        "creator": "Ras Tester",
        "contentHash": hashlib.sha256(ORIGINAL).hexdigest(),
        "mediaType": "audio/mpeg",
    }
    body = signing.make_request(key, record, "work")
    resp = requests.post(f"{live.base_url}/v1/publish", json=body, timeout=30)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    deadline = time.monotonic() + 240  # the worker process may take a while to start
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = requests.get(f"{live.base_url}/v1/jobs/{job_id}", timeout=10).json()
        if job.get("status") in ("sent", "confirmed", "failed"):
            break
        time.sleep(0.5)
    assert job.get("status") == "sent", job
    live.settle(1)
    job = requests.get(f"{live.base_url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "confirmed", job
    return {"jobId": job_id, "txid": job["txid"], "vout": job["vout"], "record": record}


def _drop(page: Any, zone: str, name: str, data: bytes) -> None:
    """Drop a file on a drop zone as a user would (a DataTransfer carrying a File)."""
    page.evaluate(
        """([zone, name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: 'application/octet-stream' }));
            const target = document.querySelector(`[data-drop="${zone}"]`);
            target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
            target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [zone, name, base64.b64encode(data).decode()],
    )


def _checks(page: Any) -> dict[str, str]:
    rows = page.locator("#checks li")
    return {
        rows.nth(i).get_attribute("data-code"): rows.nth(i).get_attribute("data-state")
        for i in range(rows.count())
    }


def _expect_verdict(page: Any, verdict: str, reason: str = "") -> None:
    expect(page.locator("#verdict")).to_have_attribute("data-verdict", verdict, timeout=TIMEOUT_MS)
    expect(page.locator("#verdict")).to_have_attribute("data-reason", reason, timeout=TIMEOUT_MS)


def test_record_page_download_proof_and_verify_it_locally(
    live: Any, browser: Any, work: dict[str, Any], tmp_path: Path, screenshots: Path
) -> None:
    txid, vout = work["txid"], work["vout"]
    context = browser.new_context(accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{live.base_url}/records/{txid}")
        link = page.locator(f'article[data-vout="{vout}"] [data-role="download-proof"]')
        expect(link).to_have_attribute("href", f"/v1/records/{txid}/{vout}/proof")
        with page.expect_download() as download_info:
            link.click()
        download = download_info.value
        assert download.suggested_filename == f"raregen-proof-{txid}-{vout}.json"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        proof_bytes = saved.read_bytes()
        proof = json.loads(proof_bytes)
        assert proof["status"] == "complete" and proof["txid"] == txid
        cert = page.locator(f'article[data-vout="{vout}"] [data-role="certificate"]')
        expect(cert).to_have_attribute("href", f"/records/{txid}/{vout}/certificate")
        # the header and the record page link to the verifier
        page.locator('a[data-role="footer-verify"]').click()
        expect(page).to_have_url(f"{live.base_url}/verify")
    finally:
        context.close()

    # a fresh profile: no session, no cookies
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        resp = page.goto(f"{live.base_url}/verify")
        assert resp is not None and resp.status == 200
        assert "connect-src 'none'" in resp.headers["content-security-policy"]
        expect(page.locator("body")).to_have_attribute("data-verify-ready", "true")
        page.wait_for_load_state("networkidle")
        after_load: list[dict[str, Any]] = []
        page.on(
            "request",
            lambda r: after_load.append({"url": r.url, "body": r.post_data_buffer or b""}),
        )

        # the complete proof and its original file: every check passes
        _drop(page, "proof", saved.name, proof_bytes)
        page.set_input_files(
            "#original-file",
            files=[{"name": "zion-gate.mp3", "mimeType": "audio/mpeg", "buffer": ORIGINAL}],
        )
        _expect_verdict(page, "valid")
        states = _checks(page)
        assert len(states) == 12
        assert set(states.values()) == {"pass"}, states
        height = proof["blockHeight"]
        expect(page.locator("#trust-text")).to_contain_text(
            f"block {height} with hash {proof['blockHash']} must be on the BSV chain"
        )
        expect(page.locator('#proof-facts [data-role="content-hash"]')).to_have_text(
            work["record"]["contentHash"]
        )
        expect(page.locator('#proof-facts [data-role="block-height"]')).to_have_text(str(height))
        page.screenshot(path=str(screenshots / "verify-valid.png"), full_page=True)

        # another file: FILE_HASH_MISMATCH
        page.set_input_files(
            "#original-file",
            files=[{"name": "other.mp3", "mimeType": "audio/mpeg", "buffer": b"not the work"}],
        )
        _expect_verdict(page, "invalid", "FILE_HASH_MISMATCH")
        assert _checks(page)["FILE_HASH_MISMATCH"] == "fail"
        page.locator('[data-drop="original"] [data-clear]').click()
        _expect_verdict(page, "valid")
        assert _checks(page)["FILE_HASH_MISMATCH"] == "skip"

        # one byte of the signed payload changed: SIGNATURE_INVALID, later checks not run
        tampered = json.loads(proof_bytes)
        tampered["record"]["signedPayload"] = tampered["record"]["signedPayload"].replace(
            "Zion Gate", "Zion Gatf"
        )
        _drop(page, "proof", "tampered.json", json.dumps(tampered).encode())
        _expect_verdict(page, "invalid", "SIGNATURE_INVALID")
        states = _checks(page)
        assert states["SIGNATURE_INVALID"] == "fail" and states["TXID_MISMATCH"] == "skip"
        expect(page.locator("#verdict")).to_contain_text("Invalid (SIGNATURE_INVALID)")

        # vectors: a wrong merkle sibling, a broken header chain
        for name, reason in (
            ("tampered-merkle-sibling.json", "MERKLE_ROOT_MISMATCH"),
            ("tampered-header-chain.json", "HEADER_CHAIN_BROKEN"),
        ):
            _drop(page, "proof", name, (VECTORS / name).read_bytes())
            _expect_verdict(page, "invalid", reason)

        # bad input: coded messages, never an exception
        for name, data, reason in (
            ("truncated.json", proof_bytes[: len(proof_bytes) // 2], "PROOF_MALFORMED"),
            ("notes.txt", b"not a proof at all", "PROOF_MALFORMED"),
            ("v2.json", json.dumps({**proof, "version": 2}).encode(), "PROOF_UNSUPPORTED"),
            ("huge.json", b" " * (4 * 1024 * 1024 + 1), "PROOF_TOO_LARGE"),
        ):
            _drop(page, "proof", name, data)
            _expect_verdict(page, "could-not-check", reason)
            expect(page.locator("#verdict")).to_contain_text(f"Could not check ({reason})")
            expect(page.locator("#verdict-detail")).not_to_be_empty()

        page.wait_for_timeout(300)
        assert not errors, errors
        assert after_load == [], after_load  # nothing at all left the page
    finally:
        context.close()


def test_certificate_prints_the_facts_and_a_qr_code(
    live: Any, browser: Any, work: dict[str, Any], screenshots: Path
) -> None:
    txid, vout = work["txid"], work["vout"]
    proof = requests.get(f"{live.base_url}/v1/records/{txid}/{vout}/proof", timeout=30).json()
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
        page.goto(f"{live.base_url}/records/{txid}/{vout}/certificate")
        cert = page.locator("#certificate")
        expect(cert.locator('[data-role="title"]')).to_have_text("Zion Gate")
        expect(cert.locator('[data-role="creator"]')).to_have_text("Ras Tester")
        expect(cert.locator('[data-role="content-hash"]')).to_have_text(
            work["record"]["contentHash"]
        )
        record = json.loads(proof["record"]["signedPayload"])
        assert record["record"]["title"] == "Zion Gate"
        expect(cert.locator('[data-role="signer"]')).to_have_text(proof["record"]["pubkey"])
        expect(cert.locator('[data-role="block-height"]')).to_have_text(str(proof["blockHeight"]))
        expect(cert.locator('[data-role="block-hash"]')).to_have_text(proof["blockHash"])
        expect(cert.locator('[data-role="block-time"]')).to_contain_text("UTC")
        qr = page.locator("#record-qr")
        expect(qr).to_have_attribute("data-qr-text", f"{live.base_url}/records/{txid}")
        expect(qr.locator("svg path")).to_have_count(1)
        assert int(qr.get_attribute("data-modules") or 0) >= 21  # a QR code is 21+ modules wide

        page.emulate_media(media="print")
        expect(cert).to_be_visible()
        expect(qr.locator("svg")).to_be_visible()
        expect(page.locator("header.site-header")).to_be_hidden()
        expect(page.locator("#print-certificate")).to_be_hidden()
        page.screenshot(path=str(screenshots / "certificate-print.png"), full_page=True)
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF")
        page.emulate_media(media="screen")
        expect(page.locator("#print-certificate")).to_be_visible()
        assert not errors, errors

        # not a work (no such output): a page saying so, not an error
        resp = page.goto(f"{live.base_url}/records/{txid}/{vout + 7}/certificate")
        assert resp is not None and resp.status == 404
        expect(page.locator(".notice-error")).to_be_visible()
    finally:
        context.close()


def test_job_panel_offers_the_job_proof(live: Any, browser: Any, work: dict[str, Any]) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{live.base_url}/wallet/jobs/{work['jobId']}/panel")
        link = page.locator('[data-role="job-proof"]')
        expect(link).to_have_attribute("href", f"/v1/jobs/{work['jobId']}/proof")
        resp = requests.get(f"{live.base_url}/v1/jobs/{work['jobId']}/proof", timeout=30)
        assert resp.status_code == 200 and resp.json()["status"] == "complete"
    finally:
        context.close()
