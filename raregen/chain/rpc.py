"""JSON-RPC client for a Bitcoin SV node (``bitcoind``), over :class:`requests.Session`.

Usage::

    rpc = NodeRPC("http://127.0.0.1:18332", "user", "password")
    height = rpc.call("getblockcount")                       # -> int
    txid = rpc.call("sendrawtransaction", raw_hex)           # -> str, or raises RPCError
    tip, info = rpc.batch([("getblockcount", []), ("getmempoolinfo", [])])

Shapes and units:

- Amounts come back from the node in BSV as JSON numbers; this client parses every JSON
  number with a fraction as :class:`decimal.Decimal` (never ``float``), so
  :func:`btc_to_sats` converts them to integer satoshis exactly. Amounts sent to the node
  (e.g. ``sendtoaddress``) should be given as the string :func:`sats_to_btc` returns
  (the node accepts "numeric or string" amounts); a ``Decimal`` parameter is sent as such
  a string too.
- Timeouts are in seconds: ``(connect, read)`` as ``requests`` takes them.

Errors:

- :class:`RPCError` ``(code, message)``: the node answered with a JSON-RPC error object. The
  ``message`` is the node's exact text (e.g. ``"258: txn-mempool-conflict"``, ``"Missing
  inputs"``); callers classify on it, so it is never reworded.
- :class:`RPCTransportError`: no usable JSON-RPC answer: connection refused or reset, connect
  or read timeout, an HTTP error without a JSON body (401 wrong credentials, 503 "work queue
  depth exceeded", a 5xx from a proxy), or a body that is not JSON-RPC.

Credentials are kept in the session's HTTP basic auth only. They are never logged, never part
of ``repr()``, and never part of an exception's text; a URL given with ``user:password@`` in
it has them moved out of the URL.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

__all__ = [
    "SATS_PER_BTC",
    "NodeRPC",
    "RPCError",
    "RPCTransportError",
    "btc_to_sats",
    "sats_to_btc",
]

log = logging.getLogger(__name__)

#: Satoshis in one BSV.
SATS_PER_BTC = 100_000_000

#: JSON-RPC error codes of bitcoind that callers may want by name.
RPC_MISC_ERROR = -1
RPC_INVALID_ADDRESS_OR_KEY = -5  # e.g. getrawtransaction of an unknown txid
RPC_DESERIALIZATION_ERROR = -22  # "TX decode failed"
RPC_VERIFY_ERROR = -25  # "Missing inputs", generic verify failure
RPC_VERIFY_REJECTED = -26  # policy / mempool rejection ("258: txn-mempool-conflict", ...)
RPC_VERIFY_ALREADY_IN_CHAIN = -27  # "Transaction already in the mempool" / in block chain
RPC_IN_WARMUP = -28  # node still loading
RPC_METHOD_NOT_FOUND = -32601

Timeout = float | tuple[float, float]


def btc_to_sats(value: Decimal | str | float) -> int:
    """Convert a BSV amount (as the node returns it) to integer satoshis.

    Raises:
        ValueError: the value is not a whole number of satoshis.
    """
    amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    sats = amount * SATS_PER_BTC
    if sats != sats.to_integral_value():
        raise ValueError(f"{value!r} BSV is not a whole number of satoshis")
    return int(sats)


def sats_to_btc(satoshis: int) -> str:
    """Format integer satoshis as a BSV amount string with 8 decimals (``"0.00010000"``)."""
    if not isinstance(satoshis, int):
        raise TypeError("satoshis must be an int")
    sign = "-" if satoshis < 0 else ""
    whole, frac = divmod(abs(satoshis), SATS_PER_BTC)
    return f"{sign}{whole}.{frac:08d}"


class RPCError(Exception):
    """The node answered a call with a JSON-RPC error object.

    Attributes:
        code: the node's numeric error code (e.g. -26 for a policy rejection, -25 for
            "Missing inputs", -27 for "already in the mempool", -22 for "TX decode failed",
            -5 for an unknown txid, -32601 for an unknown method).
        message: the node's exact message text, unchanged.
        method: the RPC method that failed (never its parameters).
    """

    def __init__(self, code: int, message: str, method: str | None = None):
        super().__init__(f"RPC error {code}: {message}")
        self.code = int(code)
        self.message = str(message)
        self.method = method

    def __repr__(self) -> str:
        return f"RPCError(code={self.code!r}, message={self.message!r}, method={self.method!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RPCError):
            return NotImplemented
        return (self.code, self.message) == (other.code, other.message)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class RPCTransportError(Exception):
    """No usable JSON-RPC answer (connection, timeout, HTTP error without JSON body).

    Attributes:
        status_code: the HTTP status when there was an HTTP answer, else None.
        method: the RPC method being called (never its parameters).
    """

    def __init__(self, message: str, *, status_code: int | None = None, method: str | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.method = method


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # The node takes amounts as "numeric or string"; a string keeps the exact value.
        return format(obj, "f")
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class NodeRPC:
    """A JSON-RPC client for one node.

    Args:
        url: ``http://host:port`` of the node's RPC server (a ``user:password@`` part is
            taken out of the URL and used as credentials unless ``user`` is given).
        user: rpcuser.
        password: rpcpassword.
        timeout: seconds, ``(connect, read)`` or one number for both; default ``(3.05, 30)``.
            ``call``/``batch`` take a per-call override (mining many blocks takes longer).

    Thread safety: a ``requests.Session`` is not guaranteed thread-safe, so calls are
    serialized by a lock; use one ``NodeRPC`` per thread for parallel calls.
    """

    def __init__(
        self,
        url: str,
        user: str | None = None,
        password: str | None = None,
        timeout: Timeout = (3.05, 30),
    ):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http(s)://host:port")
        if parts.username is not None and user is None:
            user = unquote(parts.username)
            password = unquote(parts.password or "")
        netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in parts.hostname:  # IPv6 literal
            netloc = f"[{parts.hostname}]" + ("" if parts.port is None else f":{parts.port}")
        self.url: str = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        self.timeout: Timeout = timeout
        self._session = requests.Session()
        if user is not None:
            self._session.auth = (user, password or "")
        self._session.headers["Content-Type"] = "application/json"
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NodeRPC({self.url!r})"

    # -- plumbing -------------------------------------------------------------------------

    def _post(self, body: Any, method_label: str, timeout: Timeout | None) -> Any:
        data = json.dumps(body, default=_json_default)
        try:
            with self._lock:
                resp = self._session.post(
                    self.url, data=data, timeout=self.timeout if timeout is None else timeout
                )
        except requests.Timeout as exc:
            raise RPCTransportError(
                f"timeout calling {method_label} at {self.url}: {type(exc).__name__}",
                method=method_label,
            ) from None
        except requests.RequestException as exc:
            raise RPCTransportError(
                f"cannot reach node at {self.url} for {method_label}: {type(exc).__name__}",
                method=method_label,
            ) from None
        try:
            payload = json.loads(resp.text, parse_float=Decimal)
        except ValueError:
            payload = None
        if payload is None or not isinstance(payload, (dict, list)):
            text = (resp.text or "").strip().replace("\n", " ")[:200]
            reason = "unauthorized (check rpcuser/rpcpassword)" if resp.status_code == 401 else text
            raise RPCTransportError(
                f"HTTP {resp.status_code} from node at {self.url} for {method_label}"
                + (f": {reason}" if reason else ""),
                status_code=resp.status_code,
                method=method_label,
            )
        return payload

    @staticmethod
    def _unwrap(reply: Any, method: str) -> Any:
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise RPCTransportError(f"not a JSON-RPC reply for {method}", method=method)
        err = reply.get("error")
        if err is not None:
            if isinstance(err, dict):
                raise RPCError(err.get("code", RPC_MISC_ERROR), err.get("message", ""), method)
            raise RPCError(RPC_MISC_ERROR, str(err), method)
        return reply.get("result")

    # -- API ------------------------------------------------------------------------------

    def call(self, method: str, *params: Any, timeout: Timeout | None = None) -> Any:
        """Call one RPC method and return its ``result`` (JSON-decoded, fractions as Decimal).

        Args:
            method: the RPC method name, e.g. ``"sendrawtransaction"``.
            *params: positional parameters, JSON-serializable (``Decimal`` allowed).
            timeout: seconds, overrides the client's default for this call.

        Raises:
            RPCError: the node answered with an error (``.message`` is its exact text).
            RPCTransportError: connection, timeout, or HTTP error without a JSON-RPC body.
        """
        body = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": list(params)}
        log.debug("rpc call %s", method)
        reply = self._post(body, method, timeout)
        return self._unwrap(reply, method)

    def batch(
        self,
        calls: Iterable[tuple[str, Sequence[Any]]],
        timeout: Timeout | None = None,
    ) -> list[Any | RPCError]:
        """Send several calls in one HTTP request (a JSON-RPC batch).

        Args:
            calls: ``(method, params)`` pairs, ``params`` a list/tuple of positional params.
            timeout: seconds, overrides the client's default for this request.

        Returns:
            One entry per call, in the same order: the call's ``result``, or an
            :class:`RPCError` instance (returned, not raised) for a call the node refused.

        Raises:
            RPCTransportError: the request as a whole failed (connection, timeout, HTTP error
                without JSON body, a reply that is not a list of JSON-RPC replies), or a
                reply is missing for some call.
        """
        pending = [(next(self._ids), m, list(p)) for m, p in calls]
        if not pending:
            return []
        body = [{"jsonrpc": "1.0", "id": i, "method": m, "params": p} for i, m, p in pending]
        label = f"batch[{len(pending)}]"
        log.debug("rpc batch of %d calls", len(pending))
        replies = self._post(body, label, timeout)
        if isinstance(replies, dict):
            # A whole-batch error (e.g. the node refused the batch form itself).
            err = replies.get("error")
            if err:
                raise RPCTransportError(f"node refused batch: {err}", method=label)
            raise RPCTransportError("batch reply is not a list", method=label)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        out: list[Any | RPCError] = []
        for call_id, method, _ in pending:
            reply = by_id.get(call_id)
            if reply is None:
                raise RPCTransportError(f"no reply for {method} in batch", method=label)
            try:
                out.append(self._unwrap(reply, method))
            except RPCError as exc:
                out.append(exc)
        return out

    def close(self) -> None:
        """Close the underlying HTTP session (idempotent)."""
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
