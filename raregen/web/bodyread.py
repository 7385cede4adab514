"""A time bound on reading a request body straight from gunicorn's socket.

gunicorn reads a request body only when the application reads ``wsgi.input``, and its
socket has no timeout: a body that stops arriving (a client that declares a chunk of
``ffffffffffffffffffff`` bytes, or 1000 bytes of ``Content-Length``, and sends a few)
blocks the reading thread until the client goes away. The declared chunk size is known
only inside gunicorn's chunked reader, so the application cannot refuse it before reading;
what it can bound is how long one read waits for the next bytes.

:class:`BodyReadTimeout` sets ``timeout`` seconds on the connection's socket (the
``gunicorn.socket`` key gunicorn puts in the WSGI environ) while the application runs and
puts the previous value back afterwards, before gunicorn writes the answer. A read that
waits longer raises ``TimeoutError``, which werkzeug turns into ``ClientDisconnected``
(400) and the error handler into ``BAD_REQUEST`` (``raregen.web.errors``); gunicorn then
closes the connection (where the next request would start is unknown).

Behind nginx (``deploy/``) the body arrives whole, from a buffer, so the bound never bites;
it matters when gunicorn is reached directly (``scripts/run`` without nginx).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_Environ = dict[str, Any]


class BodyReadTimeout:
    """WSGI middleware: each socket read of the request body waits at most ``timeout``
    seconds (0 or less: no bound). Servers other than gunicorn (no ``gunicorn.socket``)
    are left alone.

    Args:
        app: the WSGI application.
        timeout: seconds one read may wait for the client's next bytes.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    def __call__(self, environ: _Environ, start_response: Any) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None or self.timeout <= 0 or not _has_body(environ):
            return self.app(environ, start_response)
        before = sock.gettimeout()
        sock.settimeout(self.timeout)
        try:
            return self.app(environ, start_response)
        finally:
            try:
                sock.settimeout(before)
            except OSError:  # the connection is gone already
                pass


def _has_body(environ: _Environ) -> bool:
    """True when the request carries a body: chunked, or a ``Content-Length`` above 0."""
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    length = environ.get("CONTENT_LENGTH") or "0"
    return length.strip() not in ("", "0")
