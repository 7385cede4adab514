"""ARC and WhatsOnChain backends against HTTP-level fakes: a real HTTP server on 127.0.0.1
(pytest-httpserver, threaded) answering as ARC's OpenAPI spec (bitcoin-sv/arc ``pkg/api/arc.yaml``,
``doc/errors.md``) and WhatsOnChain's API answer. One test per outcome class, the headers
and bodies the backends send, timeouts, and failover from a dead ARC to the real regtest
node."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from raregen.publish.broadcasters import (
    ARCBroadcaster,
    BroadcasterUnavailable,
    FailoverBroadcaster,
    Outcome,
    SVNodeBroadcaster,
    WhatsOnChainBroadcaster,
    build_chain,
    classify_arc_answer,
    txid_of,
)
from raregen_dev.devnet import RegtestNode, free_port
from tests.plugins.node import FundedKey, p2pkh_spend

# a syntactically valid transaction (1 input, 1 output); its content does not matter to fakes
RAW = (
    "0100000001"
    + "11" * 32
    + "00000000"
    + "00"
    + "ffffffff"
    + "01"
    + "e803000000000000"
    + "1976a914"
    + "22" * 20
    + "88ac"
    + "00000000"
)
TXID = txid_of(RAW)
TS = "2026-11-29T12:00:00.000000000Z"

Handler = Callable[[Request], tuple[int, Any] | tuple[int, Any, float]]


@dataclass
class FakeHTTP:
    """Routes the test sets on a local HTTP server (pytest-httpserver):
    ``routes[(method, path)] = handler``; a path ending in ``*`` matches by prefix; a handler
    returns ``(status, body)`` or ``(status, body, delay_seconds)``; a dict/list body is sent
    as JSON, a str as text; no route: 404 in ARC's error shape. Every request is recorded."""

    server: HTTPServer
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def answer(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        handler = self.routes.get((request.method, request.path))
        if handler is None:
            prefix = [
                k
                for k in self.routes
                if k[0] == request.method
                and k[1].endswith("*")
                and request.path.startswith(k[1][:-1])
            ]
            handler = self.routes[prefix[0]] if prefix else None
        if handler is None:
            return Response(
                json.dumps({"status": 404, "title": "Not found"}),
                404,
                content_type="application/json",
            )
        answer = handler(request)
        status, payload = answer[0], answer[1]
        if len(answer) > 2:
            time.sleep(answer[2])  # type: ignore[misc]
        if isinstance(payload, (dict, list)):
            return Response(json.dumps(payload), status, content_type="application/json")
        return Response(str(payload), status, content_type="text/plain")

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]


