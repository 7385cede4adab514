"""The rate limiter (:mod:`raregen.web.ratelimit`) on the real test Redis: a limit is hit and
refused with the documented answer (docs/API.md: 429 ``RATE_LIMITED`` with ``Retry-After``),
the ``X-RateLimit-*`` headers, a window that resets, and two app instances counting into the
same counter (as two web workers do)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from raregen.web import ratelimit
from tests.plugins.db import clear_rate_limits, ratelimit_config


def _app(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, redis_url: str, **config: Any) -> Any:
    """A fresh app (routes can only be added before its first request) with a view limited
    to ``2 per minute`` per client IP."""
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'r.sqlite'}",
            "REDIS_URL": redis_url,
            "ENV_NAME": "test",
            **ratelimit_config(redis_url),
            **config,
        }
    )

    @app.get("/v1/_limited_for_test")
    @ratelimit.limit(lambda: str(app.config.get("TEST_LIMIT", "2 per minute")))
    def limited() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest.fixture(autouse=True)
def _fresh_limits(redis_url: str) -> Any:
    clear_rate_limits(redis_url)
    yield
    clear_rate_limits(redis_url)


def _refused(resp: Any) -> None:
    assert resp.status_code == 429, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == "RATE_LIMITED", resp.json
    assert resp.json["error"]["message"] == ratelimit.TOO_MANY
    assert 0 < int(resp.headers["Retry-After"]) <= 60


def test_a_limit_is_counted_in_redis_and_refused_when_spent(tmp_path, monkeypatch, redis_url):
    import redis

    app = _app(tmp_path, monkeypatch, redis_url)
    client = app.test_client()
    assert [client.get("/v1/_limited_for_test").status_code for _ in range(2)] == [200, 200]
    _refused(client.get("/v1/_limited_for_test"))
    # another client address has its own counter
    assert (
        client.get("/v1/_limited_for_test", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code
        == 200
    )
    # the counters are in the test Redis, under this run's prefix
    conn = redis.Redis.from_url(redis_url)
    prefix = ratelimit_config(redis_url)["RATELIMIT_STORAGE_OPTIONS"]["key_prefix"]  # type: ignore[index]
    keys = [k.decode() for k in conn.scan_iter(match=f"{prefix}:*")]
    # one counter per client address, in the scope of the view's endpoint (``limited``)
    assert sorted(keys) == [
        f"{prefix}:LIMITER/10.0.0.2/limited/2/1/minute",
        f"{prefix}:LIMITER/127.0.0.1/limited/2/1/minute",
    ], keys


def test_two_app_instances_share_one_counter(tmp_path, monkeypatch, redis_url):
    first = _app(tmp_path / "a", monkeypatch, redis_url).test_client()
    second = _app(tmp_path / "b", monkeypatch, redis_url).test_client()
    assert first.get("/v1/_limited_for_test").status_code == 200
    assert second.get("/v1/_limited_for_test").status_code == 200
    _refused(first.get("/v1/_limited_for_test"))
    _refused(second.get("/v1/_limited_for_test"))


def test_headers_only_when_enabled(tmp_path, monkeypatch, redis_url):
    app = _app(tmp_path, monkeypatch, redis_url)
    client = app.test_client()
    plain = client.get("/v1/_limited_for_test")
    assert not [h for h in plain.headers if h[0].lower().startswith("x-ratelimit")]
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    second = client.get("/v1/_limited_for_test")
    assert second.status_code == 200
    assert second.headers["X-RateLimit-Limit"] == "2"
    assert second.headers["X-RateLimit-Remaining"] == "0"
    reset = int(second.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 62
    assert 0 <= int(second.headers["Retry-After"]) <= 61
    third = client.get("/v1/_limited_for_test")
    _refused(third)
    assert third.headers["X-RateLimit-Remaining"] == "0"
    assert int(third.headers["X-RateLimit-Reset"]) == reset


def test_disabled_counts_nothing(tmp_path, monkeypatch, redis_url):
    app = _app(tmp_path, monkeypatch, redis_url, RATELIMIT_ENABLED=False)
    client = app.test_client()
    assert {client.get("/v1/_limited_for_test").status_code for _ in range(4)} == {200}


def test_the_window_resets(redis_url):
    limiter = ratelimit.Limiter(
        redis_url, storage_options=ratelimit_config(redis_url)["RATELIMIT_STORAGE_OPTIONS"]
    )  # type: ignore[arg-type]
    who = uuid.uuid4().hex
    assert limiter.hit("2 per 2 seconds", who, "scope").allowed
    assert limiter.hit("2 per 2 seconds", who, "scope").allowed
    refused = limiter.hit("2 per 2 seconds", who, "scope")
    assert not refused.allowed
    assert 1 <= limiter.retry_after(refused) <= 2
    deadline = time.monotonic() + 5
    while limiter.stats(refused)[0] < 2:  # the window's key expires in Redis
        assert time.monotonic() < deadline, "the window did not reset"
        time.sleep(0.05)
    assert limiter.hit("2 per 2 seconds", who, "scope").allowed


def test_prefixes_keep_counters_apart(redis_url):
    options = ratelimit_config(redis_url)["RATELIMIT_STORAGE_OPTIONS"]
    one = ratelimit.Limiter(redis_url, key_prefix="one", storage_options=options)  # type: ignore[arg-type]
    two = ratelimit.Limiter(redis_url, key_prefix="two", storage_options=options)  # type: ignore[arg-type]
    assert one.hit("1 per minute", "1.2.3.4", "s").allowed
    assert not one.hit("1 per minute", "1.2.3.4", "s").allowed
    assert two.hit("1 per minute", "1.2.3.4", "s").allowed


def test_storage_down_is_an_error_not_a_pass(tmp_path, monkeypatch, redis_url):
    # nothing listens on port 9: the limit cannot be counted, and the request is not let
    # through uncounted (raregen.web.errors answers 503 UNAVAILABLE)
    app = _app(tmp_path, monkeypatch, redis_url, RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")
    resp = app.test_client().get("/v1/_limited_for_test")
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.json["error"]["code"] == "UNAVAILABLE"
