"""Webhooks: RareGen POSTs an event to its owners' URLs when a publish job becomes ``sent``,
``confirmed`` or ``failed`` (and ``reorged``, once chain reorganisations are tracked),
instead of making them poll ``GET /v1/jobs/<jobId>`` (docs/API.md "Webhooks").

* :mod:`.models`: endpoints, the outbox of events, delivery attempts, command nonces;
* :mod:`.outbox`: writes events in the transaction of the job's state change;
* :mod:`.delivery`: the delivery loop (signed per the Standard Webhooks specification,
  retried with exponential backoff for ``WEBHOOK_RETRY_HOURS``);
* :mod:`.urls`: the SSRF rules for endpoint URLs;
* :mod:`.service`: register, list, remove, enable endpoints; delivery history;
* :mod:`.api`, :mod:`.pages`, :mod:`.cli`: the signed JSON API of key owners, the wallet's
  settings page, the operator commands.
"""
