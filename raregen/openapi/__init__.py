"""The OpenAPI 3.1 description of RareGen's JSON endpoints (:func:`build_spec`).

Served at ``GET /v1/openapi.json`` and rendered at ``/docs/api`` (``raregen.web.apidocs``).
The contracts it describes are docs/API.md (the publish API and the error table),
docs/WALLET_API.md (the wallet's JSON API and the internal endpoints) and docs/PROTOCOL.md.
This package imports neither Flask nor the database.
"""

from raregen.openapi.spec import ERROR_CODES, build_spec

__all__ = ["ERROR_CODES", "build_spec"]
