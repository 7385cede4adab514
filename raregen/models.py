"""Imports every table so Alembic's autogenerate and ``db.create_all`` see the whole schema."""

from raregen.publish import models as publish_models  # noqa: F401

try:  # the wallet component's tables, when the wallet package defines them
    from raregen.wallet import models as wallet_models  # noqa: F401
except ImportError:  # pragma: no cover
    wallet_models = None
