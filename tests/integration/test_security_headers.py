"""Security headers (``raregen.web.headers``) on every answer of every route of each role,
signed in and not, plus a 404, a 405, a ``/static`` file, JSON and HTML error pages and a 500:
``nosniff``, ``Referrer-Policy``, ``X-Frame-Options: DENY``, a CSP with ``frame-ancestors
'none'`` on every HTML answer, and HSTS exactly when the settings are production's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.wallet.conftest import WalletClient

HSTS = "max-age=31536000; includeSubDomains"
#: a receipt key of its own (production refuses a publisher without one)
RECEIPT_WIF = "cP9TKmiiYeEjYdSPSoa4t2CVN3ZNFFuiukAGv5pzSB98qf9G8qGv"
_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")
# dummy values for the URL map's converters; the static route gets a file that exists
_DUMMY = {"path": "css/raregen.css", "int": "1"}


def _path(rule: Any) -> str:
    return _ARG.sub(lambda m: _DUMMY.get(m.group(1) or "", "x"), rule.rule)


#: The one documented page-only exception (raregen/web/apidocs.py): the Redoc reference page
#: may allow inline styles (Redoc writes them at run time) and a blob: worker (its search).
#: Exactly these directives may differ from the site's policy there, and nowhere else.
RELAXED_PAGES = {
    "/docs/api": {"style-src": "'self' 'unsafe-inline'", "worker-src": "'self' blob:"},
}


def directives(csp: str) -> dict[str, str]:
    """A CSP header as ``{directive: its source list}`` (CSP 3 §2.2, one policy)."""
    out: dict[str, str] = {}
    for part in csp.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            assert name.lower() not in out, f"directive {name} twice in {csp!r}"
            out[name.lower()] = " ".join(value.split())
    return out


def check_csp(csp: str, path: str, where: str) -> None:
    """Assert an HTML answer's policy: the site's strict one, or on a page of
    :data:`RELAXED_PAGES` exactly its documented relaxation of the site's policy."""
    found = directives(csp)
    # on every page: no framing, no plugins, scripts from this site only
    assert found.get("frame-ancestors") == "'none'", where
    assert found.get("object-src") == "'none'", where
    script = found.get("script-src", "")
    assert script.startswith("'self'"), where
    assert "unsafe-inline" not in script and "unsafe-eval" not in csp, where
    relaxed = RELAXED_PAGES.get(path, {})
    if relaxed and any(found.get(name) == value for name, value in relaxed.items()):
        from raregen.web.headers import CSP

        assert found == {**directives(CSP), **relaxed}, where
        return
    assert "script-src 'self'" in csp and "style-src 'self'" in csp, where
    assert "unsafe-inline" not in csp and "worker-src" not in found, where


def check(resp: Any, production: bool, what: str) -> None:
    """Assert every header this answer must carry."""
    h = resp.headers
    where = f"{what} -> {resp.status_code} {resp.mimetype}"
    assert h.get("X-Content-Type-Options") == "nosniff", where
    assert h.get("Referrer-Policy") in ("same-origin", "no-referrer"), where
    assert h.get("X-Frame-Options") == "DENY", where
    if resp.mimetype == "text/html":
        check_csp(h.get("Content-Security-Policy", ""), resp.request.path, where)
    if production:
        assert h.get("Strict-Transport-Security") == HSTS, where
    else:
        assert "Strict-Transport-Security" not in h, where


def walk(app: Any, send: Any, production: bool) -> dict[str, int]:
    """Every method of every rule of ``app``'s URL map through ``send(method, path)``;
    returns how many answers had each mimetype."""
    seen: dict[str, int] = {}
    for rule in app.url_map.iter_rules():
        path = _path(rule)
        for method in sorted(rule.methods or ()):
            resp = send(method, path)
            assert resp.status_code != 500, (method, path, resp.get_data(as_text=True)[:300])
            check(resp, production, f"{method} {path}")
            seen[resp.mimetype] = seen.get(resp.mimetype, 0) + 1
            resp.close()
    return seen


@pytest.fixture(params=["development", "production"])
def env_name(request, sqlite_app, monkeypatch) -> Iterator[str]:
    """The app's ENV_NAME (read per answer by the header hook)."""
    monkeypatch.setitem(sqlite_app.config, "ENV_NAME", request.param)
    yield request.param


