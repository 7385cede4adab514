"""Proof and job paths with values the database cannot hold answer 404 NOT_FOUND, never a
500: a job id with a NUL character (PostgreSQL text refuses it) and a vout past the 32-bit
column (PostgreSQL: integer out of range; SQLite: past 64 bits, an OverflowError)."""

from __future__ import annotations

import pytest

TXID = "ab" * 32


@pytest.mark.parametrize(
    "url",
    [
        "/v1/jobs/%00/proof",
        "/v1/jobs/0b4c5a2e-3f0d-4a8e%00/proof",
        "/v1/jobs/%00",
        f"/v1/records/{TXID}/{2**31}/proof",
        f"/v1/records/{TXID}/{2**63}/proof",
        f"/v1/records/{TXID}/{2**70}/proof",
    ],
)
def test_values_the_database_cannot_hold_are_not_found(client, url: str) -> None:
    resp = client.get(url)
    assert resp.status_code == 404, resp.data
    assert resp.json["error"]["code"] == "NOT_FOUND"


def test_the_largest_stored_vout_is_still_looked_up(client) -> None:
    resp = client.get(f"/v1/records/{TXID}/{2**31 - 1}/proof")
    assert resp.status_code == 404 and resp.json["error"]["field"] == "txid"
