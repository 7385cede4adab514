"""``safe_next``: only a path on this site, judged as a browser reads it (issue 9, hole 1)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from raregen.wallet.redirects import DEFAULT_NEXT, MAX_NEXT_LENGTH, safe_next

OFFSITE = [
    pytest.param("/\t/evil.example/", id="tab"),
    pytest.param("/\n/evil.example/", id="newline"),
    pytest.param("/\r/evil.example/", id="cr"),
    pytest.param("/\r\n\t/evil.example/", id="mixed-controls"),
    pytest.param("\\\\evil.example/", id="backslashes"),
    pytest.param("/\\evil.example/", id="slash-backslash"),
    pytest.param("\\/evil.example/", id="backslash-slash"),
    pytest.param("//evil.example/", id="scheme-relative"),
    pytest.param(" //evil.example/", id="leading-space"),
    pytest.param("\x00//evil.example/", id="leading-nul"),
    pytest.param("%2F%2Fevil.example/", id="encoded-slashes"),
    pytest.param("/%2F/evil.example/", id="slash-encoded-slash"),
    pytest.param("/%2f%2fevil.example/", id="slash-encoded-lowercase"),
    pytest.param("/%5Cevil.example/", id="slash-encoded-backslash"),
    pytest.param("/%09/evil.example/", id="slash-encoded-tab"),
    pytest.param("/%252F/evil.example/", id="double-encoded"),
    pytest.param("https://evil.example/", id="https"),
    pytest.param("https:evil.example", id="https-no-slashes"),
    pytest.param("http://evil", id="http"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:text/html,<script>alert(1)</script>", id="data"),
    pytest.param("wallet/records", id="relative-no-slash"),
    pytest.param("/wallet\x00/records", id="inner-nul"),
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
    pytest.param(["/wallet"], id="not-a-string"),
    pytest.param("/" + "a" * MAX_NEXT_LENGTH, id="too-long"),
]


@pytest.mark.parametrize("value", OFFSITE)
def test_offsite_or_odd_targets_fall_back_to_the_default(value: object) -> None:
    assert safe_next(value) == DEFAULT_NEXT
    assert safe_next(value, "/elsewhere") == "/elsewhere"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/wallet", "/wallet"),
        ("/wallet/records?tab=keys&page=2", "/wallet/records?tab=keys&page=2"),
        ("/wallet/a%20b", "/wallet/a%20b"),
        ("/wallet/a%2Fb", "/wallet/a%2Fb"),
        # what a browser would read anyway: controls dropped, backslash as slash
        (" /wallet/records\n", "/wallet/records"),
        ("/wallet\\records", "/wallet/records"),
    ],
)
def test_local_paths_are_kept_with_their_query(value: str, expected: str) -> None:
    assert safe_next(value) == expected


@pytest.mark.parametrize("value", [p.values[0] for p in OFFSITE if isinstance(p.values[0], str)])
def test_no_answer_names_another_host(value: str) -> None:
    # the answer, read as a browser reads a Location header, stays on this site
    answer = safe_next(value, "/")
    read = answer.replace("\\", "/")
    assert read.startswith("/") and not read.startswith("//")
    assert not urlsplit(read).netloc
