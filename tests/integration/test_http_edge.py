"""The HTTP edge of ``scripts/run``: nginx (``deploy/nginx``) in front of gunicorn
(``deploy/gunicorn.conf.py``), started here the way :mod:`raregen_dev.devrun` starts them.

* malformed chunked bodies answer 400 ``BAD_REQUEST`` at once, straight from gunicorn and
  through nginx (JSON on ``/v1``, an HTML page elsewhere), with no traceback in the log;
* malformed HTTP that nginx refuses itself gets the error shape on ``/v1`` and never a
  server banner or gunicorn's page;
* slow clients (headers and part of a body, then a trickle or nothing) do not slow
  ``/v1/ping`` down.

Raw sockets on loopback only; every client and server is bounded in time and stopped here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from raregen import ROOT
from raregen_dev import devrun
from raregen_dev.devnet import free_port
from tests.plugins.db import services_required

MAX_BODY = 204096  # MAX_CONTENT_LENGTH for the default payload limit


@dataclass
class Edge:
    proxy: int  # nginx
    direct: int  # gunicorn
    log: Path  # gunicorn's output


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if requests.get(f"http://127.0.0.1:{port}/v1/ping", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Edge]:
    nginx = devrun.find_nginx()
    if nginx is None:
        if services_required():
            pytest.fail("required service missing: nginx (scripts/install-nginx)", pytrace=False)
        pytest.skip("nginx is not installed (scripts/install-nginx)")
    tmp = tmp_path_factory.mktemp("edge")
    proxy, direct = free_port(), free_port()
    env = dict(os.environ)
    for key in ("DATABASE_URL", "REDIS_URL", "PORT"):
        env.pop(key, None)
    env.update(
        RAREGEN_INSTANCE_PATH=str(tmp / "instance"),
        RAREGEN_DATABASE_URL=f"sqlite:///{tmp / 'edge.sqlite'}",
        RAREGEN_REDIS_URL=redis_url,
        RAREGEN_SECRET_KEY="test-secret",
        RAREGEN_TRUSTED_PROXIES="1",
        RAREGEN_ENV="development",
    )
    log = tmp / "gunicorn.log"
    out = open(log, "wb")  # noqa: SIM115
    web = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            str(ROOT / "deploy" / "gunicorn.conf.py"),
            "-b",
            f"127.0.0.1:{direct}",
            "--no-control-socket",
            "app:create_app()",
        ],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    conf = devrun.render_nginx_conf(
        tmp / "nginx", f"127.0.0.1:{proxy}", f"127.0.0.1:{direct}", MAX_BODY
    )
    front = subprocess.Popen(
        devrun.nginx_command(nginx, conf),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_ready(direct, web, log)
        _wait_ready(proxy, front, log)
        yield Edge(proxy=proxy, direct=direct, log=log)
    finally:
        _stop(front)
        _stop(web)
        out.close()


def _exchange(
    port: int, data: bytes, timeout: float = 10
) -> tuple[int, dict[str, str], bytes, float]:
    """Send ``data`` on a new connection; the status, headers (lower-case names), body and
    seconds until the whole answer (``Content-Length`` of it) was in."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            piece = sock.recv(65536)
            assert piece, f"connection closed without an answer: {buf!r}"
            buf += piece
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    return status, headers, body, time.monotonic() - started


