"""The regtest node process: :class:`NodeProcess` runs one ``bitcoind`` as a child process of
the caller (in the foreground, not ``-daemon``, so the caller owns its pid and can always stop
it), on loopback only, and gives its RPC client.

Node options chosen for dev/test (and why)
------------------------------------------
``-regtest -server=1 -rpcbind=127.0.0.1 -rpcallowip=127.0.0.1 -listen=0 -dnsseed=0
-discover=0 -upnp=0``
    a private chain reachable only from this machine; no peers, no DNS.
``-txindex=1``
    ``getrawtransaction`` works for any confirmed txid (the broadcaster looks txids up
    before calling "Missing inputs" a conflict).
``-genesisactivationheight=1``
    post-Genesis rules from block 1, as on mainnet today (regtest would otherwise stay
    pre-Genesis for its first 10 000 blocks: other script, data-carrier and dust rules).
``-acceptnonstdtxn=0``
    mainnet standardness (regtest's default is 1, which e.g. accepts a 0-satoshi P2PKH
    output that mainnet rejects as ``64: dust``).
``-minminingtxfee`` (mandatory in this node version)
    in BSV/kB; set from ``min_mining_fee_sat_per_kb`` (default
    :data:`DEFAULT_MIN_MINING_FEE_SAT_PER_KB` = 50 sat/kB, i.e. ``0.00000050``), half of
    RareGen's default fee rate of 100 sat/kB, so our transactions (even with the one-byte
    signature size slack) are always mined, while a wrongly computed, too low fee shows up.
``-mindebugrejectionfee`` (regtest/testnet only)
    set equal to the mining fee when ``reject_below_mining_fee`` (default True). Without it
    this node version has no relay fee at all (``relayfee`` is 0 and ``-minrelaytxfee`` is
    ignored): a transaction paying less than ``minminingtxfee`` is *accepted* into the
    mempool, never mined, and only held in a low-fee ("CPFP") group. With it such a
    transaction is refused at once with ``66: mempool min fee not met``, as ARC refuses
    under-fee transactions. Pass False to study the mainnet-node behaviour.
``-limitancestorcount`` / ``-limitcpfpgroupmemberscount``
    mempool chain limits; defaults of this node version (seen in ``bitcoind -help -help-debug``
    and in the ``getsettings`` RPC):

    - ``-limitancestorcount``: default **10000**. "Do not accept transactions if maximum
      height of in-mempool ancestor chain is <n> or more."
    - ``-limitcpfpgroupmemberscount``: default **25**. "Do not accept transactions if number
      of in-mempool transactions which we are not willing to mine due to a low fee is <n>
      or more." (only chains of under-fee transactions count here).

    Past either limit the node answers ``64: too-long-mempool-chain``: a transaction with
    ``n`` or more unconfirmed ancestors is refused, so one unconfirmed chain holds at most
    ``n`` transactions (checked with n = 3, 4, 5). The UTXO pool builds
    chains of unconfirmed transactions (each publish spends the previous change), so it must
    keep every change chain shorter than ``limitancestorcount`` between blocks (spread load
    over many UTXOs), and a chain of under-fee transactions can never exceed 25. We pass the
    defaults explicitly (visible in ``getsettings``); tests start a node with small limits to
    provoke the error.
``-excessiveblocksize=1000000000 -maxstackmemoryusageconsensus=0``
    both mandatory in this version; 1 GB blocks, unlimited consensus stack memory.
``-rpcthreads=8 -rpcworkqueue=64``
    batch broadcasting and a poller may call at the same time.
``-printtoconsole=0``
    the node logs to ``<datadir>/regtest/bitcoind.log``; its stderr goes to
    ``<datadir>/bitcoind.stderr``.

Credentials: ``rpcuser``/``rpcpassword`` are random per datadir, written once into
``<datadir>/bitcoin.conf`` (mode 0600) and read back on the next start, so a node restarted
on the same datadir keeps its credentials and its chain. They are never on the command line
(``ps`` shows none) and never logged.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import socket
import stat
import subprocess
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from raregen.chain.rpc import NodeRPC, RPCError, RPCTransportError, sats_to_btc
from raregen_dev.devnet.binary import ensure_node_binary

log = logging.getLogger(__name__)

#: Default ``-minminingtxfee`` in sat/kB (RareGen pays 100 sat/kB by default).
DEFAULT_MIN_MINING_FEE_SAT_PER_KB = 50
#: This node version's default ``-limitancestorcount``.
DEFAULT_LIMIT_ANCESTOR_COUNT = 10_000
#: This node version's default ``-limitcpfpgroupmemberscount``.
DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT = 25


class NodeStartError(RuntimeError):
    """The node process did not start or did not answer RPC in time (message has its log)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; another process could take
    it before use, so :meth:`NodeProcess.start` retries with new ports on a bind error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _sat_per_kb_to_btc(sat_per_kb: int) -> str:
    return sats_to_btc(int(sat_per_kb))


