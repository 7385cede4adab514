"""The OpenAPI document: valid OpenAPI 3.1, every JSON route of the app in it, its error
table the same as docs/API.md's, served at /v1/openapi.json, and the /docs/api page."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

from raregen.openapi import ERROR_CODES, build_spec
from tests.vectors import REPO_ROOT

#: path prefixes whose routes are JSON endpoints and must be in the document
_JSON_ROUTES = ("/v1/", "/wallet/api/", "/internal/", "/healthz", "/metrics")


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
            assert "200" in op["responses"], (method, path)
            for status, resp in op["responses"].items():
                examples = resp.get("content", {}).get("application/json", {}).get("examples")
                for code in examples or {}:
                    assert ERROR_CODES[code][0] == int(status), (method, path, code)
            if "requestBody" in op:
                assert "415" in op["responses"] and "400" in op["responses"], (method, path)


def test_served_document_covers_every_json_route(client) -> None:  # type: ignore[no-untyped-def]
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
    assert spec["components"]["schemas"]["PublishRequest"]["properties"]["signedPayload"][
        "maxLength"] == limit


def test_a_wallet_process_documents_only_what_it_serves(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from raregen import create_app

    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path))
    app = create_app({
        "TESTING": True, "ENV_NAME": "test", "ROLE": "wallet", "SECRET_KEY": "x",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'w.sqlite'}",
        "RATELIMIT_STORAGE_URI": "memory://", "PUBLISHER_URL": "http://127.0.0.1:9",
        "SERVICE_TOKEN": "t",
    })
    paths = app.test_client().get("/v1/openapi.json").json["paths"]
    assert "/wallet/api/me" in paths and "/v1/ping" in paths
    assert "/v1/publish" not in paths and "/internal/publish" not in paths


def test_reference_page_loads_redoc_from_static_without_inline_script(client) -> None:  # type: ignore[no-untyped-def]
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
