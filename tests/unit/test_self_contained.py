"""The repository stands on its own: no tracked file points at the developers' folder beside it,
and the test vectors the unit tests read are in the repository."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.vectors import DEFAULT_VECTORS, REPO_ROOT

# Spelled in pieces so this file does not match its own search.
FORBIDDEN = ["../" + "shared", "shared/" + "DESIGN", "shared/" + "vectors"]

# Every file a unit test opens through tests.vectors (relative to the vectors folder).
USED_VECTORS = [
    *(
        f"jcs/{kind}/{name}.{ext}"
        for name in ("arrays", "french", "structures", "unicode", "values", "weird")
        for kind, ext in (("input", "json"), ("output", "json"), ("outhex", "txt"))
    ),
    "jcs/numbers/rfc8785-appendix-b.csv",
    "jcs/numbers/es6testfile-sample-lines.csv",
    "wycheproof/ecdsa_secp256k1_sha256_test.json",
    "wycheproof/ecdsa_secp256k1_sha256_bitcoin_test.json",
    "slip39/vectors.json",
    "bsv/sighash.json",
    "bsv/tx_valid.json",
    "bsv/op_return_txs/index.json",
]


def _tracked_files() -> list[str]:
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.fail("this test needs git and a git checkout of the repository", pytrace=False)
    out = subprocess.run(
        [git, "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout
    return [name for name in out.decode("utf-8").split("\0") if name]


def test_no_tracked_file_points_outside_the_repository() -> None:
    hits = []
    for name in _tracked_files():
        path = REPO_ROOT / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            hits.extend(f"{name}:{lineno}: {word}" for word in FORBIDDEN if word in line)
    assert not hits, "references outside the repository:\n" + "\n".join(hits)


def test_vectors_are_in_the_repository() -> None:
    assert DEFAULT_VECTORS.is_dir()
    assert DEFAULT_VECTORS.resolve().is_relative_to(REPO_ROOT.resolve())
    assert (DEFAULT_VECTORS / "README.md").is_file()
    missing = [rel for rel in USED_VECTORS if not (DEFAULT_VECTORS / rel).is_file()]
    assert not missing, missing
    hex_files = list((DEFAULT_VECTORS / "bsv" / "op_return_txs").glob("*.hex"))
    assert len(hex_files) == 3


def test_vectors_tracked_by_git() -> None:
    tracked = set(_tracked_files())
    prefix = DEFAULT_VECTORS.relative_to(REPO_ROOT).as_posix()
    missing = [rel for rel in ["README.md", *USED_VECTORS] if f"{prefix}/{rel}" not in tracked]
    assert not missing, f"vector files not committed: {missing}"
