"""Fixtures of the browser tests: the real app served on a loopback port, a real SMTP server,
an RQ worker process, the regtest node, and headless Chromium driven by Playwright.

* ``chromium_path``: Debian's Chromium (``$RAREGEN_CHROMIUM``, else ``/usr/bin/chromium`` or
  ``chromium`` on PATH). Playwright never downloads a browser here. Missing: the tests FAIL
  when ``$CI`` or ``$RAREGEN_REQUIRE_SERVICES`` is set, and skip otherwise.
* ``smtp``: an aiosmtpd server on 127.0.0.1 that keeps every message it receives.
* ``live``: the app (``create_app`` with the migrations applied; PostgreSQL when reachable,
  else SQLite) served by werkzeug in a thread, with ``MAIL_SERVER`` pointing at ``smtp``, the
  regtest node's RPC, a pool funded and split from the node, and ``python worker.py`` (the
  real RQ worker) in a subprocess on a queue of its own. Confirmations are driven by the
  tests: they mine a block and run :func:`raregen.publish.confirm.confirm_sent`.
* ``browser``: one Chromium for the session; tests open a fresh context (a new, empty
  profile: no cookies, no IndexedDB) per simulated device.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.db import services_required
from tests.plugins.live import funded_app_with_worker, serve, throwaway_database
from tests.vectors import REPO_ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
_CODE_RE = re.compile(r"\b(\d{6})\b")


#: seconds each browser test may take (pytest-timeout), fixtures included: the first one
#: starts Chromium, a live app and its worker with a funded pool
BROWSER_TEST_TIMEOUT = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every browser test the longer timeout, unless it carries its own mark."""
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent) and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(BROWSER_TEST_TIMEOUT))


def _missing(reason: str) -> None:
    if services_required():
        pytest.fail(f"required for the browser tests: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium (scripts/install-browser installs it)."""
    for candidate in (
        os.environ.get("RAREGEN_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _missing("headless Chromium not found: run scripts/install-browser or set RAREGEN_CHROMIUM")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    bundle = REPO_ROOT / "raregen" / "static" / "dist" / "setup.js"
    if not bundle.is_file():
        pytest.fail("the browser bundle is not built: run `npm run build`", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


# ---------------------------------------------------------------------------------------------
# SMTP


@dataclass
class MailBox:
    """Messages received by the test SMTP server: ``[(recipients, email.message.Message)]``."""

    host: str
    port: int
    messages: list[tuple[list[str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def code_for(self, email: str, after: int = 0, timeout: float = 20) -> str:
        """The sign-in code of the first message to ``email`` beyond the first ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                mine = [m for rcpt, m in self.messages if email in rcpt]
            if len(mine) > after:
                message = mine[after]
                body = (
                    message.get_payload(decode=True)
                    if not message.is_multipart()
                    else (message.get_payload(0).get_payload(decode=True))
                )
                match = _CODE_RE.search(message["Subject"] or "") or _CODE_RE.search(body.decode())
                assert match, f"no code in the mail to {email}"
                return match.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no sign-in mail reached {email} within {timeout} s")

    def count_for(self, email: str) -> int:
        with self.lock:
            return sum(1 for rcpt, _ in self.messages if email in rcpt)


@pytest.fixture(scope="session")
def smtp() -> Iterator[MailBox]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    from aiosmtpd.controller import Controller

    from raregen_dev.devnet import free_port

    box = MailBox("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with box.lock:
                box.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname=box.host, port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# ---------------------------------------------------------------------------------------------
# The app, its worker and the chain


@dataclass
class Live:
    """The running app: ``base_url``, the Flask ``app`` (for database look-ups), the node,
    the mail box."""

    base_url: str
    app: Any
    node: Any
    mail: MailBox

    def settle(self, blocks: int = 1) -> int:
        """Mine ``blocks`` and mark mined ``sent`` jobs confirmed; returns how many."""
        from raregen.publish import confirm

        self.node.mine(blocks)
        with self.app.app_context():
            return confirm.confirm_sent()


@pytest.fixture(scope="session")
def live(
    regtest_node: Any, redis_url: str, smtp: MailBox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    from raregen.publish.txbuilder import ServerWallet

    instance = tmp_path_factory.mktemp("browser-instance")
    url, pg_name = throwaway_database(instance, "browser")
    config = {
        "TESTING": False,
        "ENV_NAME": "test",
        "SECRET_KEY": "browser-" + uuid.uuid4().hex,
        "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
        "QUEUE_NAME": "browser-" + uuid.uuid4().hex[:8],
        "NODE_RPC_URL": regtest_node.url,
        "NODE_RPC_USER": regtest_node.user,
        "NODE_RPC_PASSWORD": regtest_node.password,
        "MAIL_SERVER": smtp.host,
        "MAIL_PORT": smtp.port,
        "PUBLISH_MODE": "immediate",
    }
    with funded_app_with_worker(
        url, pg_name, instance, redis_url, config, regtest_node, utxos=12, actor="browser-tests"
    ) as app:
        server, base_url = serve(app)
        try:
            yield Live(base_url=base_url, app=app, node=regtest_node, mail=smtp)
        finally:
            server.shutdown()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
