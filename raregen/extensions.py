"""Flask extensions, created unbound and attached in :func:`raregen.create_app`."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_wtf import CSRFProtect


def client_ip() -> str:
    """The client's address as the rate limits key it (``request.remote_addr``, made the
    forwarded address by ``ProxyFix`` behind ``TRUSTED_PROXIES``); ``"unknown"`` if none."""
    return request.remote_addr or "unknown"


migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, default_limits=[], strategy="fixed-window")
