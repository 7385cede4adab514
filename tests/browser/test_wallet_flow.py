"""The wallet in a real browser, end to end, against the real app, SMTP server, RQ worker and
regtest node (fixtures in conftest.py):

sign-up with the code read from the SMTP server -> key creation -> the 5 shares shown one at a
time and checked -> a work registered (file hashed in the browser) -> the job panel polled
by HTMX until ``confirmed`` (then polling stops) -> the public record page verifies it ->
sign-out -> restore on a fresh profile from the encrypted backup -> restore on another fresh
profile from 3 shares (2 shares and a wrong passphrase refused) -> the restored key signs.

Every request the pages send is recorded (``context.on("request")``): none may carry the
master secret (hex or base64), a private key, a share's words or the password, and none may
leave the app's origin.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import shamir_mnemonic
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.jsbridge import wallet_keys

PASSWORD = "Lion of Judah 1930!"
NEW_PASSWORD = "Zion train 1980 dub"
TIMEOUT_MS = 30_000


# ---------------------------------------------------------------------------------------------
# Recording what the pages send


class Recorder:
    """Keeps every request of the contexts it watches; serialized before a context closes."""

    def __init__(self) -> None:
        self.pending: list[Any] = []
        self.seen: list[dict[str, Any]] = []
        self.page_errors: list[str] = []

    def watch(self, context: Any) -> None:
        context.on("request", lambda request: self.pending.append(request))

    def watch_page(self, page: Any) -> None:
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and self.page_errors.append(msg.text))

    def flush(self) -> None:
        for request in self.pending:
            try:
                headers = request.all_headers()
            except PlaywrightError:  # a request whose page is gone: the headers it was sent with
                headers = dict(request.headers)
            self.seen.append(
                {
                    "url": request.url,
                    "method": request.method,
                    "headers": headers,
                    "body": request.post_data_buffer or b"",
                }
            )
        self.pending.clear()


def _forms(text: str) -> set[str]:
    """The ways a string could appear in a request: as is, JSON-escaped, URL-encoded."""
    return {text, json.dumps(text)[1:-1], urllib.parse.quote(text), urllib.parse.quote_plus(text)}


def assert_nothing_secret_sent(
    recorder: Recorder, base_url: str, secret: bytes, shares: list[str]
) -> None:
    keys = wallet_keys(secret)
    needles: set[str] = set()
    needles |= {
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    }
    for private, _pub in keys.values():
        needles |= {private.hex(), private.hex().upper(), base64.b64encode(private).decode()}
    for password in (PASSWORD, NEW_PASSWORD):
        needles |= _forms(password)
    for share in shares:
        words = share.split()
        needles |= _forms(share)
        for at in range(len(words) - 5):  # any 6 words in a row, however joined
            for sep in (" ", "+", "%20", ",", "\n", '","'):
                needles.add(sep.join(words[at : at + 6]))
    assert recorder.seen, "no request was recorded"
    for req in recorder.seen:
        assert req["url"].startswith(base_url) or req["url"].startswith(("blob:", "data:")), (
            f"request left the app's origin: {req['url']}"
        )
        haystack = (
            "\n".join([req["url"], *(f"{k}: {v}" for k, v in req["headers"].items())])
            + "\n"
            + req["body"].decode("utf-8", "replace")
        )
        raw = req["body"]
        for needle in needles:
            assert needle not in haystack, f"{req['method']} {req['url']} carries a secret"
        assert secret not in raw
        for private, _pub in keys.values():
            assert private not in raw


# ---------------------------------------------------------------------------------------------
# Page helpers


def new_device(browser: Any, recorder: Recorder, **options: Any) -> tuple[Any, Any]:
    """A fresh browser profile (no cookies, no IndexedDB) and a page in it."""
    context = browser.new_context(accept_downloads=True, **options)
    context.set_default_timeout(TIMEOUT_MS)
    recorder.watch(context)
    page = context.new_page()
    recorder.watch_page(page)
    return context, page


def sign_in(page: Any, live: Any, email: str) -> None:
    before = live.mail.count_for(email)
    page.goto(f"{live.base_url}/signin")
    page.fill("#email", email)
    page.click("#send-code")
    expect(page).to_have_url(re.compile(r"/signin/code$"))
    page.fill("#code", live.mail.code_for(email, after=before))
    page.click("#verify-code")
    expect(page).to_have_url(re.compile(r"/wallet$"))


def step(page: Any, name: str) -> Any:
    locator = page.locator(f'[data-step="{name}"]')
    expect(locator).to_be_visible()
    return locator


def shot(page: Any, folder: Path, name: str, full_page: bool = True) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def read_shares(page: Any) -> list[str]:
    shares = []
    for n in range(1, 6):
        expect(page.locator("#share-title")).to_have_text(f"Share {n} of 5")
        shares.append(" ".join(page.locator("#share-words li").all_inner_texts()))
        if n < 5:
            expect(page.locator("#shares-done")).to_be_disabled()
            page.click("#share-next")
    return shares


def answer_confirmation(page: Any, shares: list[str], wrong: bool = False) -> None:
    inputs = page.locator("#confirm-fields input")
    expect(inputs).to_have_count(4)
    asked_shares = set()
    for i in range(4):
        field = inputs.nth(i)
        s, w = int(field.get_attribute("data-share")), int(field.get_attribute("data-word"))
        asked_shares.add(s)
        word = shares[s - 1].split()[w - 1]
        field.fill("wrongword" if wrong and i == 0 else word.upper() if i == 1 else word)
    assert len(asked_shares) == 2  # words of two different shares
    page.click("#confirm-btn")


def wait_for_panel(page: Any, live: Any, status: str, timeout: float = 120) -> Any:
    panel = page.locator(".job-panel")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = panel.get_attribute("data-status") if panel.count() else None
        if current == status:
            return panel
        if current == "failed":
            raise AssertionError(f"the job failed: {panel.inner_text()}")
        if current == "sent":
            live.settle()
        page.wait_for_timeout(1000)
    raise AssertionError(f"the job panel did not reach {status!r} in {timeout} s")


def account_identity(page: Any) -> str:
    me = page.request.get(page.url.split("/wallet")[0] + "/wallet/api/me").json()
    [identity] = [k["pubkey"] for k in me["keys"] if k["purpose"] == "identity"]
    return identity


# ---------------------------------------------------------------------------------------------


def test_wallet_end_to_end(browser: Any, live: Any, screenshots: Path, tmp_path: Path) -> None:
    recorder = Recorder()
    email = f"ras-{uuid.uuid4().hex[:8]}@example.org"

    # -- device A: sign up, keys, shares --------------------------------------------------------
    context, page = new_device(browser, recorder, viewport={"width": 1280, "height": 900})
    page.goto(live.base_url + "/")
    expect(page.locator("h1")).to_contain_text("Sign your work")
    shot(page, screenshots, "01-landing")
    page.click("text=Create your wallet")
    expect(page).to_have_url(re.compile(r"/signin"))
    shot(page, screenshots, "02-sign-in")
    sign_in(page, live, email)
    shot(page, screenshots, "03-dashboard-new")

    page.goto(f"{live.base_url}/wallet/setup")
    step(page, "create")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD + "x")
    page.click("#create-btn")
    expect(page.locator("#create-status")).to_contain_text("differ")
    page.fill("#password2", PASSWORD)
    shot(page, screenshots, "04-setup-create")
    page.click("#create-btn")
    step(page, "shares")
    shot(page, screenshots, "05-setup-share")
    shares = read_shares(page)
    assert len(set(shares)) == 5 and all(len(s.split()) == 20 for s in shares)
    with page.expect_download() as download:
        page.click("#share-download")
    assert shares[4] in " ".join(
        line.split(". ", 1)[1]
        for line in Path(download.value.path()).read_text().splitlines()
        if ". " in line[:4]
    )
    page.emulate_media(media="print")
    shot(page, screenshots, "06-setup-print-sheet")
    page.emulate_media(media="screen")
    page.click("#shares-done")
    step(page, "confirm")
    answer_confirmation(page, shares, wrong=True)
    expect(page.locator("#confirm-status")).to_contain_text("not match")
    shot(page, screenshots, "07-setup-confirm")
    answer_confirmation(page, shares)
    step(page, "done")
    expect(page.locator("#share-words li")).to_have_count(0)

    # the shares made in the browser recover with Trezor's reference to the same keys
    secret = shamir_mnemonic.combine_mnemonics([shares[0], shares[2], shares[4]])
    assert len(secret) == 16
    for combo in itertools.combinations(shares, 3):
        assert shamir_mnemonic.combine_mnemonics(list(combo)) == secret
    identity = wallet_keys(secret)["identity"][1]
    assert account_identity(page) == identity
    me = page.request.get(f"{live.base_url}/wallet/api/me").json()
    assert {k["purpose"]: k["pubkey"] for k in me["keys"]} == {
        p: v[1] for p, v in wallet_keys(secret).items()
    }
    assert me["hasBackup"] and me["backupVersion"] == 1
    page.goto(f"{live.base_url}/wallet")
    expect(page.locator("#browser-keys")).to_contain_text("holds your keys")
    shot(page, screenshots, "08-dashboard-ready")

    # -- register a work --------------------------------------------------------------------------
    page.goto(f"{live.base_url}/wallet/register-work")
    step(page, "form")
    work = tmp_path / "dub-plate.wav"
    work.write_bytes(b"RIFF" + secrets.token_bytes(4096))
    digest = hashlib.sha256(work.read_bytes()).hexdigest()
    page.set_input_files("#work-file", str(work))
    expect(page.locator("#work-hash")).to_have_text(digest)
    assert page.locator("form input[type=file]").count() == 0  # the file is in no form
    page.fill("#work-title", "Dub Plate Special")
    page.fill("#work-creator", "Ras Tester")
    page.fill("#work-media-type", "audio/wav")
    page.select_option("#work-license", "CC-BY-4.0")
    page.fill("#work-note", "First press.")
    page.fill("#work-password", "not the password")
    page.click("#work-submit")
    expect(page.locator("#work-status")).to_contain_text("Wrong password")
    page.fill("#work-password", PASSWORD)
    shot(page, screenshots, "09-register-work")
    page.click("#work-submit")
    expect(page.locator(".job-panel")).to_be_visible()
    panel = wait_for_panel(page, live, "confirmed")
    assert panel.get_attribute("hx-trigger") is None
    txid = panel.locator('[data-role="txid"]').inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", txid)
    assert int(panel.locator('[data-role="block-height"]').inner_text()) > 0
    shot(page, screenshots, "10-job-confirmed")
    polls = sum(1 for r in recorder.pending if "/panel" in r.url)
    page.wait_for_timeout(5000)
    assert sum(1 for r in recorder.pending if "/panel" in r.url) == polls, (
        "polling went on after confirmed"
    )

    page.click('[data-role="record-link"]')
    expect(page).to_have_url(f"{live.base_url}/records/{txid}")
    expect(page.locator('[data-role="verdict"]')).to_have_text("✓ Signature valid")
    expect(page.locator('[data-role="content-hash"]')).to_have_text(digest)
    page.set_input_files(".file-check input[type=file]", str(work))
    expect(page.locator(".file-check-result")).to_contain_text("Match")
    shot(page, screenshots, "11-record-page")

    page.goto(f"{live.base_url}/wallet/records")
    row = page.locator(f"tr:has(a[href='/records/{txid}'])")
    expect(row).to_contain_text("Dub Plate Special")
    expect(row).to_contain_text("confirmed")
    shot(page, screenshots, "12-my-records")

    page.click("#signout")
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto(f"{live.base_url}/wallet")
    expect(page).to_have_url(re.compile(r"/signin"))
    recorder.flush()
    context.close()

    # -- device B: fresh profile, restore from the encrypted backup -----------------------------
    context, page = new_device(
        browser, recorder, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    sign_in(page, live, email)
    shot(page, screenshots, "13-phone-dashboard")
    page.goto(f"{live.base_url}/wallet/register-work")
    step(page, "no-keys")
    page.goto(f"{live.base_url}/wallet/restore")
    step(page, "choose")
    page.fill("#backup-password", "Lion of Judah 1930?")
    page.click("#backup-btn")
    expect(page.locator("#backup-status")).to_contain_text("Wrong password")
    page.fill("#backup-password", PASSWORD)
    page.click("#backup-btn")
    step(page, "done")
    expect(page.locator("#restored-how")).to_contain_text("encrypted backup")
    shot(page, screenshots, "14-phone-restored-backup")
    page.goto(f"{live.base_url}/wallet/register-work")
    step(page, "form")
    shot(page, screenshots, "15-phone-register-work")
    page.click("#signout")
    expect(page).to_have_url(re.compile(r"/signin$"))
    recorder.flush()
    context.close()

    # -- device C: fresh profile, restore from 3 shares -----------------------------------------
    context, page = new_device(browser, recorder, viewport={"width": 1280, "height": 900})
    sign_in(page, live, email)
    page.goto(f"{live.base_url}/wallet/restore")
    step(page, "choose")
    page.fill("#share-1", shares[1])
    page.fill("#share-2", shares[3])
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.click("#shares-btn")
    expect(page.locator("#shares-status")).to_contain_text("3 shares needed")
    shot(page, screenshots, "16-restore-two-shares")
    page.fill("#share-3", shares[4])
    page.click("summary:has-text('SLIP-39 passphrase')")
    page.fill("#slip39-passphrase", "TREZOR")
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.click("#shares-btn")
    expect(page.locator("#shares-status")).to_contain_text("different wallet")
    page.fill("#slip39-passphrase", "")
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.click("#shares-btn")
    step(page, "done")
    expect(page.locator("#restored-how")).to_contain_text("shares")
    shot(page, screenshots, "17-restored-shares")

    # the restored key signs: a second work is accepted for the same identity
    page.goto(f"{live.base_url}/wallet/register-work")
    step(page, "form")
    second = tmp_path / "riddim.txt"
    second.write_text("one love")
    page.set_input_files("#work-file", str(second))
    expect(page.locator("#work-hash")).to_have_text(hashlib.sha256(b"one love").hexdigest())
    page.fill("#work-creator", "Ras Tester")
    page.fill("#work-password", NEW_PASSWORD)
    page.click("#work-submit")
    expect(page.locator(".job-panel")).to_be_visible()
    expect(page.locator("#job-intro")).to_contain_text("accepted")
    wait_for_panel(page, live, "confirmed")
    me = page.request.get(f"{live.base_url}/wallet/api/me").json()
    assert me["backupVersion"] == 2  # replaced under the new password
    recorder.flush()
    context.close()

    assert_nothing_secret_sent(recorder, live.base_url, secret, shares)
    posts = {
        urllib.parse.urlparse(r["url"]).path
        for r in recorder.seen
        if r["method"] in ("POST", "PUT")
    }
    assert {
        "/wallet/api/challenge",
        "/wallet/api/keys",
        "/wallet/api/backup",
        "/wallet/api/publish",
    } <= posts
    assert not recorder.page_errors, recorder.page_errors


def test_job_panel_polling_stops_on_errors(browser: Any, live: Any) -> None:
    """A panel whose poll answers 500 or 404 stops polling and says so."""
    recorder = Recorder()
    context, page = new_device(browser, recorder)
    page.route("**/wallet/jobs/broken/panel", lambda route: route.fulfill(status=500, body="boom"))
    page.goto(live.base_url + "/")
    for job_id in ("broken", str(uuid.uuid4())):  # the second is unknown to the real server
        page.evaluate(
            """(id) => {
                const el = document.createElement('section');
                el.className = 'job-panel';
                el.id = 'probe-' + id;
                el.setAttribute('hx-get', '/wallet/jobs/' + id + '/panel');
                el.setAttribute('hx-trigger', 'every 1s');
                el.setAttribute('hx-swap', 'outerHTML');
                document.querySelector('main').append(el);
                window.htmx.process(el);
            }""",
            job_id,
        )
        probe = page.locator(f"[id='probe-{job_id}']")
        expect(probe.locator(".notice")).to_be_visible(timeout=10_000)
        assert probe.get_attribute("hx-trigger") is None
        count = sum(1 for r in recorder.pending if f"/wallet/jobs/{job_id}/panel" in r.url)
        page.wait_for_timeout(3000)
        assert (
            sum(1 for r in recorder.pending if f"/wallet/jobs/{job_id}/panel" in r.url)
            == count
            == 1
        )
    expect(page.locator("[id='probe-broken'] .notice")).to_contain_text("500")
    context.close()
