"""The code habits, run with the suite (so by ``scripts/test`` and ``.ci/run``): ruff's lint
and format check over the whole tree and mypy over the runtime, with their settings in
pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``). The tools come from the ``test`` extra,
pinned, and run from this interpreter's environment; a finding fails the test with the
tool's own report."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.vectors import REPO_ROOT

CHECKS = {
    "ruff check": ["ruff", "check", "--output-format", "concise", "."],
    "ruff format --check": ["ruff", "format", "--check", "."],
    "mypy": ["mypy"],
}
#: seconds: a cold mypy run (no .mypy_cache) takes about 40 s on a busy 2-core machine
TIMEOUT = 600

pytestmark = pytest.mark.timeout(TIMEOUT + 60)  # pytest-timeout: above the tool's own bound


@pytest.mark.parametrize("name", list(CHECKS))
def test_tool_finds_nothing(name: str) -> None:
    module, *args = CHECKS[name]
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: scripts/setup installs the test extra")
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`{name}` found problems (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}",
            pytrace=False,
        )
