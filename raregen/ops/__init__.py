"""The operator console at ``/ops`` (docs/OPERATIONS.md, "Operator console"): state of the
pool, queues, workers, batches and failures (:mod:`raregen.ops.overview`), charts
(:mod:`raregen.ops.charts`) and the operator actions (:mod:`raregen.ops.views`), for wallet
accounts with the operator role only."""
