"""Schemathesis against the live app: every operation of /v1/openapi.json, stateless and
stateful (publish -> job links), and the figures of the run.

    .venv/bin/python bench/bench_schemathesis.py [--quick] [--max-examples N]
    .venv/bin/python bench/bench_schemathesis.py --base-url URL [--cookie C --csrf T
        --service-token S]

Without ``--base-url`` it starts its own app (a throw-away PostgreSQL database, Redis
database 13, a regtest node of its own with a small funded pool, an RQ worker, a signed-in
wallet session, werkzeug in a thread on a free loopback port, ``ENV_NAME`` test). Checks:
``not_a_server_error``, ``response_schema_conformance``, ``status_code_conformance``,
``content_type_conformance``; phases examples, coverage, fuzzing, stateful; a fixed seed.

Prints the operations tested, test cases run, server errors and schema violations (one line
each), then ``RESULT {...}`` with the same figures; exits 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

CHECKS = (
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "content_type_conformance",
)
PHASES = "examples,coverage,fuzzing,stateful"
SEED = 20260101


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "schemathesis.cli"]


def run_schemathesis(
    base_url: str,
    *,
    headers: dict[str, str] | None = None,
    max_examples: int = 25,
    max_time: int | None = None,
    workdir: Path | None = None,
    publish_key: str | None = None,
    wallet_key: str | None = None,
) -> dict[str, Any]:
    """Run the schemathesis CLI against ``base_url`` and read its NDJSON event stream.

    ``publish_key`` / ``wallet_key``: private keys (hex) the server knows, an operator key and
    a key of the signed-in wallet account: half of the generated publish bodies are replaced
    by bodies they sign (bench/schemathesis_hooks.py), so publishes are accepted and the
    stateful links to their jobs followed.

    Returns:
        ``{"operations", "cases", "server_errors", "schema_violations", "failures" (by
        check), "failed" (list of "METHOD path: check" strings), "seconds", "exit_code"}``.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="raregen-st-"))
    events = workdir / "events.ndjson"
    args = [
        *_cli(),
        "run",
        f"{base_url}/v1/openapi.json",
        "--url",
        base_url,
        "--checks",
        ",".join(CHECKS),
        "--phases",
        PHASES,
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--continue-on-failure",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(events),
    ]
    if max_time:
        args += ["--max-time", str(max_time)]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    started = time.monotonic()
    here = str(Path(__file__).resolve().parent)
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join([here, str(Path(here).parent)]),
        "RAREGEN_ST_PUBLISH_KEY": publish_key or "",
        "RAREGEN_ST_WALLET_KEY": wallet_key or "",
    }
    proc = subprocess.run(args, capture_output=True, text=True, cwd=workdir, env=env)
    (workdir / "output.txt").write_text(proc.stdout + proc.stderr)
    figures = summarize(events)
    figures.update(
        seconds=round(time.monotonic() - started, 1),
        exit_code=proc.returncode,
        output=str(workdir / "output.txt"),
    )
    return figures


def summarize(events: Path) -> dict[str, Any]:
    """The totals of a schemathesis NDJSON report (one event per line)."""
    operations: set[str] = set()
    cases = 0
    by_check: Counter[str] = Counter()
    failed: set[str] = set()
    selected = 0
    for line in events.read_text().splitlines():
        event = json.loads(line)
        loaded = event.get("LoadingFinished")
        if loaded:
            selected = loaded["statistic"]["operations"]["selected"]
        scenario = event.get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario.get("recorder") or {}
        label = recorder.get("label") or scenario.get("label") or ""
        if label:
            operations.add(label)
        case_items = (recorder.get("cases") or {}).values()
        cases += sum(1 for _ in case_items)
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if str(check.get("status", "")).lower() == "failure":
                    by_check[check["name"]] += 1
                    case = (recorder.get("cases") or {}).get(case_id, {}).get("value", {})
                    method = case.get("method", "")
                    info = (check.get("failure_info") or {}).get("failure") or {}
                    detail = " ".join(str(info.get("message", "")).split())[:160]
                    failed.add(f"{method} {case.get('path', label)}: {check['name']}: {detail}")
    schema = sum(by_check[c] for c in CHECKS if c != "not_a_server_error")
    return {
        "operations": selected,
        "scenarios": len(operations),
        "cases": cases,
        "server_errors": by_check["not_a_server_error"],
        "schema_violations": schema,
        "failures": dict(by_check),
        "failed": sorted(failed),
    }


