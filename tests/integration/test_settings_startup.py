"""Every entry point refuses wrong settings as a real process: ``flask --app app ...``,
``python worker.py`` (and ``--cron``), gunicorn, ``scripts/run``'s ``raregen_dev.devrun``. The
refusal is one line on stderr naming the variable, the value and the allowed values, a
non-zero exit status, and no traceback. Also ``flask --app app server-key new``."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from raregen import ROOT
from raregen.config import EXIT_CONFIG
from tests.integration.wallet.conftest import free_port
from tests.unit.test_settings import _HOLDER, clean_environ

FLASK = [sys.executable, "-m", "flask", "--app", "app"]
WORKER = [sys.executable, str(ROOT / "worker.py")]

#: (variable, bad value, the allowed values as the refusal names them)
KINDS = [
    ("RAREGEN_ROLE", "pubisher", "all, publisher, wallet"),
    ("RAREGEN_PUBLISH_MODE", "bogus", "immediate, batch, packed, auto"),
    ("RAREGEN_NETWORK", "mainnet2", "mainnet, testnet, regtest"),
    ("RAREGEN_BROADCASTERS", "node,nope", "a comma-separated list of node, arc, woc"),
    ("RAREGEN_BATCH_SIZE", "12x", "an integer > 0"),
    ("RAREGEN_RESERVATION_TIMEOUT_SECONDS", "-30", "an integer > 0"),
]


def run(
    cmd: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def assert_refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Refused with one line on stderr containing ``words``; returns that line."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert lines[0].startswith("raregen: ")
    return lines[0]


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """No RareGen setting from the test run, an instance folder of the test's own, and a
    Redis nothing can reach (nothing may get that far)."""
    return clean_environ(
        RAREGEN_INSTANCE_PATH=str(tmp_path / "instance"),
        RAREGEN_REDIS_URL="redis://127.0.0.1:1/0",
        PYTHONUNBUFFERED="1",
    )


@pytest.mark.parametrize("entry", ["flask routes", "worker.py"])
@pytest.mark.parametrize(("name", "value", "allowed"), KINDS, ids=[k[0] for k in KINDS])
def test_invalid_value_refused_by_every_entry_point(base_env, entry, name, value, allowed):
    cmd = [*FLASK, "routes"] if entry == "flask routes" else WORKER
    done = run(cmd, {**base_env, "RAREGEN_ENV": "development", name: value})
    assert done.returncode == EXIT_CONFIG
    line = assert_refused(done, name, repr(value), allowed)
    assert line == f"raregen: invalid setting {name}={value!r} (allowed values: {allowed})"


def test_misspelt_role_no_longer_builds_a_bare_app(base_env):
    """Regression: ``RAREGEN_ROLE=pubisher`` served only /healthz, /metrics and /v1/ping."""
    done = run(
        [*FLASK, "routes"], {**base_env, "RAREGEN_ENV": "development", "RAREGEN_ROLE": "pubisher"}
    )
    assert "/healthz" not in done.stdout
    assert_refused(done, "RAREGEN_ROLE='pubisher'")


def test_cron_and_dev_run_refuse(base_env):
    env = {**base_env, "RAREGEN_PUBLISH_MODE": "bogus", "RAREGEN_ENV": "development"}
    assert_refused(run([*WORKER, "--cron"], env), "RAREGEN_PUBLISH_MODE='bogus'")
    # scripts/run is `scripts/setup` then this: it refuses before starting anything
    devrun = [sys.executable, "-m", "raregen_dev.devrun"]
    assert_refused(run(devrun, env), "RAREGEN_PUBLISH_MODE='bogus'")
    assert_refused(run(devrun, {**base_env, "WORKERS": "two"}), "WORKERS='two'")
    assert not (Path(base_env["RAREGEN_INSTANCE_PATH"]) / "node").exists()


def test_gunicorn_stops_instead_of_restarting_workers(base_env):
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    cmd = [
        gunicorn,
        # one worker: when two workers both exit with "App failed to load" before the
        # arbiter reaps them, gunicorn 27's halt reaps the second one inside its own stop and
        # raises HaltServer again, uncaught (a traceback on stderr; the exit is still
        # non-zero). Whether that happens depends only on timing (seen under load).
        "-w",
        "1",
        "--no-control-socket",
        # no worker timeout: a worker still loading the app after gunicorn's default 30 s
        # (a loaded machine) is otherwise killed with SIGABRT and started again
        "--timeout",
        "0",
        "-b",
        f"127.0.0.1:{free_port()}",
        "app:create_app()",
    ]
    done = run(cmd, {**base_env, "RAREGEN_ROLE": "pubisher"}, timeout=240)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("raregen: ")]
    assert ours and set(ours) == {
        "raregen: invalid setting RAREGEN_ROLE='pubisher' (allowed values: all, publisher, wallet)"
    }
    assert "App failed to load" in done.stderr  # gunicorn's arbiter stopped


def test_production_refuses_to_start_unconfigured(base_env):
    """The default environment is production: a bare start names all that is missing."""
    done = run([*FLASK, "routes"], base_env)
    assert done.returncode == EXIT_CONFIG
    assert_refused(
        done,
        "RAREGEN_ENV=production",
        "RAREGEN_SECRET_KEY",
        "RAREGEN_SERVER_KEY_FILE",
        "RAREGEN_MAIL_SERVER",
    )
    assert not (Path(base_env["RAREGEN_INSTANCE_PATH"]) / "server.key").exists()
    assert not (Path(base_env["RAREGEN_INSTANCE_PATH"]) / "secret_key").exists()
    assert_refused(run(WORKER, base_env), "RAREGEN_SECRET_KEY")


def test_server_key_new_then_production_starts(base_env, tmp_path):
    key_file = tmp_path / "keys" / "server.key"
    env = {
        **base_env,
        "RAREGEN_SERVER_KEY_FILE": str(key_file),
        "RAREGEN_RECEIPT_KEY_FILE": str(tmp_path / "keys" / "receipt.key"),
        "RAREGEN_SECRET_KEY": "prod-secret",
        "RAREGEN_MAIL_SERVER": "127.0.0.1",
    }
    assert_refused(run([*FLASK, "routes"], env), "RAREGEN_SERVER_KEY_FILE", "server-key new")

    made = run([*FLASK, "server-key", "new"], env)  # works while the app refuses to start
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    from raregen.publish.txbuilder import ServerWallet

    wallet = ServerWallet.from_wif(key_file.read_text().strip(), "regtest")
    assert f"address: {wallet.address}" in made.stdout.splitlines()

    before = key_file.read_bytes()
    again = run([*FLASK, "server-key", "new"], env)
    assert again.returncode == 1
    assert_refused(again, str(key_file), "never overwritten")
    assert key_file.read_bytes() == before

    # the receipt key is the other one production needs (docs/PROOFS.md)
    assert_refused(run([*FLASK, "routes"], env), "RAREGEN_RECEIPT_KEY_FILE", "--receipt")
    receipt_file = tmp_path / "keys" / "receipt.key"
    made = run([*FLASK, "server-key", "new", "--receipt"], env)
    assert made.returncode == 0, made.stderr
    assert stat.S_IMODE(receipt_file.stat().st_mode) == 0o600
    assert any(line.startswith("public key: 0") for line in made.stdout.splitlines())
    again = run([*FLASK, "server-key", "new", "--receipt"], env)
    assert again.returncode == 1
    assert_refused(again, str(receipt_file), "never overwritten")

    started = run([*FLASK, "routes"], env)
    assert started.returncode == 0, started.stderr
    assert "/v1/publish" in started.stdout

    bad = run([*FLASK, "server-key", "new"], {**env, "RAREGEN_NETWORK": "bitcoin"})
    assert_refused(bad, "RAREGEN_NETWORK='bitcoin'")


def test_production_sqlite_serves_one_process(base_env, tmp_path):
    from raregen.publish.txbuilder import ServerWallet

    url = f"sqlite:///{tmp_path / 'prod.sqlite'}"
    env = {
        **base_env,
        "RAREGEN_DATABASE_URL": url,
        "RAREGEN_SECRET_KEY": "prod-secret",
        "RAREGEN_SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
        "RAREGEN_RECEIPT_WIF": ServerWallet.generate("regtest").to_wif(),
        "RAREGEN_MAIL_SERVER": "127.0.0.1",
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for cmd in ([*FLASK, "routes"], WORKER):
            assert_refused(run(cmd, env), "RAREGEN_DATABASE_URL", f"pid {holder.pid}", "PostgreSQL")
        # development: several processes on one SQLite file, as scripts/run does
        assert run([*FLASK, "routes"], {**env, "RAREGEN_ENV": "development"}).returncode == 0
    finally:
        try:
            holder.communicate("", timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()  # a holder that does not end when told: stopped all the same
            holder.wait(10)
    assert run([*FLASK, "routes"], env).returncode == 0  # the holder is gone
