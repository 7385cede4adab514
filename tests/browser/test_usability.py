"""A new user's whole journey on a phone (390x844, is_mobile) and on a desktop (1280x800), with
the usability checks of issue 13 on the way. Every page visited is screenshot
(test-artifacts/screenshots/ux-<device>-<page>.png), checked with axe-core (0 serious or
critical violations) and measured (``document.documentElement.scrollWidth``: no sideways
scrolling at the device's width, nor at 360 px on the phone).

The checks are collected (tests/browser/ux.py, ``Problems``) and asserted at the end, each
tagged with its item of the issue:

1. after "Sign and publish" the job panel is scrolled into view and has the focus; the notice
   beside the button does not keep an outdated job state;
2. backup page: messages appear next to the button, on screen, in a live region;
3. axe-core on every page (colour contrast of the buttons among its rules);
4. no page is wider than the screen (a long e-mail address on the code page);
5. a restore from 3 shares counts as confirmed shares on the dashboard;
6. a bad word in share restore names the box and the word, and keeps the new passwords;
7. "My records" on a phone: every row fits, the txid is short and has a copy button;
8. phone header in one row, "Sign out" styled like the other links; share Previous/Next side
   by side;
9. keyboard: when "Next share" becomes disabled, focus moves on to the next control;
10. a new account's dashboard offers one next step;
11. password forms have a username field and autocomplete attributes (no "[DOM]" advice from
    Chromium in the console);
12. the Note field and share boxes use the body font; licence names; sign-out confirmation;
    e-mail addresses break at their dots and "@", not mid-word; the development outbox fits.

Also: no console error, no CSP violation, no secret in any request (as in test_wallet_flow).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from playwright.sync_api import expect

from tests.browser.test_wallet_flow import (
    NEW_PASSWORD,
    PASSWORD,
    TIMEOUT_MS,
    Recorder,
    answer_confirmation,
    assert_nothing_secret_sent,
    step,
    wait_for_panel,
)
from tests.browser.ux import DESKTOP, PHONE, Device, Problems, bad_email_breaks, in_viewport

# Dots are no line-break opportunity: without help this address is one unbreakable word.
LONG_LOCAL = "rastafari.makonnen.selassie.{tag}"
LONG_DOMAIN = "recordingstudio.kingston.example.org"


class Console:
    """Console errors (CSP violations among them) and Chromium's "[DOM]" form advice."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dom_advice: set[str] = set()

    def watch(self, page: Any) -> None:
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", self._on_console)

    def _on_console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)
        elif msg.text.startswith("[DOM]"):
            self.dom_advice.add(msg.text)


def open_device(
    browser: Any, device: Device, recorder: Recorder, console: Console
) -> tuple[Any, Any]:
    context = browser.new_context(
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
        **device.options(),
    )
    context.set_default_timeout(TIMEOUT_MS)
    recorder.watch(context)
    page = context.new_page()
    console.watch(page)
    return context, page


def sign_in(page: Any, live: Any, email: str, checks: Problems | None = None) -> None:
    before = live.mail.count_for(email)
    page.goto(f"{live.base_url}/signin")
    if checks:
        checks.page(page, "signin")
    page.fill("#email", email)
    page.click("#send-code")
    expect(page).to_have_url(re.compile(r"/signin/code$"))
    if checks:
        checks.page(page, "code")
        if checks.device.phone:
            page.set_viewport_size({"width": 360, "height": checks.device.height})
            checks.check(
                not bad_email_breaks(page, "#code-email"),
                "12",
                f"code page e-mail breaks mid-word: {bad_email_breaks(page, '#code-email')}",
            )
            page.set_viewport_size({"width": checks.device.width, "height": checks.device.height})
    page.fill("#code", live.mail.code_for(email, after=before))
    page.click("#verify-code")
    expect(page).to_have_url(re.compile(r"/wallet$"))


def font_of(page: Any, selector: str) -> str:
    return page.locator(selector).first.evaluate("(el) => getComputedStyle(el).fontFamily")


