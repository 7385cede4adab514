"""Sign-up and sign-in with an emailed one-time code (one flow: email -> code -> session).

Rules (docs/PROTOCOL.md §7): a 6-digit code, valid ``OTP_VALIDITY_SECONDS`` (10 minutes), accepted
once, at most ``OTP_MAX_TRIES`` (5) wrong tries per code, then a new code is needed. Code
requests are rate limited per address (``OTP_RATE_LIMIT_PER_EMAIL``, 5 per 15 minutes) and
per client IP (``OTP_RATE_LIMIT_PER_IP``, 20 per hour), each counted with one atomic
increment (:func:`raregen.wallet.limits.enforce`), so parallel requests cannot pass the
limit together. Asking for a new code retires the address's earlier codes. The account is
created when its address is first verified.

Race safety: each attempt spends a try with one conditional UPDATE (``tries < max``, unused,
unexpired) before the code is compared, and acceptance is a conditional UPDATE of
``used_at``; parallel guesses can neither exceed the tries nor use a code twice.

Only a well-formed guess (six digits once spaces and dashes are removed) spends a try: an
empty or non-numeric entry cannot be the code, so it is refused with ``400 BAD_CODE`` and the
tries are left alone. Every attempt, well-formed or not, counts against
``OTP_VERIFY_RATE_LIMIT_PER_IP`` (default ``100 per hour``: the 20 codes an IP may ask for
per hour times their 5 tries), so free malformed attempts cannot be sent without bound.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn, cast

from flask import current_app
from sqlalchemy import CursorResult, select, update

from raregen.audit import audit
from raregen.db import after_commit, db, transaction, utcnow
from raregen.errors import CodeRejected, RequestError
from raregen.wallet import accounts, limits, mail, otp
from raregen.wallet.models import OTP_PURPOSE_SIGNIN, OtpChallenge

#: Code attempts per client IP (`limits` notation), well-formed or not; app config
#: ``OTP_VERIFY_RATE_LIMIT_PER_IP`` overrides it.
VERIFY_RATE_LIMIT_PER_IP = "100 per hour"


def _affected(statement: Any) -> int:
    """Rows an UPDATE matched (the current transaction)."""
    return int(cast("CursorResult[Any]", db.session.execute(statement)).rowcount)


@dataclass(frozen=True)
class CodeSent:
    """A code was mailed: the challenge to verify against, the address, validity in minutes."""

    challenge_id: int
    email: str
    minutes: int


@dataclass(frozen=True)
class SignedIn:
    """A code was accepted: the account signed in (``created``: first sign-in)."""

    account_id: int
    email: str
    created: bool


def _server_key() -> bytes:
    # a key of its own for code hashes, derived from (never equal to) the session key
    secret = str(current_app.config["SECRET_KEY"]).encode()
    return hashlib.sha256(b"raregen-otp-hash\0" + secret).digest()


def validity_minutes() -> int:
    """How long a code stays valid, in whole minutes (as stated in the UI and the mail)."""
    return max(1, int(current_app.config["OTP_VALIDITY_SECONDS"]) // 60)


def request_code(raw_email: object, ip: str | None) -> CodeSent:
    """Make a code for an address, store its hash, and mail it after the commit.

    Raises:
        RequestError: ``BAD_EMAIL``.
        RateLimited: 429 ``RATE_LIMITED`` with ``retry_after`` seconds, per address or per IP.
    """
    cfg = current_app.config
    email = accounts.normalize_email(raw_email)
    limits.enforce(
        [  # the requester first: a refused IP spends none of the address's slots
            (cfg["OTP_RATE_LIMIT_PER_IP"], "otp-ip", ip or "unknown"),
            (cfg["OTP_RATE_LIMIT_PER_EMAIL"], "otp-email", email),
        ],
        "Too many codes were asked for; wait a little and try again.",
    )
    code = otp.new_code()
    now = utcnow()
    with transaction():
        # earlier open codes of this address stop working: only the newest is valid
        db.session.execute(
            update(OtpChallenge)
            .where(
                OtpChallenge.email == email,
                OtpChallenge.used_at.is_(None),
                OtpChallenge.expires_at > now,
            )
            .values(expires_at=now)
            .execution_options(synchronize_session=False)
        )
        challenge = OtpChallenge(
            email=email,
            purpose=OTP_PURPOSE_SIGNIN,
            code_hash="",
            expires_at=now + timedelta(seconds=int(cfg["OTP_VALIDITY_SECONDS"])),
            ip=(ip or "")[:45] or None,
            created_at=now,
        )
        db.session.add(challenge)
        db.session.flush()
        challenge.code_hash = otp.hash_code(_server_key(), str(challenge.id), code)
        minutes = validity_minutes()
        after_commit(lambda: mail.send_code(email, code, minutes))
        return CodeSent(challenge.id, email, minutes)


def _refusal(challenge: OtpChallenge | None, now_expired: bool) -> CodeRejected:
    max_tries = int(current_app.config["OTP_MAX_TRIES"])
    if challenge is None:
        return CodeRejected("Ask for a sign-in code first.", code="CODE_EXPIRED", field="code")
    if challenge.used_at is not None:
        return CodeRejected(
            "This code was already used; ask for a new one.", code="CODE_USED", field="code"
        )
    if challenge.tries >= max_tries:
        return CodeRejected(
            "Too many wrong tries for this code; ask for a new one.",
            code="TOO_MANY_TRIES",
            field="code",
        )
    if now_expired:
        return CodeRejected(
            f"This code expired (codes are valid for {validity_minutes()} minutes); "
            "ask for a new one.",
            code="CODE_EXPIRED",
            field="code",
        )
    return CodeRejected("This code cannot be used; ask for a new one.", code="CODE_EXPIRED")


def _fresh_challenge(challenge_id: int | None) -> OtpChallenge | None:
    """The challenge row as the database has it now (None for no id or no row)."""
    if challenge_id is None:
        return None
    return db.session.scalar(
        select(OtpChallenge)
        .where(OtpChallenge.id == challenge_id)
        .execution_options(populate_existing=True)
    )


def _refuse_malformed(challenge_id: int | None, now: datetime, max_tries: int) -> NoReturn:
    """Refuse an entry that cannot be a code without spending a try.

    A challenge that can no longer be used is reported as such (the user needs a new code
    whatever they type); otherwise the refusal is ``BAD_CODE``.
    """
    with transaction():
        challenge = _fresh_challenge(challenge_id)
        refusal: RequestError | CodeRejected
        if (
            challenge is None
            or challenge.used_at is not None
            or challenge.tries >= max_tries
            or challenge.expires_at <= now
        ):
            refusal = _refusal(challenge, challenge is not None and challenge.expires_at <= now)
        else:
            left = max_tries - challenge.tries
            refusal = RequestError(
                "A sign-in code is the 6 digits from the mail; this entry did not count as "
                f"a try ({left} {'try' if left == 1 else 'tries'} left).",
                code="BAD_CODE",
                field="code",
            )
    raise refusal


def _audit_failure(challenge: OtpChallenge, action: str, ip: str | None, **detail: Any) -> None:
    """Audit a refused code attempt on ``challenge`` (current transaction): subject the
    challenge, the account of its address if there is one (never the address or the code)."""
    account = accounts.by_email(challenge.email)
    audit(
        f"ip:{(ip or 'unknown')[:45]}",
        action,
        f"otp-challenge:{challenge.id}",
        account=accounts.account_ref(account.id) if account is not None else None,
        **detail,
    )


def verify_code(challenge_id: int | None, raw_code: object, ip: str | None = None) -> SignedIn:
    """Check a typed code against challenge ``challenge_id``; sign the address in if right.

    Every well-formed attempt (six digits once spaces and dashes are removed), right or
    wrong, spends one of the challenge's tries; the 5th attempt may still succeed, a 6th is
    refused even with the right code. An entry that cannot be a code (empty, letters, not
    six digits) spends no try. Every attempt counts against the per-IP limit
    ``OTP_VERIFY_RATE_LIMIT_PER_IP`` (default :data:`VERIFY_RATE_LIMIT_PER_IP`).

    Args:
        challenge_id: the pending challenge of this browser (its session), or None.
        raw_code: what the user typed (a form field: a string).
        ip: the client's address, counted by the rate limit (None counts as "unknown").

    Raises:
        RateLimited: 429 ``RATE_LIMITED`` with ``retry_after`` seconds; nothing else is
            checked and no try is spent.
        RequestError: 400 ``BAD_CODE`` (field ``code``) for an entry that cannot be a code,
            while the challenge could still be used; no try is spent.
        CodeRejected: ``CODE_WRONG`` (with ``tries_left``), ``CODE_EXPIRED``, ``CODE_USED``,
            ``TOO_MANY_TRIES``.

    Audit (in the attempt's transaction): ``wallet:signin:code-wrong`` for a wrong code,
    ``wallet:signin:locked-out`` when it spent the last try, ``wallet:signin:code-refused``
    for an attempt on a code already used, expired or locked out, and
    ``wallet:account:signed-in`` on success.
    """
    limit = current_app.config.get("OTP_VERIFY_RATE_LIMIT_PER_IP") or VERIFY_RATE_LIMIT_PER_IP
    limits.enforce(
        [(str(limit), "otp-verify-ip", ip or "unknown")],
        "Too many sign-in attempts from your network; wait a little and try again.",
    )
    max_tries = int(current_app.config["OTP_MAX_TRIES"])
    code = otp.normalize_code(raw_code) if isinstance(raw_code, str) else None
    now = utcnow()
    if code is None:
        _refuse_malformed(challenge_id, now, max_tries)
    with transaction():
        spent = 0
        if challenge_id is not None:
            spent = _affected(
                update(OtpChallenge)
                .where(
                    OtpChallenge.id == challenge_id,
                    OtpChallenge.used_at.is_(None),
                    OtpChallenge.expires_at > now,
                    OtpChallenge.tries < max_tries,
                )
                .values(tries=OtpChallenge.tries + 1)
                .execution_options(synchronize_session=False)
            )
        challenge = _fresh_challenge(challenge_id)
        result: SignedIn | CodeRejected
        if challenge is None:
            raise _refusal(None, False)
        if spent != 1:
            # a code used, expired or locked out: recorded, then refused (nothing changed)
            result = _refusal(challenge, challenge.expires_at <= now)
            _audit_failure(challenge, "wallet:signin:code-refused", ip, code=result.code)
        elif code is None or not otp.check_code(
            _server_key(), str(challenge.id), code, challenge.code_hash
        ):
            left = max(0, max_tries - challenge.tries)
            wrong = CodeRejected(
                f"Wrong code; {left} {'try' if left == 1 else 'tries'} left."
                if left
                else "Wrong code, and no tries are left for it; ask for a new one.",
                code="CODE_WRONG" if left else "TOO_MANY_TRIES",
                field="code",
                tries_left=left,
            )
            # the last try spent: the code is locked out from now on
            action = "wallet:signin:code-wrong" if left else "wallet:signin:locked-out"
            _audit_failure(challenge, action, ip, tries_left=left)
            # keep the spent try and its audit entry: leave the transaction normally, then
            # refuse
            result = wrong
        else:
            used = _affected(
                update(OtpChallenge)
                .where(OtpChallenge.id == challenge.id, OtpChallenge.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if used != 1:  # pragma: no cover - the try above already excluded used codes
                raise _refusal(challenge, False)
            existing = accounts.by_email(challenge.email)
            account = existing or accounts.get_or_create(challenge.email)
            audit(
                f"account:{account.id}",
                "wallet:account:signed-in",
                accounts.account_ref(account.id),
            )
            result = SignedIn(account.id, account.email, created=existing is None)
    if isinstance(result, CodeRejected):
        raise result
    return result
