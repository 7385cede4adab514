"""The operator console (/ops) in a real browser, against the live app, its RQ worker and the
regtest node (tests/browser/conftest.py).

* Access: every ``/ops`` URL of the app's URL map (each of its methods) answers 403 to an
  anonymous visitor and to a signed-in account without the operator role (the console
  answers 403 rather than redirecting to sign-in; docs/OPERATIONS.md).
* Actions, on a desktop: retry a failed job, release and settle a dirty UTXO, split,
  replenish, revoke a key, grant credits. Each goes through its confirmation step, has its
  effect in the database and leaves an audit entry with the operator as actor; a POST
  without the CSRF token is refused.
* Charts: five uPlot canvases for the last hour and the last day, fed by /ops/api/charts.
* Phone (390x844) and desktop (1280x800): full-page screenshots (test-artifacts/screenshots/
  ux-<device>-ops-<page>.png, and the phone's first screen as ops-phone-*-screen.png),
  axe-core 0 serious/critical, no sideways scrolling (nor at 360 px on the phone), no console
  error and no CSP violation (``securitypolicyviolation`` events are collected too).

Time: about a minute for both tests on an idle machine (the live fixture's start aside).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_wallet_flow import TIMEOUT_MS, sign_in
from tests.browser.ux import DESKTOP, PHONE, Device, Problems

CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def _ctx(live: Any) -> Any:
    return live.app.app_context()


def _audited(live: Any, action: str, subject: str | None, actor: str) -> dict[str, Any]:
    """The newest audit row of ``action`` on ``subject`` by ``actor`` (asserts there is one)."""
    from sqlalchemy import select

    from raregen.db import db
    from raregen.publish.models import AuditLog

    with _ctx(live):
        query = select(AuditLog).where(AuditLog.action == action, AuditLog.actor == actor)
        if subject is not None:
            query = query.where(AuditLog.subject == subject)
        row = db.session.scalars(query.order_by(AuditLog.id.desc())).first()
        assert row is not None, f"no audit entry {action} {subject} by {actor}"
        assert row.seq is not None and row.hash, "the entry is not chained"
        detail = json.loads(row.detail) if row.detail else {}
        db.session.remove()
    return detail


@pytest.fixture(scope="module")
def people(live: Any) -> dict[str, Any]:
    """An operator (granted with the CLI command) and a plain account."""
    from raregen.db import transaction
    from raregen.wallet import accounts

    tag = uuid.uuid4().hex[:8]
    operator, plain = f"ops-{tag}@example.org", f"plain-{tag}@example.org"
    with _ctx(live), transaction():
        op_id = accounts.get_or_create(operator).id
        accounts.get_or_create(plain)
    runner = live.app.test_cli_runner()
    result = runner.invoke(args=["accounts", "operator", operator])
    assert result.exit_code == 0, result.output
    assert "operator" in result.output
    # granted and revoked again through the command, then granted: both are audited
    assert runner.invoke(args=["accounts", "operator", plain]).exit_code == 0
    assert runner.invoke(args=["accounts", "operator", plain, "--revoke"]).exit_code == 0
    _audited(live, "wallet:account:operator", f"acct:{op_id}", "cli")
    return {"operator": operator, "plain": plain, "actor": f"account:{op_id}"}


def _ops_urls(live: Any) -> list[tuple[str, str]]:
    """Every /ops rule of the URL map with each of its methods; a rule with an action name
    once per action (and once with an unknown name)."""
    from raregen.ops.views import ACTIONS

    out = []
    for rule in live.app.url_map.iter_rules():
        if not rule.rule.startswith("/ops"):
            continue
        paths = [rule.rule]
        for arg in rule.arguments:
            assert arg == "name", rule.rule
            paths = [p.replace("<name>", n) for p in paths for n in [*ACTIONS, "no-such-action"]]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out += [(method, p) for p in paths]
    assert {p for _, p in out} >= {"/ops", "/ops/charts", "/ops/api/charts"}, out
    return out


def test_ops_is_403_for_anonymous_and_non_operators(
    browser: Any, live: Any, people: dict[str, Any]
) -> None:
    urls = _ops_urls(live)
    anonymous = browser.new_context()
    plain = browser.new_context()
    try:
        page = plain.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sign_in(page, live, people["plain"])
        for who, ctx in (("anonymous", anonymous), ("non-operator", plain)):
            for method, path in urls:
                resp = ctx.request.fetch(
                    live.base_url + path,
                    method=method,
                    max_redirects=0,
                    form={"x": "1"} if method == "POST" else None,
                )
                assert resp.status == 403, f"{who} {method} {path}: {resp.status}"
        api = plain.request.get(
            live.base_url + "/ops/api/charts", headers={"Accept": "application/json"}
        )
        assert api.json()["error"]["code"] == "FORBIDDEN"
    finally:
        anonymous.close()
        plain.close()


class Watch:
    """Console errors and page errors of a page (CSP violations show up there too)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda err: self.errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))


