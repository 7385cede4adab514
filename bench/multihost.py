"""The multi-host run at full size: tests/multihost/test_multihost.py with 2,000 records per
publish mode (the CI run uses 300), printing its figures (the ``MULTIHOST-FIGURES`` line):
records accepted per second through nginx with two web and two worker hosts, records lost,
published twice and UTXOs spent twice (each 0) after work1's processes are killed halfway,
and the seconds from that kill to the last record confirmed.

``--topology both`` (the default) also runs the same immediate-mode publish with everything
on ONE host (one gunicorn, the same 4 worker processes, the cron process; the same edge nginx
and data host; no kill) in the same invocation, and prints the two rates side by side with
their ratio, so they are comparable on a shared machine. ``multi`` is the CI run alone;
``single`` only the single-host run. Needs root (network namespaces)::

    sudo .venv/bin/python bench/multihost.py [--records 2000] [--topology both|multi|single]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MULTI = "immediate: accepted per second through nginx (2 web, 2 worker hosts)"
SINGLE = "single host: accepted per second through nginx (1 gunicorn, 4 workers, cron)"


def side_by_side(figures: dict[str, object], records: int) -> list[str]:
    """The comparison lines: both immediate-mode rates (records/s accepted through nginx)
    and multi/single, from the test's ``MULTIHOST-FIGURES`` dict; absent figures print n/a."""
    multi, single = figures.get(MULTI), figures.get(SINGLE)
    ratio = (
        f"{float(multi) / float(single):.2f}"  # type: ignore[arg-type]
        if multi and single
        else "n/a"
    )
    return [
        f"records per topology (immediate mode): {records}",
        f"multi-host  (edge, web1+web2, work1+work2 x2 workers, cron, data): "
        f"{multi if multi is not None else 'n/a'} records/s accepted through nginx",
        f"single host (edge, one: 1 gunicorn + 4 workers + cron, data):       "
        f"{single if single is not None else 'n/a'} records/s accepted through nginx",
        f"multi / single: {ratio}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--topology", choices=("both", "multi", "single"), default="both")
    args = parser.parse_args()
    env = {
        **os.environ,
        "RAREGEN_MULTIHOST_RECORDS": str(args.records),
        "RAREGEN_MULTIHOST_TOPOLOGY": args.topology,
        "CI": "1",
    }
    cmd = [sys.executable, "-m", "pytest", "tests/multihost", "-x", "-q", "-s"]
    if args.topology == "single":
        cmd += ["-k", "single_host"]
    figures: dict[str, object] = {}
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if line.startswith("MULTIHOST-FIGURES "):
                figures = json.loads(line.split(" ", 1)[1])
    if args.topology != "multi":
        print()
        for line in side_by_side(figures, args.records):
            print(line)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