def print_figures(figures: dict[str, Any]) -> None:
    print(f"operations tested: {figures['operations']}")
    print(f"test cases run: {figures['cases']}")
    print(f"server errors: {figures['server_errors']}")
    print(f"schema violations: {figures['schema_violations']}")
    for item in figures["failed"][:40]:
        print(f"  FAILED {item}")
    print(f"seconds: {figures['seconds']}")


def prepare(app: Any, email: str) -> dict[str, str]:
    """Make what the run needs on ``app``'s database: an operator key (unlimited credits), a
    wallet account with a registered identity key and a signed-in session.

    Returns:
        ``{"cookie", "csrf", "publish_key", "wallet_key"}`` (keys as private hex).
    """
    import coincurve
    from flask import session
    from flask_wtf.csrf import generate_csrf

    from raregen.publish import keys
    from raregen.wallet import accounts
    from raregen.wallet.session import sign_in

    operator, mine = coincurve.PrivateKey(), coincurve.PrivateKey()
    with app.test_request_context("/wallet"):
        account = accounts.get_or_create(email)
        keys.register_key(operator.public_key.format().hex(), label="schemathesis")
        keys.register_key(
            mine.public_key.format().hex(),
            account_ref=accounts.account_ref(account.id),
            purpose="identity",
        )
        sign_in(account.id)
        token = generate_csrf()
        cookie = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return {
        "cookie": cookie,
        "csrf": token,
        "publish_key": operator.secret.hex(),
        "wallet_key": mine.secret.hex(),
    }


def _own_app(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    import _harness as h
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    token = os.urandom(16).hex()
    with h.bench_env(RAREGEN_ENV="test") as env:
        workdir = Path(tempfile.mkdtemp(prefix="raregen-st-"))
        with h.regtest_node(workdir) as node:
            app = h.make_app(
                env, ENV_NAME="test", SERVICE_TOKEN=token, RATELIMIT_STORAGE_URI="memory://"
            )
            h.wire_node(app, node)
            h.fund_pool(app, node, 4, 20_000, per_tx=4)
            made = prepare(app, "bench-schemathesis@example.com")
            # the real RQ worker: accepted publishes are sent, and /healthz stays 200
            worker = h.Child(
                [sys.executable, str(h.ROOT / "worker.py")],
                env.environ(**h.node_environ(node)),
                workdir / "worker.log",
            )
            server = make_server("127.0.0.1", 0, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                return run_schemathesis(
                    f"http://127.0.0.1:{server.server_port}",
                    headers=_headers(made["cookie"], made["csrf"], token),
                    max_examples=args.max_examples,
                    workdir=workdir,
                    publish_key=made["publish_key"],
                    wallet_key=made["wallet_key"],
                )
            finally:
                server.shutdown()
                worker.stop()
                h.dispose(app)


def _headers(cookie: str | None, csrf: str | None, token: str | None) -> dict[str, str]:
    headers = {}
    if cookie:
        headers["Cookie"] = f"session={cookie}"
    if csrf:
        headers["X-CSRFToken"] = csrf
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="a running app (else one is started)")
    parser.add_argument("--cookie", help="a signed-in wallet session cookie value")
    parser.add_argument("--csrf", help="its CSRF token")
    parser.add_argument("--service-token", help="the app's SERVICE_TOKEN")
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="10 examples per operation")
    args = parser.parse_args()
    if args.quick:
        args.max_examples = 10
    import _harness as h

    h.header("schemathesis against the live app")
    if args.base_url:
        figures = run_schemathesis(
            args.base_url.rstrip("/"),
            headers=_headers(args.cookie, args.csrf, args.service_token),
            max_examples=args.max_examples,
        )
    else:
        figures = _own_app(args)
    print_figures(figures)
    result = {
        k: figures[k]
        for k in ("operations", "cases", "server_errors", "schema_violations", "seconds")
    }
    h.emit({"bench": "schemathesis", "max_examples": args.max_examples, **result})
    return 0 if not figures["failed"] and figures["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
