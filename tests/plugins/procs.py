"""Stopping the processes a test started (RQ workers) for good, whatever state they are in."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def stop_worker(proc: subprocess.Popen, grace: float = 60) -> None:
    """Stop ``proc`` for good: SIGTERM (warm shutdown), at most ``grace`` seconds for it to
    exit, then SIGKILL to its children (a ``--fork`` work horse has a process group of its
    own) and to its whole process group (the worker, RQ's scheduler process). Never raises
    on a worker that would not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    children: list[int] = []
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            children = [int(pid) for pid in path.read_text().split()]
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children left behind by the worker, if any
    proc.wait(10)
