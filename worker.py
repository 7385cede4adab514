"""RQ worker entry: ``python worker.py`` (publish queue, with RQ's scheduler for delayed
retries) or ``python worker.py --cron`` (the periodic jobs: confirmations, reaper, dirty
UTXOs, pool replenishment, batch collector).

SIGTERM is a warm shutdown: the worker finishes its current job first; a job interrupted by
a hard kill is settled later by the reaper, so a restart loses nothing.
"""

from __future__ import annotations

import argparse
import logging

from raregen import create_app
from raregen.queue import redis_connection
from raregen.publish import tasks


def run_worker(burst: bool = False) -> None:
    app = create_app()
    tasks.set_app(app)
    from rq import Queue, Worker

    with app.app_context():
        conn = redis_connection()
        queue = Queue(app.config["QUEUE_NAME"], connection=conn)
    worker = Worker([queue], connection=conn)
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
