"""Webhooks from the real publishing paths against the regtest node: immediate mode
(claim, sign, broadcast, ``sent``), batch and packed modes (the collector's settle), and the
confirmation run (``confirmed``); every event checked by a real receiver."""

from __future__ import annotations

from typing import Any

import coincurve
import pytest

from raregen import signing
from raregen.publish import batch, confirm, keys, pipeline
from raregen.webhooks import delivery
from raregen.webhooks.commands import make_command
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.node


@pytest.mark.parametrize("mode", ["immediate", "batch", "packed"])
def test_sent_and_confirmed_from_every_mode(chain_app, regtest_node, mode: str) -> None:
    chain_app.config.update(PUBLISH_MODE=mode)
    client = chain_app.test_client()
    key = coincurve.PrivateKey()
    keys.register_key(key.public_key.format().hex())
    with Receiver() as receiver:
        resp = client.post(
            "/v1/webhooks", json=make_command(key, "webhooks.create", {"url": receiver.url})
        )
        receiver.secret = resp.get_json()["endpoint"]["secret"]
        ids: list[Any] = []
        for i in range(3):
            body = signing.make_request(key, {"n": i, "mode": mode})
            ids.append(client.post("/v1/publish", json=body).get_json()["jobId"])
        if mode == "immediate":
            for job_id in ids:
                assert pipeline.process_job(job_id).action == "sent"
        elif mode == "batch":
            assert batch.collect_batch().counts.get("sent") == 3
        else:
            assert batch.collect_packed().counts.get("sent") == 3
        regtest_node.mine(1)
        assert confirm.confirm_sent() == 3
        delivery.deliver_due()
        events = receiver.wait_for(6)
        assert receiver.rejected == []
        for job_id in ids:
            mine = [e for e in events if e["data"]["jobId"] == job_id]
            assert [e["type"] for e in mine] == ["job.sent", "job.confirmed"]
            assert mine[0]["data"]["txid"] == mine[1]["data"]["txid"]
            assert mine[1]["data"]["blockHeight"] is not None
