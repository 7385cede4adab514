"""ARC and WhatsOnChain backends against HTTP-level fakes: a real HTTP server on 127.0.0.1
(werkzeug, in a thread) answering as ARC's OpenAPI spec (bitcoin-sv/arc ``pkg/api/arc.yaml``,
``doc/errors.md``) and WhatsOnChain's API answer. One test per outcome class, the headers
and bodies the backends send, timeouts, and failover from a dead ARC to the real regtest
node."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from raregen.chain.devnet import RegtestNode, free_port
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
    """A local HTTP server whose routes the test sets: ``routes[(method, path)] = handler``;
    a handler returns ``(status, body)`` or ``(status, body, delay_seconds)``; a dict/list
    body is sent as JSON, a str as text. Every request is recorded."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
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
            resp = Response(
                json.dumps({"status": 404, "title": "Not found"}),
                404,
                content_type="application/json",
            )
            return resp(environ, start_response)
        answer = handler(request)
        status, payload = answer[0], answer[1]
        if len(answer) > 2:
            time.sleep(answer[2])  # type: ignore[misc]
        if isinstance(payload, (dict, list)):
            resp = Response(json.dumps(payload), status, content_type="application/json")
        else:
            resp = Response(str(payload), status, content_type="text/plain")
        return resp(environ, start_response)

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]


@pytest.fixture
def fake() -> Iterator[FakeHTTP]:
    app = FakeHTTP()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(5)


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
    second = FakeHTTP()
    server = make_server("127.0.0.1", 0, second, threaded=True)
    second.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        second.routes[("POST", "/v1/tx")] = lambda r: (200, arc_ok("SEEN_ON_NETWORK"))
        chain = FailoverBroadcaster([make_arc(fake), ARCBroadcaster(second.url, name="arc2")])
        fake.routes[("POST", "/v1/tx")] = lambda r: (503, "down")
        result = chain.broadcast(RAW)
        assert (result.outcome, result.backend) == (Outcome.ACCEPTED, "arc2")
        fake.routes[("POST", "/v1/tx")] = lambda r: (465, arc_error(465, "Fee too low", ""))
        result = chain.broadcast(RAW)
        assert (result.outcome, result.backend) == (Outcome.REJECTED, "arc")  # final
        assert len(second.posted("/v1/tx")) == 1
    finally:
        server.shutdown()
        thread.join(5)


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
