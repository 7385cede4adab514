"""The client library and the ``raregen`` command against the live app (werkzeug on a
loopback port, PostgreSQL, Redis, the regtest node, a real RQ worker): every command, the
library's retries on 429 and its idempotent resubmission, and that importing the client
loads no part of the server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from raregen.client import APIError, Client, RateLimited, TransportError
from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

RAREGEN = str(Path(sys.executable).with_name("raregen"))


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAREGEN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("raregen: error: "), proc.stderr
    return lines[0]


def test_import_loads_no_server_module() -> None:
    code = (
        "import sys, raregen.client, raregen.client.cli; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'flask', 'sqlalchemy', 'werkzeug', 'redis', 'rq', 'bsv', 'pydantic', 'psycopg'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert out.stdout.strip() == ""


def test_every_command_against_the_live_app(live_api: Any, tmp_path: Path) -> None:
    key = tmp_path / "key"
    env = {"RAREGEN_SERVER": live_api.base_url, "RAREGEN_KEY_FILE": str(key)}
    made = _run("keygen", env=env)
    assert made.returncode == 0, made.stderr
    pub = made.stdout.strip()
    assert len(pub) == 66 and (key.stat().st_mode & 0o777) == 0o600
    # refusal to overwrite
    again = _run("keygen", env=env)
    assert "exists; use --force" in _one_line_error(again)
    assert key.read_text().strip() and _run("pubkey", env=env).stdout.strip() == pub

    record = tmp_path / "record.json"
    record.write_text(json.dumps({"title": "CLI lion", "contentHash": "cd" * 32}))
    signed = _run("sign", str(record), "--type", "work", env=env)
    body = json.loads(signed.stdout)
    assert set(body) == {"signedPayload", "signature", "pubkey"} and body["pubkey"] == pub

    # not registered yet: the server's code in one line
    refused = _run("publish", str(record), env=env)
    assert "403 KEY_NOT_REGISTERED" in _one_line_error(refused)

    live_api.register_key(pub)
    proc = subprocess.Popen(
        [RAREGEN, "publish", str(record), "--type", "work", "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 150
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1.5)
        live_api.settle()  # mine a block, confirm what was sent
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    txid = out.strip()
    assert len(txid) == 64
    lines = err.splitlines()
    assert lines[0].startswith("job ") and lines[0].endswith(" queued"), err
    job_id = lines[0].split()[1]
    assert any(" sent txid=" in ln or " confirmed txid=" in ln for ln in lines), err
    assert f"confirmed txid={txid} block=" in err

    shown = _run("status", job_id, env=env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "confirmed"
    checked = _run("verify", txid, env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"{txid}:0  VALID  pubkey={pub}" in checked.stdout

    # bad arguments and refusals: one line, non-zero, no traceback
    assert "NOT_FOUND" in _one_line_error(_run("status", "no-such-job", env=env))
    assert "Missing argument" in _one_line_error(_run("publish", env=env))
    assert "No such option" in _one_line_error(_run("publish", str(record), "--bogus", env=env))
    assert "cannot read" in _one_line_error(_run("publish", str(tmp_path / "none.json"), env=env))
    assert "MALFORMED_JSON" in _one_line_error(_run("verify", "zz", env=env))
    assert "no key file" in _one_line_error(_run("pubkey", "--key", str(tmp_path / "k2")))
    assert (
        "invalid value"
        in _one_line_error(_run("publish", str(record), "--wait", "x", env=env)).lower()
    )


def test_library_publish_wait_verify_and_resubmission(live_api: Any) -> None:
    import coincurve

    key = coincurve.PrivateKey()
    live_api.register_key(key.public_key.format().hex())
    client = Client(live_api.base_url, key)
    body = client.sign({"title": "library"}, "work")
    job = client.submit(body)
    assert job.status == "queued"
    # the same signed body again: the same job (200), never a second one
    again = client.submit(body)
    assert again.job_id == job.job_id
    job.wait(until="sent", timeout=60, poll=0.2)
    assert job.txid and job.status in ("sent", "confirmed")
    live_api.settle()
    assert client.status(job.job_id).status == "confirmed"
    result = client.verify(job.txid)
    assert result.valid and result.records[0].signed_payload == body["signedPayload"]

    with pytest.raises(APIError) as info:
        client.status("missing")
    assert info.value.code == "NOT_FOUND" and info.value.status == 404

    other = Client(live_api.base_url, coincurve.PrivateKey())
    with pytest.raises(APIError) as refused:
        other.publish({"n": 1})
    assert refused.value.code == "KEY_NOT_REGISTERED" and refused.value.status == 403


def test_library_waits_out_a_429(live_api: Any) -> None:
    import coincurve

    key = coincurve.PrivateKey()
    live_api.register_key(key.public_key.format().hex())
    config = live_api.app.config
    saved = config["PUBLISH_RATE_LIMIT"]
    config["PUBLISH_RATE_LIMIT"] = "2 per 2 second"
    try:
        patient = Client(live_api.base_url, key, retries=3, max_backoff=5)
        jobs = [patient.publish({"n": i}) for i in range(3)]
        assert len({j.job_id for j in jobs}) == 3
        assert patient.pauses and all(0 < p <= 5 for p in patient.pauses)
        hasty = Client(live_api.base_url, key, retries=0)
        with pytest.raises(RateLimited) as info:
            for n in range(10, 13):  # the third of one window at the latest
                hasty.publish({"n": n})
        assert info.value.code == "RATE_LIMITED" and info.value.retry_after >= 1
    finally:
        config["PUBLISH_RATE_LIMIT"] = saved


def test_unreachable_server_is_a_transport_error_after_backoff() -> None:
    from raregen_dev.devnet import free_port

    client = Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.05)
    with pytest.raises(TransportError):
        client.status("x")
    assert client.pauses == [0.05, 0.1]
