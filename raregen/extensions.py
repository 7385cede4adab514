"""Flask extensions, created unbound and attached in :func:`raregen.create_app`."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_wtf import CSRFProtect


def _client_ip() -> str:
    return request.remote_addr or "unknown"


migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=_client_ip, default_limits=[], strategy="fixed-window")
