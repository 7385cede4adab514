"""Sending the sign-in code by email.

With ``MAIL_SERVER`` set, mail goes out over SMTP (Flask-Mail; ``MAIL_PORT``,
``MAIL_USE_TLS``/``MAIL_USE_SSL``, ``MAIL_USERNAME``/``MAIL_PASSWORD``). Without it (the
development default) the mail is written to the log and, in development
(``ENV_NAME == "development"``), appended to the development outbox: a JSON-lines file in
the instance folder shown at ``/dev/outbox``. A file, not memory, so that every process of a
development server (and a test reading it) sees the same outbox.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
from pathlib import Path
from typing import Any

from flask import current_app, render_template
from flask_mail import Mail, Message

from raregen.db import utcnow
from raregen.errors import ServiceError

log = logging.getLogger(__name__)

mail = Mail()

OUTBOX_FILE = "dev_outbox.jsonl"
_OUTBOX_SHOWN = 50


def _outbox_path() -> Path:
    return Path(current_app.instance_path) / OUTBOX_FILE


def send_code(email: str, code: str, minutes: int) -> None:
    """Send the sign-in ``code`` to ``email``; it is valid for ``minutes``.

    Raises:
        ServiceError: 503 ``UNAVAILABLE``, the SMTP server refused the mail or could not be
            reached (logged; the user may ask again).
    """
    subject = f"Your RareGen sign-in code: {code}"
    body = render_template("wallet/auth/code_mail.txt", code=code, minutes=minutes, email=email)
    cfg = current_app.config
    if cfg.get("MAIL_SERVER"):
        try:
            mail.send(Message(subject=subject, recipients=[email], body=body))
        except (smtplib.SMTPException, OSError):
            log.exception("could not mail the sign-in code to %s", email)
            raise ServiceError("We could not send the mail just now; try again shortly.") from None
        log.info("sign-in code mailed to %s", email)
        return
    log.warning("MAIL_SERVER is not set; sign-in mail for %s follows:\n%s", email, body)
    if cfg.get("ENV_NAME") == "development":
        _append_outbox({"to": email, "subject": subject, "body": body, "at": utcnow().isoformat()})


def send_notice(email: str, subject: str, template: str, **context: Any) -> None:
    """Send a notice (not a sign-in code) to ``email``: ``template`` rendered with
    ``context``, over SMTP when ``MAIL_SERVER`` is set, else to the log (and the development
    outbox), as :func:`send_code` does.

    Raises:
        ServiceError: 503 ``UNAVAILABLE``, the SMTP server refused the mail or could not be
            reached.
    """
    # rendered straight from the Jinja environment: a worker sends these outside any request,
    # where the pages' context processors (the signed-in account) cannot run
    body = current_app.jinja_env.get_template(template).render(email=email, **context)
    cfg = current_app.config
    if cfg.get("MAIL_SERVER"):
        try:
            mail.send(Message(subject=subject, recipients=[email], body=body))
        except (smtplib.SMTPException, OSError):
            log.exception("could not mail a notice to %s", email)
            raise ServiceError("We could not send the mail just now.") from None
        return
    log.warning("MAIL_SERVER is not set; notice for %s follows:\n%s", email, body)
    if cfg.get("ENV_NAME") == "development":
        _append_outbox({"to": email, "subject": subject, "body": body, "at": utcnow().isoformat()})


def _append_outbox(message: dict[str, Any]) -> None:
    path = _outbox_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(message, sort_keys=True) + "\n").encode()
    # one write of one line with O_APPEND: concurrent writers never interleave a message
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def outbox(limit: int = _OUTBOX_SHOWN) -> list[dict[str, Any]]:
    """The development outbox, newest first (at most ``limit`` messages)."""
    path = _outbox_path()
    if not path.exists():
        return []
    lines = path.read_text().splitlines()[-limit:]
    messages = []
    for line in reversed(lines):
        try:
            messages.append(json.loads(line))
        except ValueError:
            continue
    return messages
