"""Running the browser wallet's JavaScript modules under Node.js from Python tests, and an
independent BIP32 derivation to check them against.

The bridges (``tests/js/slip39_cli.mjs``, ``tests/js/wallet_cli.mjs``) read one JSON request
per line and answer one JSON line each. Node.js and the npm packages of package.json must be
installed: a missing one fails the calling test with instructions (never skips).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

import coincurve
import pytest

from tests.vectors import REPO_ROOT

JS_DIR = REPO_ROOT / "tests" / "js"
PACKAGES = ("@noble/curves", "@noble/hashes", "@scure/bip32", "canonicalize")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

#: The derivation paths of docs/BROWSER_CRYPTO.md.
PATHS = {
    "identity": "m/44'/236'/0'/0/0",
    "financial": "m/44'/236'/1'/0/0",
    "tokens": "m/44'/236'/2'/0/0",
}


def node() -> str:
    """The ``node`` executable; fails the test if Node.js or the npm packages are missing."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("Node.js (node) is not on PATH; install Node.js >= 20.19", pytrace=False)
    for package in PACKAGES:
        if not (REPO_ROOT / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"node_modules/{package} is missing: run `npm ci` in {REPO_ROOT}", pytrace=False
            )
    return exe


def run_js(
    script: str, *args: str, requests: Sequence[dict[str, Any]] = (), timeout: float = 120
) -> list[Any]:
    """Run ``tests/js/<script>`` with ``requests`` as JSON lines; return its JSON answer lines."""
    proc = subprocess.run(
        [node(), str(JS_DIR / script), *args],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}): {proc.stderr}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def bip32_private_key(seed: bytes, path: str) -> bytes:
    """BIP32 private key at ``path`` (``m/44'/0'/...``) from ``seed``: HMAC-SHA512 and
    coincurve only, written from the BIP32 text to check @scure/bip32 independently."""
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = int.from_bytes(digest[:32], "big"), digest[32:]
    for step in path.split("/")[1:]:
        hardened = step.endswith("'")
        index = int(step.rstrip("'")) + (0x80000000 if hardened else 0)
        if hardened:
            data = b"\x00" + key.to_bytes(32, "big")
        else:
            data = coincurve.PrivateKey(key.to_bytes(32, "big")).public_key.format(compressed=True)
        digest = hmac.new(chain, data + index.to_bytes(4, "big"), hashlib.sha512).digest()
        key, chain = (int.from_bytes(digest[:32], "big") + key) % SECP256K1_N, digest[32:]
    return key.to_bytes(32, "big")


def wallet_keys(seed: bytes) -> dict[str, tuple[bytes, str]]:
    """``{purpose: (private key, compressed public key hex)}`` for the three wallet keys."""
    out = {}
    for purpose, path in PATHS.items():
        private = bip32_private_key(seed, path)
        out[purpose] = (
            private,
            coincurve.PrivateKey(private).public_key.format(compressed=True).hex(),
        )
    return out
