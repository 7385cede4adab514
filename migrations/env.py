"""Alembic environment for RareGen: runs inside the Flask app (Flask-Migrate)."""

from __future__ import annotations

import logging
from logging.config import fileConfig
from typing import Any

from alembic import context
from flask import current_app

import raregen.models  # noqa: F401  (every table, for autogenerate)

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
log = logging.getLogger("alembic.env")

db = current_app.extensions["migrate"].db
target_metadata = db.metadata


def _options(dialect_name: str) -> dict:
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things in place: batch mode copies the table
        "render_as_batch": dialect_name == "sqlite",
    }


def run_offline() -> None:
    url = str(db.engine.url)
    context.configure(url=url, literal_binds=True, **_options(db.engine.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    def skip_empty(ctx: Any, revision: Any, directives: list[Any]) -> None:
        # `flask db migrate` on an up-to-date database writes no empty revision file
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []
            log.info("No changes in schema detected.")

    engine = db.engine
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            process_revision_directives=skip_empty,
            **_options(engine.dialect.name),
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
