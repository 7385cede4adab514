"""The signed-in account in Flask's signed session cookie.

The cookie is HttpOnly, SameSite=Lax, and Secure when ``RAREGEN_COOKIE_SECURE`` is set; it
holds only the account id and the pending code challenge, never a secret. Helpers for views:
:func:`current_account` / :func:`current_account_id`, :func:`login_required` (pages: redirect
to sign-in) and :func:`api_login_required` (JSON: 401 ``AUTH_REQUIRED``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, redirect, request, session, url_for

from raregen.errors import AuthRequired
from raregen.wallet import accounts
from raregen.wallet.models import Account

_ACCOUNT = "account_id"
_CHALLENGE = "otp_challenge_id"
_EMAIL = "otp_email"

F = TypeVar("F", bound=Callable[..., Any])


def sign_in(account_id: int) -> None:
    """Start a fresh session for the account (the old session's content is dropped)."""
    session.clear()
    session.permanent = True
    session[_ACCOUNT] = account_id


def sign_out() -> None:
    """Forget the session."""
    session.clear()


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
    """The signed-in account, or None (also when the account no longer exists)."""
    account_id = session.get(_ACCOUNT)
    if not isinstance(account_id, int):
        return None
    # cached per app context, keyed by the id (tests share one context across requests)
    cached = g.get("wallet_account")
    if cached is None or cached[0] != account_id:
        cached = (account_id, accounts.get(account_id))
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
