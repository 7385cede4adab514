"""The OpenAPI document: valid OpenAPI 3.1, every JSON route of the app in it, its error
table the same as docs/API.md's, served at /v1/openapi.json, and the /docs/api page."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
from openapi_spec_validator import validate

from raregen.openapi import ERROR_CODES, build_spec
from tests.vectors import REPO_ROOT

#: path prefixes whose routes are JSON endpoints and must be in the document
_JSON_ROUTES = (
    "/v1/",
    "/wallet/api/",
    "/internal/",
    "/healthz",
    "/metrics",
    "/.well-known/raregen/",
)


def test_the_document_is_valid_openapi_3_1() -> None:
    spec = build_spec()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_error_codes_match_the_table_of_docs_api() -> None:
    text = (REPO_ROOT / "docs" / "API.md").read_text()
    table = {
        code: int(status)
        for status, codes in re.findall(r"^\| (\d{3}) \| (.+?) \|", text, re.M)
        for code in re.findall(r"`([A-Z_]+)`", codes)
    }
    for code, (status, _) in ERROR_CODES.items():
        if code == "BAD_REQUEST":
            continue  # listed in the HTTP-layer section, not the tables
        assert table.get(code) == status, code


def test_every_error_response_lists_codes_of_its_status() -> None:
    for path, item in build_spec()["paths"].items():
        for method, op in item.items():
            # a success status: 200, or 201 for an operation that only creates
            assert {"200", "201"} & set(op["responses"]), (method, path)
            for status, resp in op["responses"].items():
                if int(status) < 400:
                    continue  # success examples are named by what they show
                examples = resp.get("content", {}).get("application/json", {}).get("examples")
                for code in examples or {}:
                    assert ERROR_CODES[code][0] == int(status), (method, path, code)
            if "requestBody" in op:
                assert "415" in op["responses"] and "400" in op["responses"], (method, path)


def _validator(spec: dict, name: str) -> jsonschema.Draft202012Validator:  # type: ignore[type-arg]
    """A validator of component ``name``, its ``#/components/...`` references resolved."""
    root = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(root)


def test_the_proof_file_schema_is_docs_schema_with_its_examples_valid() -> None:
    spec = build_spec()
    schemas = spec["components"]["schemas"]
    docs = json.loads((REPO_ROOT / "docs" / "raregen-proof-v1.schema.json").read_text())
    assert schemas["ProofFile"]["required"] == docs["required"]
    assert set(schemas["ProofFile"]["properties"]) == set(docs["properties"])
    assert {"ProofHash", "ProofHeader", "ProofTime"} <= set(schemas)
    assert "$id" not in schemas["ProofFile"] and "$defs" not in schemas["ProofFile"]
    assert "#/$defs/" not in json.dumps(spec)
    ops = {"/v1/jobs/{jobId}/proof": "get", "/v1/records/{txid}/{vout}/proof": "get"}
    for path, method in ops.items():
        ok = spec["paths"][path][method]["responses"]["200"]
        assert "Content-Disposition" in ok["headers"]
        for example in ok["content"]["application/json"]["examples"].values():
            _validator(spec, "ProofFile").validate(example["value"])
            jsonschema.Draft202012Validator(docs).validate(example["value"])
        conflicts = spec["paths"][path][method]["responses"]["409"]["content"]
        assert set(conflicts["application/json"]["examples"]) == {"JOB_FAILED", "PROOF_NOT_READY"}
    record = spec["paths"]["/v1/records/{txid}/{vout}/proof"]["get"]["responses"]
    assert "MALFORMED_JSON" in record["400"]["content"]["application/json"]["examples"]
    for name in ("ProofFile", "Receipt", "Published", "ReceiptKey"):
        for example in schemas[name]["examples"]:
            _validator(spec, name).validate(example)
    # a new publish's answer carries the receipt; the wallet's and the internal one do not
    published = spec["paths"]["/v1/publish"]["post"]["responses"]
    assert published["202"]["content"]["application/json"]["schema"]["allOf"][1] == {
        "required": ["receipt"]
    }
    assert "GetJobProof" in published["202"]["links"]


def test_the_receipt_key_document_matches_its_schema(client) -> None:
    spec = client.get("/v1/openapi.json").json
    resp = client.get("/.well-known/raregen/receipt-key")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    _validator(spec, "ReceiptKey").validate(resp.json)


