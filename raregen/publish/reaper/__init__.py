"""Recovery of in-flight states (docs/PROTOCOL.md §2: no job stays in ``processing`` past the
reservation timeout), the sweeper (the database, not Redis, is the source of truth), and
settlement of dirty UTXOs and abandoned reservations (docs/PROTOCOL.md §4).

One module a job:

* :mod:`.run`: one reaper pass (``reap``), the periodic ``reaper`` job;
* :mod:`.recover`: a ``processing`` job whose lease expired (``recover_job``);
* :mod:`.sweep`: ``queued`` jobs no RQ job carries (``sweep_queued``);
* :mod:`.reservations`: reservations past their timeout holding a signed transaction no live
  job owns (``settle_reservations``);
* :mod:`.dirty`: dirty UTXOs (``settle_dirty``, the periodic ``settle-dirty`` job).

The public names stay importable from ``raregen.publish.reaper``.
"""

from __future__ import annotations

from raregen.publish.reaper.dirty import settle_dirty
from raregen.publish.reaper.recover import recover_job
from raregen.publish.reaper.reservations import settle_reservations
from raregen.publish.reaper.run import reap
from raregen.publish.reaper.sweep import services_mode_is_immediate, sweep_queued

__all__ = [
    "reap",
    "recover_job",
    "services_mode_is_immediate",
    "settle_dirty",
    "settle_reservations",
    "sweep_queued",
]
