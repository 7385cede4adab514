"""Read-only views of an account for the API and the pages: its summary and its jobs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from raregen.db import db
from raregen.publish.jobs import job_view
from raregen.publish.keys import keys_for_account
from raregen.publish.models import PublishJob
from raregen.wallet import backup, credits
from raregen.wallet.accounts import account_ref
from raregen.wallet.models import Account

PANEL_URL = "/wallet/jobs/{job_id}/panel"
PER_PAGE_DEFAULT, PER_PAGE_MAX = 20, 100


def account_view(account: Account) -> dict[str, Any]:
    """``{"email", "plan", "credits", "keys": [{"purpose", "pubkey"}], "hasBackup",
    "backupVersion"}``; ``credits`` is what the account can spend now (this month's allowance
    included even before its first publish)."""
    version = backup.latest_version(account.id)
    return {
        "email": account.email,
        "plan": account.plan,
        "credits": credits.available(account),
        "keys": keys_for_account(account_ref(account.id)),
        "hasBackup": version is not None,
        "backupVersion": version,
    }


def _title(job: PublishJob) -> str | None:
    try:
        record = json.loads(job.signed_payload).get("record")
    except (ValueError, AttributeError):
        return None
    title = record.get("title") if isinstance(record, dict) else None
    return title[:200] if isinstance(title, str) else None


def job_item(job: PublishJob) -> dict[str, Any]:
    """A job as the account's list shows it: :func:`raregen.publish.jobs.job_view` plus
    ``recordType``, ``title`` (the record's ``title`` member, if any) and ``panelUrl``."""
    return {
        **job_view(job),
        "recordType": job.record_type,
        "title": _title(job),
        "panelUrl": PANEL_URL.format(job_id=job.job_id),
    }


# pages past this are empty anyway; bounding it keeps the OFFSET inside a 64-bit integer
MAX_PAGE = 1_000_000


def jobs_page(account: Account, page: int = 1, per_page: int = PER_PAGE_DEFAULT) -> dict[str, Any]:
    """One page of the account's jobs, newest first:
    ``{"jobs": [...], "page", "perPage", "total", "hasMore"}`` (``per_page`` capped at 100)."""
    page, per_page = min(max(1, page), MAX_PAGE), min(max(1, per_page), PER_PAGE_MAX)
    where = PublishJob.account_ref == account_ref(account.id)
    total = int(db.session.scalar(select(func.count()).select_from(PublishJob).where(where)) or 0)
    rows = db.session.scalars(
        select(PublishJob)
        .where(where)
        .order_by(PublishJob.created_at.desc(), PublishJob.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return {
        "jobs": [job_item(job) for job in rows],
        "page": page,
        "perPage": per_page,
        "total": total,
        "hasMore": page * per_page < total,
    }


def account_jobs(account: Account, limit: int = PER_PAGE_MAX) -> list[dict[str, Any]]:
    """The account's newest ``limit`` jobs as :func:`job_item` shows them."""
    return list(jobs_page(account, 1, limit)["jobs"])