def _open(browser: Any, device: Device, live: Any, email: str) -> tuple[Any, Any, Watch]:
    context = browser.new_context(**device.options())
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    watch = Watch(page)
    sign_in(page, live, email)
    return context, page, watch


def _csp(page: Any) -> list[str]:
    return list(page.evaluate("() => window.__cspViolations || []"))


def _confirm(page: Any, trigger: Any, expect_text: str) -> None:
    """Click an action's button, check its confirmation step, confirm, wait for the result."""
    trigger.click()
    card = page.locator("#ops-confirm .ops-confirm-card")
    expect(card).to_be_visible()
    expect(card.locator(".ops-sentence")).to_contain_text(expect_text)
    expect(page.locator("#confirm-title")).to_be_focused()
    with page.expect_navigation():
        card.locator("[data-role=confirm]").click()
    expect(page.locator(".notice-ok, .notice-error").first).to_be_visible()


def _ok(page: Any, text: str) -> None:
    errors = page.locator(".notice-error").all_inner_texts()
    assert not errors, errors
    expect(page.locator(".notice-ok").first).to_contain_text(text)


def _prepare(live: Any) -> dict[str, Any]:
    """A failed job, two dirty UTXOs, a registered key; the pool sampled once."""
    from sqlalchemy import select

    from raregen.db import db, transaction
    from raregen.ops import charts
    from raregen.publish import keys, pool
    from raregen.publish.models import AVAILABLE, PublishJob, Utxo
    from raregen.publish.txbuilder import ServerWallet

    job_id = str(uuid.uuid4())
    pubkey = ServerWallet.generate("regtest").public_key_hex
    with _ctx(live):
        with transaction():
            db.session.add(
                PublishJob(
                    job_id=job_id,
                    pubkey="02" + "11" * 32,
                    nonce=uuid.uuid4().hex,
                    signed_payload="{}",
                    signature="AA==",
                    status="failed",
                    error_code="OPS_TEST_CODE",
                    error_detail="made by the console test",
                )
            )
            utxos = db.session.scalars(
                select(Utxo)
                .where(Utxo.status == AVAILABLE, Utxo.dirty.is_(False), Utxo.purpose == "publish")
                .order_by(Utxo.id.desc())
                .limit(2)
            ).all()
            assert len(utxos) == 2
            for u in utxos:
                pool.mark_dirty(u, "MEMPOOL_CONFLICT: console test")
            dirty = [f"{u.txid}:{u.vout}" for u in utxos]
        keys.register_key(pubkey, credits=3, label="console test")
        charts.sample_pool()
        db.session.remove()
    return {"job_id": job_id, "dirty": dirty, "pubkey": pubkey}


def _utxo(live: Any, outpoint: str) -> tuple[str, bool]:
    from sqlalchemy import select

    from raregen.db import db
    from raregen.publish.models import Utxo

    txid, vout = outpoint.split(":")
    with _ctx(live):
        u = db.session.scalar(select(Utxo).where(Utxo.txid == txid, Utxo.vout == int(vout)))
        out = (u.status, u.dirty)
        db.session.remove()
    return out


WIDE_JS = """() => [...document.querySelectorAll('body *')]
  .filter((el) => !el.closest('thead'))  // visually hidden on phones, clipped
  .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(0, 8)
  .map((el) => `${el.tagName}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`)
"""


