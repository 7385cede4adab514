"""``GET /v1/openapi.json`` (the OpenAPI 3.1 document of :mod:`raregen.openapi`) and
``GET /docs/api`` (a reference page rendered from it in the browser by Redoc).

The document lists only the operations this process serves (its ``ROLE``): each path of
:func:`raregen.openapi.build_spec` is matched against the app's URL map.

The page's policy is the site's (``raregen.web.headers.CSP``: scripts from this site only, no
inline script) with one relaxation for this page alone: ``style-src 'self' 'unsafe-inline'``,
because Redoc (styled-components) writes its styles into ``<style>`` elements and ``style``
attributes at run time. Redoc's search runs in a worker made from a ``blob:`` URL, allowed by
``worker-src 'self' blob:``. Scripts stay ``'self'`` only.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from raregen.openapi import build_spec
from raregen.web.headers import CSP

bp = Blueprint("apidocs", __name__)

#: The reference page's policy: the site's, with the two relaxations of the module docstring.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'") + (
    "; worker-src 'self' blob:"
)

_PARAM = re.compile(r"\{[^}]+\}")


def _served(app: Flask, path: str, method: str) -> bool:
    adapter = app.url_map.bind("localhost")
    try:
        adapter.match(_PARAM.sub("1", path), method=method.upper())
    except RequestRedirect:
        return True
    except HTTPException:
        return False
    return True


def spec_for(app: Flask) -> dict[str, Any]:
    """The document for ``app``: its ``MAX_PAYLOAD_BYTES``, only the paths it serves.

    Cached on the app (the URL map and settings do not change once it serves).
    """
    cached = app.extensions.get("raregen.openapi")
    if cached is None:
        spec = build_spec(int(app.config["MAX_PAYLOAD_BYTES"]))
        paths = {}
        for path, item in spec["paths"].items():
            ops = {m: op for m, op in item.items() if _served(app, path, m)}
            if ops:
                paths[path] = ops
        spec["paths"] = paths
        cached = app.extensions["raregen.openapi"] = spec
    return cached  # type: ignore[no-any-return]


@bp.get("/v1/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document (JSON)."""
    resp = jsonify(spec_for(current_app))
    resp.headers["Cache-Control"] = "public, max-age=300"
    return resp


@bp.get("/docs/api")
def reference() -> Response:
    """The API reference page (Redoc, served from /static; no inline script)."""
    resp = Response(render_template("docs/api.html"), mimetype="text/html")
    resp.headers["Content-Security-Policy"] = DOCS_CSP
    return resp
