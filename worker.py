"""RQ worker entry: ``python worker.py`` (the periodic queue, then the publish queue, with RQ's
scheduler for delayed retries) or ``python worker.py --cron`` (the scheduler of the periodic
jobs: confirmations, reaper and sweeper, dirty UTXOs, pool replenishment).

Shutdown (RQ 3.0 behaviour):

* SIGTERM or SIGINT once: warm shutdown. The worker takes no new job, lets the work horse
  finish the job it runs (a publish job takes well under its 120 s RQ timeout), then exits 0.
  Jobs still queued stay in Redis and in the database (``queued``); a restart goes on.
* a second SIGTERM/SIGINT: cold shutdown. The horse is killed at once; its job stays
  ``processing`` with a lease, and the reaper settles it once the lease
  (``RESERVATION_TIMEOUT_SECONDS``) has expired: re-sends its stored transaction, or marks it
  sent, or re-queues it. Nothing is lost; nothing is published twice.
* ``kill -9``: as the cold shutdown. (The horse runs in its own process group: killing only
  the main process leaves the horse to finish its job.)

The cron process exits on SIGTERM after its current tick.
"""

from __future__ import annotations

import argparse
import logging

from raregen import create_app
from raregen.publish import tasks
from raregen.queue import periodic_queue_name, redis_connection


def run_worker(burst: bool = False) -> None:
    app = create_app()
    tasks.set_app(app)
    from rq import Queue, Worker

    with app.app_context():
        conn = redis_connection()
        name = app.config["QUEUE_NAME"]
        queues = [Queue(periodic_queue_name(name), connection=conn), Queue(name, connection=conn)]
    worker = Worker(queues, connection=conn)
    worker.work(with_scheduler=True, burst=burst, logging_level="WARNING")


def run_cron() -> None:
    app = create_app()
    tasks.set_app(app)
    from raregen.publish.schedule import build_cron_scheduler

    with app.app_context():
        scheduler = build_cron_scheduler(app, logging_level="WARNING")
    scheduler.start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cron", action="store_true", help="run the periodic-job scheduler")
    parser.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("rq.cron").setLevel(logging.WARNING)
    if args.cron:
        run_cron()
    else:
        run_worker(burst=args.burst)


if __name__ == "__main__":
    main()
