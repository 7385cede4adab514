"""The wallet and the publisher as two real processes (``ROLE=wallet`` and ``ROLE=publisher``)
on one SQLite database: sign up through the wallet (code read from its development outbox),
register a key and publish through the wallet API; the publisher process stores the job."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import coincurve
import pytest
import requests

from raregen import ROOT
from tests.integration.wallet.conftest import free_port, proof, publish_body

TOKEN = "two-process-service-token"
_TOKEN_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def _wait_ready(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()}")
        try:
            requests.get(url + "/healthz", timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError(f"server at {url} did not start:\n{log.read_text()}")


@pytest.fixture
def two_processes(tmp_path: Path, redis_url: str) -> Iterator[dict]:
    db_file = tmp_path / "shared.sqlite"
    base_env = {
        **os.environ,
        "RAREGEN_DATABASE_URL": f"sqlite:///{db_file}",
        "RAREGEN_REDIS_URL": redis_url,
        "RAREGEN_SERVICE_TOKEN": TOKEN,
        "RAREGEN_ENV": "development",
        # no worker runs here: nothing is enqueued, and nothing meets other tests' queues
        "RAREGEN_PUBLISH_MODE": "batch",
        "RAREGEN_QUEUE_NAME": f"wallet-roles-{uuid.uuid4().hex[:8]}",
        "RAREGEN_OTP_RATE_LIMIT_PER_IP": "1000 per hour",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("RAREGEN_ROLE", "RAREGEN_PUBLISHER_URL", "RAREGEN_SECRET_KEY"):
        base_env.pop(name, None)
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    migrate_env = {**base_env, "RAREGEN_INSTANCE_PATH": str(tmp_path / "migrate")}
    subprocess.run(
        [*flask, "db", "upgrade"], cwd=ROOT, env=migrate_env, check=True, capture_output=True
    )

    procs: list[subprocess.Popen] = []
    logs: dict[str, Path] = {}
    urls: dict[str, str] = {}

    def start(role: str, extra: dict[str, str]) -> None:
        port = free_port()
        log = tmp_path / f"{role}.log"
        env = {
            **base_env,
            "RAREGEN_ROLE": role,
            "RAREGEN_INSTANCE_PATH": str(tmp_path / role),
            "RAREGEN_SECRET_KEY": f"{role}-{uuid.uuid4().hex}",
            **extra,
        }
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*flask, "run", "--host", "127.0.0.1", "--port", str(port), "--no-reload"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        logs[role] = log
        urls[role] = f"http://127.0.0.1:{port}"
        _wait_ready(urls[role], proc, log)

    try:
        start("publisher", {})
        start("wallet", {"RAREGEN_PUBLISHER_URL": urls["publisher"]})
        yield {"urls": urls, "logs": logs, "db": db_file}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _token(http: requests.Session, url: str) -> str:
    page = http.get(url + "/signin", timeout=10)
    match = _TOKEN_RE.search(page.text)
    assert match, page.text[:500]
    return match.group(1)


@pytest.mark.slow
def test_wallet_and_publisher_as_two_processes(two_processes: dict) -> None:
    wallet, publisher = two_processes["urls"]["wallet"], two_processes["urls"]["publisher"]
    http = requests.Session()
    email = f"two-{uuid.uuid4().hex[:8]}@example.com"

    # sign up through the wallet process; the code comes from its development outbox
    resp = http.post(
        wallet + "/signin",
        data={"email": email, "csrf_token": _token(http, wallet)},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 303, resp.text[:500]
    outbox = http.get(wallet + "/dev/outbox", timeout=10).text
    code = re.search(r"sign-in code: (\d{6})", outbox)
    assert code, outbox[:1000]
    resp = http.post(
        wallet + "/signin/code",
        data={"code": code.group(1), "csrf_token": _token(http, wallet)},
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/wallet")
    headers = {"X-CSRFToken": _token(http, wallet)}

    # register the identity key through the wallet: forwarded to the publisher
    key = coincurve.PrivateKey()
    challenge = http.post(wallet + "/wallet/api/challenge", headers=headers, timeout=10).json()
    body = {
        "challenge": challenge["challenge"],
        "keys": [proof(key, challenge["challenge"], "identity")],
    }
    resp = http.post(wallet + "/wallet/api/keys", json=body, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    me = http.get(wallet + "/wallet/api/me", timeout=10).json()
    assert me["keys"] == [{"purpose": "identity", "pubkey": key.public_key.format().hex()}]
    assert me["credits"] == 20

    # publish through the wallet
    resp = http.post(
        wallet + "/wallet/api/publish", json=publish_body(key), headers=headers, timeout=10
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["jobId"]
    assert resp.json()["panelUrl"] == f"/wallet/jobs/{job_id}/panel"
    status = requests.get(publisher + resp.json()["statusUrl"], timeout=10)
    assert status.status_code == 200 and status.json()["status"] == "queued"

    # the job row is in the shared database, written by the publisher process
    with sqlite3.connect(two_processes["db"]) as conn:
        row = conn.execute(
            "SELECT account_ref, status FROM publish_jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        account_id = conn.execute("SELECT id FROM accounts WHERE email = ?", (email,)).fetchone()[0]
        ledger = conn.execute(
            "SELECT delta, reason FROM credit_ledger WHERE account_id = ? ORDER BY id",
            (account_id,),
        ).fetchall()
    assert row == (f"acct:{account_id}", "queued")
    assert [d for d, _ in ledger] == [20, -1]
    publisher_log = _ANSI_RE.sub("", two_processes["logs"]["publisher"].read_text())
    assert '"POST /internal/keys HTTP/1.1" 200' in publisher_log
    assert '"POST /internal/publish HTTP/1.1" 202' in publisher_log
    wallet_log = two_processes["logs"]["wallet"].read_text()
    assert "/internal/" not in wallet_log

    # each process serves only its role
    assert requests.post(wallet + "/v1/publish", json={}, timeout=10).status_code == 404
    assert requests.get(publisher + "/wallet/api/me", timeout=10).status_code == 404
    assert requests.post(publisher + "/internal/keys", json={}, timeout=10).status_code == 401
