"""One error handler: domain and HTTP errors to the JSON shape of docs/PROTOCOL.md §2, or a page.

API paths (``/v1/``, ``/wallet/api/``, ``/internal/``) and clients that prefer JSON always get
``{"error": {"code", "message", "field"}}``; browsers get an HTML error page. No stack trace
or exception text ever reaches a client; unexpected errors are logged server-side. A
dependency that is down (the database unreachable or a connection it dropped, Redis
unreachable) answers 503 ``UNAVAILABLE`` with ``Retry-After: 1`` instead of a 500.

A request body that cannot be read answers 400 ``BAD_REQUEST``: malformed chunked framing
(gunicorn's parse errors, raised from ``wsgi.input`` when werkzeug reads the body: a chunk
size such as ``zz``, a chunk without its CRLF), or a body that ended early or stopped
arriving (werkzeug's ``ClientDisconnected``; see ``raregen.web.bodyread``).
"""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as DBOperationalError
from werkzeug.exceptions import ClientDisconnected, HTTPException

from raregen.errors import RareGenError, RateLimited
from raregen.extensions import limiter

log = logging.getLogger(__name__)

try:  # the WSGI server of every deployment; absent only if the app runs under another one
    from gunicorn.http.errors import ParseException as _ServerParseError
except ImportError:  # pragma: no cover
    _ServerParseError = None  # type: ignore[assignment,misc]

_BAD_BODY = "The request body is malformed or incomplete (HTTP framing)."

_HTTP_CODES = {
    400: "MALFORMED_JSON",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMITED",
}


_JSON_PATHS = ("/v1/", "/wallet/api/", "/internal/", "/healthz", "/metrics")


def wants_json() -> bool:
    """True for API paths and for clients that ask for JSON rather than HTML."""
    if request.path.startswith(_JSON_PATHS) or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _respond(status: int, code: str, message: str, field: str | None = None) -> Response:
    if wants_json():
        resp = jsonify({"error": {"code": code, "message": message, "field": field}})
    else:
        try:
            html = render_template("error.html", status=status, code=code, message=message)
        except Exception:  # templates missing in a publisher-only build
            html = f"<h1>{status}</h1><p>{message}</p>"
        resp = Response(html, mimetype="text/html")
    resp.status_code = status
    return resp


def _limit_retry_after(err: HTTPException) -> int:
    """Seconds until the breached flask-limiter window resets (``Retry-After`` of a 429).

    Read from the limiter's storage only on this path (two Redis round trips per 429), so
    the ``X-RateLimit-*`` headers, which cost them on every answer, can stay off. 60 when the
    limiter cannot say (storage down, a 429 not raised by the limiter).
    """
    retry = getattr(err, "retry_after", None)
    if retry:
        return max(1, int(retry))
    try:
        current = limiter.current_limit
        if current is not None:
            return max(1, math.ceil(current.reset_at - time.time()))
    except Exception:  # noqa: BLE001 - an error handler must answer: storage down, say 60
        log.warning("rate limit window unreadable; Retry-After 60")
    return 60


def _unavailable(err: Exception) -> bool:
    """True for a dependency that is down rather than a bug: the database unreachable or
    its connection dropped (a PostgreSQL restart), Redis unreachable."""
    if isinstance(err, DBAPIError):
        return err.connection_invalidated or isinstance(err, DBOperationalError)
    return isinstance(err, (RedisConnectionError, RedisTimeoutError))


def register(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(RareGenError)
    def _domain(err: RareGenError) -> Response:
        resp = _respond(err.status, err.code, err.message, err.field)
        if isinstance(err, RateLimited):
            resp.headers["Retry-After"] = str(err.retry_after)
        return resp

    @app.errorhandler(CSRFError)
    def _csrf(err: CSRFError) -> Response:
        return _respond(400, "CSRF_FAILED", "The form expired or was not sent by this site.")

    @app.errorhandler(ClientDisconnected)
    def _body_cut(err: ClientDisconnected) -> Response:
        # the body ended before its length, or a read of it failed or timed out
        return _respond(400, "BAD_REQUEST", _BAD_BODY)

    if _ServerParseError is not None:

        @app.errorhandler(_ServerParseError)
        def _body_framing(err: Exception) -> Response:
            # gunicorn's chunked reader, run when werkzeug reads wsgi.input; gunicorn
            # closes the connection after the answer (the body's end is unknown)
            log.info(
                "malformed request body on %s %s: %s",
                request.method,
                request.path,
                err.__class__.__name__,
            )
            return _respond(400, "BAD_REQUEST", _BAD_BODY)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        status = err.code or 500
        code = _HTTP_CODES.get(status, "HTTP_ERROR")
        if status == 429:
            resp = _respond(429, "RATE_LIMITED", "Too many requests; slow down and retry later.")
            resp.headers["Retry-After"] = str(_limit_retry_after(err))
            return resp
        if status == 413:
            return _respond(413, code, "The request body is larger than allowed.")
        return _respond(status, code, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        if _unavailable(err):
            # e.g. the first use of a pooled connection after a PostgreSQL restart (the pool
            # is invalidated, the next request reconnects), or the database or Redis down
            log.warning(
                "dependency unavailable on %s %s: %s",
                request.method,
                request.path,
                err.__class__.__name__,
            )
            resp = _respond(503, "UNAVAILABLE", "A service we depend on is unavailable; retry.")
            resp.headers["Retry-After"] = "1"
            return resp
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "INTERNAL", "Something went wrong on our side; nothing was lost.")
