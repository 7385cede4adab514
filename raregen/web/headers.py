"""Security headers on every answer: pages, JSON, error pages, redirects and ``/static`` files.

One ``after_request`` hook of the app (:func:`register`). Flask runs it for every response it
finishes, including the answers of the error handlers (404, 405, 500 pages and error JSON)
and the files of its ``static`` route; a blueprint's own hook runs first, so a blueprint may
set a narrower ``Content-Security-Policy`` of its own (the sign-in pages do), which this
hook then keeps.

* ``X-Content-Type-Options: nosniff`` (every answer): browsers use the declared type.
* ``Referrer-Policy: same-origin`` (every answer): links to other sites carry no referrer
  (no job ids or record paths leak in ``Referer``).
* ``X-Frame-Options: DENY`` (every answer; RFC 7034) and ``frame-ancestors 'none'`` in the
  CSP: no page of this site can be framed (clickjacking).
* ``Content-Security-Policy`` (:data:`CSP`) on ``text/html`` answers that have none: scripts,
  styles, fonts and connections from this site only, no inline script or style, no plugins,
  forms post only here.
* ``Strict-Transport-Security: max-age=31536000; includeSubDomains`` (RFC 6797) when
  ``ENV_NAME`` is ``production`` (the default): browsers then use HTTPS only for a year.
  Browsers ignore it on plain-HTTP answers (RFC 6797 §8.1), so it is harmless before TLS is
  set up, but it must not reach a development browser on ``localhost``.

Headers already set by a view or blueprint are left as they are.
"""

from __future__ import annotations

from flask import Flask, Response

#: The pages' policy (no inline script or style anywhere; docs/BROWSER_CRYPTO.md).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

#: One year, subdomains included (RFC 6797 §6.1).
HSTS = "max-age=31536000; includeSubDomains"

_EVERY_ANSWER = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
)


def register(app: Flask) -> None:
    """Install the hook on ``app`` (module docstring). ``ENV_NAME`` is read per answer."""

    @app.after_request
    def _security_headers(resp: Response) -> Response:
        headers = resp.headers
        for name, value in _EVERY_ANSWER:
            headers.setdefault(name, value)
        if resp.mimetype == "text/html":
            headers.setdefault("Content-Security-Policy", CSP)
        if app.config.get("ENV_NAME", "production") == "production":
            headers.setdefault("Strict-Transport-Security", HSTS)
        return resp
