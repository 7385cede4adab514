"""The RareGen client library: sign, publish, follow and verify records over the v1 API.

::

    from raregen.client import Client

    client = Client("https://raregen.example", key="~/.config/raregen/key")
    job = client.publish({"title": "Lion", "contentHash": "ab" * 32}, type="work")
    job.wait(until="confirmed", timeout=900)
    print(job.txid, client.verify(job.txid).valid)

Requests are retried: a 429 after its ``Retry-After``; a 5xx answer, a refused or reset
connection or a timeout with exponential backoff (``backoff`` * 2^n seconds, at most
``max_backoff``), ``retries`` times. A publish is retried with the same signed body (same
nonce), which the server answers 200 with the job made the first time (docs/API.md, check
10), so a retry never publishes twice. Errors are :mod:`raregen.client.errors`.

Needs requests, coincurve and rfc8785 only: no Flask, no database.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coincurve
import requests

import raregen.protocol as protocol
import raregen.signing as signing
from raregen.client.errors import (
    APIError,
    JobFailed,
    RateLimited,
    TransportError,
    Unavailable,
    WaitTimeout,
)

DEFAULT_SERVER = "http://127.0.0.1:5000"
#: (connect, read) seconds per HTTP request
DEFAULT_TIMEOUT = (3.05, 30.0)
#: the order of a job's states (docs/API.md, Job states); ``failed`` is terminal
_ORDER = {"queued": 0, "processing": 1, "sent": 2, "confirmed": 3}
WAIT_STATES = ("queued", "sent", "confirmed")


def load_key(source: str | os.PathLike[str] | bytes | coincurve.PrivateKey) -> coincurve.PrivateKey:
    """A secp256k1 private key from a key object, 32 raw bytes, 64 hex characters, or the path
    of a key file holding them in hex (``raregen keygen`` writes one).

    Raises:
        FileNotFoundError: no file at that path.
        ValueError: not a valid secp256k1 private key.
    """
    if isinstance(source, coincurve.PrivateKey):
        return source
    if isinstance(source, bytes):
        return coincurve.PrivateKey(source)
    text = str(source).strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return coincurve.PrivateKey(bytes.fromhex(text))
    content = Path(text).expanduser().read_text().strip()
    try:
        return coincurve.PrivateKey(bytes.fromhex(content))
    except ValueError:
        raise ValueError(f"{text} does not hold a hex secp256k1 private key") from None


@dataclass
class Job:
    """A publish job as the server last reported it (``GET /v1/jobs/<jobId>``).

    ``status`` is one of queued, processing, sent, confirmed, failed; ``data`` the whole
    answer (camelCase members of docs/API.md).
    """

    client: Client = field(repr=False)
    job_id: str
    status: str
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def txid(self) -> str | None:
        """The transaction id once sent."""
        return self.data.get("txid")

    @property
    def vout(self) -> int | None:
        return self.data.get("vout")

    @property
    def block_height(self) -> int | None:
        return self.data.get("blockHeight")

    @property
    def error_code(self) -> str | None:
        return self.data.get("errorCode")

    @property
    def error_detail(self) -> str | None:
        return self.data.get("errorDetail")

    def refresh(self) -> Job:
        """Read the job's state again from the server; returns self."""
        data = self.client.status(self.job_id).data
        self.status, self.data = data["status"], data
        return self

    def wait(
        self,
        until: str = "confirmed",
        timeout: float = 600,
        *,
        poll: float = 1.0,
        on_change: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job reaches ``until`` (queued, sent or confirmed) or a later state.

        Args:
            until: the state to wait for; ``sent`` is also met by ``confirmed``.
            timeout: seconds to wait at most.
            poll: seconds between reads while queued or processing (four times that once
                sent: confirmation takes a block).
            on_change: called with the job each time its status changes (and once first).

        Raises:
            JobFailed: the job ended ``failed``.
            WaitTimeout: still short of ``until`` after ``timeout`` seconds.
            APIError, TransportError: as :meth:`Client.status`.
        """
        if until not in WAIT_STATES:
            raise ValueError(f"until must be one of {', '.join(WAIT_STATES)}")
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            if seen is not None:
                self.refresh()
            if self.status != seen:
                seen = self.status
                if on_change:
                    on_change(self)
            if self.status == "failed":
                raise JobFailed(self)
            if _ORDER.get(self.status, -1) >= _ORDER[until]:
                return self
            if time.monotonic() >= deadline:
                raise WaitTimeout(self, until, timeout)
            pause = poll if self.status in ("queued", "processing") else poll * 4
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))


@dataclass
class Verification:
    """The RareGen records of one transaction, each verified locally (docs/PROTOCOL.md §3).

    ``records`` are :class:`raregen.protocol.ExtractedRecord` (``vout``, ``signed_payload``,
    ``pubkey33``, ``valid``, ``error``); ``valid`` is true when there is at least one record
    and every one verifies.
    """

    txid: str
    records: list[protocol.ExtractedRecord]

    @property
    def valid(self) -> bool:
        return bool(self.records) and all(r.valid for r in self.records)


class Client:
    """A client of one RareGen server.

    Args:
        server: base URL (``https://raregen.example``); default ``RAREGEN_SERVER`` or
            http://127.0.0.1:5000.
        key: the signing key (see :func:`load_key`); needed for :meth:`publish` and
            :meth:`sign` only.
        timeout: (connect, read) seconds of each HTTP request.
        retries: how many times a request is sent again after a 429, a 5xx or a
            connection error (0: never).
        backoff, max_backoff: seconds of the first pause after a 5xx or connection error,
            doubled each time, capped at ``max_backoff``; a 429 waits its ``Retry-After``
            (capped at ``max_backoff`` too).
        session: a ``requests.Session`` to use (connection reuse, proxies, TLS settings).
    """

    def __init__(
        self,
        server: str | None = None,
        key: str | os.PathLike[str] | bytes | coincurve.PrivateKey | None = None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: requests.Session | None = None,
    ):
        self.server = (server or os.environ.get("RAREGEN_SERVER") or DEFAULT_SERVER).rstrip("/")
        self.key = load_key(key) if key is not None else None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.http = session or requests.Session()
        #: pauses taken before retries, in seconds (for tests and logs)
        self.pauses: list[float] = []

    # -- requests ------------------------------------------------------------------------------

    def _once(self, method: str, path: str, body: bytes | None) -> requests.Response:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self.http.request(
                method, self.server + path, data=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TransportError(f"cannot reach {self.server}: {exc.__class__.__name__}") from exc

    @staticmethod
    def _error(resp: requests.Response) -> APIError:
        try:
            err = resp.json()["error"]
            code, message, fld = str(err["code"]), str(err["message"]), err.get("field")
        except (ValueError, KeyError, TypeError):
            code, message, fld = "HTTP_ERROR", resp.reason or "no error body", None
        if resp.status_code == 429:
            try:
                retry = float(resp.headers.get("Retry-After", "1"))
            except ValueError:
                retry = 1.0
            return RateLimited(code, 429, message, fld, retry_after=retry)
        if resp.status_code >= 500:
            return Unavailable(code, resp.status_code, message, fld)
        return APIError(code, resp.status_code, message, fld)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        """Send one API request, with the retries of the class docstring.

        The same ``body`` bytes are sent on every try (a publish keeps its nonce).

        Returns:
            (status, decoded JSON answer) of a 2xx answer.

        Raises:
            APIError: a 4xx answer, or the 429/5xx that remained after the retries
                (:class:`RateLimited`, :class:`Unavailable`).
            TransportError: no answer after the retries, or a 2xx that is not JSON.
        """
        attempt = 0
        while True:
            try:
                resp = self._once(method, path, body)
            except TransportError:
                if attempt >= self.retries:
                    raise
                pause = min(self.max_backoff, self.backoff * 2**attempt)
            else:
                if resp.status_code < 300:
                    try:
                        return resp.status_code, resp.json()
                    except ValueError:
                        raise TransportError(f"{method} {path}: the answer is not JSON") from None
                error = self._error(resp)
                retryable = isinstance(error, (RateLimited, Unavailable))
                if not retryable or attempt >= self.retries:
                    raise error
                if isinstance(error, RateLimited):
                    pause = min(self.max_backoff, max(0.0, error.retry_after))
                else:
                    pause = min(self.max_backoff, self.backoff * 2**attempt)
            self.pauses.append(pause)
            time.sleep(pause)
            attempt += 1

    # -- the API -------------------------------------------------------------------------------

    def sign(
        self, record: Mapping[str, Any], type: str | None = None, *, ttl: int = 600
    ) -> dict[str, str]:
        """The signed v1 body ``{"signedPayload", "signature", "pubkey"}`` for ``record``
        (docs/PROTOCOL.md §2), valid ``ttl`` seconds from now, with a fresh nonce.

        Raises:
            ValueError: no key was given; or the record cannot be signed (see
                :func:`raregen.signing.make_request`).
        """
        if self.key is None:
            raise ValueError("a signing key is needed: Client(server, key=...)")
        return signing.make_request(self.key, record, type, ttl)

    def submit(self, body: Mapping[str, str]) -> Job:
        """``POST /v1/publish`` a signed body (as :meth:`sign` makes); retried with the same
        bytes, so at most one job is made.

        Returns:
            The job (status ``queued`` when new; its current state for a resubmission).

        Raises:
            APIError: the refusal (``SIGNATURE_INVALID``, ``NO_CREDITS``, ``NONCE_REUSED``...).
            TransportError: the server could not be reached.
        """
        raw = json.dumps(dict(body), separators=(",", ":")).encode()
        _, answer = self.request("POST", "/v1/publish", raw)
        return Job(self, str(answer["jobId"]), str(answer["status"]), dict(answer))

    def publish(self, record: Mapping[str, Any], type: str | None = None, *, ttl: int = 600) -> Job:
        """Sign ``record`` (:meth:`sign`) and submit it (:meth:`submit`)."""
        return self.submit(self.sign(record, type, ttl=ttl))

    def status(self, job_id: str) -> Job:
        """``GET /v1/jobs/<job_id>``.

        Raises:
            APIError: ``NOT_FOUND`` (404) for an unknown job.
        """
        _, answer = self.request("GET", f"/v1/jobs/{requests.utils.quote(job_id, safe='')}")
        return Job(self, str(answer["jobId"]), str(answer["status"]), dict(answer))

    def proof(self, job_id: str) -> dict[str, Any]:
        """``GET /v1/jobs/<job_id>/proof``: the job's ``raregen-proof`` v1 file as a dict
        (docs/PROOFS.md): ``status`` "pending" before confirmation, "complete" after; fetch
        it again later to upgrade a pending one. Check it offline with
        :func:`raregen.proofs.verify.verify_proof_bytes` (``raregen verify --proof``).

        Raises:
            APIError: ``NOT_FOUND`` (404), ``JOB_FAILED`` or ``PROOF_NOT_READY`` (409).
        """
        quoted = requests.utils.quote(job_id, safe="")
        _, answer = self.request("GET", f"/v1/jobs/{quoted}/proof")
        return dict(answer)

    def records(self, txid: str) -> dict[str, Any]:
        """``GET /v1/records/<txid>``: the server's reading of the transaction (``rawTx``,
        ``blockHeight``, ``records`` with the server's verification)."""
        _, answer = self.request("GET", f"/v1/records/{requests.utils.quote(txid, safe='')}")
        return dict(answer)

    def verify(self, txid: str, raw_tx: str | bytes | None = None) -> Verification:
        """Verify the records of ``txid`` locally from the raw transaction: ``raw_tx`` (hex
        or bytes) or, if None, the ``rawTx`` the server gives. The server is not trusted: the
        bytes must hash to ``txid`` and every signature is checked here.

        Raises:
            ValueError: the bytes do not hash to ``txid``, or are not a transaction.
            APIError, TransportError: fetching it from the server failed.
        """
        if raw_tx is None:
            raw_tx = self.records(txid)["rawTx"]
        raw = bytes.fromhex(raw_tx) if isinstance(raw_tx, str) else raw_tx
        if protocol.txid(raw) != txid.lower():
            raise ValueError("the raw transaction does not hash to this txid")
        return Verification(txid.lower(), protocol.extract_records(raw))
