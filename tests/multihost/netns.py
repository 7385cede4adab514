"""Hosts for the multi-host test: Linux network namespaces joined by a bridge.

Every host is a namespace with its loopback up and one veth interface ``eth0`` on
``10.231.0.0/24``; the bridge lives in a namespace of its own (``<prefix>-sw``), so nothing is
added to the machine's own network: no interface, no address, no route. Processes are started
in a host with ``ip netns exec``, which execs them (their pid is the program's own). The test's
own code joins a namespace with :meth:`Net.enter` (``setns(2)`` on the calling thread; threads
started inside inherit it), and goes back to where it was when it leaves.

:meth:`Net.destroy` stops every process started through :meth:`Net.spawn` (SIGTERM to its
process group, SIGKILL after a while) and deletes every namespace, which removes the veth
pairs and the bridge with them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SUBNET = "10.231.0"
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, no ``ip``, no kernel support)."""


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        raise NamespacesUnavailable(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class Host:
    name: str  # short name: edge, web1, ...
    ns: str  # the namespace's name
    address: str


@dataclass
class Net:
    """The hosts of one test run. ``hosts``: short name -> last octet of its address."""

    hosts: Mapping[str, int]
    prefix: str = field(default_factory=lambda: f"rgmh{uuid.uuid4().hex[:6]}")
    made: list[str] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_name = {
            name: Host(name, f"{self.prefix}-{name}", f"{SUBNET}.{octet}")
            for name, octet in self.hosts.items()
        }

    def __getitem__(self, name: str) -> Host:
        return self.by_name[name]

    # -- making and removing ------------------------------------------------------------

    def create(self) -> None:
        """Make the namespaces, the bridge and one veth pair per host.

        Raises:
            NamespacesUnavailable: the first ``ip`` command that failed, with its message.
        """
        if os.geteuid() != 0:
            raise NamespacesUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NamespacesUnavailable("`ip` (iproute2) is not installed")
        switch = f"{self.prefix}-sw"
        for ns in (switch, *(h.ns for h in self.by_name.values())):
            _ip("netns", "add", ns)
            self.made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.by_name.values()):
            port = f"p{i}"
            _ip(
                "link",
                "add",
                "eth0",
                "netns",
                host.ns,
                "type",
                "veth",
                "peer",
                "name",
                port,
                "netns",
                switch,
            )
            _ip("-n", switch, "link", "set", port, "master", "br0")
            _ip("-n", switch, "link", "set", port, "up")
            _ip("-n", host.ns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.ns, "link", "set", "eth0", "up")

    def destroy(self) -> None:
        """Stop every process started here and delete every namespace made here."""
        for proc in reversed(self.procs):
            stop(proc, timeout=10)
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self.made.clear()

    # -- running things in a host -------------------------------------------------------

    def prefix_cmd(self, host: str) -> list[str]:
        """The command prefix that runs a program in ``host``."""
        return ["ip", "netns", "exec", self[host].ns]

    def spawn(
        self,
        host: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in ``host`` in a session of its own, output appended to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [*self.prefix_cmd(host), *cmd],
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def run(
        self,
        host: str,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in ``host`` to its end; its output is returned (not checked)."""
        return subprocess.run(
            [*self.prefix_cmd(host), *cmd],
            env=None if env is None else dict(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @contextlib.contextmanager
    def enter(self, host: str) -> Iterator[None]:
        """Run the calling thread's new sockets in ``host`` until the block ends.

        Sockets opened before keep their namespace; so do threads started before.
        """
        own = os.open(f"/proc/self/task/{_gettid()}/ns/net", os.O_RDONLY)
        try:
            _setns(f"/var/run/netns/{self[host].ns}")
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back failed")
        finally:
            os.close(own)


def _gettid() -> int:
    return threading_native_id()


def threading_native_id() -> int:
    import threading

    return threading.get_native_id()


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL to it after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def descendants(pid: int) -> list[int]:
    """Child pids of ``pid``, recursively (from /proc)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
        except OSError:
            continue
        for kid in map(int, kids):
            out.append(kid)
            out.extend(descendants(kid))
    return out


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """Call ``predicate`` until it returns something true (returned) or ``timeout`` passes
    (AssertionError naming ``what``); exceptions count as not yet."""
    end = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < end:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")