def visible_main_actions(page: Any) -> list[str]:
    """Text and target of every visible button or button-styled link in <main>."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('main a, main button'))
            .filter((el) => el.offsetParent !== null && (el.tagName === 'BUTTON' || el.classList.contains('button')))
            .map((el) => `${el.textContent.trim()} -> ${el.getAttribute('href') ?? el.id}`)"""
    )


def check_password_forms(page: Any, checks: Problems, name: str) -> None:
    """Every form with a password field has a username field and autocomplete everywhere."""
    forms = page.evaluate(
        """() => Array.from(document.querySelectorAll('form'))
            .filter((f) => f.querySelector('input[type=password]'))
            .map((f) => ({
              id: f.id,
              username: Boolean(f.querySelector('input[autocomplete~=username]')),
              missing: Array.from(f.querySelectorAll('input[type=password]'))
                .filter((i) => !['current-password', 'new-password', 'off'].includes(i.getAttribute('autocomplete')))
                .map((i) => i.id),
            }))"""
    )
    for form in forms:
        checks.check(form["username"], "11", f"{name}: form #{form['id']} has no username field")
        checks.check(not form["missing"], "11", f"{name}: no autocomplete on {form['missing']}")


def read_shares_by_keyboard(page: Any, checks: Problems) -> list[str]:
    """Walk the 5 shares with the keyboard only (Enter on "Next share")."""
    shares = []
    page.focus("#share-next")
    for n in range(1, 6):
        expect(page.locator("#share-title")).to_have_text(f"Share {n} of 5")
        shares.append(" ".join(page.locator("#share-words li").all_inner_texts()))
        if n < 5:
            page.keyboard.press("Enter")
    expect(page.locator("#share-next")).to_be_disabled()
    focused = page.evaluate("() => document.activeElement?.id || document.activeElement?.tagName")
    checks.check(
        focused == "shares-done", "9", f"focus went to {focused!r} when Next share was disabled"
    )
    return shares


def _outbox_page(page: Any, live: Any) -> None:
    """The development outbox (a development-only route) rendered by the app's own template
    and served at its URL, so the real stylesheet and CSP apply."""
    from flask import render_template

    from raregen.web.headers import CSP

    with live.app.test_request_context("/dev/outbox"):
        html = render_template(
            "dev/outbox.html",
            messages=[
                {
                    "to": f"{LONG_LOCAL.format(tag='a1b2c3d4')}@{LONG_DOMAIN}",
                    "subject": "Your RareGen sign-in code: 123456",
                    "at": "2025-01-01T12:00:00",
                    "body": "Your code is 123456.\n\nOr open "
                    + live.base_url
                    + "/signin/code?c=0123456789abcdef0123456789abcdef0123456789abcdef\n",
                }
            ],
        )
    page.route(
        f"{live.base_url}/dev/outbox",
        lambda route: route.fulfill(
            status=200,
            body=html,
            headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP},
        ),
    )
    page.goto(f"{live.base_url}/dev/outbox")


