"""Proof endpoints (docs/PROOFS.md, docs/API.md): the proof file of a job or a record, and
the public receipt key. Views stay thin: :mod:`raregen.proofs.build` owns the rules."""

from __future__ import annotations

import json

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from raregen.proofs import build, receipt
from raregen.publish import services

bp = Blueprint("proofs", __name__)


def _download(doc: dict) -> Response:  # type: ignore[type-arg]
    body = json.dumps(doc, separators=(",", ":"))
    resp = Response(body, 200, mimetype="application/json")
    resp.headers["Content-Disposition"] = f'attachment; filename="{build.file_name(doc)}"'
    resp.headers["Cache-Control"] = "no-store"  # pending now, complete later
    return resp


@bp.get("/v1/jobs/<job_id>/proof")
def job_proof(job_id: str) -> ResponseReturnValue:
    """The ``raregen-proof`` v1 file of a job (pending until confirmed, then complete)."""
    return _download(build.proof_for_job(job_id))


@bp.get("/v1/records/<txid>/<int:vout>/proof")
def record_proof(txid: str, vout: int) -> ResponseReturnValue:
    """The ``raregen-proof`` v1 file of record output ``txid:vout``."""
    return _download(build.proof_for_record(txid, vout))


@bp.get("/.well-known/raregen/receipt-key")
def receipt_key() -> ResponseReturnValue:
    """The key that signs acceptance receipts: ``{"pubkey", "algorithm"}``."""
    key = services.app_receipt_key()
    return {"pubkey": key.public_key.format(compressed=True).hex(), "algorithm": receipt.ALGORITHM}
