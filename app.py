"""Entry point: ``flask --app app ...`` finds the factory; gunicorn runs ``'app:create_app()'``."""

from raregen import create_app

__all__ = ["create_app"]