def journey(browser: Any, live: Any, screenshots: Path, tmp_path: Path, device: Device) -> None:
    checks = Problems(device, screenshots)
    recorder = Recorder()
    console = Console()
    email = f"{LONG_LOCAL.format(tag=uuid.uuid4().hex[:8])}@{LONG_DOMAIN}"

    # -- sign up ---------------------------------------------------------------------------------
    context, page = open_device(browser, device, recorder, console)
    page.goto(live.base_url + "/")
    checks.page(page, "landing")
    sign_in(page, live, email, checks)

    # -- item 10: one next step on a new account's dashboard -------------------------------------
    expect(page.locator("#browser-keys")).not_to_have_text(re.compile("Checking"))
    checks.page(page, "dashboard-new")
    main_text = page.locator("main").inner_text()
    checks.check(
        main_text.count("No keys") <= 1, "10", f"'No keys' said {main_text.count('No keys')} times"
    )
    actions = visible_main_actions(page)
    checks.check(
        len(actions) == 1 and "/wallet/setup" in actions[0],
        "10",
        f"a new account is offered {actions}, not the one step 'set up your keys'",
    )
    if device.phone:
        page.set_viewport_size({"width": 360, "height": device.height})
        breaks = bad_email_breaks(page, '[data-role="email"]')
        checks.check(not breaks, "12", f"dashboard e-mail breaks mid-word: {breaks}")
        page.set_viewport_size({"width": device.width, "height": device.height})

    # -- setup: keys, shares (keyboard), confirmation --------------------------------------------
    page.goto(f"{live.base_url}/wallet/setup")
    step(page, "create")
    checks.page(page, "setup-create")
    check_password_forms(page, checks, "setup")
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    page.click("#create-btn")
    step(page, "shares")
    checks.page(page, "setup-shares")
    prev_box = page.locator("#share-prev").bounding_box()
    next_box = page.locator("#share-next").bounding_box()
    checks.check(
        abs(prev_box["y"] - next_box["y"]) < 4,
        "8",
        f"share Previous/Next are stacked (y {prev_box['y']:.0f} and {next_box['y']:.0f})",
    )
    shares = read_shares_by_keyboard(page, checks)
    page.click("#shares-done")
    step(page, "confirm")
    checks.page(page, "setup-confirm")
    answer_confirmation(page, shares)
    step(page, "done")
    checks.page(page, "setup-done")

    # -- dashboard with keys; the header ---------------------------------------------------------
    page.goto(f"{live.base_url}/wallet")
    expect(page.locator("#browser-keys")).to_contain_text("holds your keys")
    checks.page(page, "dashboard-ready")
    nav = page.evaluate(
        """() => Array.from(document.querySelectorAll('.site-nav a, .site-nav button'))
            .map((el) => ({ text: el.textContent.trim(), top: Math.round(el.getBoundingClientRect().top),
                            color: getComputedStyle(el).color }))"""
    )
    tops = [n["top"] for n in nav]
    checks.check(max(tops) - min(tops) < 8, "8", f"the nav wraps: {nav}")
    signout = next(n for n in nav if n["text"] == "Sign out")
    checks.check(
        signout["color"] == nav[0]["color"],
        "8",
        f"'Sign out' is {signout['color']}, other links {nav[0]['color']}",
    )

    # -- item 2: backup page messages next to the button -----------------------------------------
    page.goto(f"{live.base_url}/wallet/backup")
    step(page, "form")
    checks.page(page, "backup")
    check_password_forms(page, checks, "backup")
    for password, expected in (("not the password!", "Wrong password"), (PASSWORD, "saved")):
        page.fill("#backup-password", password)
        page.click("#backup-btn")
        message = page.locator("#backup-form .notice")
        if not checks.check(message.count() == 1, "2", "no message inside the backup form"):
            break
        expect(message).to_contain_text(expected)
        checks.check(
            in_viewport(page, "#backup-form .notice"), "2", f"'{expected}' message is off-screen"
        )
        live_attr = message.evaluate(
            "(el) => el.getAttribute('aria-live') || el.getAttribute('role')"
        )
        checks.check(
            live_attr in ("polite", "assertive", "status", "alert"),
            "2",
            "the message is not a live region",
        )
    checks.page(page, "backup-saved")

    # -- register a work: item 1, item 12 fonts --------------------------------------------------
    page.goto(f"{live.base_url}/wallet/register-work")
    step(page, "form")
    checks.page(page, "register-work")
    check_password_forms(page, checks, "register-work")
    checks.check(
        font_of(page, "#work-note") == font_of(page, "#work-title"),
        "12",
        f"Note font {font_of(page, '#work-note')!r} is not the inputs' font",
    )
    work = tmp_path / f"{device.name}-dub.wav"
    work.write_bytes(b"RIFF" + secrets.token_bytes(2048))
    page.set_input_files("#work-file", str(work))
    expect(page.locator("#work-hash")).to_have_text(hashlib.sha256(work.read_bytes()).hexdigest())
    page.fill("#work-title", "Kingston Dub")
    page.fill("#work-creator", "Ras Tester")
    page.select_option("#work-license", "CC-BY-4.0")
    page.fill("#work-note", "Second press.")
    page.fill("#work-password", PASSWORD)
    page.click("#work-submit")
    expect(page.locator(".job-panel")).to_be_visible()
    page.wait_for_timeout(700)  # smooth scrolling, if any, has ended
    checks.check(
        in_viewport(page, "#job-panel"), "1", "the job panel is off-screen after Sign and publish"
    )
    focus = page.evaluate("() => Boolean(document.activeElement?.closest('#job-panel'))")
    checks.check(focus, "1", "the focus is not on the job panel")
    panel = wait_for_panel(page, live, "confirmed")
    txid = panel.locator('[data-role="txid"]').inner_text().strip()
    status_text = (
        page.locator("#work-status").inner_text()
        if page.locator("#work-status").is_visible()
        else ""
    )
    checks.check(
        not re.search(r"queued|processing|\bsent\b", status_text),
        "1",
        f"the notice by the button says {status_text!r} while the job is confirmed",
    )
    focus = page.evaluate("() => Boolean(document.activeElement?.closest('#job-panel'))")
    checks.check(focus, "1", "the focus left the job panel when it updated")
    checks.page(page, "job-confirmed")

    # -- the public record: the licence's name ---------------------------------------------------
    page.click('[data-role="record-link"]')
    expect(page.locator('[data-role="verdict"]')).to_have_text("✓ Signature valid")
    checks.page(page, "record")
    facts = page.locator("article.record .facts").inner_text()
    checks.check(
        "Creative Commons Attribution 4.0" in facts, "12", "the record page shows no licence name"
    )

    # -- item 7: my records ----------------------------------------------------------------------
    page.goto(f"{live.base_url}/wallet/records")
    row = page.locator(f"[data-job-id]:has(a[href='/records/{txid}'])")
    expect(row).to_contain_text("Kingston Dub")
    checks.page(page, "records")
    box = row.bounding_box()
    checks.check(
        box["x"] >= 0 and box["x"] + box["width"] <= device.width + 0.5,
        "7",
        f"the record row does not fit the screen: {box}",
    )
    link = row.locator(f"a[href='/records/{txid}']")
    checks.check(len(link.inner_text().strip()) <= 24, "7", f"txid shown as {link.inner_text()!r}")
    line_height = link.evaluate("(el) => parseFloat(getComputedStyle(el).lineHeight) || 27")
    checks.check(link.bounding_box()["height"] <= 1.6 * line_height, "7", "the txid wraps")
    copy = row.locator(f'button[data-copy="{txid}"]')
    if checks.check(copy.count() == 1, "7", "no copy button for the txid"):
        copy.click()
        expect(copy).to_contain_text("Copied")
        checks.check(
            page.evaluate("() => navigator.clipboard.readText()") == txid,
            "7",
            "copy did not copy the txid",
        )

    page.goto(f"{live.base_url}/wallet/restore")
    step(page, "choose")
    checks.page(page, "restore-holding-keys")

    # -- item 12: sign-out confirmation ----------------------------------------------------------
    page.click("#signout")
    expect(page).to_have_url(re.compile(r"/signin$"))
    checks.check(
        re.search(r"signed out", page.locator("main").inner_text(), re.IGNORECASE),
        "12",
        "sign-out says nothing",
    )
    recorder.flush()
    context.close()

    # -- a fresh device: restore from 3 shares (items 5, 6) --------------------------------------
    context, page = open_device(browser, device, recorder, console)
    sign_in(page, live, email)
    expect(page.locator("#browser-keys")).not_to_have_text(re.compile("Checking"))
    checks.page(page, "dashboard-elsewhere")
    page.goto(f"{live.base_url}/wallet/restore")
    step(page, "choose")
    checks.page(page, "restore")
    check_password_forms(page, checks, "restore")
    checks.check(
        font_of(page, "#share-1") == font_of(page, "#new-password"),
        "12",
        "the share boxes use another font than the other inputs",
    )
    words = shares[2].split()
    wrong = "lionheart" if words[6] != "lionheart" else "zionward"
    page.fill("#share-1", shares[0])
    page.fill("#share-2", " ".join([*words[:6], wrong, *words[7:]]))
    page.fill("#share-3", shares[4])
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.press("#new-password2", "Enter")  # the keyboard way to submit
    status = page.locator("#shares-status")
    expect(status).to_be_visible()
    message = status.inner_text()
    checks.check(
        "Share 2" in message and "word 7" in message and wrong in message,
        "6",
        f"the bad-word message does not point at the box and word: {message!r}",
    )
    checks.check(
        page.input_value("#new-password") == NEW_PASSWORD
        and page.input_value("#new-password2") == NEW_PASSWORD,
        "6",
        "a bad share word cleared the new passwords",
    )
    checks.check(
        page.get_attribute("#share-2", "aria-invalid") == "true",
        "6",
        "share box 2 is not marked invalid",
    )
    checks.check(
        page.evaluate("() => document.activeElement?.id") == "share-2",
        "6",
        "focus is not on share box 2",
    )
    checks.page(page, "restore-bad-word")
    # a real word in the wrong place: the checksum names the box too
    other = "academic" if words[6] != "academic" else "acid"
    page.fill("#share-2", " ".join([*words[:6], other, *words[7:]]))
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.press("#new-password2", "Enter")  # the keyboard way to submit
    expect(status).not_to_have_text(message)
    checks.check(
        "Share 2" in status.inner_text(),
        "6",
        f"checksum message names no box: {status.inner_text()!r}",
    )
    page.fill("#share-2", shares[2])
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password2", NEW_PASSWORD)
    page.press("#new-password2", "Enter")  # the keyboard way to submit
    step(page, "done")
    checks.page(page, "restore-done")
    page.goto(f"{live.base_url}/wallet")
    expect(page.locator("#browser-keys")).to_contain_text("holds your keys")
    checks.check(
        "not confirmed" not in page.locator("#browser-keys").inner_text(),
        "5",
        "after a restore from 3 shares the dashboard says the shares are not confirmed",
    )

    # -- item 12: the development outbox; an error page ------------------------------------------
    _outbox_page(page, live)
    checks.page(page, "dev-outbox")
    overflow = page.evaluate(
        """() => Array.from(document.querySelectorAll('.dev-outbox *'))
            .filter((el) => el.getBoundingClientRect().right > document.querySelector('.dev-outbox').getBoundingClientRect().right + 0.5)
            .map((el) => el.tagName + '.' + el.className)"""
    )
    checks.check(not overflow, "12", f"outbox content overflows its card: {overflow}")
    before = len(console.errors)
    page.goto(f"{live.base_url}/no/such/page")
    del console.errors[before:]  # the browser logs the page's own 404
    checks.page(page, "not-found")
    recorder.flush()
    context.close()

    checks.check(
        not console.dom_advice, "11", f"Chromium form advice: {sorted(console.dom_advice)}"
    )
    checks.check(not console.errors, "-", f"console errors: {console.errors}")
    secret = shamir_mnemonic.combine_mnemonics([shares[0], shares[2], shares[4]])
    assert_nothing_secret_sent(recorder, live.base_url, secret, shares)
    checks.assert_none()


@pytest.mark.parametrize("device", [PHONE, DESKTOP], ids=lambda d: d.name)
def test_new_user_journey(
    browser: Any, live: Any, screenshots: Path, tmp_path: Path, device: Device
) -> None:
    journey(browser, live, screenshots, tmp_path, device)
