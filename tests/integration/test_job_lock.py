"""The periodic jobs' Redis locks (:func:`raregen.queue.job_lock`, redis-py's ``Lock``) on the
real test Redis: a second holder is refused, and a lock lives exactly as long as the RQ
timeout of the job it guards (:data:`raregen.publish.tasks.PERIODIC_TIMEOUTS`)."""

from __future__ import annotations

from typing import Any

import pytest

from raregen.publish import schedule, tasks
from raregen.queue import LOCK_PREFIX, job_lock, redis_connection

#: cron name -> the lock its job takes
LOCK_OF_JOB = {
    "confirm-sent": "confirm",
    "reaper": "reaper",
    "settle-dirty": "settle-dirty",
    "replenish": "replenish",
    "pool-sample": "pool-sample",
    "purge-wallet": "purge-wallet",
}


@pytest.fixture
def lock_app(sqlite_app: Any) -> Any:
    tasks.set_app(sqlite_app)
    conn = redis_connection()
    names = [LOCK_PREFIX + name for name in (*tasks.PERIODIC_TIMEOUTS, "test-lock")]
    conn.delete(*names)
    yield sqlite_app
    conn.delete(*names)


def test_a_second_holder_is_refused_until_the_first_releases(lock_app):
    conn = redis_connection()
    with job_lock("test-lock", 40) as first:
        assert first is True
        with job_lock("test-lock", 40) as second:
            assert second is False
        assert 39_000 < conn.pttl(LOCK_PREFIX + "test-lock") <= 40_000
    assert conn.exists(LOCK_PREFIX + "test-lock") == 0  # released on leaving the block
    with job_lock("test-lock", 40) as again:
        assert again is True


def test_a_lock_taken_over_after_expiry_is_not_released_by_the_old_holder(lock_app):
    conn = redis_connection()
    with job_lock("test-lock", 40) as first:
        assert first
        conn.delete(LOCK_PREFIX + "test-lock")  # as if it had expired
        conn.set(LOCK_PREFIX + "test-lock", "someone-else", ex=40)
    # the first holder left without deleting the new holder's lock
    assert conn.get(LOCK_PREFIX + "test-lock") == b"someone-else"


def test_every_locked_periodic_job_has_a_lock_as_long_as_its_timeout(lock_app):
    rows = {row.name: row for row in schedule.PERIODIC_JOBS}
    assert set(LOCK_OF_JOB.values()) == set(tasks.PERIODIC_TIMEOUTS)
    for cron_name, lock in LOCK_OF_JOB.items():
        assert rows[cron_name].job_timeout == tasks.PERIODIC_TIMEOUTS[lock], cron_name
    # the reaper's lock: 300 s, as its job (it was 30 s before)
    assert tasks.PERIODIC_TIMEOUTS["reaper"] == rows["reaper"].job_timeout == 300


def test_the_reaper_holds_its_lock_for_its_timeout_and_a_second_run_is_refused(
    lock_app, monkeypatch
):
    from raregen.publish import reaper

    conn = redis_connection()
    seen: dict[str, Any] = {}

    def reap() -> dict[str, int]:
        seen["pttl"] = conn.pttl(LOCK_PREFIX + "reaper")
        seen["second"] = tasks.reap()  # another worker's run while this one holds the lock
        return {"reaped": 1}

    monkeypatch.setattr(reaper, "reap", reap)
    assert tasks.reap() == {"reaped": 1}
    assert seen["second"] == {}  # refused: the default, nothing run
    assert 299_000 < seen["pttl"] <= 300_000
    assert conn.exists(LOCK_PREFIX + "reaper") == 0  # released after the run
