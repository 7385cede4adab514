"""The ``next`` target of the sign-in flow stays on this site (issue 9, hole 1).

Each case runs the real flow: ``GET /signin?next=...``, the code requested and read from the
development outbox, the code entered; the answer's ``Location`` is what a browser follows.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.integration.wallet.conftest import WalletClient, latest_code

OFFSITE = {
    "tab": "/\t/evil.example/",
    "newline": "/\n/evil.example/",
    "cr": "/\r/evil.example/",
    "backslashes": "\\\\evil.example/",
    "slash-backslash": "/\\evil.example/",
    "scheme-relative": "//evil.example/",
    "encoded-slashes": "%2F%2Fevil.example/",
    "slash-encoded-slash": "/%2F/evil.example/",
    "https": "https://evil.example/",
    "http": "http://evil",
    "javascript": "javascript:alert(1)",
    "data": "data:text/html,<script>alert(1)</script>",
}


def _as_browser_reads(location: str) -> str:
    # WHATWG URL parser: tab/newline/CR removed, backslash read as slash
    return location.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")


def _sign_in_with_next(wallet: WalletClient, app: Any, raw_next: str, email: str) -> str:
    page = wallet.get("/signin?next=" + quote(raw_next, safe=""))
    assert page.status_code == 200
    assert wallet.request_code(email).status_code == 303
    resp = wallet.enter_code(latest_code(app, email))
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    return str(resp.headers["Location"])


@pytest.mark.parametrize("raw_next", list(OFFSITE.values()), ids=list(OFFSITE))
def test_offsite_next_falls_back_to_the_dashboard(wallet, app, raw_next):
    location = _sign_in_with_next(wallet, app, raw_next, "pat@example.com")
    assert location == "/wallet"
    read = urlsplit(_as_browser_reads(location))
    assert not read.scheme and not read.netloc


def test_the_reported_attack_lands_on_the_dashboard(wallet, app):
    # the request of the report, encoded exactly as sent
    assert wallet.get("/signin?next=%2F%09%2Fevil.example%2F").status_code == 200
    wallet.request_code("quinn@example.com")
    resp = wallet.enter_code(latest_code(app, "quinn@example.com"))
    assert resp.status_code == 303 and resp.headers["Location"] == "/wallet"


def test_local_next_is_kept_with_its_query(wallet, app):
    location = _sign_in_with_next(wallet, app, "/wallet/records?tab=keys&page=2", "ray@example.com")
    assert location == "/wallet/records?tab=keys&page=2"


def test_a_later_offsite_next_replaces_an_earlier_local_one(wallet, app):
    wallet.get("/signin?next=/wallet/records")
    location = _sign_in_with_next(wallet, app, "/\t/evil.example/", "sue@example.com")
    assert location == "/wallet"
