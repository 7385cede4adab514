"""The HTTP plumbing the HTTP backends share (ARC, WhatsOnChain): one ``requests.Session``
per backend with its base URL, default headers and ``(connect, read)`` timeouts; answers
read once into :class:`HTTPAnswer`; transport failures described the same way; status
queries that turn a transport failure into :class:`BroadcasterUnavailable` (docs/PROTOCOL.md §5:
never answer "unknown" for "could not ask").

Every call has both timeouts (seconds), so no broadcast waits on a silent server.

Imports neither Flask nor SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from raregen.publish.broadcasters.base import BroadcasterUnavailable

__all__ = ["HTTPAnswer", "HTTPBackend", "transport_detail"]


def transport_detail(exc: requests.RequestException) -> str:
    """A short, secret-free description of a transport failure: ``"timeout: <class>"`` for
    a connect or read timeout, else ``"connection failed: <class>"`` (no URL, no headers)."""
    kind = "timeout" if isinstance(exc, requests.Timeout) else "connection failed"
    return f"{kind}: {exc.__class__.__name__}"


@dataclass(frozen=True)
class HTTPAnswer:
    """One HTTP answer, read once.

    Attributes:
        status: the HTTP status code.
        text: the body decoded as text (``requests``' guess of the charset), "" if empty.
        json: the body decoded as JSON, or None when it is not JSON (also for a JSON
            ``null``).
    """

    status: int
    text: str
    json: Any


class HTTPBackend:
    """A ``requests.Session`` bound to one base URL, default headers and timeouts.

    Args:
        backend: the backend's name, used in :class:`BroadcasterUnavailable`.
        base_url: prefix of every path (no trailing slash), e.g. ``https://arc.example``.
        headers: sent with every request (a call's own headers are added over them).
        timeout: ``(connect, read)`` seconds.
        session: a ``requests.Session`` (tests); one is made otherwise.
    """

    def __init__(
        self,
        backend: str,
        base_url: str,
        headers: dict[str, str],
        timeout: tuple[float, float],
        session: requests.Session | None = None,
    ):
        self.backend = backend
        self.base_url = base_url
        self.headers = dict(headers)
        self.timeout = timeout
        self.session = session or requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> HTTPAnswer:
        """``method base_url+path`` with the default headers (plus ``headers``) and timeouts;
        ``kwargs`` go to ``requests`` (``json=``, ``data=``).

        Returns:
            The answer, whatever its status.

        Raises:
            requests.RequestException: connection failure, timeout, broken answer.
        """
        sent = dict(self.headers)
        if headers:
            sent.update(headers)
        resp = self.session.request(
            method, self.base_url + path, timeout=self.timeout, headers=sent, **kwargs
        )
        try:
            body = resp.json()
        except ValueError:
            body = None
        return HTTPAnswer(resp.status_code, resp.text or "", body)

    def query(self, method: str, path: str, **kwargs: Any) -> HTTPAnswer:
        """:meth:`request` for a status or policy query.

        Raises:
            BroadcasterUnavailable: the transport failed (:func:`transport_detail`).
        """
        try:
            return self.request(method, path, **kwargs)
        except requests.RequestException as exc:
            raise BroadcasterUnavailable(self.backend, transport_detail(exc)) from None
