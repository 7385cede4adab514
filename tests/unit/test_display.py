"""raregen.wallet.display: licence names and e-mail addresses with line-break opportunities."""

from __future__ import annotations

from raregen.wallet.display import LICENCES, email_breaks, licence_name


def test_email_breaks_after_dots_and_before_the_at_sign() -> None:
    assert str(email_breaks("ras.tafari@kingston.example.org")) == (
        "ras.<wbr>tafari<wbr>@kingston.<wbr>example.<wbr>org"
    )


def test_email_breaks_escapes_html() -> None:
    out = str(email_breaks('"<b>"@x.org'))
    assert "<b>" not in out and "&lt;b&gt;" in out
    assert str(email_breaks(None)) == ""


def test_licence_names() -> None:
    assert licence_name("CC-BY-4.0") == "Creative Commons Attribution 4.0 International"
    assert licence_name("my own words") == "my own words"
    assert licence_name(42) is None
    assert len({value for value, _ in LICENCES}) == len(LICENCES)