_LIVE_NODES: weakref.WeakSet[NodeProcess] = weakref.WeakSet()


@atexit.register
def _stop_leftover_nodes() -> None:  # pragma: no cover - safety net at interpreter exit
    for node in list(_LIVE_NODES):
        with contextlib.suppress(Exception):
            node.stop(timeout=10)


class NodeProcess:
    """One regtest ``bitcoind`` child process (:class:`raregen_dev.devnet.RegtestNode` adds the
    node wallet, :class:`raregen_dev.devnet.wallet.NodeWallet`).

    Args:
        datadir: the node's data folder (created if missing); holds ``bitcoin.conf`` with
            the credentials, and the chain under ``regtest/``. Reusing it keeps the chain.
        rpc_port: RPC port on 127.0.0.1; None picks a free one at each start.
        p2p_port: P2P port (nothing listens: ``-listen=0``); None picks a free one.
        min_mining_fee_sat_per_kb: ``-minminingtxfee`` in sat/kB (default 50).
        binary: the ``bitcoind`` to run; default :func:`ensure_node_binary` (``cache_dir``).
        cache_dir: where :func:`ensure_node_binary` caches the binary.
        limit_ancestor_count: ``-limitancestorcount`` (node default 10000).
        limit_cpfp_group_members_count: ``-limitcpfpgroupmemberscount`` (node default 25).
        reject_below_mining_fee: also set ``-mindebugrejectionfee`` to the mining fee, so an
            under-fee transaction is refused (``66: mempool min fee not met``) instead of
            sitting unmined in the mempool.
        extra_args: more ``-option=value`` arguments for ``bitcoind``.
        rpc_host: the address RPC binds to (``-rpcbind``) and :attr:`url` names; default
            127.0.0.1.
        rpc_allow: further client addresses or networks RPC accepts (``-rpcallowip``, e.g.
            ``10.231.0.0/24``), besides ``rpc_host`` itself.
        launcher: a command prefix the node is started under (e.g. ``ip netns exec data``,
            which execs the node in a network namespace: the pid stays the node's).

    Use as a context manager (``with RegtestNode(dir) as node:``) or call
    :meth:`start`/:meth:`stop`. Attributes after start: :attr:`rpc`, :attr:`url`,
    :attr:`rpc_user`, :attr:`rpc_password`, :attr:`rpc_port`, :attr:`p2p_port`, :attr:`pid`.
    """

    RPC_USER_KEY = "rpcuser"
    RPC_PASSWORD_KEY = "rpcpassword"

    def __init__(
        self,
        datadir: Path,
        rpc_port: int | None = None,
        p2p_port: int | None = None,
        min_mining_fee_sat_per_kb: int = DEFAULT_MIN_MINING_FEE_SAT_PER_KB,
        *,
        binary: Path | None = None,
        cache_dir: Path | None = None,
        limit_ancestor_count: int = DEFAULT_LIMIT_ANCESTOR_COUNT,
        limit_cpfp_group_members_count: int = DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT,
        reject_below_mining_fee: bool = True,
        extra_args: Sequence[str] = (),
        rpc_host: str = "127.0.0.1",
        rpc_allow: Sequence[str] = (),
        launcher: Sequence[str] = (),
    ):
        if min_mining_fee_sat_per_kb < 0:
            raise ValueError("min_mining_fee_sat_per_kb must be >= 0")
        self.datadir = Path(datadir)
        self._want_rpc_port = rpc_port
        self._want_p2p_port = p2p_port
        self.rpc_port: int | None = rpc_port
        self.p2p_port: int | None = p2p_port
        self.min_mining_fee_sat_per_kb = int(min_mining_fee_sat_per_kb)
        self.limit_ancestor_count = int(limit_ancestor_count)
        self.limit_cpfp_group_members_count = int(limit_cpfp_group_members_count)
        self.reject_below_mining_fee = reject_below_mining_fee
        self.extra_args = list(extra_args)
        self.rpc_host = rpc_host
        self.rpc_allow = list(rpc_allow)
        self.launcher = list(launcher)
        self._binary = Path(binary) if binary is not None else None
        self._cache_dir = cache_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._rpc: NodeRPC | None = None
        self._stderr_file: Any = None
        self.rpc_user, self.rpc_password = self._load_or_create_credentials()

    # -- config ---------------------------------------------------------------------------

    @property
    def conf_path(self) -> Path:
        """``<datadir>/bitcoin.conf`` (holds the RPC credentials)."""
        return self.datadir / "bitcoin.conf"

    @property
    def log_path(self) -> Path:
        """The node's own log, ``<datadir>/regtest/bitcoind.log``."""
        return self.datadir / "regtest" / "bitcoind.log"

    def _load_or_create_credentials(self) -> tuple[str, str]:
        self.datadir.mkdir(parents=True, exist_ok=True)
        values: dict[str, str] = {}
        if self.conf_path.is_file():
            for line in self.conf_path.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    values[key.strip()] = value.strip()
        user = values.get(self.RPC_USER_KEY)
        password = values.get(self.RPC_PASSWORD_KEY)
        if user and password:
            return user, password
        user = user or f"raregen-{secrets.token_hex(4)}"
        password = password or secrets.token_urlsafe(24)
        lines = [
            "# Written by raregen_dev.devnet: RPC credentials of this regtest datadir.",
            f"{self.RPC_USER_KEY}={user}",
            f"{self.RPC_PASSWORD_KEY}={password}",
        ]
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(self.conf_path, stat.S_IRUSR | stat.S_IWUSR)
        return user, password

    def command(self) -> list[str]:
        """The ``bitcoind`` command line (no credentials in it; they are in the conf)."""
        if self.rpc_port is None or self.p2p_port is None:
            raise RuntimeError("ports are chosen at start()")
        fee = _sat_per_kb_to_btc(self.min_mining_fee_sat_per_kb)
        binary = self._binary or ensure_node_binary(self._cache_dir)
        args = [
            *self.launcher,
            str(binary),
            "-regtest",
            f"-datadir={self.datadir}",
            f"-conf={self.conf_path}",
            "-server=1",
            f"-rpcbind={self.rpc_host}",
            f"-rpcallowip={self.rpc_host}",
            *(f"-rpcallowip={allowed}" for allowed in self.rpc_allow),
            f"-rpcport={self.rpc_port}",
            f"-port={self.p2p_port}",
            "-listen=0",
            "-dnsseed=0",
            "-discover=0",
            "-upnp=0",
            "-txindex=1",
            "-genesisactivationheight=1",
            "-acceptnonstdtxn=0",
            "-excessiveblocksize=1000000000",
            "-maxstackmemoryusageconsensus=0",
            f"-minminingtxfee={fee}",
            f"-limitancestorcount={self.limit_ancestor_count}",
            f"-limitcpfpgroupmemberscount={self.limit_cpfp_group_members_count}",
            "-rpcthreads=8",
            "-rpcworkqueue=64",
            "-printtoconsole=0",
        ]
        if self.reject_below_mining_fee:
            args.append(f"-mindebugrejectionfee={fee}")
        args.extend(self.extra_args)
        return args

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://<rpc_host>:<rpc_port>`` (no credentials in it)."""
        if self.rpc_port is None:
            raise RuntimeError("node not started")
        return f"http://{self.rpc_host}:{self.rpc_port}"

    @property
    def user(self) -> str:
        """Alias of :attr:`rpc_user`."""
        return self.rpc_user

    @property
    def password(self) -> str:
        """Alias of :attr:`rpc_password` (keep it out of logs)."""
        return self.rpc_password

    @property
    def rpc(self) -> NodeRPC:
        """A :class:`NodeRPC` for this node (created at start, closed at stop)."""
        if self._rpc is None:
            self._rpc = NodeRPC(self.url, self.rpc_user, self.rpc_password)
        return self._rpc

    @property
    def pid(self) -> int | None:
        """The node process id while it runs, else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 60) -> Self:
        """Start the node and wait until its RPC answers (``getblockcount``).

        Args:
            timeout: seconds to wait for RPC (a fresh datadir takes about 1.5 s).

        Returns:
            self.

        Raises:
            NodeBinaryError: no binary (see :func:`ensure_node_binary`).
            NodeStartError: the process exited (log tail in the message: e.g. the datadir is
                locked by another node, a port is taken) or RPC did not answer in time
                (then the process is stopped again).
        """
        if self.is_running:
            return self
        attempts = 3 if (self._want_rpc_port is None or self._want_p2p_port is None) else 1
        last_error: NodeStartError | None = None
        for _ in range(attempts):
            self.rpc_port = self._want_rpc_port or free_port()
            self.p2p_port = self._want_p2p_port or free_port()
            try:
                self._spawn_and_wait(timeout)
                return self
            except NodeStartError as exc:
                last_error = exc
                if "bind" not in str(exc).lower():
                    break
                log.warning("node could not bind its ports; retrying with other ports")
        assert last_error is not None
        raise last_error

    def _spawn_and_wait(self, timeout: float) -> None:
        cmd = self.command()
        self.datadir.mkdir(parents=True, exist_ok=True)
        stderr_path = self.datadir / "bitcoind.stderr"
        self._stderr_file = open(stderr_path, "wb")  # noqa: SIM115 - lives as long as the node
        self._rpc = None
        started = time.monotonic()
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr_file,
            stderr=subprocess.STDOUT,
            # its own session: a terminal's Ctrl-C must not stop the node before the workers
            # that still talk to it; the owner stops it last, by pid
            start_new_session=True,
        )
        _LIVE_NODES.add(self)
        log.info("started regtest node pid %s rpc port %s", self._proc.pid, self.rpc_port)
        deadline = started + timeout
        probe = NodeRPC(self.url, self.rpc_user, self.rpc_password, timeout=(1.0, 5.0))
        try:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self._close_files()
                    raise NodeStartError(
                        f"bitcoind exited with code {code} during start\n{self._log_tail()}"
                    )
                try:
                    probe.call("getblockcount")
                    break
                except RPCTransportError:
                    pass
                except RPCError as exc:
                    if exc.code != -28:  # -28: still warming up (loading block index...)
                        raise NodeStartError(f"node RPC error during start: {exc}") from exc
                if time.monotonic() > deadline:
                    self._kill()
                    raise NodeStartError(
                        f"node RPC did not answer within {timeout} s\n{self._log_tail()}"
                    )
                time.sleep(0.05)
        finally:
            probe.close()
        self.start_seconds = time.monotonic() - started
        log.info("regtest node ready in %.2f s", self.start_seconds)

    def _log_tail(self, lines: int = 15) -> str:
        parts = []
        for path in (self.datadir / "bitcoind.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip().splitlines()
                if text:
                    parts.append(f"--- {path.name}:\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def _close_files(self) -> None:
        if self._stderr_file is not None:
            with contextlib.suppress(OSError):
                self._stderr_file.close()
            self._stderr_file = None

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()  # SIGTERM to our own child only: the node shuts down cleanly
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._close_files()

    def stop(self, timeout: float = 30) -> None:
        """Stop the node: RPC ``stop``, wait up to ``timeout`` seconds for the process to
        exit, then SIGTERM and finally SIGKILL our own child by its pid. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(RPCError, RPCTransportError):
                self.rpc.call("stop", timeout=(1.0, 5.0))
            # Drop our keep-alive connection now: the node waits (2 s) for open HTTP
            # connections before it exits.
            if self._rpc is not None:
                self._rpc.close()
                self._rpc = None
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("node pid %s did not stop in %s s; terminating it", proc.pid, timeout)
        self._kill()
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None
        self._proc = None
        _LIVE_NODES.discard(self)
        log.info("regtest node stopped")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(datadir={str(self.datadir)!r}, rpc_port={self.rpc_port}, pid={self.pid})"
