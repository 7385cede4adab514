"""The RareGen client library and the ``raregen`` command (:mod:`raregen.client.cli`).

``Client(server, key).publish(record, type=...)`` signs and submits a record and returns a
:class:`Job`; ``job.wait(until="confirmed")`` follows it; ``client.status(job_id)`` and
``client.verify(txid)`` read jobs and check records locally. Errors are
:class:`RareGenError` subclasses (:mod:`raregen.client.errors`). Importing it loads no part of
the server (no Flask, no database).
"""

from raregen.client.api import DEFAULT_SERVER, Client, Job, Verification, load_key
from raregen.client.errors import (
    APIError,
    JobFailed,
    RareGenError,
    RateLimited,
    TransportError,
    Unavailable,
    WaitTimeout,
)

__all__ = [
    "DEFAULT_SERVER",
    "APIError",
    "Client",
    "Job",
    "JobFailed",
    "RareGenError",
    "RateLimited",
    "TransportError",
    "Unavailable",
    "Verification",
    "WaitTimeout",
    "load_key",
]
