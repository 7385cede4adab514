"""Client addresses behind a reverse proxy (``RAREGEN_TRUSTED_PROXIES``)."""

from __future__ import annotations

import pytest
from flask import request

from tests.plugins.db import ratelimit_config


def _client(tmp_path, monkeypatch, redis_url, proxies: int):
    """A fresh app (routes can only be added before its first request) with a route that
    answers the client address the app sees."""
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite'}",
            "REDIS_URL": redis_url,
            **ratelimit_config(redis_url),  # rate limits in the test Redis
            "TRUSTED_PROXIES": proxies,
            "ENV_NAME": "test",
        }
    )

    @app.get("/_peer_for_test")
    def peer():
        return {"ip": request.remote_addr}

    return app.test_client()


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        (0, "127.0.0.1"),  # no proxy trusted: the header is ignored
        (1, "203.0.113.9"),  # the proxy appends the real peer; only the nearest hop counts
    ],
)
def test_client_address_from_trusted_proxies(tmp_path, monkeypatch, redis_url, proxies, expected):
    client = _client(tmp_path, monkeypatch, redis_url, proxies)
    got = client.get("/_peer_for_test", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert got.get_json() == {"ip": expected}
