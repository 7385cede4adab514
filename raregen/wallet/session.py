"""The signed-in account: Flask's signed session cookie naming a server-side session row.

The cookie is HttpOnly, SameSite=Lax, and Secure when ``RAREGEN_COOKIE_SECURE`` is true, or,
unset, in production (``RAREGEN_ENV``, default ``production``) with an ``https://``
``RAREGEN_PUBLIC_BASE_URL`` (:func:`raregen.create_app`). It holds the account id, a random
session token and the pending code challenge, never a secret of the account.

Each sign-in stores a ``wallet_sessions`` row keyed by the SHA-256 of the token
(:class:`raregen.wallet.models.WalletSession`), valid for ``SESSION_LIFETIME_SECONDS`` from
the sign-in (an absolute lifetime: activity does not extend it). Every authenticated
request checks the row; sign-out deletes it, so a copy of the cookie taken before signing
out is refused afterwards (401 ``AUTH_REQUIRED`` from the JSON API, a redirect to sign-in
from pages), and signing out in one browser leaves the account's other sessions alone. A
cookie without a token (signed before sessions were stored) is not signed in.

Helpers for views: :func:`current_account` / :func:`current_account_id`,
:func:`login_required` (pages: redirect to sign-in) and :func:`api_login_required` (JSON:
401 ``AUTH_REQUIRED``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy import and_, delete, or_, select

from raregen.db import db, transaction, utcnow
from raregen.errors import AuthRequired
from raregen.wallet.models import Account, WalletSession

_ACCOUNT = "account_id"
_TOKEN = "session_token"
_CHALLENGE = "otp_challenge_id"
_EMAIL = "otp_email"

F = TypeVar("F", bound=Callable[..., Any])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(account_id: int) -> None:
    """Start a fresh session for the account: store a new session row (committed), then
    put its token in the cookie. The cookie's previous content is dropped, and so is the
    row of the session it named; the account's expired rows are deleted on the way."""
    previous = session.get(_TOKEN)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    lifetime = timedelta(seconds=int(current_app.config["SESSION_LIFETIME_SECONDS"]))
    doomed = and_(WalletSession.account_id == account_id, WalletSession.expires_at <= now)
    if isinstance(previous, str):
        doomed = or_(doomed, WalletSession.id == _token_hash(previous))
    with transaction():
        db.session.execute(
            delete(WalletSession).where(doomed).execution_options(synchronize_session=False)
        )
        db.session.add(
            WalletSession(
                id=_token_hash(token),
                account_id=account_id,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
    session.clear()
    session.permanent = True
    session[_ACCOUNT] = account_id
    session[_TOKEN] = token
    g.pop("wallet_account", None)


def sign_out() -> None:
    """End the session: delete its row (committed), so that no copy of the cookie works any
    more, and empty the cookie. The account's other sessions stay."""
    token = session.get(_TOKEN)
    if isinstance(token, str):
        with transaction():
            db.session.execute(
                delete(WalletSession)
                .where(WalletSession.id == _token_hash(token))
                .execution_options(synchronize_session=False)
            )
    session.clear()
    g.pop("wallet_account", None)


def remember_challenge(challenge_id: int, email: str) -> None:
    """Keep the code challenge to verify and its address (shown on the code page)."""
    session[_CHALLENGE] = challenge_id
    session[_EMAIL] = email


def pending_challenge() -> tuple[int | None, str | None]:
    """The code challenge of this browser, and its address."""
    return session.get(_CHALLENGE), session.get(_EMAIL)


def forget_challenge() -> None:
    session.pop(_CHALLENGE, None)
    session.pop(_EMAIL, None)


def current_account() -> Account | None:
    """The signed-in account, or None: no session token in the cookie, no such session row
    (signed out), the row expired, or the account gone. One query (account and session
    row joined), cached per app context and keyed by the token."""
    account_id = session.get(_ACCOUNT)
    token = session.get(_TOKEN)
    if not isinstance(account_id, int) or not isinstance(token, str):
        return None
    # cached per app context, keyed by the token (tests share one context across requests)
    cached = g.get("wallet_account")
    if cached is None or cached[0] != token:
        account = db.session.scalar(
            select(Account)
            .join(WalletSession, WalletSession.account_id == Account.id)
            .where(
                WalletSession.id == _token_hash(token),
                WalletSession.account_id == account_id,
                WalletSession.expires_at > utcnow(),
            )
        )
        cached = (token, account)
        g.wallet_account = cached
    return cast(Account | None, cached[1])


def current_account_id() -> int | None:
    """The signed-in account's id, or None."""
    account = current_account()
    return account.id if account is not None else None


def login_required(view: F) -> F:
    """Pages: redirect to the sign-in page (and back afterwards) when nobody is signed in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_account() is None:
            return redirect(url_for("wallet_auth.sign_in", next=request.path))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def api_login_required(view: F) -> F:
    """JSON endpoints: 401 ``AUTH_REQUIRED`` when nobody is signed in."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_account() is None:
            raise AuthRequired("Sign in first.")
        return view(*args, **kwargs)

    return cast(F, wrapper)
