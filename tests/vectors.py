"""Location of the third-party test vectors (data only; sources in their README.md).

The vectors live in the repository at ``tests/data/vectors``; ``RAREGEN_VECTORS`` may name
another folder with the same layout. A missing folder makes the calling test fail (never skip):
the vectors are part of the test suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VECTORS = REPO_ROOT / "tests" / "data" / "vectors"


def vectors_dir() -> Path:
    """The vectors folder; fails the calling test with a clear message if it is missing."""
    configured = os.environ.get("RAREGEN_VECTORS")
    path = Path(configured) if configured else DEFAULT_VECTORS
    if not path.is_dir():
        pytest.fail(
            f"test vectors not found at {path}: set RAREGEN_VECTORS to the folder holding "
            "jcs/, wycheproof/, slip39/ and bsv/ (default tests/data/vectors)",
            pytrace=False,
        )
    return path


def vector_file(*parts: str) -> Path:
    """A file under the vectors folder; fails the calling test if it is missing."""
    path = vectors_dir().joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"test vector file missing: {path}", pytrace=False)
    return path
