"""The multi-host run at full size: tests/multihost/test_multihost.py with 2,000 records per
publish mode (the CI run uses 300), printing its figures (the ``MULTIHOST-FIGURES`` line):
records accepted per second through nginx with two web and two worker hosts, records lost,
published twice and UTXOs spent twice (each 0) after work1's processes are killed halfway,
and the seconds from that kill to the last record confirmed. Needs root (network namespaces)::

    sudo .venv/bin/python bench/multihost.py [--records 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    env = {**os.environ, "RAREGEN_MULTIHOST_RECORDS": str(args.records), "CI": "1"}
    return subprocess.call(
        [sys.executable, "-m", "pytest", "tests/multihost", "-x", "-q", "-s"], cwd=ROOT, env=env
    )


if __name__ == "__main__":
    sys.exit(main())
