"""Endpoint URLs and server-side request forgery (SSRF).

A webhook makes RareGen send requests to URLs its users choose. In production such a URL
must not reach the server's own network: its host is resolved and **every** address it
resolves to is checked with :mod:`ipaddress`; private, loopback, link-local, multicast,
reserved and unspecified addresses (also inside an IPv4-mapped or 6to4/Teredo IPv6 address)
are refused. The check runs when the URL is registered and again at every delivery, on the
addresses the delivery then connects to (:func:`resolve`), so a name that later resolves to
an internal address (DNS rebinding) is refused too. Development and test allow them
(``WEBHOOK_ALLOW_PRIVATE_URLS``).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

from raregen.errors import RequestError

MAX_URL_LENGTH = 2000


@dataclass(frozen=True)
class Target:
    """A checked URL: scheme, host (as written), port, the request target (path and query)
    and the addresses to connect to (already checked)."""

    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]


def _bad(message: str, code: str = "BAD_WEBHOOK_URL") -> RequestError:
    return RequestError(message, code=code, field="url")


def allow_private() -> bool:
    """Whether internal addresses are allowed: ``WEBHOOK_ALLOW_PRIVATE_URLS``, else true
    outside production."""
    cfg = current_app.config
    value = cfg.get("WEBHOOK_ALLOW_PRIVATE_URLS")
    if value is None:
        return cfg.get("ENV_NAME") != "production"
    return bool(value)


def forbidden_reason(address: str) -> str | None:
    """Why ``address`` (an IPv4 or IPv6 literal) may not be reached, or None.

    Checked: ``is_private``, ``is_loopback``, ``is_link_local``, ``is_multicast``,
    ``is_reserved``, ``is_unspecified`` of :mod:`ipaddress`, and any address that is not
    ``is_global`` (e.g. the shared address space 100.64.0.0/10), on the address and on the IPv4
    address an IPv6 one carries (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, Teredo).
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in (ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None):
            if inner is not None:
                candidates.append(inner)
    for candidate in candidates:
        for attr in (
            "is_private",
            "is_loopback",
            "is_link_local",
            "is_multicast",
            "is_reserved",
            "is_unspecified",
        ):
            if getattr(candidate, attr):
                return f"{candidate} is {attr.removeprefix('is_').replace('_', '-')}"
        if not candidate.is_global:  # shared address space 100.64/10, and the like
            return f"{candidate} is not globally routable"
    return None


def parse(url: object) -> tuple[str, str, int, str]:
    """Check the form of a webhook URL: ``http`` or ``https``, a host, no user info, at most
    :data:`MAX_URL_LENGTH` characters.

    Returns:
        ``(scheme, host, port, target)`` (target: path and query, at least ``/``).

    Raises:
        RequestError: 400 ``BAD_WEBHOOK_URL`` (field ``url``).
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise _bad(f"url must be an http(s) URL of at most {MAX_URL_LENGTH} characters.")
    if any(c.isspace() or ord(c) < 0x21 for c in url):
        raise _bad("url must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad("url is not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _bad("url must start with https:// (or http://).")
    if parts.username is not None or parts.password is not None:
        raise _bad("url must not carry a user name or password.")
    host = parts.hostname
    if not host:
        raise _bad("url has no host.")
    if parts.fragment:
        raise _bad("url must not have a fragment (#...).")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), target


def resolve(url: str, *, allow_private_addresses: bool | None = None) -> Target:
    """Check ``url`` (:func:`parse`), resolve its host and check every address.

    Args:
        url: the endpoint URL.
        allow_private_addresses: None: :func:`allow_private`.

    Returns:
        The :class:`Target`, whose ``addresses`` are the ones to connect to.

    Raises:
        RequestError: 400 ``BAD_WEBHOOK_URL`` (form; the host does not resolve) or
            ``WEBHOOK_URL_FORBIDDEN`` (an address is internal; field ``url``).
    """
    scheme, host, port, target = parse(url)
    if allow_private_addresses is None:
        allow_private_addresses = allow_private()
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise _bad(f"the host {host!r} does not resolve.") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise _bad(f"the host {host!r} does not resolve.")
    if not allow_private_addresses:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None:
                raise _bad(
                    f"url resolves to an address RareGen does not call ({reason}).",
                    code="WEBHOOK_URL_FORBIDDEN",
                )
    return Target(scheme, host, port, target, addresses)
