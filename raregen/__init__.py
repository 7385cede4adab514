"""RareGen: publish signed records on the BSV blockchain.

:func:`create_app` is the application factory (``flask --app app``). Nothing is connected,
logged or built at import time.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raregen.paths import ROOT

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["ROOT", "create_app"]


def _secret_key(app: Flask) -> str:
    """The session-signing key: from the environment, else a per-instance file (outside
    production only: :func:`raregen.config.check_startup` refuses production without one).

    The file is made whole before it appears (written under a temporary name, then
    hard-linked to ``secret_key``, which fails if it exists): processes starting together on
    a new instance folder all read the one key that won, never a half-written file.
    """
    if app.config.get("SECRET_KEY"):
        return str(app.config["SECRET_KEY"])
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    return path.read_text().strip()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Args:
        test_config: settings that override the environment (tests).

    Returns:
        The app with the blueprints of its role (``ROLE``: all, publisher or wallet).

    Raises:
        raregen.config.SettingsError: an invalid setting, or in production a missing one or
            a SQLite database another process holds (:func:`raregen.config.check_startup`).
            Entry points turn it into one line on stderr (:func:`raregen.config.refuse`).
    """
    # The app factory is the composition root: it alone imports every part of the app, and
    # it imports them here, when called, because this package's __init__ runs for every
    # `import raregen.x` (the `raregen` client command, the pure modules) and must not pay
    # for Flask, the database and the blueprints (docs/ARCHITECTURE.md). The same reason
    # holds for every import in this function.
    from flask import Flask

    from raregen.config import check_startup, default_instance_path, load_settings
    from raregen.db import db
    from raregen.extensions import csrf, migrate
    from raregen.web import ratelimit

    app = Flask(__name__, instance_path=default_instance_path(), instance_relative_config=True)
    app.config.update(load_settings(app.instance_path))
    if test_config:
        app.config.update(test_config)
    if app.config.get("SESSION_COOKIE_SECURE") is None:
        # RAREGEN_COOKIE_SECURE unset: Secure in production behind an https:// public address
        production = app.config.get("ENV_NAME") == "production"
        https = str(app.config.get("PUBLIC_BASE_URL") or "").lower().startswith("https://")
        app.config["SESSION_COOKIE_SECURE"] = production and https
    check_startup(app.config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config["SECRET_KEY"] = _secret_key(app)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"])
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)

    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies > 0:
        # behind that many reverse proxies, the client address (rate limits, sign-in
        # records) is taken from X-Forwarded-For as they set it (werkzeug's ProxyFix)
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    from raregen.web.bodyread import BodyReadTimeout

    # a request body that stops arriving fails its read instead of holding a thread
    app.wsgi_app = BodyReadTimeout(  # type: ignore[method-assign]
        app.wsgi_app, app.config["BODY_READ_TIMEOUT_SECONDS"]
    )
    app.session_interface = _cookie_sessions()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    ratelimit.init_app(app)  # RATELIMIT_STORAGE_URI: Redis, shared by every process

    import raregen.logs as logs
    from raregen.account_link import register as register_account_services
    from raregen.wallet.link import WalletAccounts
    from raregen.web import apidocs, errors, headers, health, metrics

    # the wallet's accounts, for the publisher side (credits, owner mail, purge), in every
    # role: both processes share one database (raregen.account_link)
    register_account_services(app, WalletAccounts())

    logs.configure(app.config)
    logs.register(app)
    errors.register(app)
    headers.register(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(apidocs.bp)  # /v1/openapi.json, /docs/api

    import raregen.audit_cli as audit_cli

    audit_cli.register(app)
    role = app.config["ROLE"]
    if role in ("all", "publisher"):
        from raregen.publish import api, cli, internal_api

        app.register_blueprint(api.bp)
        csrf.exempt(api.bp)
        # the wallet's calls when it runs as its own process (ROLE=wallet); service token
        app.register_blueprint(internal_api.bp)
        csrf.exempt(internal_api.bp)
        from raregen.proofs import views as proof_views  # proof files (docs/PROOFS.md)

        app.register_blueprint(proof_views.bp)
        cli.register(app)
        from raregen.webhooks import api as webhooks_api
        from raregen.webhooks import cli as webhooks_cli

        app.register_blueprint(webhooks_api.bp)
        csrf.exempt(webhooks_api.bp)
        webhooks_cli.register(app)
    if role in ("all", "wallet"):
        from raregen.wallet import views as wallet_views
        from raregen.webhooks import pages as webhook_pages
        from raregen.webhooks import wallet_api as webhook_wallet_api

        wallet_views.init_app(app)
        app.register_blueprint(webhook_pages.bp)
        app.register_blueprint(webhook_wallet_api.bp)
    if role == "all":  # the operator console needs the wallet's sign-in and the publisher
        from raregen.ops import views as ops_views

        app.register_blueprint(ops_views.bp)
        csrf.exempt(ops_views.bp)  # checked by the blueprint itself, after the role (403)
    return app


def _cookie_sessions() -> Any:
    """Flask's signed-cookie sessions, opened without building the signing serializer when
    the request carries no session cookie (API clients never do).

    Flask builds it (itsdangerous, a key derivation object) for every request before it looks
    for the cookie; with no cookie it then answers a new empty session anyway. Same sessions,
    same cookies: only that unused construction is skipped (about 0.03 ms of CPU per cookieless
    request, a publish for one; in-process measurement).
    """
    from flask import Request
    from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

    class CookieSessions(SecureCookieSessionInterface):
        def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
            if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
                return self.session_class()
            return super().open_session(app, request)

    return CookieSessions()
