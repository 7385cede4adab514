"""Fixtures and helpers of the wallet's server-side tests (SQLite and PostgreSQL via ``app``).

A :class:`WalletClient` drives the real pages and JSON API the way a browser does: the CSRF
token read from a rendered form, the sign-in code read from the development outbox.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import coincurve
import pytest
from flask import g
from flask.testing import FlaskClient

from raregen import signing
from tests.plugins.db import clear_rate_limits

_TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
_CODE_RE = re.compile(r"^\s+(\d{6})\s*$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _fresh_limits(redis_url: str) -> Iterator[None]:
    """Every test starts with empty rate-limit counters (this run's keys in the test Redis,
    ``tests.plugins.db.ratelimit_config``)."""
    clear_rate_limits(redis_url)
    yield
    clear_rate_limits(redis_url)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def latest_code(app: Any, email: str) -> str:
    """The newest sign-in code mailed to ``email``, read from the development outbox."""
    from raregen.wallet import mail

    with app.test_request_context():
        for message in mail.outbox():
            if message["to"] == email:
                match = _CODE_RE.search(message["body"])
                assert match, message["body"]
                return match.group(1)
    raise AssertionError(f"no mail to {email} in the outbox")


class _FreshContextClient(FlaskClient):
    """A test client whose requests do not share per-request values through ``g``.

    The ``app`` fixture keeps one application context pushed for the whole test, and Flask
    reuses it for the requests made inside it; ``g`` then outlives a request. Flask-WTF caches
    the signed CSRF token in ``g``, so without this a second client (or a new session) would be
    handed the previous session's token.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        for name in ("csrf_token", "wallet_account"):
            g.pop(name, None)
        return super().open(*args, **kwargs)


class WalletClient:
    """A test client with the browser's habits: CSRF header on writes, JSON bodies."""

    def __init__(self, app: Any, ip: str = "127.0.0.1") -> None:
        self.app = app
        self.http = _FreshContextClient(app, app.response_class, use_cookies=True)
        self.ip = ip
        self.token: str | None = None

    def _env(self) -> dict[str, str]:
        return {"REMOTE_ADDR": self.ip}

    def refresh_token(self) -> str:
        page = self.http.get("/signin", environ_base=self._env())
        match = _TOKEN_RE.search(page.get_data(as_text=True))
        assert match, page.get_data(as_text=True)[:500]
        self.token = match.group(1)
        return self.token

    def form(self, path: str, data: dict[str, str], **kw: Any) -> Any:
        data = {"csrf_token": self.token or self.refresh_token(), **data}
        return self.http.post(path, data=data, environ_base=self._env(), **kw)

    def request_code(self, email: str, **kw: Any) -> Any:
        return self.form("/signin", {"email": email}, **kw)

    def enter_code(self, code: str, **kw: Any) -> Any:
        return self.form("/signin/code", {"code": code}, **kw)

    def sign_in(self, email: str) -> dict[str, Any]:
        """Sign up or in through the pages; return ``GET /wallet/api/me``."""
        resp = self.request_code(email)
        assert resp.status_code == 303, resp.get_data(as_text=True)
        resp = self.enter_code(latest_code(self.app, email.strip().lower()))
        assert resp.status_code == 303, resp.get_data(as_text=True)
        assert resp.headers["Location"].endswith("/wallet")
        self.refresh_token()  # a new session has a new CSRF token
        me = self.get("/wallet/api/me")
        assert me.status_code == 200, me.get_data(as_text=True)
        return me.json

    def get(self, path: str, **kw: Any) -> Any:
        return self.http.get(path, environ_base=self._env(), **kw)

    def send(
        self, method: str, path: str, body: Any = None, *, csrf: bool = True, **kw: Any
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if csrf:
            headers["X-CSRFToken"] = self.token or self.refresh_token()
        return self.http.open(
            path, method=method, json=body, headers=headers, environ_base=self._env(), **kw
        )

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.send("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.send("PUT", path, body, **kw)


def proof(key: coincurve.PrivateKey, challenge: str, purpose: str) -> dict[str, str]:
    """A key entry of ``POST /wallet/api/keys`` signed as the browser signs it."""
    pub = key.public_key.format().hex()
    message = f"raregen-key-registration:{challenge}:{purpose}:{pub}".encode()
    sig = base64.b64encode(key.sign(message, hasher=sha256)).decode()
    return {"purpose": purpose, "pubkey": pub, "signature": sig}


def register_keys(wc: WalletClient, keys: dict[str, coincurve.PrivateKey]) -> Any:
    """Register ``{purpose: key}`` through the API with a fresh challenge."""
    challenge = wc.post("/wallet/api/challenge").json["challenge"]
    entries = [proof(k, challenge, purpose) for purpose, k in keys.items()]
    return wc.post("/wallet/api/keys", {"challenge": challenge, "keys": entries})


def publish_body(key: coincurve.PrivateKey, title: str = "A work") -> dict[str, str]:
    """A fresh v1 publish body for a creative work, signed by ``key``."""
    record = {"title": title, "creator": "Tester", "contentHash": "ab" * 32}
    return signing.make_request(key, record, type="work", now=int(time.time()))


def expect_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.is_json, resp.get_data(as_text=True)[:500]
    assert resp.json["error"]["code"] == code, resp.json
    return resp.json["error"]


@pytest.fixture
def wallet(app: Any) -> WalletClient:
    """A browser-like client on the ``app`` fixture (SQLite and PostgreSQL)."""
    return WalletClient(app)


@pytest.fixture
def signed_in(wallet: WalletClient) -> WalletClient:
    """A client signed in as alice@example.com."""
    wallet.sign_in("alice@example.com")
    return wallet
