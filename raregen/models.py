"""Imports every table so Alembic's autogenerate and ``db.create_all`` see the whole schema."""

from raregen.publish import models as publish_models  # noqa: F401
from raregen.wallet import models as wallet_models  # noqa: F401
from raregen.webhooks import models as webhook_models  # noqa: F401
