"""The two ways of accepting a publish give the same answers and write the same rows.

``raregen.publish.intake.accept`` has two paths on PostgreSQL (see the module's docstring):

* the **one statement** (``_PG_ACCEPT_SQL`` on a second, autocommit engine), taken when no
  transaction is open on the session and the key has no wallet account;
* the **transactional** (ORM) path, taken for wallet-account keys, on SQLite, and for any
  call made while the session already has a transaction open.

A Hypothesis property feeds both the same generated sequences of requests (new records,
exact replays, nonce reuse with another body, revoked and unknown keys, timestamps out of
the window, replays after the window, the last credit and none left, wallet-account keys
paid from the credit ledger) on the same real PostgreSQL database, reset between runs, with
the clock frozen (time-machine), and asserts identical answers (HTTP status, error code and
field, job fields, receipt) and identical rows in every table, and the same RQ deliveries.

Job ids are random (uuid4) on both paths: they are compared by order of first appearance,
and the audit chain's hashes (which cover the job id) are checked for validity instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import coincurve
import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import Queue
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from raregen import audit, signing
from raregen.audit import chain_deferred
from raregen.db import db, transaction, utcnow
from raregen.errors import RareGenError
from raregen.proofs.receipt import verify_receipt
from raregen.publish import account_keys, intake, keys
from raregen.publish.models import RegisteredKey
from raregen.queue import redis_connection
from raregen.wallet import accounts, credits
from raregen.wallet.models import CreditEntry
from tests.plugins.db import truncate_all

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

#: the frozen clock of every run (naive UTC is what the tables store)
FROZEN = datetime(2026, 6, 15, 12, 0, 0, tzinfo=UTC)
NOW = int(FROZEN.timestamp())


def _key(n: int) -> coincurve.PrivateKey:
    return coincurve.PrivateKey((n + 1).to_bytes(32, "big"))


#: the keys of every example: what each is and how it pays
KEYS: dict[str, coincurve.PrivateKey] = {
    "unlimited": _key(1),  # credits NULL: never pays
    "two_credits": _key(2),  # credits 2: the last credit, then NO_CREDITS
    "no_credit": _key(3),  # credits 0: NO_CREDITS from the start
    "webhooks": _key(4),  # credits 5, webhooks on: the job's notify copies it
    "revoked": _key(5),  # registered, then revoked: KEY_REVOKED
    "unknown": _key(6),  # never registered: KEY_NOT_REGISTERED
    "account": _key(7),  # a wallet account's key: pays from the credit ledger (1 left)
}
KEY_NAMES = sorted(KEYS)
#: nonces drawn from a small pool so that reuse happens often
NONCES = [f"nonce-{i:02d}-{'x' * 12}" for i in range(4)]
#: iat offsets from NOW: in the window, expired (exp <= now), too far in the future
IAT_OFFSETS = {"now": 0, "expired": -4000, "future": 4000}
ONE_STATEMENT = "WITH k AS ("


def _pub(name: str) -> str:
    return KEYS[name].public_key.format(compressed=True).hex()


def _seed() -> None:
    """The same starting rows for every run."""
    keys.register_key(_pub("unlimited"))
    keys.register_key(_pub("two_credits"), credits=2)
    keys.register_key(_pub("no_credit"), credits=0)
    keys.register_key(_pub("webhooks"), credits=5)
    keys.register_key(_pub("revoked"), credits=5)
    keys.revoke_key(_pub("revoked"))
    with transaction():
        db.session.execute(
            RegisteredKey.__table__.update()
            .where(RegisteredKey.pubkey == _pub("webhooks"))
            .values(webhooks=True)
        )
    with transaction():
        account_id = accounts.get_or_create("paths@example.com").id
    account_keys.register_account_keys(
        accounts.account_ref(account_id), [("identity", _pub("account"))]
    )
    # this month's allowance marked granted (as 0) and exactly one credit left
    with transaction():
        db.session.add(
            CreditEntry(account_id=account_id, delta=0, reason=credits.allowance_reason(utcnow()))
        )
    with transaction():
        credits.grant(account_id, 1, "paths")


# ---------------------------------------------------------------------------------------------
# the generated sequences

new_request = st.fixed_dictionaries(
    {
        "op": st.just("new"),
        "key": st.sampled_from(KEY_NAMES),
        "nonce": st.sampled_from(NONCES),
        "record": st.integers(0, 2),  # few values: the same body comes back now and then
        "iat": st.sampled_from(sorted(IAT_OFFSETS)),
    }
)
replay = st.fixed_dictionaries({"op": st.just("replay"), "of": st.integers(0, 30)})
late_replay = st.fixed_dictionaries({"op": st.just("late_replay"), "of": st.integers(0, 30)})
revoke = st.fixed_dictionaries(
    {"op": st.just("revoke"), "key": st.sampled_from(["unlimited", "two_credits", "account"])}
)
steps = st.lists(
    st.one_of(new_request, new_request, replay, late_replay, revoke), min_size=1, max_size=10
)


def _concrete(ops: list[dict[str, Any]]) -> list[tuple[str, Any, int]]:
    """The generated ops as ``(kind, body or pubkey, now)``: bodies are signed once, so
    both paths receive byte-identical requests."""
    out: list[tuple[str, Any, int]] = []
    bodies: list[dict[str, str]] = []
    for op in ops:
        if op["op"] == "new":
            body = signing.make_request(
                KEYS[op["key"]],
                {"title": f"work {op['record']}"},
                type="work",
                now=NOW + IAT_OFFSETS[op["iat"]],
                nonce=op["nonce"],
            )
            bodies.append(body)
            out.append(("accept", body, NOW))
        elif op["op"] == "revoke":
            out.append(("revoke", _pub(op["key"]), NOW))
        elif bodies:
            # the same body again, now or after its window closed (exp is NOW + 600 at most)
            when = NOW if op["op"] == "replay" else NOW + 5000
            out.append(("accept", bodies[op["of"] % len(bodies)], when))
    return out


# ---------------------------------------------------------------------------------------------
# running one path and reading what it did


class _Ids:
    """Maps random job ids to their order of first appearance (``job#0``, ``job#1`` ...)."""

    def __init__(self) -> None:
        self.order: dict[str, str] = {}

    def name(self, job_id: str) -> str:
        return self.order.setdefault(job_id, f"job#{len(self.order)}")

    def normalise(self, value: Any) -> Any:
        if isinstance(value, str):
            for job_id, name in self.order.items():
                value = value.replace(job_id, name)
        return value


def _receipt_view(raw: str | None, ids: _Ids) -> Any:
    """The receipt with its signature checked, then set aside (it covers the job id)."""
    if raw is None:
        return None
    signed = json.loads(raw)
    receipt = verify_receipt(signed)
    return {**receipt, "jobId": ids.name(receipt["jobId"]), "pubkey": signed["pubkey"]}


def _answer(step: Callable[[], intake.Accepted], ids: _Ids) -> tuple[Any, ...]:
    try:
        got = step()
    except RareGenError as err:
        return ("error", err.status, err.code, err.field, err.message)
    return (
        "accepted",
        202 if got.created else 200,
        ids.name(got.job_id),
        got.status,
        _receipt_view(got.receipt, ids),
    )


def _rows(ids: _Ids, before: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Every row of every table, job ids normalised; the audit chain verified, its hashes
    (which cover the job ids) left out.

    ``updated_at`` is stamped by the database's clock (the trigger of migration 0001), which
    time-machine does not freeze: given the rows ``before`` the run, it is compared as
    "changed during the run" (True/False) instead of its value."""
    # the one-statement accept writes its audit entry deferred (migration 0011): chained at
    # the next chained write or by the reaper; chain what waits, as the reaper would
    with transaction():
        chain_deferred()
    out: dict[str, list[dict[str, Any]]] = {}
    for table in db.metadata.sorted_tables:
        order = list(table.primary_key.columns) or list(table.columns)
        rows = db.session.execute(select(table).order_by(*order)).mappings().all()
        view = []
        for row in rows:
            item = dict(row)
            if table.name == "audit_log":
                item.pop("hash")
                item.pop("prev_hash")
            if "receipt" in item:
                item["receipt"] = _receipt_view(item["receipt"], ids)
            view.append({k: ids.normalise(v) for k, v in item.items()})
        if before is not None and "updated_at" in table.columns:
            stamps = {tuple(_pk(table, r)): r["updated_at"] for r in before[table.name]}
            for item in view:
                item["updated_at"] = stamps.get(tuple(_pk(table, item))) != item["updated_at"]
        out[table.name] = view
    report = audit.verify()
    assert report.problem is None, report
    return out


def _pk(table: Any, row: dict[str, Any]) -> list[Any]:
    return [row[c.name] for c in table.primary_key.columns]


def _deliveries(queue: Queue, ids: _Ids) -> list[str]:
    return [ids.normalise(job_id) for job_id in queue.job_ids]


class _Statements:
    """Counts runs of the one statement (on whichever engine) while installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith(ONE_STATEMENT):
            self.count += 1


#: the tables a run wrote to, emptied before the next run (TRUNCATE of every table, as the
#: ``pg_app`` fixture does once per test, costs several times more)
_WRITTEN: set[str] = set()


def _empty(app) -> None:
    if _WRITTEN:
        with transaction():
            db.session.execute(
                text(f"TRUNCATE {', '.join(sorted(_WRITTEN))} RESTART IDENTITY CASCADE")
            )
        _WRITTEN.clear()


def _run(app, plan: list[tuple[str, Any, int]], *, one_statement: bool) -> dict[str, Any]:
    """Empty the tables the last run wrote, seed them, feed ``plan`` through one path;
    what came out."""
    _empty(app)
    queue = Queue(app.config["QUEUE_NAME"], connection=redis_connection())
    queue.empty()
    ids = _Ids()
    answers = []
    seen = _Statements()
    with time_machine.travel(FROZEN, tick=False):
        _seed()
        with transaction():
            seeded = _rows(ids)
        event.listen(Engine, "before_cursor_execute", seen)
        try:
            for kind, arg, now in plan:
                db.session.remove()
                if kind == "revoke":
                    keys.revoke_key(arg)
                    continue
                if not one_statement:
                    # a transaction already open on the session: intake takes the ORM path
                    db.session.connection()
                answers.append(_answer(partial(intake.accept, arg, now=now), ids))
                db.session.rollback()
        finally:
            event.remove(Engine, "before_cursor_execute", seen)
            db.session.remove()
    with transaction():
        rows = _rows(ids, seeded)
    _WRITTEN.update(name for name, table_rows in rows.items() if table_rows)
    return {
        "answers": answers,
        "rows": rows,
        "deliveries": _deliveries(queue, ids),
        "one_statement_runs": seen.count,
    }


@pytest.fixture
def immediate_pg_app(pg_app, redis_url, monkeypatch) -> Iterator[Any]:
    """The PostgreSQL app (every table empty) enqueueing each accepted job at once."""
    _WRITTEN.clear()
    monkeypatch.setitem(pg_app.config, "PUBLISH_MODE", "immediate")
    monkeypatch.setitem(pg_app.config, "REDIS_URL", redis_url)
    yield pg_app
    truncate_all(pg_app)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=steps)
def test_one_statement_and_transactional_paths_agree(immediate_pg_app, ops):
    plan = _concrete(ops)
    fast = _run(immediate_pg_app, plan, one_statement=True)
    orm = _run(immediate_pg_app, plan, one_statement=False)
    assert orm["one_statement_runs"] == 0
    # the one statement ran for each verified request of a key without a wallet account
    # (the others are refused before it, or fall back to the transaction)
    assert fast["answers"] == orm["answers"]
    for table, rows in fast["rows"].items():
        assert rows == orm["rows"][table], table
    assert fast["deliveries"] == orm["deliveries"]


def test_both_paths_are_really_taken(immediate_pg_app):
    """The property above is not vacuous: the fast run uses the one statement, the other
    run never does, and both accept the same first request."""
    plan = _concrete(
        [{"op": "new", "key": "unlimited", "nonce": NONCES[0], "record": 0, "iat": "now"}]
    )
    fast = _run(immediate_pg_app, plan, one_statement=True)
    orm = _run(immediate_pg_app, plan, one_statement=False)
    assert fast["one_statement_runs"] == 1 and orm["one_statement_runs"] == 0
    assert fast["answers"] == orm["answers"] and fast["answers"][0][:2] == ("accepted", 202)
    assert fast["rows"] == orm["rows"] and len(fast["rows"]["publish_jobs"]) == 1
    assert fast["deliveries"] == orm["deliveries"] and len(fast["deliveries"]) == 1
