"""Logs one can follow across machines, and the optional error reporter.

``RAREGEN_LOG_FORMAT``:

* ``text`` (default): as before; ``worker.py`` prints ``time logger message`` lines, the web
  app leaves logging to gunicorn.
* ``json``: every log line of the process (the app's, RQ's, the stdlib loggers') is one JSON
  object on stderr (structlog's ``ProcessorFormatter`` on the root logger): ``timestamp``
  (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the message), ``process`` (``web``,
  ``worker``, ``cron``, ``cli``), ``pid``, the ``extra=`` fields of the call, and the fields
  bound to the current request or job: ``request_id`` and ``job_id``.

Request ids: the web app takes ``X-Request-ID`` from the request when it is 1 to 128
characters of ``[A-Za-z0-9._-]`` (nginx sets it to its ``$request_id``,
``deploy/nginx/raregen-proxy.conf``), else makes one (32 hex digits); it is bound for the
request's log lines and sent back as ``X-Request-ID``. A publish job enqueued by the request
carries it in its RQ job's ``meta["request_id"]``; the worker binds it with the ``job_id``
while the job runs (:mod:`raregen.publish.tasks`). Audit entries are logged when their
transaction commits (:mod:`raregen.audit`), so ``grep <jobId>`` over every machine's logs gives
a record's story: accepted (web), sent (publishing worker), confirmed (the worker of the
periodic jobs, ``worker.py --role periodic``, running ``confirm-sent``: its
``audit publish:tx:confirmed <txid>`` line lists the transaction's job ids).

``RAREGEN_SENTRY_DSN``: when set, errors go to Sentry (or any service speaking its protocol)
through ``sentry-sdk`` with its Flask and RQ integrations; unset, nothing is sent anywhere.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import structlog

#: An acceptable incoming ``X-Request-ID`` (nginx's ``$request_id`` is 32 hex digits).
_REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,128}\Z")

_configured: str | None = None
_reporter_on = False
_process_kind = "web"


def set_process_kind(kind: str) -> None:
    """Name what this process is (``worker``, ``cron``, ``cli``) before the app is built;
    :func:`configure` writes it on every JSON line (default ``web``)."""
    global _process_kind
    _process_kind = kind


def configure(config: Mapping[str, Any], process: str | None = None) -> None:
    """Set the process's logging up from ``config`` (``LOG_FORMAT``, ``SENTRY_DSN``).

    Idempotent: a second call (another ``create_app`` in the same process) changes nothing.

    Args:
        config: the app config (or any mapping with those keys).
        process: what this process is, written on every JSON line: ``web``, ``worker``,
            ``cron`` or ``cli``; default: the kind :func:`set_process_kind` named.
    """
    global _configured
    init_error_reporter(config)
    if _configured is not None or str(config.get("LOG_FORMAT") or "text") != "json":
        return
    process = process or _process_kind
    _configured = process
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def json_enabled() -> bool:
    """True once :func:`configure` switched this process to JSON lines."""
    return _configured is not None


def _add_process(process: str) -> Any:
    pid = os.getpid()

    def add(logger: Any, name: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("process", process)
        event.setdefault("pid", pid if os.getpid() == pid else os.getpid())
        return event

    return add


def init_error_reporter(config: Mapping[str, Any]) -> bool:
    """Start sentry-sdk (Flask and RQ integrations) when ``SENTRY_DSN`` is set; once per
    process. No personal data is sent (``send_default_pii`` off) and no performance traces.

    Returns:
        True if the reporter is on.
    """
    global _reporter_on
    dsn = config.get("SENTRY_DSN")
    if _reporter_on or not dsn:
        return _reporter_on
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=str(dsn),
        environment=str(config.get("ENV_NAME") or "production"),
        integrations=[FlaskIntegration(), RqIntegration()],
        send_default_pii=False,
        traces_sample_rate=0.0,
    )
    _reporter_on = True
    return True


def request_id_from(header: str | None) -> str:
    """The request id for a request whose ``X-Request-ID`` header is ``header``: the header
    when it is acceptable (module docstring), else a new one (32 hex digits)."""
    if header and _REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


def bind(**fields: Any) -> None:
    """Bind ``fields`` (``request_id``, ``job_id``) to this thread's log lines, replacing any
    bound before."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**fields)


def unbind() -> None:
    """Forget the fields :func:`bind` bound."""
    structlog.contextvars.clear_contextvars()


def current_request_id() -> str | None:
    """The request id bound to this thread (the request being served), if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return str(value) if value else None


def register(app: Any) -> None:
    """Request ids for ``app``: bound on each request, echoed as ``X-Request-ID``; with JSON
    logs, one ``request`` line per answered request (method, path, status, milliseconds)."""
    import time

    from flask import g, request

    log = logging.getLogger("raregen.request")

    @app.before_request
    def _bind_request_id() -> None:
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))
        g.request_started = time.monotonic()
        bind(request_id=g.request_id)

    @app.after_request
    def _echo_request_id(response: Any) -> Any:
        rid = g.get("request_id")
        if rid:
            response.headers["X-Request-ID"] = rid
            if _configured is not None:
                ms = round(
                    (time.monotonic() - g.get("request_started", time.monotonic())) * 1000, 1
                )
                log.info(
                    "request",
                    extra={
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "ms": ms,
                        "client": request.remote_addr,
                    },
                )
        return response

    @app.teardown_request
    def _unbind(exc: BaseException | None) -> None:
        unbind()
