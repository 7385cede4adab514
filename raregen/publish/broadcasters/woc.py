"""Broadcasting through WhatsOnChain's public API (``https://api.whatsonchain.com``).

Endpoints used (``<base>/v1/bsv/<network>/...``, network ``main``, ``test`` or ``stn``), as
WhatsOnChain's API documentation and its clients (e.g. @bsv/sdk's
``WhatsOnChainBroadcaster``, @bsv/wallet-toolbox's ``WhatsOnChain`` provider) use them:

* ``POST /tx/raw`` with ``{"txhex": "<hex>"}``: HTTP 200 and the txid as a JSON string on
  acceptance; otherwise an error status (400 for a node rejection) whose body is the node's
  text, wrapped, e.g. ``unexpected response code 500: 257: txn-already-known`` or ``...:
  Transaction already in the mempool`` or ``...: 258: txn-mempool-conflict``;
* ``GET /tx/hash/<txid>``: the decoded transaction (``blockhash``, ``blockheight``,
  ``confirmations`` once mined); 404 when unknown;
* ``GET /tx/<txid>/<vout>/spent``: the spending input (``{"txid", "vin", ...}``) when the
  output is spent; 404 when it is not (or not known: then ``/tx/hash`` is asked).

Classification: HTTP 200 -> ACCEPTED. Any other answer whose body carries a node reject text
-> that text classified as the node backend does (``classify_node_error``: already known ->
ALREADY_KNOWN, conflict -> CONFLICT, missing inputs -> MISSING_INPUTS after looking the txid
up, too-long chain -> TOO_LONG_CHAIN, fee/dust/script -> REJECTED). 429 (rate limit), 401,
403, 404, 5xx without a known node text, connect/read timeouts -> TRANSIENT. Other 4xx with
an unknown text -> REJECTED.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import requests

from raregen.publish.broadcasters.base import (
    BroadcasterUnavailable,
    BroadcastResult,
    Outcome,
    OutputState,
    TxStatus,
    recheck_missing_inputs,
    register_broadcaster,
    txid_of,
)
from raregen.publish.broadcasters.http_client import HTTPAnswer, HTTPBackend, transport_detail
from raregen.publish.broadcasters.node import NODE_REJECT_PATTERNS, classify_node_error

__all__ = ["WhatsOnChainBroadcaster", "classify_woc_answer"]

log = logging.getLogger(__name__)

_TRANSIENT_HTTP = {401, 403, 404, 408, 425, 429}


def classify_woc_answer(http_status: int, text: str) -> Outcome:
    """Classify a non-200 answer of ``POST /tx/raw`` by its HTTP status and body text."""
    lowered = (text or "").lower()
    if any(pattern in lowered for pattern, _ in NODE_REJECT_PATTERNS):
        return classify_node_error(text)
    if http_status >= 500 or http_status in _TRANSIENT_HTTP:
        return Outcome.TRANSIENT
    return Outcome.REJECTED


class WhatsOnChainBroadcaster:
    """Broadcaster over WhatsOnChain.

    Args:
        url: base URL (default ``https://api.whatsonchain.com``).
        network: ``main``, ``test`` or ``stn``.
        api_key: sent as the ``Authorization`` header when set (WhatsOnChain's keyed plans).
        name: backend name in results (default ``"woc"``).
        connect_timeout, read_timeout: seconds (default 3.05 and 15).
        session: a ``requests.Session`` (tests); one is made otherwise.
    """

    def __init__(
        self,
        url: str | None = None,
        network: str = "main",
        api_key: str | None = None,
        *,
        name: str = "woc",
        connect_timeout: float = 3.05,
        read_timeout: float = 15.0,
        session: requests.Session | None = None,
    ):
        self.url = (url or "https://api.whatsonchain.com").rstrip("/")
        self.network = network
        self.name = name
        self.timeout = (float(connect_timeout), float(read_timeout))
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = api_key
        self._http = HTTPBackend(name, self._path(""), headers, self.timeout, session)

    @classmethod
    def from_settings(
        cls,
        url: str | None = None,
        network: str | None = None,
        api_key: str | None = None,
        **settings: Any,
    ) -> WhatsOnChainBroadcaster:
        """Build from app settings ``WOC_URL``, ``WOC_NETWORK``, ``WOC_API_KEY``,
        ``WOC_CONNECT_TIMEOUT``, ``WOC_READ_TIMEOUT``. Unknown settings are ignored."""
        kwargs: dict[str, Any] = {}
        for key in ("connect_timeout", "read_timeout"):
            if settings.get(key) is not None:
                kwargs[key] = float(settings[key])
        return cls(url, network or "main", api_key, **kwargs)

    def __repr__(self) -> str:
        return f"WhatsOnChainBroadcaster({self.url!r}, {self.network!r})"

    def _path(self, tail: str) -> str:
        return f"{self.url}/v1/bsv/{self.network}{tail}"

    def _get(self, tail: str) -> HTTPAnswer:
        """``GET <base>/v1/bsv/<network><tail>``. Raises BroadcasterUnavailable."""
        return self._http.query("GET", tail)

    # -- broadcasting -----------------------------------------------------------------------

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        """``POST /tx/raw`` and classify (module docstring). Never raises."""
        txid = txid_of(raw_hex)
        try:
            resp = self._http.request("POST", "/tx/raw", json={"txhex": raw_hex})
        except requests.RequestException as exc:
            return BroadcastResult(txid, Outcome.TRANSIENT, transport_detail(exc), self.name)
        text = resp.text.strip()
        if resp.status == 200:
            return BroadcastResult(txid, Outcome.ACCEPTED, "", self.name)
        detail = text.strip('"')[:500] or f"HTTP {resp.status}"
        outcome = classify_woc_answer(resp.status, text)
        (result,) = recheck_missing_inputs(
            [BroadcastResult(txid, outcome, detail, self.name)], self._knows
        )
        return result

    def _knows(self, txids: list[str]) -> dict[str, bool]:
        """txid -> does WhatsOnChain know it? Raises BroadcasterUnavailable."""
        return {t: self.tx_status(t).state != "unknown" for t in txids}

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        """One ``POST /tx/raw`` per transaction, in order (parents first)."""
        return [self.broadcast(r) for r in raw_hexes]

    # -- status -----------------------------------------------------------------------------

    def tx_status(self, txid: str) -> TxStatus:
        """``GET /tx/hash/<txid>``: 404 -> unknown; ``blockhash`` with confirmations ->
        confirmed; else mempool.

        Raises:
            BroadcasterUnavailable: transport failure, 5xx, rate limit, an answer that is
                not a JSON object.
        """
        resp = self._get(f"/tx/hash/{txid}")
        if resp.status == 404:
            return TxStatus(txid, "unknown")
        if resp.status != 200:
            raise BroadcasterUnavailable(self.name, f"HTTP {resp.status} for tx/hash")
        info = resp.json
        if not isinstance(info, dict):
            raise BroadcasterUnavailable(self.name, "tx/hash answer is not a JSON object")
        block_hash = info.get("blockhash")
        confirmations = int(info.get("confirmations") or 0)
        if block_hash and confirmations > 0:
            height = info.get("blockheight")
            return TxStatus(
                txid,
                "confirmed",
                str(block_hash),
                int(height) if height else None,
                confirmations,
            )
        return TxStatus(txid, "mempool")

    def output_status(self, txid: str, vout: int) -> OutputState:
        """``GET /tx/<txid>/<vout>/spent``: 200 -> spent; 404 -> unspent if the transaction
        is known (``/tx/hash``), else unknown.

        Raises:
            BroadcasterUnavailable: transport failure, 5xx, rate limit.
        """
        resp = self._get(f"/tx/{txid}/{int(vout)}/spent")
        if resp.status == 200:
            return "spent"
        if resp.status != 404:
            raise BroadcasterUnavailable(self.name, f"HTTP {resp.status} for spent")
        return "unspent" if self.tx_status(txid).state != "unknown" else "unknown"

    def fee_rate_sat_per_kb(self) -> int | None:
        """WhatsOnChain publishes no fee policy: None."""
        return None


register_broadcaster("woc", WhatsOnChainBroadcaster)
