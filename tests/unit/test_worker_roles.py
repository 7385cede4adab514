"""The queues each worker role serves (``worker.py --role``): publishing workers never take a
periodic job, the periodic worker nothing else."""

from __future__ import annotations

import pytest

from raregen.queue import (
    WORKER_ROLES,
    batch_queue_name,
    periodic_queue_name,
    role_queue_names,
    worker_queue_names,
)


def test_publish_role_serves_no_periodic_queue():
    names = role_queue_names("publish", "publish")
    assert names == [batch_queue_name("publish"), "publish"]
    assert periodic_queue_name("publish") not in names


def test_periodic_role_serves_only_the_periodic_queue():
    assert role_queue_names("q", "periodic") == ["q-periodic"]


def test_all_role_is_every_queue_in_priority_order():
    assert role_queue_names("q") == worker_queue_names("q") == ["q-batch", "q-periodic", "q"]
    assert set(WORKER_ROLES) == {"all", "publish", "periodic"}


def test_unknown_role_is_refused():
    with pytest.raises(ValueError, match="unknown worker role"):
        role_queue_names("q", "cron")
