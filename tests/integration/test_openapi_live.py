"""Schemathesis against the live app (werkzeug on a loopback port, PostgreSQL, Redis, the
regtest node, an RQ worker): every operation of /v1/openapi.json, stateless (examples,
coverage, fuzzing) and stateful (publish -> job links), a bounded number of examples.

Checks: not_a_server_error, response_schema_conformance, status_code_conformance,
content_type_conformance. The run's totals are printed (``-s`` or the terminal summary).
bench/bench_schemathesis.py runs the same and prints the figures on its own.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest

from tests.vectors import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

MAX_EXAMPLES = 15


def _bench() -> Any:
    path = REPO_ROOT / "bench" / "bench_schemathesis.py"
    spec = importlib.util.spec_from_file_location("bench_schemathesis", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_schemathesis", module)
    spec.loader.exec_module(module)
    return module


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    live_api: Any,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench = _bench()
    made = bench.prepare(live_api.app, "schemathesis@example.com")
    headers = {
        "Cookie": f"session={made['cookie']}",
        "X-CSRFToken": made["csrf"],
        "Authorization": f"Bearer {live_api.service_token}",
    }
    figures = bench.run_schemathesis(
        live_api.base_url,
        headers=headers,
        max_examples=MAX_EXAMPLES,
        workdir=tmp_path,
        publish_key=made["publish_key"],
        wallet_key=made["wallet_key"],
    )
    with capsys.disabled():
        print()
        print(
            f"schemathesis: {figures['operations']} operations tested, {figures['cases']} test "
            f"cases run, {figures['server_errors']} server errors, "
            f"{figures['schema_violations']} schema violations ({figures['seconds']} s)"
        )
    output = (tmp_path / "output.txt").read_text()
    assert figures["operations"] >= 20 and figures["cases"] > figures["operations"], output
    assert "Stateful" in output and "API Links" in output, output
    assert figures["server_errors"] == 0, figures["failed"]
    assert figures["schema_violations"] == 0, figures["failed"]
    assert figures["exit_code"] == 0, output[-3000:]
