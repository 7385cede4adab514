"""Broadcasting through ARC (bitcoin-sv/arc), the miners' transaction processor, over HTTP.

Endpoints and facts used (ARC's OpenAPI spec ``pkg/api/arc.yaml``, its error list
``doc/errors.md``, ``pkg/api/status.go`` and the API handler ``pkg/api/handler/default.go`` in
github.com/bitcoin-sv/arc):

* ``POST /v1/tx``, body ``{"rawTx": "<hex>"}`` (``application/json``; ``text/plain`` hex and
  ``application/octet-stream`` bytes are accepted too). ``POST /v1/txs`` takes a JSON array
  of such objects and answers HTTP 200 with one element per transaction (a status object,
  or an error object carrying its ``txid`` and ``status`` code); the spec's schema also allows
  ``{"transactions": [...]}``, read as well.
* ``GET /v1/tx/{txid}``: the status object; 404 when ARC does not know the transaction.
* ``GET /v1/policy``: ``{"policy": {"miningFee": {"satoshis", "bytes"}, "maxtxsizepolicy",
  ...}}``.
* Headers: ``Authorization: Bearer <api key>``; ``X-WaitFor: <status>`` (the status to wait
  for before answering; older deployments read ``X-WaitForStatus``, a number, not sent
  here); ``X-MaxTimeout: <seconds>`` (how long ARC waits for that status: default 5, at
  most 30, above is a 400); ``X-CallbackUrl`` / ``X-CallbackToken`` optional.
* Answers: a processed transaction is HTTP 200 with ``txStatus`` (``QUEUED``, ``RECEIVED``,
  ``STORED``, ``ANNOUNCED_TO_NETWORK``, ``REQUESTED_BY_NETWORK``, ``SENT_TO_NETWORK``,
  ``ACCEPTED_BY_NETWORK``, ``SEEN_IN_ORPHAN_MEMPOOL``, ``SEEN_ON_NETWORK``,
  ``DOUBLE_SPEND_ATTEMPTED``, ``REJECTED``, ``MINED_IN_STALE_BLOCK``, ``MINED``; newer
  deployments add ``SEEN_MULTIPLE_NODES`` and ``IMMUTABLE``), ``extraInfo`` (for REJECTED
  the node's reason) and ``competingTxs`` (for a double spend). A transaction refused before
  it reached the network is an RFC 7807 error object whose HTTP status is also its ``status``:
  400 bad request, 409 generic, 460 not extended format (ARC could not find the parent
  transactions: "check that the inputs actually exist"), 461 unlocking scripts, 462 inputs,
  463/464 malformed/outputs (the spec and the error list swap these two), 465 fee too low,
  466 conflicting transaction, 467-469 BEEF, 471/472 frozen inputs, 473 cumulative fee.

Classification (success is decided by ``txStatus``, never by the HTTP code):

=======================================================  =======================================
answer                                                   Outcome
=======================================================  =======================================
``SEEN_ON_NETWORK``, ``ACCEPTED_BY_NETWORK``,            ACCEPTED
``SEEN_MULTIPLE_NODES``
``MINED``, ``IMMUTABLE``, ``MINED_IN_STALE_BLOCK``       ALREADY_KNOWN
``DOUBLE_SPEND_ATTEMPTED``                               CONFLICT (even with HTTP 200)
``REJECTED``                                             ``extraInfo`` classified as a node
                                                         reject text (mempool conflict ->
                                                         CONFLICT, missing inputs ->
                                                         MISSING_INPUTS, too-long chain ->
                                                         TOO_LONG_CHAIN, else REJECTED)
``SEEN_IN_ORPHAN_MEMPOOL``                               ORPHAN (not success)
``QUEUED`` ... ``SENT_TO_NETWORK``, ``UNKNOWN``           pending: ``GET /v1/tx/{txid}`` is
                                                         polled until ``status_deadline``
                                                         seconds; still pending -> TRANSIENT
                                                         (the same transaction is re-sent
                                                         later, ARC keeps it meanwhile)
460, 462                                                 MISSING_INPUTS (after looking the
                                                         txid up: known -> ALREADY_KNOWN)
466                                                      CONFLICT
400, 461, 463, 464, 465, 467-469, 471-473                REJECTED
401, 403, 404, 409, 429, 5xx, connect/read timeout,      TRANSIENT (the failover moves on)
a body that is not ARC's JSON
=======================================================  =======================================

Extended Format: ``rawTx`` may be a raw transaction or its Extended Format (BRC-30, see
``ef.py``), which ARC prefers (its README, "Extended Format (EF)": with each input's
satoshis and locking script ARC validates scripts and fees without fetching the parent
transactions; for a raw transaction it must fetch them from a node, and answers 460 "Not
extended format" when it cannot, e.g. for an unconfirmed parent it has not seen). Double
spends are still found by the node either way. With a ``prevouts`` resolver (setting
``ARC_PREVOUTS``: a callable ``[(txid, vout)] -> {(txid, vout): (satoshis, locking script
hex)}``, e.g. a lookup in the pool's ``utxos`` table), a transaction all of whose inputs are
resolved is sent as EF; otherwise, and when the resolver fails, the raw transaction is sent
(as without a resolver). Results and txids are the same either way.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from raregen.publish.broadcasters.base import (
    BroadcasterUnavailable,
    BroadcastResult,
    CachedValue,
    Outcome,
    OutputState,
    TxStatus,
    recheck_missing_inputs,
    register_broadcaster,
    transient_results,
    txid_of,
)
from raregen.publish.broadcasters.ef import input_outpoints, to_extended_format
from raregen.publish.broadcasters.http_client import HTTPBackend, transport_detail
from raregen.publish.broadcasters.node import classify_node_error

__all__ = [
    "ARC_ERROR_OUTCOMES",
    "ARC_STATUS_OUTCOMES",
    "ARCBroadcaster",
    "PrevoutResolver",
    "classify_arc_answer",
]

log = logging.getLogger(__name__)

#: ``resolver([(txid, vout), ...]) -> {(txid, vout): (satoshis, locking script hex)}``: the
#: outputs it knows among those asked (txids in display order). May raise: the transactions
#: are then sent raw.
PrevoutResolver = Callable[[list[tuple[str, int]]], Mapping[tuple[str, int], tuple[int, str]]]

#: txStatus -> outcome; None marks a pending status (ARC holds the tx, the network has not
#: answered yet).
ARC_STATUS_OUTCOMES: dict[str, Outcome | None] = {
    "SEEN_ON_NETWORK": Outcome.ACCEPTED,
    "ACCEPTED_BY_NETWORK": Outcome.ACCEPTED,
    "SEEN_MULTIPLE_NODES": Outcome.ACCEPTED,
    "MINED": Outcome.ALREADY_KNOWN,
    "IMMUTABLE": Outcome.ALREADY_KNOWN,
    "MINED_IN_STALE_BLOCK": Outcome.ALREADY_KNOWN,
    "DOUBLE_SPEND_ATTEMPTED": Outcome.CONFLICT,
    "REJECTED": Outcome.REJECTED,
    "SEEN_IN_ORPHAN_MEMPOOL": Outcome.ORPHAN,
    "UNKNOWN": None,
    "QUEUED": None,
    "RECEIVED": None,
    "STORED": None,
    "ANNOUNCED_TO_NETWORK": None,
    "REQUESTED_BY_NETWORK": None,
    "SENT_TO_NETWORK": None,
}

#: ARC error status code -> outcome.
ARC_ERROR_OUTCOMES: dict[int, Outcome] = {
    400: Outcome.REJECTED,
    460: Outcome.MISSING_INPUTS,
    461: Outcome.REJECTED,
    462: Outcome.MISSING_INPUTS,
    463: Outcome.REJECTED,
    464: Outcome.REJECTED,
    465: Outcome.REJECTED,
    466: Outcome.CONFLICT,
    467: Outcome.REJECTED,
    468: Outcome.REJECTED,
    469: Outcome.REJECTED,
    471: Outcome.REJECTED,
    472: Outcome.REJECTED,
    473: Outcome.REJECTED,
}

_NETWORK_KNOWS = {"SEEN_ON_NETWORK", "ACCEPTED_BY_NETWORK", "SEEN_MULTIPLE_NODES"}
_MINED = {"MINED", "IMMUTABLE"}


def classify_arc_answer(body: Any, http_status: int) -> tuple[Outcome | None, str]:
    """Classify one ARC answer object (status or error) and its HTTP status.

    Returns:
        ``(outcome, detail)``; outcome None means a pending status (poll for more).
        ``detail`` is ``"<txStatus or code>: <extraInfo or title>"``.
    """
    if isinstance(body, dict) and isinstance(body.get("txStatus"), str):
        tx_status = body["txStatus"].upper()
        extra = str(body.get("extraInfo") or "")
        competing = body.get("competingTxs") or []
        detail = tx_status + (f": {extra}" if extra else "")
        if competing:
            detail += f" (competing: {', '.join(map(str, competing))[:300]})"
        if tx_status not in ARC_STATUS_OUTCOMES:
            return None, detail  # a status this code does not know yet: wait and see
        outcome = ARC_STATUS_OUTCOMES[tx_status]
        if outcome is Outcome.REJECTED and extra:
            outcome = classify_node_error(extra)
            if outcome is Outcome.TRANSIENT or outcome is Outcome.ALREADY_KNOWN:
                # a REJECTED status is never success, nor worth a failover
                outcome = Outcome.REJECTED
        return outcome, detail
    code = None
    if isinstance(body, dict):
        try:
            code = int(body.get("status"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            code = None
    code = code or http_status
    title = ""
    if isinstance(body, dict):
        title = str(body.get("extraInfo") or body.get("detail") or body.get("title") or "")
    detail = f"{code}: {title}".strip()
    return ARC_ERROR_OUTCOMES.get(code, Outcome.TRANSIENT), detail


class ARCBroadcaster:
    """Broadcaster over one ARC endpoint.

    Args:
        url: ARC's base URL (e.g. ``https://arc.taal.com``; ``/v1/...`` is appended).
        api_key: sent as ``Authorization: Bearer <api_key>`` when set.
        name: backend name in results (default ``"arc"``).
        wait_for: ``X-WaitFor`` status (default ``SEEN_ON_NETWORK``).
        max_timeout: ``X-MaxTimeout`` seconds ARC waits for ``wait_for`` (1..30, default 5).
        callback_url, callback_token: ``X-CallbackUrl`` / ``X-CallbackToken`` if set.
        connect_timeout: seconds to connect (default 3.05).
        read_timeout: seconds to wait for an answer; default ``max_timeout`` + 5 so ARC's own
            wait ends first.
        status_deadline: seconds to keep polling a pending status (default 10).
        poll_interval: seconds between those polls (default 1).
        policy_cache_seconds: how long :meth:`fee_rate_sat_per_kb` keeps ARC's answer.
        session: a ``requests.Session`` (tests); one is made otherwise.
        prevouts: a :data:`PrevoutResolver`; when set, transactions whose inputs it resolves
            are sent in Extended Format (module docstring). None: always raw.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        name: str = "arc",
        wait_for: str = "SEEN_ON_NETWORK",
        max_timeout: int = 5,
        callback_url: str | None = None,
        callback_token: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float | None = None,
        status_deadline: float = 10.0,
        poll_interval: float = 1.0,
        policy_cache_seconds: float = 300.0,
        session: requests.Session | None = None,
        prevouts: PrevoutResolver | None = None,
    ):
        if not url:
            raise ValueError("ARC needs a url (ARC_URL)")
        self.url = url.rstrip("/")
        self.name = name
        self.wait_for = wait_for
        self.max_timeout = max(1, min(int(max_timeout), 30))
        self.timeout = (
            float(connect_timeout),
            float(read_timeout) if read_timeout is not None else self.max_timeout + 5.0,
        )
        self.status_deadline = float(status_deadline)
        self.poll_interval = float(poll_interval)
        self.policy_cache_seconds = float(policy_cache_seconds)
        self._policy = CachedValue()
        self.prevouts = prevouts
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if callback_url:
            headers["X-CallbackUrl"] = callback_url
            if callback_token:
                headers["X-CallbackToken"] = callback_token
        self._http = HTTPBackend(name, self.url, headers, self.timeout, session)

    @classmethod
    def from_settings(
        cls,
        url: str | None = None,
        api_key: str | None = None,
        **settings: Any,
    ) -> ARCBroadcaster:
        """Build from app settings ``ARC_URL``, ``ARC_API_KEY``, ``ARC_WAIT_FOR``,
        ``ARC_MAX_TIMEOUT``, ``ARC_CALLBACK_URL``, ``ARC_CALLBACK_TOKEN``,
        ``ARC_CONNECT_TIMEOUT``, ``ARC_READ_TIMEOUT``, ``ARC_STATUS_DEADLINE``,
        ``ARC_POLL_INTERVAL`` (lower-cased, without the prefix), and ``ARC_PREVOUTS`` (a
        :data:`PrevoutResolver`, used only if callable). Unknown settings are ignored.

        Raises:
            ValueError: no URL.
        """
        known = {
            "wait_for": str,
            "max_timeout": int,
            "callback_url": str,
            "callback_token": str,
            "connect_timeout": float,
            "read_timeout": float,
            "status_deadline": float,
            "poll_interval": float,
            "name": str,
        }
        kwargs: dict[str, Any] = {
            k: known[k](v) for k, v in settings.items() if k in known and v is not None
        }
        if callable(settings.get("prevouts")):
            kwargs["prevouts"] = settings["prevouts"]
        return cls(url or "", api_key, **kwargs)

    def __repr__(self) -> str:
        return f"ARCBroadcaster({self.url!r})"

    # -- HTTP -------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, submit: bool = False, **kwargs: Any
    ) -> tuple[int, Any]:
        """One HTTP call (``submit``: with the X-WaitFor/X-MaxTimeout headers). Returns
        ``(status, decoded JSON or None)``; raises ``requests.RequestException`` for
        transport failures."""
        extra = (
            {"X-WaitFor": self.wait_for, "X-MaxTimeout": str(self.max_timeout)} if submit else None
        )
        answer = self._http.request(method, path, headers=extra, **kwargs)
        return answer.status, answer.json

    def _submit_forms(self, raws: list[str]) -> list[str]:
        """What to send as ``rawTx`` for each transaction: its Extended Format when the
        ``prevouts`` resolver knows every input's output, else the raw hex. One resolver
        call for all transactions; never raises."""
        if self.prevouts is None or not raws:
            return list(raws)
        spent: list[list[tuple[str, int]] | None] = []
        for raw in raws:
            try:
                spent.append(input_outpoints(raw))
            except ValueError:  # not a transaction we can extend: ARC judges the raw form
                spent.append(None)
        wanted = sorted({o for outs in spent if outs for o in outs})
        try:
            known = self.prevouts(wanted) if wanted else {}
            found = [[known.get(o) for o in outs] if outs else None for outs in spent]
        except Exception as exc:  # noqa: BLE001 - a failed lookup must not stop a broadcast
            why = exc.__class__.__name__
            log.warning("ARC: previous outputs unavailable (%s); sending raw", why)
            return list(raws)
        forms = []
        for raw, values in zip(raws, found, strict=True):
            if not values or any(v is None for v in values):
                forms.append(raw)
                continue
            try:
                forms.append(to_extended_format(raw, [v for v in values if v is not None]))
            except (ValueError, TypeError) as exc:
                log.warning("ARC: no Extended Format for %s (%s); sending raw", txid_of(raw), exc)
                forms.append(raw)
        return forms

    # -- broadcasting -----------------------------------------------------------------------

    def broadcast(self, raw_hex: str) -> BroadcastResult:
        """``POST /v1/tx`` (Extended Format when ``prevouts`` resolves every input) and
        classify (module table). Never raises."""
        txid = txid_of(raw_hex)
        (form,) = self._submit_forms([raw_hex])
        try:
            status, body = self._request("POST", "/v1/tx", submit=True, json={"rawTx": form})
        except requests.RequestException as exc:
            return BroadcastResult(txid, Outcome.TRANSIENT, transport_detail(exc), self.name)
        if body is None:
            return BroadcastResult(
                txid, Outcome.TRANSIENT, f"HTTP {status} without an ARC answer", self.name
            )
        return self._finish(txid, body, status)

    def _finish(self, txid: str, body: Any, http_status: int) -> BroadcastResult:
        if isinstance(body, dict) and isinstance(body.get("txid"), str) and body["txid"]:
            txid = body["txid"]
        outcome, detail = classify_arc_answer(body, http_status)
        if outcome is None:
            return self._poll_pending(txid, detail)
        (result,) = recheck_missing_inputs(
            [BroadcastResult(txid, outcome, detail, self.name)], self._knows
        )
        return result

    def _knows(self, txids: list[str]) -> dict[str, bool]:
        """txid -> does ARC know it (any status but unknown)? Raises BroadcasterUnavailable."""
        return {t: self.tx_status(t).state != "unknown" for t in txids}

    def _poll_pending(self, txid: str, detail: str) -> BroadcastResult:
        """Poll ``GET /v1/tx/{txid}`` until a final status or ``status_deadline``."""
        deadline = time.monotonic() + self.status_deadline
        last = detail
        while time.monotonic() < deadline:
            time.sleep(min(self.poll_interval, max(deadline - time.monotonic(), 0)))
            try:
                status, body = self._request("GET", f"/v1/tx/{txid}")
            except requests.RequestException as exc:
                last = f"{last}; status query failed: {transport_detail(exc)}"
                continue
            if status != 200 or body is None:
                continue
            outcome, last = classify_arc_answer(body, status)
            if outcome is not None:
                return BroadcastResult(txid, outcome, last, self.name)
        return BroadcastResult(
            txid,
            Outcome.TRANSIENT,
            f"still {last} after {self.status_deadline:g} s",
            self.name,
        )

    def broadcast_many(self, raw_hexes: Sequence[str]) -> list[BroadcastResult]:
        """``POST /v1/txs`` with all transactions (parents first; each in Extended Format
        when ``prevouts`` resolves its inputs); one result per input, in order. A
        transaction the answer does not mention is TRANSIENT; a transport failure makes them
        all TRANSIENT."""
        raws = list(raw_hexes)
        if not raws:
            return []
        txids = [txid_of(r) for r in raws]
        forms = self._submit_forms(raws)
        try:
            status, body = self._request(
                "POST", "/v1/txs", submit=True, json=[{"rawTx": f} for f in forms]
            )
        except requests.RequestException as exc:
            return transient_results(txids, transport_detail(exc), self.name)
        items = body.get("transactions") if isinstance(body, dict) else body
        if not isinstance(items, list):
            outcome, detail = classify_arc_answer(body, status)
            outcome = outcome or Outcome.TRANSIENT
            if outcome.dirties_input:  # a whole-batch answer cannot say which input
                outcome = Outcome.TRANSIENT
            return [BroadcastResult(t, outcome, detail, self.name) for t in txids]
        by_txid: dict[str, Any] = {}
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("txid"), str):
                by_txid.setdefault(item["txid"], item)
        results = []
        for txid in txids:
            item = by_txid.get(txid)
            if item is None:
                results.append(
                    BroadcastResult(txid, Outcome.TRANSIENT, "not in ARC's answer", self.name)
                )
                continue
            code = item.get("status") if isinstance(item.get("status"), int) else status
            results.append(self._finish(txid, item, int(code)))
        return results

    # -- status -----------------------------------------------------------------------------

    def tx_status(self, txid: str) -> TxStatus:
        """``GET /v1/tx/{txid}``: ``MINED``/``IMMUTABLE`` -> confirmed (block hash, height
        and ARC's ``merklePath``, a BRC-74 BUMP in hex, when given); ``SEEN_ON_NETWORK``/``ACCEPTED_BY_NETWORK``/``SEEN_MULTIPLE_NODES``/
        ``MINED_IN_STALE_BLOCK`` -> mempool; 404 and every other status (pending, orphan,
        rejected, double spend) -> unknown.

        Raises:
            BroadcasterUnavailable: transport failure, 5xx, or an answer that is not ARC's.
        """
        answer = self._http.query("GET", f"/v1/tx/{txid}")
        status, body = answer.status, answer.json
        if status == 404:
            return TxStatus(txid, "unknown")
        if status != 200 or not isinstance(body, dict):
            raise BroadcasterUnavailable(self.name, f"HTTP {status} for GET /v1/tx/{txid}")
        tx_status = str(body.get("txStatus") or "").upper()
        if tx_status in _MINED:
            height = body.get("blockHeight")
            path = body.get("merklePath")
            return TxStatus(
                txid,
                "confirmed",
                body.get("blockHash") or None,
                int(height) if height else None,
                1,
                path if isinstance(path, str) and path else None,
            )
        if tx_status in _NETWORK_KNOWS or tx_status == "MINED_IN_STALE_BLOCK":
            return TxStatus(txid, "mempool")
        return TxStatus(txid, "unknown")

    def output_status(self, txid: str, vout: int) -> OutputState:
        """ARC has no output lookup: always raises, so a failover asks the next backend.

        Raises:
            BroadcasterUnavailable: always.
        """
        raise BroadcasterUnavailable(self.name, "ARC cannot tell whether an output is spent")

    def fee_rate_sat_per_kb(self) -> int | None:
        """``GET /v1/policy`` ``miningFee`` as satoshis per 1000 bytes (rounded up), cached for
        ``policy_cache_seconds``; None when ARC cannot be asked."""
        now = time.monotonic()
        if self._policy.fresh(now, self.policy_cache_seconds):
            return self._policy.value  # type: ignore[no-any-return]
        try:
            status, body = self._request("GET", "/v1/policy")
            fee = body["policy"]["miningFee"]  # type: ignore[index]
            sats, size = int(fee["satoshis"]), int(fee["bytes"])
            rate: int | None = -(-sats * 1000 // size) if size > 0 else None
        except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
            log.info("ARC policy unavailable: %s", exc.__class__.__name__)
            return None
        if status != 200:
            return None
        self._policy.store(now, rate)
        return rate


register_broadcaster("arc", ARCBroadcaster)
