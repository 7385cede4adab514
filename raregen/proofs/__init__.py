"""Proof files (``raregen-proof`` v1, docs/PROOFS.md): what a person needs to show, without
RareGen, that a record was signed by their key and was in a block at a known time.

* :mod:`raregen.proofs.merkle`: block headers and BRC-74 merkle paths (pure);
* :mod:`raregen.proofs.receipt`: the signed acceptance receipt (pure signing and checking);
* :mod:`raregen.proofs.verify`: the offline verifier (pure, no Flask);
* :mod:`raregen.proofs.capture`: storing merkle proofs at confirmation, reorg re-checks;
* :mod:`raregen.proofs.build`: building a proof file for a job or a record.
"""