_HEAD = {
    "/v1/publish": b"Content-Type: application/json\r\n",
    "/signin": b"Content-Type: application/x-www-form-urlencoded\r\nAccept: text/html\r\n",
}
_CHUNKED_BODIES = {
    "bad size": b"zz\r\nabc\r\n0\r\n\r\n",
    "no CRLF after the chunk": b"3\r\nabcXX0\r\n\r\n",
    "size past any limit": b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("via", ["direct", "proxy"])
@pytest.mark.parametrize("path", ["/v1/publish", "/signin"])
@pytest.mark.parametrize("case", list(_CHUNKED_BODIES))
def test_malformed_chunked_body_is_a_quick_400(edge: Edge, via: str, path: str, case: str) -> None:
    port = edge.direct if via == "direct" else edge.proxy
    request = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\n".encode()
        + _HEAD[path]
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + _CHUNKED_BODIES[case]
    )
    status, headers, body, seconds = _exchange(port, request)
    assert status == 400, body
    # nginx refuses at once; gunicorn waits BODY_READ_TIMEOUT_SECONDS (2) for a chunk that
    # never comes, then answers
    assert seconds < (1 if via == "proxy" else 4)
    if path.startswith("/v1/"):
        assert headers["content-type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error["code"] == "BAD_REQUEST" and set(error) == {"code", "message", "field"}
    else:
        assert headers["content-type"].startswith("text/html")
        assert b"Traceback" not in body
    assert "Traceback" not in edge.log.read_text()


_MALFORMED = {
    # name: (request bytes, status, code)
    "Content-Length and Transfer-Encoding": (
        b"POST /v1/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "negative Content-Length": (
        b"POST /v1/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: -5\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "10 000-character URL": (
        b"GET /v1/jobs/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n",
        414,
        "URI_TOO_LONG",
    ),
    "20 kB header": (
        b"GET /v1/ping HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
        431,
        "HEADERS_TOO_LARGE",
    ),
    "a transfer coding nginx does not implement": (
        b"POST /v1/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        400,
        "BAD_REQUEST",
    ),
    "TRACE": (
        b"TRACE /v1/ping HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n",
        405,
        "METHOD_NOT_ALLOWED",
    ),
    "body over the limit": (
        b"POST /v1/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 300000\r\n\r\n",
        413,
        "PAYLOAD_TOO_LARGE",
    ),
}


def _no_banner(headers: dict[str, str], body: bytes) -> None:
    assert headers.get("server", "") in ("", "nginx"), headers  # no version, no gunicorn
    assert b"gunicorn" not in body.lower() and b"nginx" not in body.lower(), body
    assert b"Traceback" not in body


@pytest.mark.parametrize("case", list(_MALFORMED))
def test_malformed_http_gets_the_error_shape_through_the_proxy(edge: Edge, case: str) -> None:
    request, status, code = _MALFORMED[case]
    got, headers, body, _ = _exchange(edge.proxy, request)
    assert got == status, body
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)["error"]
    assert error["code"] == code and error["field"] is None
    assert set(error) == {"code", "message", "field"}
    _no_banner(headers, body)
    # the same off the API paths: a page of ours, no banner
    page = request.replace(b"/v1/publish", b"/signin").replace(b"/v1/ping", b"/signin")
    page = page.replace(b"/v1/jobs/", b"/signin/")
    got, headers, body, _ = _exchange(edge.proxy, page)
    assert got == status, body
    assert headers["content-type"].startswith("text/html"), headers
    _no_banner(headers, body)


def test_app_errors_pass_through_the_proxy_untouched(edge: Edge) -> None:
    resp = requests.post(
        f"http://127.0.0.1:{edge.proxy}/v1/publish",
        data=b"{bad",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "MALFORMED_JSON"
    assert resp.headers["Server"] == "nginx"


@pytest.mark.slow
def test_slow_clients_do_not_slow_ping(edge: Edge) -> None:
    clients, hold_seconds = 16, 30
    stop = threading.Event()
    socks: list[socket.socket] = []

    def slow(i: int) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", edge.proxy), 5)
        except OSError:
            return
        socks.append(sock)
        try:
            sock.sendall(
                b"POST /v1/publish HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b" " * 100
            )
            while not stop.wait(2):
                if i % 2 == 0:  # half trickle a byte now and then, half stall
                    sock.sendall(b" ")
        except OSError:  # nginx gave up on a stalled one (client_body_timeout): fine
            pass

    threads = [threading.Thread(target=slow, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    worst = 0.0
    samples = 0
    try:
        time.sleep(0.5)
        deadline = time.monotonic() + hold_seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            resp = requests.get(f"http://127.0.0.1:{edge.proxy}/v1/ping", timeout=5)
            took = time.monotonic() - started
            assert resp.ok
            assert took < 1, f"ping took {took:.2f} s with {clients} slow clients"
            worst = max(worst, took)
            samples += 1
            time.sleep(0.5)
    finally:
        stop.set()
        for sock in socks:
            sock.close()
        for thread in threads:
            thread.join(5)
    assert samples >= 20, samples