def _check_page(page: Any, problems: Problems, watch: Watch, name: str) -> None:
    problems.page(page, name)
    wide = page.evaluate(WIDE_JS)
    problems.check(not wide, "4", f"{name}: wider than the screen: {wide}")
    problems.check(not _csp(page), "csp", f"{name}: CSP violations {_csp(page)}")
    problems.check(not watch.errors, "console", f"{name}: console errors {watch.errors}")


def test_ops_console_actions_charts_and_layout(
    browser: Any, live: Any, people: dict[str, Any], screenshots: Path
) -> None:
    from sqlalchemy import select

    from raregen.db import db
    from raregen.publish.models import PublishJob, RegisteredKey, Utxo
    from raregen.wallet import accounts

    started = time.monotonic()
    data = _prepare(live)
    actor = people["actor"]
    context, page, watch = _open(browser, DESKTOP, live, people["operator"])
    problems = Problems(DESKTOP, screenshots)
    try:
        page.goto(f"{live.base_url}/ops")
        expect(page.locator("h1")).to_have_text("Operator console")
        expect(page.locator("[data-role=pool]")).to_be_visible()

        # a POST without the CSRF token is refused, signed in as an operator
        resp = context.request.post(
            f"{live.base_url}/ops/actions/replenish", form={"x": "1"}, max_redirects=0
        )
        assert resp.status == 400 and "CSRF_FAILED" in resp.text()

        # retry a failed job
        row = page.locator(f"tr[data-job-id='{data['job_id']}']")
        _confirm(page, row.locator("button[data-action=retry]"), data["job_id"])
        _ok(page, "queued again")
        _audited(live, "publish:job:retried", data["job_id"], actor)
        with _ctx(live):
            job = db.session.scalar(select(PublishJob).where(PublishJob.job_id == data["job_id"]))
            assert job.status != "failed" or job.error_code != "OPS_TEST_CODE"
            db.session.remove()

        # the confirmation step is a real step: cancelling it changes nothing
        release, settle = data["dirty"]
        row = page.locator(f"tr[data-utxo='{release}']")
        row.locator("button[data-action=release-dirty]").click()
        expect(page.locator("#confirm-title")).to_be_focused()
        _check_page(page, problems, watch, "ops-confirm")
        page.locator("#ops-confirm [data-role=cancel]").click()
        assert _utxo(live, release) == ("available", True)

        # release a dirty UTXO, then settle the other against the chain
        button = f"tr[data-utxo='{release}'] button[data-action=release-dirty]"
        _confirm(page, page.locator(button), release)
        _ok(page, "back in the pool")
        assert _utxo(live, release) == ("available", False)
        _audited(live, "pool:utxo:released", release, actor)
        button = f"tr[data-utxo='{settle}'] button[data-action=settle-dirty]"
        _confirm(page, page.locator(button), settle)
        _ok(page, "available")
        assert _utxo(live, settle) == ("available", False)
        assert _audited(live, "pool:utxo:settled", settle, actor)["chain"] == "unspent"

        # split two UTXOs
        page.fill("#split-count", "2")
        _confirm(page, page.locator("button[data-action=split]"), "into 2 publish UTXOs")
        _ok(page, "Split into 2")
        txid = re.search(r"[0-9a-f]{64}", page.locator(".notice-ok").first.inner_text()).group(0)
        assert _audited(live, "pool:utxo:split", txid, actor)["count"] == 2
        with _ctx(live):
            made = db.session.scalars(select(Utxo).where(Utxo.txid == txid)).all()
            assert sum(1 for u in made if u.purpose == "publish") >= 2
            db.session.remove()

        # replenish: under a raised low-water mark it splits up to the target
        cfg = live.app.config
        saved = cfg["POOL_LOW_WATER"], cfg["POOL_TARGET_COUNT"]
        with _ctx(live):
            from raregen.publish import pool

            available = pool.status_summary()["available_count"]
            db.session.remove()
        cfg["POOL_LOW_WATER"], cfg["POOL_TARGET_COUNT"] = available + 1, available + 2
        try:
            _confirm(page, page.locator("button[data-action=replenish]"), "low-water mark")
            _ok(page, "added 2 UTXOs")
        finally:
            cfg["POOL_LOW_WATER"], cfg["POOL_TARGET_COUNT"] = saved
        assert _audited(live, "pool:replenish:run", None, actor)["added"] == 2

        # revoke a key
        page.fill("#revoke-pubkey", data["pubkey"])
        _confirm(page, page.locator("button[data-action=revoke-key]"), data["pubkey"])
        _ok(page, "revoked")
        _audited(live, "keys:key:revoked", data["pubkey"], actor)
        with _ctx(live):
            key = db.session.scalar(
                select(RegisteredKey).where(RegisteredKey.pubkey == data["pubkey"])
            )
            assert key.status == "revoked"
            db.session.remove()

        # grant credits to the plain account
        with _ctx(live):
            plain = accounts.by_email(people["plain"])
            before, plain_id = plain.credit_balance, plain.id
            db.session.remove()
        page.fill("#grant-email", people["plain"])
        page.fill("#grant-amount", "5")
        page.fill("#grant-note", "console test")
        _confirm(page, page.locator("button[data-action=grant]"), "+5 credits")
        _ok(page, f"balance {before + 5}")
        assert _audited(live, "credits:account:granted", f"acct:{plain_id}", actor)["amount"] == 5

        # bad input stops at the confirmation step with its code
        page.fill("#revoke-pubkey", "not-a-key")
        page.locator("button[data-action=revoke-key]").click()
        expect(page.locator("#ops-confirm [data-code=BAD_PUBKEY]")).to_be_visible()

        # the audit table shows the operator's entries
        page.goto(f"{live.base_url}/ops")
        expect(page.locator("[data-role=audit]")).to_contain_text(actor)
        _check_page(page, problems, watch, "ops-after-actions")

        # charts: the hour, then the day
        _charts(page, live, problems, watch, "desktop")
        with _ctx(live):
            from raregen import audit

            assert audit.verify().problem is None
            db.session.remove()
    finally:
        context.close()

    # the phone: overview and charts fit, pass axe, no console error
    phone_ctx, phone, phone_watch = _open(browser, PHONE, live, people["operator"])
    phone_problems = Problems(PHONE, screenshots)
    try:
        phone.goto(f"{live.base_url}/ops")
        _check_page(phone, phone_problems, phone_watch, "ops-overview")
        phone.screenshot(path=str(screenshots / "ops-phone-overview-screen.png"))
        phone.locator("tr[data-utxo] button, button[data-action=replenish]").first.click()
        expect(phone.locator("#confirm-title")).to_be_focused()
        _check_page(phone, phone_problems, phone_watch, "ops-confirm")
        phone.screenshot(path=str(screenshots / "ops-phone-confirm-screen.png"))
        _charts(phone, live, phone_problems, phone_watch, "phone", day_checks=False)
    finally:
        phone_ctx.close()
    problems.found += phone_problems.found
    problems.assert_none()
    print(f"console test body: {time.monotonic() - started:.1f} s")


def _charts(
    page: Any, live: Any, problems: Problems, watch: Watch, device: str, day_checks: bool = True
) -> None:
    page.goto(f"{live.base_url}/ops/charts")
    expect(page.locator(".ops-charts[data-loaded=hour]")).to_be_attached()
    expect(page.locator(".ops-chart canvas")).to_have_count(5)
    payload = page.evaluate(
        """async () => (await fetch('/ops/api/charts?window=hour',
                                   {headers: {Accept: 'application/json'}})).json()"""
    )
    assert len(payload["t"]) == 60 and payload["poolT"], payload.keys()
    assert sum(payload["accepted"]) >= 0
    _check_page(page, problems, watch, "ops-charts-hour")
    page.click("button[data-window=day]")
    expect(page.locator(".ops-charts[data-loaded=day]")).to_be_attached()
    expect(page.locator(".ops-chart canvas")).to_have_count(5)
    if day_checks:
        _check_page(page, problems, watch, "ops-charts-day")
    else:
        problems.check(not _csp(page), "csp", f"charts-day: CSP violations {_csp(page)}")
        problems.check(not watch.errors, "console", f"charts-day: console errors {watch.errors}")