def test_served_document_covers_every_json_route(client) -> None:
    resp = client.get("/v1/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    spec = resp.json
    validate(spec)
    documented = {
        (re.sub(r"\{[^}]+\}", "<>", path), method.upper())
        for path, item in spec["paths"].items()
        for method in item
    }
    for rule in client.application.url_map.iter_rules():
        if not rule.rule.startswith(_JSON_ROUTES):
            continue
        path = re.sub(r"<[^>]+>", "<>", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {rule.rule} is not in the document"
    limit = client.application.config["MAX_PAYLOAD_BYTES"]
    assert (
        spec["components"]["schemas"]["PublishRequest"]["properties"]["signedPayload"]["maxLength"]
        == limit
    )


def test_a_wallet_process_documents_only_what_it_serves(tmp_path, monkeypatch) -> None:
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {
            "TESTING": True,
            "ENV_NAME": "test",
            "ROLE": "wallet",
            "SECRET_KEY": "x",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'w.sqlite'}",
            "RATELIMIT_STORAGE_URI": "memory://",
            "PUBLISHER_URL": "http://127.0.0.1:9",
            "SERVICE_TOKEN": "t",
        }
    )
    paths = app.test_client().get("/v1/openapi.json").json["paths"]
    assert "/wallet/api/me" in paths and "/v1/ping" in paths
    assert "/v1/publish" not in paths and "/internal/publish" not in paths


def test_reference_page_loads_redoc_from_static_without_inline_script(client) -> None:
    resp = client.get("/docs/api")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert "/static/dist/redoc.standalone.js" in html and "/static/js/apidocs.js" in html
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "'unsafe-eval'" not in csp
    assert "style-src 'self' 'unsafe-inline'" in csp
    # the relaxation is for this page only
    other = client.get("/signin").headers["Content-Security-Policy"]
    assert "unsafe-inline" not in other
    assert client.get("/static/js/apidocs.js").status_code == 200


@pytest.mark.parametrize("name", ["redoc.standalone.js"])
def test_the_renderer_is_bundled(name: str) -> None:
    assert (REPO_ROOT / "raregen" / "static" / "dist" / name).is_file(), "run npm run build"


def test_the_webhook_schemas_hold_their_examples_and_a_real_event() -> None:
    from types import SimpleNamespace

    from raregen.db import utcnow
    from raregen.webhooks import outbox

    spec = build_spec()
    schemas = spec["components"]["schemas"]
    for name in (
        "WebhookEndpoint",
        "WebhookDelivery",
        "WebhookCommand",
        "WebhookCommandPayload",
        "WebhookCreate",
        "WebhookEvent",
    ):
        for example in schemas[name]["examples"]:
            _validator(spec, name).validate(example)
    job = SimpleNamespace(
        job_id="j-1",
        txid="ab" * 32,
        vout=0,
        block_hash="cd" * 32,
        block_height=7,
        error_code=None,
        error_detail=None,
    )
    for event_type in outbox.EVENT_TYPES:
        body = json.loads(outbox.event_body(event_type, job, utcnow()))
        _validator(spec, "WebhookEvent").validate(body)
    # the optional signature scheme of a signed body, the layout of a record read back
    for name in ("PublishRequest", "WebhookCommand"):
        scheme = schemas[name]["properties"]["signatureScheme"]
        assert (
            scheme["enum"] == ["der", "bsm"] and "signatureScheme" not in schemas[name]["required"]
        )
    record = schemas["Record"]["properties"]
    assert record["version"]["enum"] == [1, 2, None]
    assert record["signatureScheme"]["enum"] == ["der", "bsm", None]
    command = spec["paths"]["/v1/webhooks"]["post"]["responses"]
    assert {
        "200",
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "429",
        "503",
    } <= set(command)
    assert {
        "UNKNOWN_OPERATION",
        "BAD_WEBHOOK_URL",
        "WEBHOOK_URL_FORBIDDEN",
        "BAD_SIGNATURE_SCHEME",
    } <= set(command["400"]["content"]["application/json"]["examples"])
    assert "WEBHOOK_LIMIT" in command["409"]["content"]["application/json"]["examples"]
