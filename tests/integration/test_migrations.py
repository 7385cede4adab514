"""Schema through migrations only: upgrade, downgrade and upgrade again on SQLite and
PostgreSQL; autogenerate on an up-to-date database finds nothing; one head."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from raregen import ROOT
from raregen.db import db
from tests.plugins.db import _drop_pg_database, _pg_database, backends, ratelimit_config


@pytest.fixture(params=backends())
def fresh_app(request, tmp_path, redis_url):
    import os

    from raregen import create_app
    from raregen.publish.txbuilder import ServerWallet

    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    else:
        name = f"raregen_mig_{uuid.uuid4().hex[:8]}"
        url = _pg_database(name)
    os.environ["RAREGEN_INSTANCE_PATH"] = str(tmp_path)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "SERVER_WIF": ServerWallet.generate("regtest").to_wif(),
            "REDIS_URL": redis_url,
            "ENV_NAME": "test",  # no production checks (secret key, mail server)
            **ratelimit_config(redis_url),  # rate limits in the test Redis
        }
    )
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    if name:
        _drop_pg_database(name)


def _tables() -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_upgrade_downgrade_upgrade(fresh_app):
    upgrade()
    first = _tables()
    assert {"publish_jobs", "utxos", "publish_batches", "registered_keys", "audit_log"} <= first
    downgrade(revision="base")
    assert _tables() == set()
    upgrade()
    assert _tables() == first


def test_autogenerate_finds_nothing(fresh_app):
    upgrade()
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, db.metadata)
    assert diff == []


def test_single_head() -> None:
    from alembic.config import Config

    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1


def test_0004_drops_the_jobs_batch_index_and_back(fresh_app):
    from sqlalchemy import inspect

    def job_indexes() -> set[str]:
        return {i["name"] for i in inspect(db.engine).get_indexes("publish_jobs")}

    upgrade()
    assert "idx_publish_jobs_batch" not in job_indexes()
    assert {"idx_publish_jobs_claim", "idx_publish_jobs_txid"} <= job_indexes()
    downgrade(revision="0003")
    assert "idx_publish_jobs_batch" in job_indexes()
    upgrade()
    assert "idx_publish_jobs_batch" not in job_indexes()
