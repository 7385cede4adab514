"""Entry point: ``flask --app app ...`` finds the factory; gunicorn runs ``'app:create_app()'``.

An invalid setting (or, in production, a missing one) ends the process with one line on
stderr and exit status 78, no traceback (:func:`raregen.config.refuse`); under gunicorn the
arbiter stops instead of restarting workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raregen import create_app as _create_app
from raregen.config import SettingsError, refuse

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["create_app"]


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """:func:`raregen.create_app`, refusing to start on a :class:`SettingsError`."""
    try:
        return _create_app(test_config)
    except SettingsError as exc:
        refuse(exc)