@contextmanager
def fake_http() -> Iterator[FakeHTTP]:
    """A :class:`FakeHTTP` on its own threaded server (a delayed answer blocks no other),
    stopped at the end."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    fake = FakeHTTP(server)
    server.expect_request(re.compile(".*")).respond_with_handler(fake.answer)
    server.start()
    try:
        yield fake
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeHTTP]:
    with fake_http() as server:
        yield server


def arc_ok(tx_status: str, **extra: Any) -> dict[str, Any]:
    body = {
        "blockHash": "",
        "blockHeight": 0,
        "extraInfo": "",
        "merklePath": "",
        "status": 200,
        "timestamp": TS,
        "title": "OK",
        "txStatus": tx_status,
        "txid": TXID,
    }
    body.update(extra)
    return body


def arc_error(code: int, title: str, detail: str, extra: str = "") -> dict[str, Any]:
    return {
        "type": f"https://bitcoin-sv.github.io/arc/#/errors?id=_{code}",
        "title": title,
        "status": code,
        "detail": detail,
        "instance": None,
        "txid": TXID,
        "extraInfo": extra,
    }


def make_arc(fake: FakeHTTP, **kw: Any) -> ARCBroadcaster:
    kw.setdefault("status_deadline", 1.0)
    kw.setdefault("poll_interval", 0.1)
    return ARCBroadcaster(fake.url, "secret-key", **kw)


# ---------------------------------------------------------------------------------------
# ARC: one test per outcome class
# ---------------------------------------------------------------------------------------


def test_arc_accepted_sends_documented_request(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_ON_NETWORK"))
    result = make_arc(fake, max_timeout=7).broadcast(RAW)
    assert (result.outcome, result.txid, result.backend) == (Outcome.ACCEPTED, TXID, "arc")
    (sent,) = fake.posted("/v1/tx")
    assert json.loads(sent["body"]) == {"rawTx": RAW}
    headers = sent["headers"]
    assert headers["Authorization"] == "Bearer secret-key"
    assert headers["X-Waitfor"] == "SEEN_ON_NETWORK"
    assert headers["X-Maxtimeout"] == "7"
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", ["ACCEPTED_BY_NETWORK", "SEEN_MULTIPLE_NODES"])
def test_arc_other_network_statuses_are_accepted(fake: FakeHTTP, status: str) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok(status))
    assert make_arc(fake).broadcast(RAW).outcome is Outcome.ACCEPTED


def test_arc_already_known_mined(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        200,
        arc_ok("MINED", blockHash="00" * 32, blockHeight=812345),
    )
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.ALREADY_KNOWN and result.ok


def test_arc_conflict_is_a_200_with_double_spend_attempted(fake: FakeHTTP) -> None:
    competing = "ab" * 32
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        200,
        arc_ok("DOUBLE_SPEND_ATTEMPTED", competingTxs=[competing]),
    )
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.CONFLICT and not result.ok
    assert competing in result.detail


def test_arc_conflict_466(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        466,
        arc_error(
            466,
            "Conflicting tx found",
            "Transaction is valid, but there is a conflicting tx in the block template",
        ),
    )
    assert make_arc(fake).broadcast(RAW).outcome is Outcome.CONFLICT


def test_arc_missing_inputs_460_after_lookup(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        460,
        arc_error(
            460,
            "Not extended format",
            "Transaction is not in extended format, missing input scripts",
            "parent transaction not found",
        ),
    )
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (
        404,
        arc_error(404, "Not found", "The requested resource could not be found"),
    )
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.MISSING_INPUTS
    assert [r["path"] for r in fake.requests] == ["/v1/tx", f"/v1/tx/{TXID}"]


def test_arc_missing_inputs_but_txid_known_is_already_known(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        460,
        arc_error(460, "Not extended format", "missing input scripts"),
    )
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (200, arc_ok("MINED", blockHeight=9))
    assert make_arc(fake).broadcast(RAW).outcome is Outcome.ALREADY_KNOWN


def test_arc_rejected_with_node_reason_is_classified(fake: FakeHTTP) -> None:
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (404, arc_error(404, "Not found", ""))
    for extra, outcome in [
        ("arc error 462: Missing inputs", Outcome.MISSING_INPUTS),
        ("258: txn-mempool-conflict", Outcome.CONFLICT),
        ("64: too-long-mempool-chain", Outcome.TOO_LONG_CHAIN),
        ("16: mandatory-script-verify-flag-failed", Outcome.REJECTED),
        ("", Outcome.REJECTED),
    ]:
        fake.routes[("POST", "/v1/tx")] = lambda r, e=extra: (200, arc_ok("REJECTED", extraInfo=e))
        assert make_arc(fake).broadcast(RAW).outcome is outcome, extra


def test_arc_fee_too_low_465(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        465,
        arc_error(
            465,
            "Fee too low",
            "Fees are too low",
            "arc error 465: transaction fee of 1 sat is too low - minimum expected fee is 10 sat",
        ),
    )
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.REJECTED and result.detail.startswith("465:")


@pytest.mark.parametrize("code", [461, 463, 464, 400, 473])
def test_arc_malformed_and_policy_errors_are_rejected(fake: FakeHTTP, code: int) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (
        code,
        arc_error(code, "Malformed transaction", "Transaction is malformed"),
    )
    assert make_arc(fake).broadcast(RAW).outcome is Outcome.REJECTED


def test_arc_orphan_is_not_success(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_IN_ORPHAN_MEMPOOL"))
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.ORPHAN and not result.ok


def test_arc_pending_status_polled_until_seen(fake: FakeHTTP) -> None:
    polls = {"n": 0}

    def status(_r: Request) -> tuple[int, Any]:
        polls["n"] += 1
        return 200, arc_ok("SEEN_ON_NETWORK" if polls["n"] >= 3 else "SENT_TO_NETWORK")

    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("STORED"))
    fake.routes[("GET", f"/v1/tx/{TXID}")] = status
    result = make_arc(fake, status_deadline=5).broadcast(RAW)
    assert result.outcome is Outcome.ACCEPTED and polls["n"] == 3


def test_arc_stuck_status_past_deadline_is_transient(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("ANNOUNCED_TO_NETWORK"))
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (200, arc_ok("STORED"))
    started = time.monotonic()
    result = make_arc(fake, status_deadline=0.6, poll_interval=0.1).broadcast(RAW)
    assert result.outcome is Outcome.TRANSIENT and "STORED" in result.detail
    assert 0.5 < time.monotonic() - started < 3


def test_arc_read_timeout_is_transient(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_ON_NETWORK"), 2.0)
    started = time.monotonic()
    result = make_arc(fake, read_timeout=0.3).broadcast(RAW)
    assert result.outcome is Outcome.TRANSIENT and "timeout" in result.detail
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize(
    "status,body",
    [
        (503, "upstream unavailable"),
        (500, {"status": 500, "title": "Internal"}),
        (502, "<html>bad gateway</html>"),
        (409, arc_error(409, "Generic error", "")),
        (401, ""),
    ],
)
def test_arc_5xx_and_unclassified_are_transient(fake: FakeHTTP, status: int, body: Any) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (status, body)
    assert make_arc(fake).broadcast(RAW).outcome is Outcome.TRANSIENT


def test_arc_batch_maps_answers_by_txid(fake: FakeHTTP) -> None:
    raw2 = RAW[:-8] + "01000000"  # another locktime: another txid
    raw3 = RAW[:-8] + "02000000"
    t2, t3 = txid_of(raw2), txid_of(raw3)
    fake.routes[("POST", "/v1/txs")] = lambda r: (
        200,
        [
            {**arc_error(465, "Fee too low", "Fees are too low"), "txid": t2},
            arc_ok("SEEN_ON_NETWORK"),
        ],
    )
    results = make_arc(fake).broadcast_many([RAW, raw2, raw3])
    assert [(r.txid, r.outcome) for r in results] == [
        (TXID, Outcome.ACCEPTED),
        (t2, Outcome.REJECTED),
        (t3, Outcome.TRANSIENT),
    ]
    (sent,) = fake.posted("/v1/txs")
    assert json.loads(sent["body"]) == [{"rawTx": RAW}, {"rawTx": raw2}, {"rawTx": raw3}]


def test_arc_status_and_policy(fake: FakeHTTP) -> None:
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (
        200,
        arc_ok("MINED", blockHash="0f" * 32, blockHeight=812345),
    )
    fake.routes[("GET", "/v1/policy")] = lambda r: (
        200,
        {
            "timestamp": TS,
            "policy": {
                "maxscriptsizepolicy": 500000,
                "maxtxsigopscountspolicy": 4294967295,
                "maxtxsizepolicy": 10000000,
                "miningFee": {"satoshis": 5, "bytes": 1000},
            },
        },
    )
    arc = make_arc(fake)
    status = arc.tx_status(TXID)
    assert (status.state, status.block_height, status.block_hash) == (
        "confirmed",
        812345,
        "0f" * 32,
    )
    assert arc.fee_rate_sat_per_kb() == 5
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (404, arc_error(404, "Not found", ""))
    assert arc.tx_status(TXID).state == "unknown"
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (500, "boom")
    with pytest.raises(BroadcasterUnavailable):
        arc.tx_status(TXID)
    with pytest.raises(BroadcasterUnavailable):
        arc.output_status(TXID, 0)


def test_arc_classification_table() -> None:
    assert classify_arc_answer(arc_ok("STORED"), 200)[0] is None
    assert classify_arc_answer(arc_ok("SOMETHING_NEW"), 200)[0] is None
    assert classify_arc_answer(arc_ok("IMMUTABLE"), 200)[0] is Outcome.ALREADY_KNOWN
    assert classify_arc_answer(arc_ok("MINED_IN_STALE_BLOCK"), 200)[0] is Outcome.ALREADY_KNOWN
    # success is decided by txStatus, never by the HTTP code
    assert classify_arc_answer(arc_ok("DOUBLE_SPEND_ATTEMPTED"), 200)[0] is Outcome.CONFLICT
    assert classify_arc_answer(arc_ok("SEEN_ON_NETWORK"), 201)[0] is Outcome.ACCEPTED
    assert classify_arc_answer(None, 503)[0] is Outcome.TRANSIENT


# ---------------------------------------------------------------------------------------
# Failover
# ---------------------------------------------------------------------------------------


def test_failover_moves_on_only_after_transient(fake: FakeHTTP) -> None:
    with fake_http() as second:
        second.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_ON_NETWORK"))
        chain = FailoverBroadcaster([make_arc(fake), ARCBroadcaster(second.url, name="arc2")])
        fake.routes[("POST", "/v1/tx")] = lambda r: (503, "down")
        result = chain.broadcast(RAW)
        assert (result.outcome, result.backend) == (Outcome.ACCEPTED, "arc2")
        fake.routes[("POST", "/v1/tx")] = lambda r: (465, arc_error(465, "Fee too low", ""))
        result = chain.broadcast(RAW)
        assert (result.outcome, result.backend) == (Outcome.REJECTED, "arc")  # final
        assert len(second.posted("/v1/tx")) == 1


@pytest.mark.node
def test_failover_from_dead_arc_to_the_node(
    regtest_node: RegtestNode, funded_key: FundedKey
) -> None:
    fk = funded_key
    txid_, vout, sats, script = fk.utxos[0]
    tx = p2pkh_spend([fk.utxos[0]], fk.key, [(script, sats - 40)])
    config = {
        "BROADCASTERS": "arc,node",
        "ARC_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "ARC_API_KEY": "k",
        "ARC_CONNECT_TIMEOUT": 0.5,
    }
    chain = build_chain(config, lambda: regtest_node.rpc)
    assert isinstance(chain, FailoverBroadcaster)
    assert [b.name for b in chain.backends] == ["arc", "node"]
    started = time.monotonic()
    result = chain.broadcast(tx.hex())
    assert (result.outcome, result.backend, result.txid) == (Outcome.ACCEPTED, "node", tx.txid())
    assert time.monotonic() - started < 5
    # status queries skip the dead backend too
    assert chain.tx_status(tx.txid()).state == "mempool"
    assert chain.output_status(txid_, vout) == "spent"
    assert isinstance(chain.backends[1], SVNodeBroadcaster)


# ---------------------------------------------------------------------------------------
# WhatsOnChain
# ---------------------------------------------------------------------------------------


def make_woc(fake: FakeHTTP, **kw: Any) -> WhatsOnChainBroadcaster:
    return WhatsOnChainBroadcaster(fake.url, "test", **kw)


RAW_PATH = "/v1/bsv/test/tx/raw"


def test_woc_accepted(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (200, json.dumps(TXID))
    result = make_woc(fake).broadcast(RAW)
    assert (result.outcome, result.txid, result.backend) == (Outcome.ACCEPTED, TXID, "woc")
    (sent,) = fake.posted(RAW_PATH)
    assert json.loads(sent["body"]) == {"txhex": RAW}


@pytest.mark.parametrize(
    "text",
    [
        "unexpected response code 500: Transaction already in the mempool",
        "unexpected response code 500: 257: txn-already-known",
    ],
)
def test_woc_already_known(fake: FakeHTTP, text: str) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (400, json.dumps(text))
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.ALREADY_KNOWN


def test_woc_conflict(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (
        400,
        "unexpected response code 500: 258: txn-mempool-conflict",
    )
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.CONFLICT


def test_woc_missing_inputs_after_lookup(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (
        400,
        "unexpected response code 500: Missing inputs",
    )
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (404, "Not Found")
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.MISSING_INPUTS
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (
        200,
        {"txid": TXID, "blockhash": "0f" * 32, "blockheight": 7, "confirmations": 3},
    )
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.ALREADY_KNOWN


def test_woc_fee_too_low_and_malformed_are_rejected(fake: FakeHTTP) -> None:
    for text in [
        "unexpected response code 500: 66: mempool min fee not met",
        "unexpected response code 500: TX decode failed",
        "unexpected response code 500: 16: mandatory-script-verify-flag-failed",
    ]:
        fake.routes[("POST", RAW_PATH)] = lambda r, t=text: (400, t)
        assert make_woc(fake).broadcast(RAW).outcome is Outcome.REJECTED, text


def test_woc_too_long_chain(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (
        400,
        "unexpected response code 500: 64: too-long-mempool-chain",
    )
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.TOO_LONG_CHAIN


@pytest.mark.parametrize(
    "status,text",
    [(503, "Service Unavailable"), (429, "Too Many Requests"), (502, "<html>Bad gateway</html>")],
)
def test_woc_5xx_and_rate_limit_are_transient(fake: FakeHTTP, status: int, text: str) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (status, text)
    assert make_woc(fake).broadcast(RAW).outcome is Outcome.TRANSIENT


def test_woc_timeout_is_transient(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (200, json.dumps(TXID), 2.0)
    started = time.monotonic()
    result = make_woc(fake, read_timeout=0.3).broadcast(RAW)
    assert result.outcome is Outcome.TRANSIENT and time.monotonic() - started < 1.5


def test_woc_status_queries(fake: FakeHTTP) -> None:
    woc = make_woc(fake)
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (200, {"txid": TXID})
    assert woc.tx_status(TXID).state == "mempool"
    fake.routes[("GET", f"/v1/bsv/test/tx/{TXID}/0/spent")] = lambda r: (
        200,
        {"txid": "cd" * 32, "vin": 0, "status": "unconfirmed"},
    )
    assert woc.output_status(TXID, 0) == "spent"
    fake.routes[("GET", f"/v1/bsv/test/tx/{TXID}/1/spent")] = lambda r: (404, "Not Found")
    assert woc.output_status(TXID, 1) == "unspent"
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (404, "Not Found")
    assert woc.output_status(TXID, 1) == "unknown"
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (503, "down")
    with pytest.raises(BroadcasterUnavailable):
        woc.tx_status(TXID)
    assert woc.fee_rate_sat_per_kb() is None


# ---------------------------------------------------------------------------------------
# Shared helpers (base.py, http_client.py) and the Extended Format (ef.py)
# ---------------------------------------------------------------------------------------


def test_recheck_missing_inputs_looks_up_once_and_settles_each() -> None:
    from raregen.publish.broadcasters.base import BroadcastResult, recheck_missing_inputs

    a, b, c = "aa" * 32, "bb" * 32, "cc" * 32
    results = [
        BroadcastResult(b, Outcome.MISSING_INPUTS, "Missing inputs", "x"),
        BroadcastResult(a, Outcome.ACCEPTED, "", "x"),
        BroadcastResult(c, Outcome.MISSING_INPUTS, "16: missing-inputs", "x"),
        BroadcastResult("", Outcome.MISSING_INPUTS, "no txid", "x"),
        BroadcastResult(b, Outcome.MISSING_INPUTS, "Missing inputs", "x"),
    ]
    calls: list[list[str]] = []

    def knows(txids: list[str]) -> dict[str, bool]:
        calls.append(txids)
        return {b: True, c: False}

    out = recheck_missing_inputs(results, knows, known_note="(known)")
    assert calls == [[b, c]]  # sorted, distinct, only MISSING_INPUTS with a txid
    assert [(r.outcome, r.detail) for r in out] == [
        (Outcome.ALREADY_KNOWN, "Missing inputs (known)"),
        (Outcome.ACCEPTED, ""),
        (Outcome.MISSING_INPUTS, "16: missing-inputs"),
        (Outcome.MISSING_INPUTS, "no txid"),
        (Outcome.ALREADY_KNOWN, "Missing inputs (known)"),
    ]

    def down(txids: list[str]) -> dict[str, bool]:
        raise BroadcasterUnavailable("x", "timeout: ReadTimeout")

    out = recheck_missing_inputs(results, down)
    assert out[0].outcome is Outcome.TRANSIENT
    assert out[0].detail == "Missing inputs; could not look the txid up: x: timeout: ReadTimeout"
    assert out[1].outcome is Outcome.ACCEPTED and out[3].outcome is Outcome.MISSING_INPUTS
    assert recheck_missing_inputs(results[1:2], down) == results[1:2]  # nothing to look up


def test_arc_missing_inputs_with_lookup_down_is_transient(fake: FakeHTTP) -> None:
    fake.routes[("POST", "/v1/tx")] = lambda r: (460, arc_error(460, "Not extended format", ""))
    fake.routes[("GET", f"/v1/tx/{TXID}")] = lambda r: (503, "down")
    result = make_arc(fake).broadcast(RAW)
    assert result.outcome is Outcome.TRANSIENT
    assert "could not look the txid up: arc: HTTP 503" in result.detail


def test_woc_missing_inputs_with_lookup_down_is_transient(fake: FakeHTTP) -> None:
    fake.routes[("POST", RAW_PATH)] = lambda r: (
        400,
        "unexpected response code 500: Missing inputs",
    )
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (500, "down")
    result = make_woc(fake).broadcast(RAW)
    assert result.outcome is Outcome.TRANSIENT
    assert result.detail.startswith("unexpected response code 500: Missing inputs; could not")


def test_status_queries_of_unreachable_backends_raise_unavailable() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    arc = ARCBroadcaster(dead, connect_timeout=0.5)
    woc = WhatsOnChainBroadcaster(dead, "test", connect_timeout=0.5)
    for query in (lambda: arc.tx_status(TXID), lambda: woc.tx_status(TXID)):
        with pytest.raises(BroadcasterUnavailable, match="connection failed: ConnectionError"):
            query()
    assert arc.fee_rate_sat_per_kb() is None
    result = woc.broadcast(RAW)
    assert (result.outcome, result.detail) == (
        Outcome.TRANSIENT,
        "connection failed: ConnectionError",
    )


@pytest.mark.parametrize("body", [None, ["a list"], "a string"])
def test_woc_status_answer_that_is_not_an_object_is_unavailable(fake: FakeHTTP, body: Any) -> None:
    fake.routes[("GET", f"/v1/bsv/test/tx/hash/{TXID}")] = lambda r: (200, json.dumps(body))
    with pytest.raises(BroadcasterUnavailable, match="not a JSON object"):
        make_woc(fake).tx_status(TXID)


def test_fee_policies_are_cached(fake: FakeHTTP) -> None:
    policy = {"policy": {"miningFee": {"satoshis": 3, "bytes": 2000}}}
    fake.routes[("GET", "/v1/policy")] = lambda r: (200, policy)
    arc = make_arc(fake)
    assert arc.fee_rate_sat_per_kb() == 2  # 1.5 sat/kB rounded up
    assert arc.fee_rate_sat_per_kb() == 2
    assert len([r for r in fake.requests if r["path"] == "/v1/policy"]) == 1
    arc.policy_cache_seconds = 0
    assert arc.fee_rate_sat_per_kb() == 2
    assert len([r for r in fake.requests if r["path"] == "/v1/policy"]) == 2


def _signed_tx(n_inputs: int = 2):
    """A signed transaction spending ``n_inputs`` outputs of one parent, and that parent."""
    from bsv import P2PKH, PrivateKey, Script, Transaction, TransactionInput, TransactionOutput

    key = PrivateKey()
    lock = P2PKH().lock(key.address())
    parent = Transaction(
        tx_outputs=[
            TransactionOutput(locking_script=lock, satoshis=1000 + i) for i in range(n_inputs)
        ]
    )
    tx = Transaction()
    for vout in range(n_inputs):
        tx.add_input(
            TransactionInput(
                source_transaction=parent,
                source_txid=parent.txid(),
                source_output_index=vout,
                unlocking_script_template=P2PKH().unlock(key),
            )
        )
    tx.add_output(TransactionOutput(locking_script=Script("006a0568656c6c6f"), satoshis=0))
    tx.add_output(TransactionOutput(locking_script=lock, satoshis=900))
    tx.sign()
    return tx, parent


def _pool(parent: Any) -> dict[tuple[str, int], tuple[int, str]]:
    return {
        (parent.txid(), i): (out.satoshis, out.locking_script.hex())
        for i, out in enumerate(parent.outputs)
    }


def test_extended_format_matches_bsv_sdk_and_keeps_the_txid() -> None:
    from raregen.publish.broadcasters.ef import (
        input_outpoints,
        is_extended,
        to_extended_format,
    )

    for n in (1, 2, 3):
        tx, parent = _signed_tx(n)
        raw = tx.hex()
        outpoints = input_outpoints(raw)
        assert outpoints == [(parent.txid(), i) for i in range(n)]
        pool = _pool(parent)
        ef = to_extended_format(raw, [pool[o] for o in outpoints])
        assert ef == tx.to_ef().hex()  # bsv-sdk's serializer, from the whole parent
        assert ef[8:20] == "0000000000ef" and is_extended(ef) and not is_extended(raw)
        assert txid_of(raw) == tx.txid()
    # refusals
    tx, parent = _signed_tx(2)
    pool = list(_pool(parent).values())
    for bad_raw, prevouts in [
        (tx.hex(), pool[:1]),  # one prevout for two inputs
        (tx.hex()[:-2], pool),  # cut short
        (tx.hex() + "00", pool),  # bytes after the locktime
        (tx.to_ef().hex(), pool),  # already EF
        ("zz", pool),
    ]:
        with pytest.raises(ValueError):
            to_extended_format(bad_raw, prevouts)
    with pytest.raises(ValueError):
        to_extended_format(tx.hex(), [(-1, pool[0][1]), pool[1]])


def test_arc_sends_extended_format_when_the_pool_knows_the_inputs(fake: FakeHTTP) -> None:
    tx, parent = _signed_tx(2)
    txid = tx.txid()
    fake.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_ON_NETWORK", txid=txid))
    asked: list[list[tuple[str, int]]] = []

    def prevouts(outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str]]:
        asked.append(outpoints)
        return _pool(parent)

    arc = make_arc(fake, prevouts=prevouts)
    result = arc.broadcast(tx.hex())
    assert (result.outcome, result.txid) == (Outcome.ACCEPTED, txid)
    assert asked == [[(parent.txid(), 0), (parent.txid(), 1)]]
    (sent,) = fake.posted("/v1/tx")
    assert json.loads(sent["body"]) == {"rawTx": tx.to_ef().hex()}

    # an input the pool does not know: the raw transaction, as without a resolver
    arc = make_arc(fake, prevouts=lambda outs: {outs[0]: _pool(parent)[outs[0]]})
    assert arc.broadcast(tx.hex()).outcome is Outcome.ACCEPTED
    assert json.loads(fake.posted("/v1/tx")[-1]["body"]) == {"rawTx": tx.hex()}

    # a failing resolver does not stop the broadcast
    def broken(outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str]]:
        raise RuntimeError("database down")

    assert make_arc(fake, prevouts=broken).broadcast(tx.hex()).outcome is Outcome.ACCEPTED
    assert json.loads(fake.posted("/v1/tx")[-1]["body"]) == {"rawTx": tx.hex()}
    for odd in (None, {(parent.txid(), 0): "junk", (parent.txid(), 1): (1, "zz")}):
        arc = make_arc(fake, prevouts=lambda outs, odd=odd: odd)  # type: ignore[misc]
        assert arc.broadcast(tx.hex()).outcome is Outcome.ACCEPTED
        assert json.loads(fake.posted("/v1/tx")[-1]["body"]) == {"rawTx": tx.hex()}

    # without a resolver: raw, exactly as before
    assert make_arc(fake).broadcast(tx.hex()).outcome is Outcome.ACCEPTED
    assert json.loads(fake.posted("/v1/tx")[-1]["body"]) == {"rawTx": tx.hex()}


def test_arc_batch_sends_each_transaction_in_extended_format(fake: FakeHTTP) -> None:
    tx1, parent1 = _signed_tx(1)
    tx2, parent2 = _signed_tx(2)
    known = {**_pool(parent1), **_pool(parent2)}
    fake.routes[("POST", "/v1/txs")] = lambda r: (
        200,
        [arc_ok("SEEN_ON_NETWORK", txid=tx1.txid()), arc_ok("SEEN_ON_NETWORK", txid=tx2.txid())],
    )
    calls: list[list[tuple[str, int]]] = []

    def prevouts(outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str]]:
        calls.append(outpoints)
        return known

    results = make_arc(fake, prevouts=prevouts).broadcast_many([tx1.hex(), tx2.hex(), "zz"])
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.TRANSIENT]
    assert len(calls) == 1 and len(calls[0]) == 3  # one lookup for the whole batch
    (sent,) = fake.posted("/v1/txs")
    assert json.loads(sent["body"]) == [
        {"rawTx": tx1.to_ef().hex()},
        {"rawTx": tx2.to_ef().hex()},
        {"rawTx": "zz"},  # not a transaction: sent as given, ARC judges it
    ]


def test_arc_prevouts_setting_from_config() -> None:
    def resolver(outpoints: list[tuple[str, int]]) -> dict[tuple[str, int], tuple[int, str]]:
        return {}

    arc = build_chain(
        {"BROADCASTERS": "arc", "ARC_URL": "http://127.0.0.1:1", "ARC_PREVOUTS": resolver}
    )
    assert isinstance(arc, ARCBroadcaster) and arc.prevouts is resolver
    plain = build_chain(
        {"BROADCASTERS": "arc", "ARC_URL": "http://127.0.0.1:1", "ARC_PREVOUTS": "x"}
    )
    assert isinstance(plain, ARCBroadcaster) and plain.prevouts is None
