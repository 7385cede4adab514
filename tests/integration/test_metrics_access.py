"""Who may read ``/metrics`` (``raregen.web.metrics.access_refusal``): a bearer token when
``METRICS_TOKEN`` is set, else direct loopback clients only."""

from __future__ import annotations

from typing import Any

import pytest

from raregen.config import load_settings
from raregen.web import metrics

TOKEN = "metrics-token-0123456789abcdef"


def _get(app: Any, ip: str = "127.0.0.1", **headers: str) -> Any:
    return app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": ip}, headers=headers)


def _served(resp: Any) -> bool:
    text = resp.get_data(as_text=True)
    return resp.status_code == 200 and "raregen_metrics_source_up" in text


def _refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    assert resp.is_json and resp.json["error"]["code"] == code, resp.get_data(as_text=True)
    assert "raregen_" not in resp.get_data(as_text=True)
    return dict(resp.json["error"])


@pytest.fixture
def no_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused requests must not read the database or Redis: make reading fail loudly."""

    def boom(self: Any) -> Any:
        raise AssertionError("collected for a refused request")

    monkeypatch.setattr(metrics._Collector, "collect", boom)


def test_without_token_loopback_clients_are_served(sqlite_app, monkeypatch):
    monkeypatch.setitem(sqlite_app.config, "METRICS_TOKEN", None)
    for ip in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert _served(_get(sqlite_app, ip)), ip


@pytest.mark.usefixtures("no_scrape")
def test_without_token_other_clients_are_forbidden(sqlite_app, monkeypatch):
    monkeypatch.setitem(sqlite_app.config, "METRICS_TOKEN", "")
    for ip in ("10.0.0.5", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.5", "", "not-an-ip"):
        err = _refused(_get(sqlite_app, ip), 403, "FORBIDDEN")
        assert "RAREGEN_METRICS_TOKEN" in err["message"]
    # a token is of no use when none is configured
    _refused(_get(sqlite_app, "10.0.0.5", Authorization=f"Bearer {TOKEN}"), 403, "FORBIDDEN")


@pytest.mark.usefixtures("no_scrape")
def test_without_token_proxied_requests_are_not_loopback(sqlite_app, monkeypatch):
    """A reverse proxy on the same host connects from 127.0.0.1 for every client."""
    monkeypatch.setitem(sqlite_app.config, "METRICS_TOKEN", None)
    for name, value in (
        ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-For", "127.0.0.1"),
        ("Forwarded", "for=203.0.113.7"),
        ("X-Real-IP", "203.0.113.7"),
    ):
        _refused(_get(sqlite_app, "127.0.0.1", **{name: value}), 403, "FORBIDDEN")


def test_with_token_the_bearer_token_is_required(sqlite_app, monkeypatch):
    monkeypatch.setitem(sqlite_app.config, "METRICS_TOKEN", TOKEN)
    assert _served(_get(sqlite_app, "10.0.0.5", Authorization=f"Bearer {TOKEN}"))
    assert _served(_get(sqlite_app, "2001:db8::1", Authorization=f"bearer  {TOKEN} "))
    assert _served(_get(sqlite_app, "127.0.0.1", Authorization=f"Bearer {TOKEN}"))


@pytest.mark.usefixtures("no_scrape")
def test_with_token_anything_else_is_401(sqlite_app, monkeypatch):
    monkeypatch.setitem(sqlite_app.config, "METRICS_TOKEN", TOKEN)
    # no credentials, loopback included: the challenge without an error (RFC 6750 §3.1)
    for ip in ("127.0.0.1", "10.0.0.5"):
        resp = _get(sqlite_app, ip)
        _refused(resp, 401, "AUTH_REQUIRED")
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    for header in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN):
        resp = _get(sqlite_app, "10.0.0.5", Authorization=header)
        _refused(resp, 401, "AUTH_REQUIRED")
        expected = 'Bearer realm="metrics"'
        if header.startswith("Bearer") and header.strip() != "Bearer":
            expected += ', error="invalid_token"'
        assert resp.headers["WWW-Authenticate"] == expected, header


def test_token_setting_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("RAREGEN_METRICS_TOKEN", raising=False)
    assert load_settings(str(tmp_path))["METRICS_TOKEN"] is None
    monkeypatch.setenv("RAREGEN_METRICS_TOKEN", TOKEN)
    assert load_settings(str(tmp_path))["METRICS_TOKEN"] == TOKEN
