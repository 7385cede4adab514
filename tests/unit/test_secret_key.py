"""The per-instance session key file: processes starting together on a new instance folder
must all read one whole key (``raregen._secret_key``)."""

from __future__ import annotations

import multiprocessing


def _read_key(instance: str, out) -> None:
    from flask import Flask

    from raregen import _secret_key

    out.put(_secret_key(Flask("keytest", instance_path=instance)))


def test_processes_starting_together_share_one_whole_key(tmp_path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(10):
        instance = tmp_path / f"instance{round_}"
        out = ctx.Queue()
        procs = [ctx.Process(target=_read_key, args=(str(instance), out)) for _ in range(6)]
        for p in procs:
            p.start()
        keys = {out.get(timeout=30) for _ in procs}
        for p in procs:
            p.join(30)
        assert len(keys) == 1 and len(keys.pop()) == 64
        assert [f.name for f in instance.iterdir()] == ["secret_key"]  # no temporary file left
