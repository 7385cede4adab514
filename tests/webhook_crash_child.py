"""Child process of the webhook crash test and bench (stands in for a worker).

``commit TXID``: marks the ``sent`` jobs of TXID confirmed through the real confirmation
path (one transaction: state change and outbox rows), prints ``COMMITTED`` and then waits,
before any delivery, to be killed with SIGKILL.
``deliver``: what a restarted worker runs (the RQ task of the periodic ``webhooks`` job).
The app is configured from the environment (``RAREGEN_*``).
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    from raregen import create_app
    from raregen.publish import tasks

    app = create_app()
    tasks.set_app(app)
    if sys.argv[1] == "commit":
        from raregen.db import transaction
        from raregen.publish import confirm
        from raregen.publish.broadcasters.base import TxStatus

        txid = sys.argv[2]
        with app.app_context():
            with transaction():
                n = confirm.mark_confirmed(txid, TxStatus("confirmed", txid, "cd" * 32, 42))
        print(f"COMMITTED {n}", flush=True)
        time.sleep(120)  # killed here: committed, nothing delivered
        return 3
    if sys.argv[1] == "deliver":
        print(tasks.deliver_webhooks(), flush=True)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
