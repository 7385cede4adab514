"""RQ entry points. Each takes ids only, builds (once per process) the app, and runs the
domain function inside an app context. All are safe to run twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask

log = logging.getLogger(__name__)

_APP: Flask | None = None
T = TypeVar("T")


def set_app(app: Flask) -> None:
    """Use ``app`` for tasks run in this process (the worker entry and tests call it)."""
    global _APP
    _APP = app


def _app() -> Flask:
    global _APP
    if _APP is None:
        from raregen import create_app

        _APP = create_app()
    return _APP


def _run(fn: Callable[..., T], *args: Any) -> T:
    from raregen.db import db

    with _app().app_context():
        try:
            return fn(*args)
        finally:
            db.session.remove()


def process_job(job_id: str) -> str:
    """Publish job ``job_id`` (immediate mode). Returns what was done."""
    from raregen.publish import pipeline

    return _run(pipeline.process_job, job_id).action


def confirm_sent() -> int:
    """Periodic: mark ``sent`` jobs ``confirmed`` once their transaction is mined."""
    from raregen.publish import confirm

    return _run(confirm.confirm_sent)


def reap() -> dict[str, int]:
    """Periodic: settle jobs left in ``processing`` and re-enqueue forgotten ``queued`` jobs."""
    from raregen.publish import reaper

    return _run(reaper.reap)


def settle_dirty() -> int:
    """Periodic: settle dirty UTXOs against the chain."""
    from raregen.publish import reaper

    return _run(reaper.settle_dirty)


def replenish_pool() -> int:
    """Periodic: split funding coins into publish UTXOs under the low-water mark."""
    from raregen.publish import funding

    return _run(funding.replenish)
