"""One error handler: domain errors and HTTP errors to the DESIGN.md §2 JSON shape, or a page.

API paths (``/v1/``, ``/wallet/api/``, ``/internal/``) and clients that prefer JSON always get
``{"error": {"code", "message", "field"}}``; browsers get an HTML error page. No stack trace
or exception text ever reaches a client; unexpected errors are logged server-side.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from raregen.errors import RareGenError, RateLimited

log = logging.getLogger(__name__)

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

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Response:
        status = err.code or 500
        code = _HTTP_CODES.get(status, "HTTP_ERROR")
        if status == 429:
            resp = _respond(429, "RATE_LIMITED", "Too many requests; slow down and retry later.")
            retry = getattr(err, "retry_after", None) or 60
            resp.headers["Retry-After"] = str(retry)
            return resp
        if status == 413:
            return _respond(413, code, "The request body is larger than allowed.")
        return _respond(status, code, err.description or err.name)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _respond(500, "INTERNAL", "Something went wrong on our side; nothing was lost.")
