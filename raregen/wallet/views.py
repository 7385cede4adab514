"""The wallet's server-rendered auth pages, the development outbox, and :func:`init_app`.

Pages (blueprint ``wallet_auth``, forms with CSRF tokens):

* ``GET/POST /signin`` (also ``/signup``; one flow): enter an email, get a code.
* ``GET/POST /signin/code``: enter the code; on success the session starts and the browser
  goes to ``/wallet`` (or the local ``next`` path it came from, as
  :func:`raregen.wallet.redirects.safe_next` allows).
* ``POST /signout``.
* ``GET /dev/outbox``: mails not sent over SMTP; registered only when ``ENV_NAME`` is
  ``development``.

Only a POST runs a form's action: GET and HEAD (Flask adds HEAD to every GET route, and
Flask-WTF checks no CSRF token on either) only render the page.

:func:`account_view` and :func:`account_jobs` are what the pages show of an account (the
same facts as ``GET /wallet/api/me`` and ``GET /wallet/api/jobs``).

Views stay thin: the rules live in :mod:`raregen.wallet.signin`. A client that asks for JSON
gets the error JSON of docs/PROTOCOL.md §2 instead of the re-rendered form.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from raregen.errors import RareGenError, RateLimited
from raregen.wallet import api, cli, mail, pages, signin
from raregen.wallet import session as wallet_session
from raregen.wallet.overview import account_jobs, account_view
from raregen.wallet.redirects import DEFAULT_NEXT, safe_next
from raregen.web.errors import wants_json

__all__ = ["account_jobs", "account_view", "bp", "dev_bp", "init_app"]

bp = Blueprint("wallet_auth", __name__)
dev_bp = Blueprint("wallet_dev", __name__, url_prefix="/dev")

DASHBOARD = DEFAULT_NEXT
_NEXT = "after_sign_in"
# the auth pages hold forms only: no script, no inline style, forms post to this site
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@bp.after_request
def _security_headers(resp: Response) -> Response:
    # narrower than the app's policy (raregen.web.headers), which adds the other headers
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def _page(
    template: str, status: int = 200, err: RareGenError | None = None, **ctx: Any
) -> Response:
    if err is not None and wants_json():
        raise err
    html = render_template(
        template,
        error=err,
        minutes=signin.validity_minutes(),
        **ctx,
    )
    resp = Response(html, status=status, mimetype="text/html")
    if isinstance(err, RateLimited):
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


@bp.route("/signin", methods=["GET", "POST"])
@bp.route("/signup", methods=["GET", "POST"], endpoint="sign_up")
def sign_in() -> ResponseReturnValue:
    """Ask for an email address and send it a code."""
    # only a POST acts: GET and HEAD (which Flask routes here too, and for which Flask-WTF
    # checks no CSRF token) show the form and change nothing else
    if request.method != "POST":
        if "next" in request.args:
            session[_NEXT] = safe_next(request.args.get("next"), DASHBOARD)
        return _page("wallet/auth/sign_in.html", email=request.args.get("email", ""))
    email = request.form.get("email", "")
    try:
        sent = signin.request_code(email, request.remote_addr)
    except RareGenError as err:
        return _page("wallet/auth/sign_in.html", err.status, err, email=email)
    wallet_session.remember_challenge(sent.challenge_id, sent.email)
    return redirect(url_for("wallet_auth.code"), code=303)


@bp.route("/signin/code", methods=["GET", "POST"])
def code() -> ResponseReturnValue:
    """Ask for the code; start the session when it is right."""
    challenge_id, email = wallet_session.pending_challenge()
    if challenge_id is None:
        return redirect(url_for("wallet_auth.sign_in"), code=303)
    if request.method != "POST":  # GET and HEAD only show the form
        return _page("wallet/auth/code.html", email=email)
    try:
        result = signin.verify_code(challenge_id, request.form.get("code", ""), request.remote_addr)
    except RareGenError as err:  # CodeRejected, BAD_CODE, RATE_LIMITED
        return _page("wallet/auth/code.html", err.status, err, email=email)
    target = safe_next(session.get(_NEXT), DASHBOARD)
    wallet_session.sign_in(result.account_id)
    return redirect(target, code=303)


@bp.post("/signout")
def sign_out() -> ResponseReturnValue:
    """End the session (a POST with the CSRF token: a link cannot sign anyone out)."""
    wallet_session.sign_out()
    flash("You are signed out.", "ok")
    return redirect(url_for("wallet_auth.sign_in"), code=303)


@dev_bp.get("/outbox")
def outbox() -> ResponseReturnValue:
    """The development outbox (404 outside development, even if registered by mistake)."""
    if current_app.config.get("ENV_NAME") != "development":
        abort(404)
    return render_template("dev/outbox.html", messages=mail.outbox())


def init_app(app: Flask) -> None:
    """Attach the wallet to ``app`` (roles ``all`` and ``wallet``): pages, JSON API, mail,
    operator commands, and the browser pages blueprint ``raregen.wallet.pages.bp``."""
    app.permanent_session_lifetime = timedelta(seconds=int(app.config["SESSION_LIFETIME_SECONDS"]))
    # Flask-Mail would silently drop mail whenever TESTING is on; send unless told not to
    app.config.setdefault("MAIL_SUPPRESS_SEND", False)
    mail.mail.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(api.bp)
    if app.config.get("ENV_NAME") == "development":
        app.register_blueprint(dev_bp)
    app.register_blueprint(pages.bp)
    cli.register(app)
