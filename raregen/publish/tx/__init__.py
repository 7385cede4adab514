"""The server's BSV transactions, one module per job: :mod:`~raregen.publish.tx.values`
(UTXO and built-transaction shapes, amount checks), :mod:`~raregen.publish.tx.fees` (sizes
and fees) and :mod:`~raregen.publish.tx.keys` (the server wallet's key, WIF, P2PKH). The
builders are :mod:`raregen.publish.txbuilder`, which also re-exports these names.
"""
