"""docs/raregen-proof-v1.schema.json: every built proof vector that is well-formed validates
against it, and the malformed ones do not."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "raregen-proof-v1.schema.json").read_text())
VECTORS = ROOT / "tests" / "data" / "proofs"
INDEX = json.loads((VECTORS / "index.json").read_text())


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    "vector",
    [v for v in INDEX["vectors"] if not v["file"].startswith("bad-")],
    ids=lambda v: v["file"],
)
def test_built_proofs_validate(vector: dict) -> None:  # type: ignore[type-arg]
    doc = json.loads((VECTORS / vector["file"]).read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


@pytest.mark.parametrize("name", ["bad-missing-member.json", "bad-version.json"])
def test_malformed_proofs_do_not_validate(name: str) -> None:
    doc = json.loads((VECTORS / name).read_text())
    assert not jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)
