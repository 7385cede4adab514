"""Contract v1 over HTTP (docs/PROTOCOL.md §2): every error code of the table with a small request
that triggers it, the idempotent resubmission rule, and no 500 for odd input. Runs on SQLite
and PostgreSQL (the ``app`` fixture is parametrized)."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import coincurve
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raregen import signing
from raregen.publish import keys

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _der(r: int, s: int) -> bytes:
    def enc(x: int) -> bytes:
        b = x.to_bytes((x.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(b)]) + b

    body = enc(r) + enc(s)
    return b"\x30" + bytes([len(body)]) + body


def _rs(der: bytes) -> tuple[int, int]:
    rlen = der[3]
    r = int.from_bytes(der[4 : 4 + rlen], "big")
    s = int.from_bytes(der[6 + rlen :], "big")
    return r, s


def sign_raw(key: coincurve.PrivateKey, payload: str) -> str:
    return base64.b64encode(
        key.sign(payload.encode(), hasher=lambda m: hashlib.sha256(m).digest())
    ).decode()


def body_for(key: coincurve.PrivateKey, payload_obj: dict, *, raw: str | None = None) -> dict:
    payload = raw if raw is not None else signing.canonicalize(payload_obj)
    return {
        "signedPayload": payload,
        "signature": sign_raw(key, payload),
        "pubkey": key.public_key.format().hex(),
    }


def payload(**over: object) -> dict:
    now = int(time.time())
    obj: dict = {
        "v": 1,
        "nonce": signing.new_nonce(),
        "iat": now,
        "exp": now + 600,
        "record": {"a": 1},
    }
    obj.update(over)
    return obj


@pytest.fixture
def key(app):
    k = coincurve.PrivateKey()
    keys.register_key(k.public_key.format().hex())
    return k


def post(client, body, **kw):
    return client.post("/v1/publish", json=body, **kw)


def expect(resp, status: int, code: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.is_json
    assert resp.json["error"]["code"] == code
    assert "Traceback" not in resp.get_data(as_text=True)


def _audit_subjects(action: str) -> list[str]:
    from sqlalchemy import select

    from raregen.db import db
    from raregen.publish.models import AuditLog

    rows = db.session.scalars(select(AuditLog.subject).where(AuditLog.action == action)).all()
    db.session.rollback()  # the test's reads hold no transaction open for the next request
    return list(rows)


def test_accepts_and_replays(client, key):
    body = body_for(key, payload())
    first = post(client, body)
    assert first.status_code == 202
    assert first.json["status"] == "queued"
    assert first.json["statusUrl"].endswith(first.json["jobId"])
    again = post(client, body)
    assert again.status_code == 200
    assert again.json == first.json
    job = client.get(first.json["statusUrl"]).json
    assert job["status"] == "queued" and job["attempts"] == 0
    # the job's audit row is written with it, once (not again for the replay)
    assert _audit_subjects("publish:job:accepted") == [first.json["jobId"]]


def test_no_rate_limit_headers_by_default(client, key):
    # X-RateLimit-* headers would cost two more limiter storage round trips per request
    resp = post(client, body_for(key, payload()))
    assert resp.status_code == 202
    assert not [h for h in resp.headers if h[0].lower().startswith("x-ratelimit")]


def test_rate_limit_headers_when_enabled(client, app, key, monkeypatch):
    # RATELIMIT_HEADERS_ENABLED=1 (app config, read per request): the view's count writes
    # the headers of its counter after the view
    monkeypatch.setitem(app.config, "RATELIMIT_HEADERS_ENABLED", True)
    resp = post(client, body_for(key, payload()))
    assert resp.status_code == 202
    assert int(resp.headers["X-RateLimit-Limit"]) > 0
    assert 0 <= int(resp.headers["X-RateLimit-Remaining"]) < int(resp.headers["X-RateLimit-Limit"])
    assert int(resp.headers["X-RateLimit-Reset"]) > 0


def test_malformed_json(client, key):
    expect(
        client.post("/v1/publish", data="{", content_type="application/json"), 400, "MALFORMED_JSON"
    )
    expect(
        client.post("/v1/publish", data="[1]", content_type="application/json"),
        400,
        "MALFORMED_JSON",
    )


def test_unsupported_media_type(client):
    expect(
        client.post("/v1/publish", data="a=b", content_type="application/x-www-form-urlencoded"),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=latin-1",
        "application/json; charset=ISO-8859-1",
        'application/json; charset="utf-16"',
        "application/json;charset=us-ascii",
        "application/json; charset=",
        "application/json; charset=utf-8; charset=latin-1",
        "application/json; charset=latin-1; charset=utf-8",
    ],
)
def test_charset_other_than_utf8_is_415(client, key, content_type):
    # a body declared in another encoding is refused, not read as UTF-8 (RFC 8259 §8.1)
    body = json.dumps(body_for(key, payload())).encode()
    resp = client.post("/v1/publish", data=body, headers={"Content-Type": content_type})
    expect(resp, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "UTF-8" in resp.json["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        'Application/JSON; charset="utf-8"',
    ],
)
def test_utf8_charset_is_accepted(client, key, content_type):
    body = json.dumps(body_for(key, payload())).encode()
    resp = client.post("/v1/publish", data=body, headers={"Content-Type": content_type})
    assert resp.status_code == 202, resp.get_data(as_text=True)


def test_missing_and_unknown_field(client, key):
    body = body_for(key, payload())
    del body["signature"]
    expect(post(client, body), 400, "MISSING_FIELD")
    body = body_for(key, payload())
    body["extra"] = 1
    expect(post(client, body), 400, "UNKNOWN_FIELD")
    expect(post(client, body_for(key, payload(color="red"))), 400, "UNKNOWN_FIELD")
    p = payload()
    del p["record"]
    expect(post(client, body_for(key, p)), 400, "MISSING_FIELD")


def test_bad_pubkey(client, key):
    body = body_for(key, payload())
    body["pubkey"] = "02" + "00" * 32
    expect(post(client, body), 400, "BAD_PUBKEY")
    body["pubkey"] = "xyz"
    expect(post(client, body), 400, "BAD_PUBKEY")


def test_bad_signature_encoding(client, key):
    body = body_for(key, payload())
    body["signature"] = "not base64!"
    expect(post(client, body), 400, "BAD_SIGNATURE_ENCODING")
    body["signature"] = base64.b64encode(b"\x30\x02\x01\x01").decode()
    expect(post(client, body), 400, "BAD_SIGNATURE_ENCODING")


def test_non_canonical_and_duplicates(client, key):
    p = payload()
    spaced = json.dumps(p, indent=1)
    expect(post(client, body_for(key, p, raw=spaced)), 400, "NON_CANONICAL_PAYLOAD")
    canon = signing.canonicalize(p)
    dup = canon[:-1] + ',"v":1}'
    expect(post(client, body_for(key, p, raw=dup)), 400, "DUPLICATE_MEMBER")
    body = body_for(key, p)
    raw = json.dumps(body)[:-1] + ', "pubkey": "' + body["pubkey"] + '"}'
    expect(
        client.post("/v1/publish", data=raw, content_type="application/json"),
        400,
        "DUPLICATE_MEMBER",
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "9007199254740993", "1e400"])
def test_unrepresentable_numbers_are_400(client, key, literal):
    p = payload()
    canon = signing.canonicalize(p).replace('{"a":1}', '{"a":' + literal + "}")
    resp = post(client, body_for(key, p, raw=canon))
    assert resp.status_code == 400
    assert resp.json["error"]["code"] in ("MALFORMED_JSON", "NON_CANONICAL_PAYLOAD")


def test_bad_nonce_and_timestamps(client, key):
    expect(post(client, body_for(key, payload(nonce="short"))), 400, "BAD_NONCE")
    expect(post(client, body_for(key, payload(nonce="x" * 20 + "!"))), 400, "BAD_NONCE")
    now = int(time.time())
    expect(post(client, body_for(key, payload(iat=now, exp=now))), 400, "BAD_TIMESTAMPS")
    expect(post(client, body_for(key, payload(iat=now, exp=now + 7200))), 400, "BAD_TIMESTAMPS")


def test_time_window(client, key):
    now = int(time.time())
    expect(post(client, body_for(key, payload(iat=now - 1000, exp=now - 10))), 422, "EXPIRED")
    expect(post(client, body_for(key, payload(iat=now + 600, exp=now + 900))), 422, "NOT_YET_VALID")


def test_legacy_contract(client, key):
    legacy = {
        "publickey": key.public_key.format().hex(),
        "signature": "MEUC",
        "nonce": "1234567890",
        "record": {},
    }
    resp = post(client, legacy)
    expect(resp, 400, "LEGACY_CONTRACT")
    assert "v1" in resp.json["error"]["message"] or "signedPayload" in resp.json["error"]["message"]


def test_signature_invalid_and_high_s(client, key):
    other = coincurve.PrivateKey()
    body = body_for(key, payload())
    body["signature"] = sign_raw(other, body["signedPayload"])
    expect(post(client, body), 401, "SIGNATURE_INVALID")
    body = body_for(key, payload())
    r, s = _rs(base64.b64decode(body["signature"]))
    body["signature"] = base64.b64encode(_der(r, N - s)).decode()
    resp = post(client, body)
    expect(resp, 401, "HIGH_S_SIGNATURE")


def test_key_not_registered_and_revoked(client, key):
    stranger = coincurve.PrivateKey()
    expect(post(client, body_for(stranger, payload())), 403, "KEY_NOT_REGISTERED")
    keys.revoke_key(key.public_key.format().hex())
    expect(post(client, body_for(key, payload())), 403, "KEY_REVOKED")


def test_uncompressed_key_stored_compressed(client, app):
    k = coincurve.PrivateKey()
    keys.register_key(k.public_key.format(compressed=False).hex())
    body = body_for(k, payload())
    body["pubkey"] = k.public_key.format(compressed=False).hex()
    assert post(client, body).status_code == 202


def _key_credits(pubkey: str) -> int | None:
    from sqlalchemy import select

    from raregen.db import db
    from raregen.publish.models import RegisteredKey

    value = db.session.scalar(select(RegisteredKey.credits).where(RegisteredKey.pubkey == pubkey))
    db.session.rollback()
    return value


def test_no_credits(client, app):
    k = coincurve.PrivateKey()
    keys.register_key(k.public_key.format().hex(), credits=1)
    assert post(client, body_for(k, payload())).status_code == 202
    assert _key_credits(k.public_key.format().hex()) == 0
    expect(post(client, body_for(k, payload())), 402, "NO_CREDITS")
    # the refused request wrote nothing
    assert len(_audit_subjects("publish:job:accepted")) == 1
    assert _key_credits(k.public_key.format().hex()) == 0


def test_nonce_reused(client, key):
    p = payload()
    assert post(client, body_for(key, p)).status_code == 202
    p2 = dict(p, record={"other": True})
    expect(post(client, body_for(key, p2)), 409, "NONCE_REUSED")


def test_payload_too_large(client, app, key):
    old = app.config["MAX_PAYLOAD_BYTES"]
    app.config["MAX_PAYLOAD_BYTES"] = 200
    try:
        expect(
            post(client, body_for(key, payload(record={"x": "y" * 300}))), 413, "PAYLOAD_TOO_LARGE"
        )
    finally:
        app.config["MAX_PAYLOAD_BYTES"] = old
    huge = "x" * (app.config["MAX_CONTENT_LENGTH"] + 10)
    expect(
        client.post("/v1/publish", data=huge, content_type="application/json"),
        413,
        "PAYLOAD_TOO_LARGE",
    )


def test_rate_limited(client, app, key):
    from raregen.web.ratelimit import get_limiter

    limiter = get_limiter(app)  # this run's counters in the test Redis
    old = app.config["PUBLISH_RATE_LIMIT"]
    app.config["PUBLISH_RATE_LIMIT"] = "2 per hour"
    limiter.reset()
    try:
        codes = [post(client, body_for(key, payload())).status_code for _ in range(3)]
        assert codes[:2] == [202, 202]
        resp = post(client, body_for(key, payload()))
        expect(resp, 429, "RATE_LIMITED")
        # seconds until the hour's window resets, read from the limiter (headers are off)
        assert 0 < int(resp.headers["Retry-After"]) <= 3601
    finally:
        app.config["PUBLISH_RATE_LIMIT"] = old
        limiter.reset()


def test_unknown_job_and_bad_record_txid(client):
    expect(client.get("/v1/jobs/does-not-exist"), 404, "NOT_FOUND")
    expect(client.get("/v1/records/nothex"), 400, "MALFORMED_JSON")
    expect(client.get("/v1/nowhere"), 404, "NOT_FOUND")
    expect(client.put("/v1/publish"), 405, "METHOD_NOT_ALLOWED")


_GOOD_FIELDS = ("signedPayload", "signature", "pubkey")
#: request bodies of three kinds: random bytes; a good body with one member set to a value
#: of the wrong type or size; a good body's JSON text with one character replaced
_random_body = st.one_of(
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=59)),
    st.tuples(
        st.just("member"),
        st.tuples(
            st.sampled_from(_GOOD_FIELDS),
            st.sampled_from([None, 1, [], {}, "", "x" * 70, True]),
        ),
    ),
    st.tuples(
        st.just("char"),
        st.tuples(st.integers(0, 10**6), st.sampled_from(["}", "\\", '"', "\u0000", "\ud800"])),
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=_random_body)
def test_random_bodies_never_500(client, key, case):
    good = body_for(key, payload())
    kind, arg = case
    if kind == "bytes":
        data = arg
    elif kind == "member":
        b = dict(good)
        field, value = arg
        b[field] = value
        data = json.dumps(b).encode()
    else:
        s = json.dumps(good)
        pos = arg[0] % len(s)
        data = (s[:pos] + arg[1] + s[pos + 1 :]).encode("utf-8", "surrogatepass")
    resp = client.post("/v1/publish", data=data, content_type="application/json")
    assert resp.status_code < 500, (data, resp.get_data(as_text=True))
    assert resp.is_json


def test_cut_off_body_is_413_not_400(client, app):
    # a chunked body is cut at MAX_CONTENT_LENGTH by the WSGI layer: it must still be a 413
    import io

    limit = app.config["MAX_CONTENT_LENGTH"]
    big = b'{"signedPayload":"' + b"a" * (limit + 100) + b'"}'
    resp = client.post(
        "/v1/publish",
        input_stream=io.BytesIO(big),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets for chunked
    )
    expect(resp, 413, "PAYLOAD_TOO_LARGE")


def test_health_errors_are_json(client):
    resp = client.post("/healthz")
    assert resp.status_code == 405 and resp.is_json


def _concurrently(client, bodies):
    """POST every body at once from its own thread; the answers in the same order."""
    import threading

    barrier = threading.Barrier(len(bodies))
    answers: list = [None] * len(bodies)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = post(client, bodies[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_concurrent_resubmissions_store_one_job(app, client, key):
    body = body_for(key, payload())
    answers = _concurrently(client, [body] * 6)
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 5 + [202], [a.get_data(as_text=True) for a in answers]
    assert len({a.json["jobId"] for a in answers}) == 1
    assert _audit_subjects("publish:job:accepted") == [answers[0].json["jobId"]]


def test_concurrent_publishes_take_the_last_credit_once(app, client):
    k = coincurve.PrivateKey()
    keys.register_key(k.public_key.format().hex(), credits=1)
    answers = _concurrently(client, [body_for(k, payload()) for _ in range(6)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [402] * 5, [a.get_data(as_text=True) for a in answers]
    assert all(a.json["error"]["code"] == "NO_CREDITS" for a in answers if a.status_code == 402)
    assert _key_credits(k.public_key.format().hex()) == 0
    assert len(_audit_subjects("publish:job:accepted")) == 1


def _own_pg_app(pg_app, **config):
    """A new app on the PostgreSQL test database (its own pools); ``config`` on top."""
    from raregen import create_app
    from raregen.db import db

    names = (
        "SQLALCHEMY_DATABASE_URI",
        "REDIS_URL",
        "RATELIMIT_STORAGE_URI",
        "SERVER_WIF",
        "ENV_NAME",
    )
    settings = {name: pg_app.config[name] for name in names}
    settings.update(TESTING=True, SECRET_KEY="test-secret", **config)
    app = create_app(settings)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    # the pool of intake's one-statement path (raregen.publish.intake._autocommit_engine)
    intake_engine = app.extensions.get("raregen.intake_engine")
    if intake_engine is not None:
        intake_engine.dispose()


@pytest.fixture
def no_ping_app(pg_app):
    """The PostgreSQL test database behind an app whose pool does not ping connections
    before use (``RAREGEN_DB_POOL_PRE_PING=0``). No app context stays pushed, so every
    request has its own, as under gunicorn (its end removes the request's session)."""
    yield from _own_pg_app(pg_app, SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": False})


@pytest.fixture
def default_pool_app(pg_app):
    """As ``no_ping_app`` with the shipped pool settings (pre-ping on)."""
    yield from _own_pg_app(pg_app)


def _drop_connections(app) -> int:
    """End every other connection to the app's database, as a PostgreSQL restart does."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_dropped_connections_without_pre_ping(no_ping_app):
    """After PostgreSQL drops the pooled connections (a restart), a publish still succeeds
    (its one statement is retried once on a new connection: safe, a replay answers the same
    job) and any other request gets JSON, never a 500 with a stack trace."""
    client = no_ping_app.test_client()
    k = coincurve.PrivateKey()
    with no_ping_app.app_context():
        keys.register_key(k.public_key.format().hex())
    first = post(client, body_for(k, payload()))
    assert first.status_code == 202
    assert _drop_connections(no_ping_app) >= 1
    again = post(client, body_for(k, payload()))
    assert again.status_code == 202, again.get_data(as_text=True)
    # a read through the ORM session on a dropped connection: 503 UNAVAILABLE or success
    assert client.get(first.json["statusUrl"]).status_code == 200
    assert _drop_connections(no_ping_app) >= 1
    resp = client.get(first.json["statusUrl"])
    assert resp.is_json and "Traceback" not in resp.get_data(as_text=True)
    if resp.status_code == 503:
        assert resp.json["error"]["code"] == "UNAVAILABLE"
        assert resp.headers["Retry-After"] == "1"
    else:
        assert resp.status_code == 200
    # the pool was invalidated: the next request reconnects
    assert client.get(first.json["statusUrl"]).status_code == 200
    assert post(client, body_for(k, payload())).status_code == 202


def test_dropped_connections_with_default_pool(default_pool_app):
    """With the shipped settings too, a publish after PostgreSQL dropped the connections is
    accepted: its one statement runs on a pool without pre-ping (one round trip less per
    publish) and is retried once on a new connection; reads that follow reconnect."""
    from raregen.publish import intake

    client = default_pool_app.test_client()
    k = coincurve.PrivateKey()
    with default_pool_app.app_context():
        keys.register_key(k.public_key.format().hex())
    first = post(client, body_for(k, payload()))
    assert first.status_code == 202
    with default_pool_app.app_context():
        assert intake._autocommit_engine().pool._pre_ping is False  # type: ignore[attr-defined]
    assert client.get(first.json["statusUrl"]).status_code == 200
    assert _drop_connections(default_pool_app) >= 2  # the app's pool and intake's
    again = post(client, body_for(k, payload()))
    assert again.status_code == 202, again.get_data(as_text=True)
    assert client.get(again.json["statusUrl"]).status_code == 200
    assert _audit_subjects_in(default_pool_app, "publish:job:accepted") >= {
        first.json["jobId"],
        again.json["jobId"],
    }


def _audit_subjects_in(app, action: str) -> set[str]:
    with app.app_context():
        return set(_audit_subjects(action))


def test_batch_trigger_counts_in_steps(app, monkeypatch):
    """notify_queued adds a process's jobs to the Redis count in steps (a twentieth of a full
    batch, at most 25): one round trip per step, and the crossing of a full batch is still
    seen (a collector run enqueued)."""
    import uuid

    from raregen.publish.batch import trigger
    from raregen.queue import redis_connection

    name = f"test-trigger-{uuid.uuid4().hex[:10]}"
    monkeypatch.setitem(app.config, "QUEUE_NAME", name)
    monkeypatch.setitem(app.config, "PUBLISH_MODE", "batch")
    monkeypatch.setitem(app.config, "BATCH_SIZE", 100)  # step 5
    triggered: list[int] = []
    monkeypatch.setattr(trigger, "enqueue_collector", lambda: triggered.append(1) or True)
    conn = redis_connection()
    key = f"raregen:{name}:batch-pending"
    try:
        trigger.notify_queued()  # the first in a while is added at once
        assert int(conn.get(key)) == 1
        for _ in range(4):
            trigger.notify_queued()
        assert int(conn.get(key)) == 1  # 4 waiting in the process
        trigger.notify_queued()
        assert int(conn.get(key)) == 6  # a step of 5 added in one INCRBY
        for _ in range(95):
            trigger.notify_queued()
        assert int(conn.get(key)) == 101 and triggered == [1]  # crossed 100 once
    finally:
        conn.delete(key)
