"""Display helpers of the wallet pages: licence names and e-mail addresses that wrap well.

* :data:`LICENCES`: the licences offered on /wallet/register-work, as (identifier, name).
  The identifiers are SPDX license identifiers (https://spdx.org/licenses/); the signed
  record carries the identifier, the pages show the name.
* :func:`licence_name`: the name of an identifier, or the text itself for anything else
  (a licence in the author's own words).
* :func:`email_breaks`: an address as HTML with ``<wbr>`` line-break opportunities after each
  ``.`` and before the ``@``, so that a long address wraps between its parts on a phone
  instead of overflowing or breaking mid-word.
"""

from __future__ import annotations

from markupsafe import Markup, escape

#: (SPDX identifier, name shown). "All rights reserved" is no SPDX identifier: it is its own name.
LICENCES: tuple[tuple[str, str], ...] = (
    ("All rights reserved", "All rights reserved"),
    ("CC-BY-4.0", "Creative Commons Attribution 4.0 International"),
    ("CC-BY-SA-4.0", "Creative Commons Attribution-ShareAlike 4.0 International"),
    ("CC-BY-NC-4.0", "Creative Commons Attribution-NonCommercial 4.0 International"),
    (
        "CC-BY-NC-ND-4.0",
        "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International",
    ),
    ("CC0-1.0", "Creative Commons Zero 1.0 Universal (public domain)"),
)
_NAMES = dict(LICENCES)


def licence_name(identifier: object) -> str | None:
    """The name of a licence identifier of :data:`LICENCES`; other strings come back as they
    are, and a non-string (a malformed record) as ``None``."""
    if not isinstance(identifier, str):
        return None
    return _NAMES.get(identifier, identifier)


def email_breaks(address: object) -> Markup:
    """``address`` HTML-escaped, with ``<wbr>`` after every ``.`` and before the ``@``."""
    text = str(escape(address if address is not None else ""))
    return Markup(text.replace(".", ".<wbr>").replace("@", "<wbr>@"))
