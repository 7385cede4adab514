"""Flask extensions, created unbound and attached in :func:`raregen.create_app`.

Rate limits are not an extension object: each app builds its own limiter
(:func:`raregen.web.ratelimit.init_app`).
"""

from __future__ import annotations

from flask_migrate import Migrate
from flask_wtf import CSRFProtect

migrate = Migrate()
csrf = CSRFProtect()
