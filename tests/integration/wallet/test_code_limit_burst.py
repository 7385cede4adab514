"""Sign-in code limits hold under parallel requests (issue 9, hole 4).

A real server (gunicorn, two worker processes with threads, on a free loopback port) counts
on the real Redis of the ``redis_url`` fixture. Fifty clients each fetch a form (CSRF token
and session cookie), wait at a barrier, then all post at once. A limit that first reads the
counter and then increments it lets a burst through between the two; the counted mails (the
server's development outbox) must stay within the limit.

Each client sends from its own loopback address (``127.a.b.c``, Linux routes the whole
127.0.0.0/8 to ``lo``), so the per-address limit is tested alone, and then one address asks
for fifty different mailboxes to test the per-IP limit. The addresses are random so that
counters left in the shared Redis by other runs never meet these.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from raregen import ROOT
from tests.integration.wallet.conftest import free_port

BURST = 50
PER_EMAIL = 5  # the default OTP_RATE_LIMIT_PER_EMAIL: 5 per 15 minutes
PER_IP = 10  # set below for the server: 10 per hour
_TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    """A gunicorn-served app on SQLite and the real Redis; yields its port and outbox file."""
    env = {
        **os.environ,
        "RAREGEN_DATABASE_URL": f"sqlite:///{tmp_path / 'burst.sqlite'}",
        "RAREGEN_REDIS_URL": redis_url,
        "RAREGEN_ENV": "development",
        "RAREGEN_ROLE": "wallet",
        "RAREGEN_PUBLISHER_URL": "http://127.0.0.1:9",  # never called here
        "RAREGEN_SERVICE_TOKEN": "burst-test-token",
        "RAREGEN_INSTANCE_PATH": str(tmp_path / "instance"),
        "RAREGEN_SECRET_KEY": uuid.uuid4().hex,
        "RAREGEN_OTP_RATE_LIMIT_PER_IP": f"{PER_IP} per hour",
        "RAREGEN_QUEUE_NAME": f"burst-{uuid.uuid4().hex[:8]}",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("RAREGEN_OTP_RATE_LIMIT_PER_EMAIL", "RAREGEN_RATELIMIT_ENABLED", "MAIL_SERVER"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = tmp_path / "gunicorn.log"
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                gunicorn,
                *("-w", "2", "-k", "gthread", "--threads", "25", "--no-control-socket"),
                *("-b", f"127.0.0.1:{port}", "app:create_app()"),
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited early:\n{log.read_text()}")
            try:
                _request(port, "127.0.0.1", "GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"server did not start:\n{log.read_text()}") from None
                time.sleep(0.2)
        yield {"port": port, "outbox": tmp_path / "instance" / "dev_outbox.jsonl", "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _request(
    port: int, source: str, method: str, path: str, body: str | None = None, cookie: str = ""
) -> tuple[int, str, str]:
    """One request from loopback address ``source``: (status, body, session cookie)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        set_cookie = resp.getheader("Set-Cookie") or ""
        return resp.status, text, set_cookie.split(";", 1)[0] or cookie
    finally:
        conn.close()


def _burst(port: int, requests_: list[tuple[str, str]]) -> list[int]:
    """Post ``/signin`` for each ``(source address, email)`` at once; the statuses."""
    barrier = threading.Barrier(len(requests_), timeout=60)
    statuses: list[int] = [0] * len(requests_)
    errors: list[BaseException] = []

    def client(i: int, source: str, email: str) -> None:
        try:
            status, page, cookie = _request(port, source, "GET", "/signin")
            assert status == 200, page[:300]
            match = _TOKEN_RE.search(page)
            assert match and cookie, page[:300]
            body = urlencode({"email": email, "csrf_token": match.group(1)})
            barrier.wait()
            statuses[i] = _request(port, source, "POST", "/signin", body, cookie)[0]
        except BaseException as exc:  # reported by the test thread
            barrier.abort()
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=(i, source, email))
        for i, (source, email) in enumerate(requests_)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    return statuses


def _mails_to(outbox: Path, emails: set[str]) -> int:
    if not outbox.exists():
        return 0
    lines = outbox.read_text().splitlines()
    return sum(1 for line in lines if json.loads(line)["to"] in emails)


def _random_net() -> str:
    return f"127.{random.randint(1, 254)}.{random.randint(0, 254)}"


@pytest.mark.slow
@pytest.mark.redis
def test_parallel_requests_for_one_address_send_at_most_five_codes(server: dict[str, Any]) -> None:
    email = f"burst-{uuid.uuid4().hex[:10]}@example.com"
    net = _random_net()
    statuses = _burst(server["port"], [(f"{net}.{i + 1}", email) for i in range(BURST)])
    sent = statuses.count(303)
    assert set(statuses) <= {303, 429}, statuses
    assert 1 <= sent <= PER_EMAIL, statuses
    assert _mails_to(server["outbox"], {email}) == sent


@pytest.mark.slow
@pytest.mark.redis
def test_parallel_requests_from_one_ip_send_at_most_its_limit(server: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:10]
    emails = [f"ip-{tag}-{i}@example.com" for i in range(BURST)]
    source = f"{_random_net()}.1"
    statuses = _burst(server["port"], [(source, email) for email in emails])
    sent = statuses.count(303)
    assert set(statuses) <= {303, 429}, statuses
    assert 1 <= sent <= PER_IP, statuses
    assert _mails_to(server["outbox"], set(emails)) == sent
