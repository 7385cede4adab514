"""Client addresses behind a reverse proxy (``RAREGEN_TRUSTED_PROXIES``)."""

from __future__ import annotations

from flask import request


def _peer(app):  # type: ignore[no-untyped-def]
    @app.get("/_peer_for_test")
    def peer():  # type: ignore[no-untyped-def]
        return {"ip": request.remote_addr}

    return app.test_client()


def test_forwarded_for_ignored_without_trusted_proxies(app):  # type: ignore[no-untyped-def]
    client = _peer(app)
    got = client.get("/_peer_for_test", headers={"X-Forwarded-For": "203.0.113.9"})
    assert got.get_json() == {"ip": "127.0.0.1"}


def test_forwarded_for_used_with_one_trusted_proxy(tmp_path, monkeypatch, redis_url):  # type: ignore[no-untyped-def]
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.sqlite'}",
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": "memory://",
            "TRUSTED_PROXIES": 1,
        }
    )
    client = _peer(app)
    # the proxy appends the real peer; only the last (nearest) hop is trusted
    got = client.get("/_peer_for_test", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert got.get_json() == {"ip": "203.0.113.9"}