def test_every_route_anonymous_and_signed_in(sqlite_app, env_name):
    production = env_name == "production"
    anonymous = sqlite_app.test_client()
    seen = walk(sqlite_app, lambda m, p: anonymous.open(p, method=m), production)
    assert seen.get("text/html", 0) >= 5 and seen.get("application/json", 0) >= 10, seen

    # signed in (the development outbox holds the code: sign in before switching)
    sqlite_app.config["ENV_NAME"] = "development"
    user = WalletClient(sqlite_app)
    user.sign_in("headers@example.com")
    sqlite_app.config["ENV_NAME"] = env_name
    seen = walk(sqlite_app, lambda m, p: user.http.open(p, method=m), production)
    assert seen.get("text/html", 0) >= 10, seen  # the wallet pages rendered, not redirects
    assert user.get("/wallet/api/me").status_code == 200  # the walk did not sign out


@pytest.mark.parametrize("role", ["publisher", "wallet"])
def test_every_route_of_the_split_roles(sqlite_app, tmp_path, monkeypatch, role):
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    for production in (False, True):
        app = create_app(
            {
                "ROLE": role,
                "ENV_NAME": "production" if production else "development",
                "SECRET_KEY": "headers-test",
                "SQLALCHEMY_DATABASE_URI": sqlite_app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": sqlite_app.config["REDIS_URL"],
                # rate limits in the test Redis, as the session app counts them
                "RATELIMIT_STORAGE_URI": sqlite_app.config["RATELIMIT_STORAGE_URI"],
                "RATELIMIT_STORAGE_OPTIONS": sqlite_app.config["RATELIMIT_STORAGE_OPTIONS"],
                "SERVER_WIF": sqlite_app.config["SERVER_WIF"],
                "RECEIPT_WIF": RECEIPT_WIF,
                "MAIL_SERVER": "127.0.0.1",  # production refuses a wallet without one
                "PUBLISHER_URL": "http://127.0.0.1:9",
                "SERVICE_TOKEN": "t",
            }
        )
        with app.app_context():
            client = app.test_client()
            seen = walk(app, lambda m, p, c=client: c.open(p, method=m), production)
        assert seen.get("application/json", 0) >= 3, seen


def test_errors_static_and_not_found(sqlite_app, env_name, monkeypatch):
    production = env_name == "production"
    client = sqlite_app.test_client()
    html = {"Accept": "text/html"}

    def boom() -> Any:
        raise RuntimeError("a bug")

    cases = {
        "404 html": client.get("/no/such/page", headers=html),
        "404 json": client.get("/v1/no-such-thing"),
        "405 json": client.post("/healthz"),
        "405 html": client.post("/", headers=html),
        "static": client.get("/static/css/raregen.css"),
        "static 404": client.get("/static/no-such-file.css", headers=html),
        "json error": client.get("/v1/jobs/not-a-job"),
        "json 400": client.post("/v1/publish", data="{", content_type="application/json"),
    }
    monkeypatch.setitem(sqlite_app.view_functions, "health.ping", boom)
    monkeypatch.setitem(sqlite_app.view_functions, "wallet_pages.index", boom)
    cases["500 json"] = client.get("/v1/ping")
    cases["500 html"] = client.get("/", headers=html)
    expected = {
        "404 html": (404, "text/html"),
        "404 json": (404, "application/json"),
        "405 json": (405, "application/json"),
        "405 html": (405, "text/html"),
        "static": (200, "text/css"),
        "static 404": (404, "text/html"),
        "json error": (404, "application/json"),
        "json 400": (400, "application/json"),
        "500 json": (500, "application/json"),
        "500 html": (500, "text/html"),
    }
    for name, resp in cases.items():
        assert (resp.status_code, resp.mimetype) == expected[name], (name, resp.status_code)
        check(resp, production, name)
        resp.close()


def test_the_relaxation_is_accepted_only_as_documented_and_only_on_its_page() -> None:
    from raregen.web.apidocs import DOCS_CSP
    from raregen.web.headers import CSP

    check_csp(CSP, "/signin", "strict")
    check_csp(CSP, "/docs/api", "strict on the docs page too")
    check_csp(DOCS_CSP, "/docs/api", "the documented exception")
    refused = {
        "elsewhere": (DOCS_CSP, "/signin"),
        "inline script": (
            DOCS_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'"),
            "/docs/api",
        ),
        "eval": (
            DOCS_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'"),
            "/docs/api",
        ),
        "framing": (DOCS_CSP.replace("frame-ancestors 'none'", "frame-ancestors *"), "/docs/api"),
        "more than documented": (DOCS_CSP.replace("img-src 'self'", "img-src *"), "/docs/api"),
    }
    for name, (csp, path) in refused.items():
        with pytest.raises(AssertionError):
            check_csp(csp, path, name)
