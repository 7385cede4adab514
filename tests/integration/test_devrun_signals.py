"""``scripts/run`` (:mod:`raregen_dev.devrun`) stops everything it started on SIGHUP (a closed
terminal), as on SIGINT and SIGTERM, and leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
import requests

from raregen import ROOT
from raregen_dev import devrun
from raregen_dev.devnet import free_port
from tests.plugins.wait import wait_until


def _gone(pids: list[int], timeout: float) -> list[int]:
    """The pids of ``pids`` still running (not zombies) after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def test_stop_children_terminates_in_order_and_kills_a_stuck_group(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    ready = tmp_path / "ready"
    polite = textwrap.dedent(
        f"""
        import signal, sys, time
        def bye(*_):
            open({str(marks)!r}, "a").write("polite\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        open({str(ready)!r}, "w").close()
        time.sleep(60)
        """
    )
    # ignores SIGTERM and has a child of its own (an RQ scheduler, gunicorn's workers)
    stuck = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    env = dict(os.environ)
    first = devrun._spawn([sys.executable, "-c", polite], env)
    second = subprocess.Popen(
        [sys.executable, "-c", stuck], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert second.stdout is not None
    grandchild = int(second.stdout.readline())
    assert os.getpgid(first.pid) == first.pid  # a group (and session) of its own
    assert os.getsid(first.pid) != os.getsid(0)
    wait_until(ready.exists, 30, "the polite child's SIGTERM handler")
    started = time.monotonic()
    devrun.stop_children([first, second], timeout=2)
    assert time.monotonic() - started < 10
    assert first.returncode == 0 and marks.read_text() == "polite\n"
    assert second.returncode == -signal.SIGKILL
    assert _gone([grandchild], 5) == []


@pytest.mark.slow
@pytest.mark.node
@pytest.mark.timeout(600)  # up to 180 s to start everything, 90 s to stop
def test_sighup_stops_every_process_devrun_started(node_binary: Path, tmp_path: Path) -> None:
    # node_binary: skips (or fails under CI) when the regtest node cannot be had
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "REDIS_URL",
            "RAREGEN_REDIS_URL",
            "DATABASE_URL",
            "RAREGEN_DATABASE_URL",
            "PORT",
            "WORKERS",
        }
    }
    env.update(
        RAREGEN_INSTANCE_PATH=str(tmp_path / "instance"),
        RAREGEN_SECRET_KEY="test-secret",
        RAREGEN_POOL_TARGET_COUNT="2",
        RAREGEN_DEV_MINE_INTERVAL_SECONDS="1",
    )
    log = open(tmp_path / "devrun.log", "wb")  # noqa: SIM115
    # a session of its own, like a terminal's foreground job: the HUP goes to its group
    proc = subprocess.Popen(
        [sys.executable, "-m", "raregen_dev.devrun", "--port", str(port), "--workers", "1"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "devrun.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "devrun.log").read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/v1/ping", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        parts = ["bitcoind", "redis-server", "worker.py", "--cron", "gunicorn"]
        if devrun.find_nginx() is not None:
            parts.append("nginx")  # in front of gunicorn, on the port
        # node, redis, worker, cron, gunicorn + 2 of its workers (+ nginx and its worker)
        least = 7 + 2 * ("nginx" in parts)

        def all_up() -> bool:
            # the workers and the cron process up (a child may exit while being read)
            try:
                tree = psutil.Process(proc.pid).children(recursive=True)
                cmds = "\n".join(" ".join(p.cmdline()[:3]) for p in tree)
            except psutil.NoSuchProcess:
                return False
            return len(tree) >= least and all(part in cmds for part in parts)

        wait_until(all_up, 60, "every process devrun starts", every=0.2)
        # two slow clients (a request that never ends) hold two threads, not both web workers
        slow = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(2)]
        try:
            for sock in slow:
                sock.sendall(b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Le")
            time.sleep(0.5)
            for _ in range(4):
                assert requests.get(f"http://127.0.0.1:{port}/v1/ping", timeout=3).ok
        finally:
            for sock in slow:
                sock.close()
        pids = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        cmds = "\n".join(" ".join(psutil.Process(pid).cmdline()[:3]) for pid in pids)
        for part in parts:
            assert part in cmds, cmds
        assert len(pids) >= least, cmds
        os.killpg(proc.pid, signal.SIGHUP)  # the terminal closed
        assert proc.wait(90) == 0, (tmp_path / "devrun.log").read_text()
    finally:
        if proc.poll() is None:  # the test failed: let devrun clean up, else kill it
            pids = pids or [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
            proc.terminate()
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
    left = _gone(pids, 10)
    for pid in left:  # do not leave them running if the test failed
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert left == [], (tmp_path / "devrun.log").read_text()
    with pytest.raises(requests.RequestException):
        requests.get(f"http://127.0.0.1:{port}/v1/ping", timeout=1)
