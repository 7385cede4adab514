"""``python -m raregen_dev.devnet ensure|run`` (see :mod:`raregen_dev.devnet.cli`)."""

import sys

from raregen_dev.devnet.cli import main

sys.exit(main())
