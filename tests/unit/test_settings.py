"""Settings (raregen.config): validation of the environment, the production start-up checks,
the SQLite process lock and the generated settings reference (docs/SETTINGS.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from raregen import ROOT
from raregen.config import (
    EXIT_CONFIG,
    Settings,
    SettingsError,
    load_settings,
    read_settings,
    settings_markdown,
)

#: (variable, bad value, words the one-line refusal must contain)
INVALID = [
    ("RAREGEN_ROLE", "pubisher", "all, publisher, wallet"),
    ("RAREGEN_PUBLISH_MODE", "bogus", "immediate, batch, packed"),
    ("RAREGEN_NETWORK", "main", "mainnet, testnet, regtest"),
    ("RAREGEN_BROADCASTERS", "node,nope", "node, arc, woc"),
    ("RAREGEN_BATCH_SIZE", "abc", "an integer > 0"),
    ("RAREGEN_RESERVATION_TIMEOUT_SECONDS", "-5", "an integer > 0"),
    ("RAREGEN_PUBLISHER_TIMEOUT_SECONDS", "0", "an integer > 0"),
    ("RAREGEN_POOL_LOW_WATER", "-1", "an integer >= 0"),
    ("RAREGEN_FEE_RATE_SOURCE", "Policy", "config, policy"),
    ("RAREGEN_ENV", "prod", "production, development, test"),
    ("RAREGEN_MAIL_USE_TLS", "maybe", "true or false"),
    ("RAREGEN_PUBLISH_RATE_LIMIT", "lots", "rate limit"),
    ("PORT", "http", "an integer >= 1 and <= 65535"),
]

_ALIASES = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PORT", "WORKERS")


def clean_environ(**extra: str) -> dict[str, str]:
    """``os.environ`` without any RareGen setting, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("RAREGEN_") and k not in _ALIASES
    }
    env.update(extra)
    return env


@pytest.fixture
def environ(monkeypatch, tmp_path):
    """No RareGen setting in the environment but an instance folder of this test's own."""
    for key in list(os.environ):
        if key.startswith("RAREGEN_") or key in _ALIASES:
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAREGEN_INSTANCE_PATH", str(tmp_path / "instance"))
    return monkeypatch


@pytest.mark.parametrize(("name", "value", "allowed"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_value_is_refused_in_one_line(environ, name, value, allowed) -> None:
    from raregen import create_app

    if name != "RAREGEN_ENV":
        environ.setenv("RAREGEN_ENV", "development")  # only the bad value is wrong
    environ.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        create_app()
    message = str(info.value)
    assert "\n" not in message
    assert f"{name}={value!r}" in message and allowed in message, message
    assert info.value.setting == name
    assert isinstance(info.value, ValueError)


def test_several_invalid_values_in_one_line(environ) -> None:
    environ.setenv("RAREGEN_ROLE", "pubisher")
    environ.setenv("RAREGEN_PUBLISH_MODE", "bogus")
    with pytest.raises(SettingsError) as info:
        read_settings()
    message = str(info.value)
    assert "\n" not in message and "RAREGEN_ROLE" in message and "RAREGEN_PUBLISH_MODE" in message


def test_defaults_and_unprefixed_names(environ, tmp_path) -> None:
    inst = tmp_path / "instance"
    cfg = load_settings(str(inst))
    assert cfg["ROLE"] == "all" and cfg["ENV_NAME"] == "production"
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{inst / 'raregen.sqlite'}"
    assert cfg["SERVER_KEY_FILE"] == str(inst / "server.key")
    assert cfg["BROADCASTERS"] == ["node"] and cfg["PUBLISH_MODE"] == "auto"
    assert cfg["MAX_CONTENT_LENGTH"] == 100_000 * 2 + 4096
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}
    assert cfg["SECRET_KEY"] is None and cfg["PORT"] == 5000
    environ.setenv("DATABASE_URL", "postgresql://h/unprefixed")
    environ.setenv("SECRET_KEY", "plain")
    environ.setenv("PORT", "5123")
    environ.setenv("RAREGEN_BROADCASTERS", " arc , node ")
    environ.setenv("RAREGEN_DB_POOL_PRE_PING", "0")
    environ.setenv("RAREGEN_ROLE", "")  # empty: unset
    cfg = load_settings(str(inst))
    assert cfg["SQLALCHEMY_DATABASE_URI"] == "postgresql://h/unprefixed"
    assert cfg["SECRET_KEY"] == "plain" and cfg["PORT"] == 5123 and cfg["ROLE"] == "all"
    assert cfg["BROADCASTERS"] == ["arc", "node"]
    assert cfg["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": False}
    environ.setenv("RAREGEN_DATABASE_URL", "postgresql://h/prefixed")  # the prefixed one wins
    assert load_settings(str(inst))["SQLALCHEMY_DATABASE_URI"] == "postgresql://h/prefixed"


def test_refusal_names_the_unprefixed_variable_that_was_read(environ) -> None:
    environ.setenv("PORT", "x")
    with pytest.raises(SettingsError) as info:
        read_settings()
    assert str(info.value).startswith("invalid setting PORT='x'")


# ---------------------------------------------------------------------------------------
# production start-up checks
# ---------------------------------------------------------------------------------------


@pytest.fixture
def prod(environ, tmp_path):
    """Production with everything it needs; tests remove one piece."""
    from raregen.publish.txbuilder import ServerWallet

    environ.setenv("RAREGEN_ENV", "production")
    environ.setenv("RAREGEN_SECRET_KEY", "prod-secret")
    environ.setenv("RAREGEN_SERVER_WIF", ServerWallet.generate("regtest").to_wif())
    environ.setenv("RAREGEN_RECEIPT_WIF", ServerWallet.generate("regtest").to_wif())
    environ.setenv("RAREGEN_MAIL_SERVER", "127.0.0.1")
    environ.setenv("RAREGEN_DATABASE_URL", f"sqlite:///{tmp_path / 'prod.sqlite'}")
    return environ


def _refusal(**overrides: object) -> str:
    from raregen import create_app

    with pytest.raises(SettingsError) as info:
        create_app(overrides or None)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_production_starts_with_everything_configured(prod) -> None:
    from raregen import create_app

    app = create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    assert app.config["ENV_NAME"] == "production" and app.secret_key == "prod-secret"


def test_production_refuses_without_secret_key(prod, tmp_path) -> None:
    prod.delenv("RAREGEN_SECRET_KEY")
    assert "RAREGEN_SECRET_KEY" in _refusal()
    assert not (tmp_path / "instance" / "secret_key").exists()  # none made in production


def test_production_refuses_without_server_key(prod, tmp_path) -> None:
    from raregen import create_app
    from raregen.server_key import write_key_file

    prod.delenv("RAREGEN_SERVER_WIF")
    key_file = tmp_path / "keys" / "server.key"
    prod.setenv("RAREGEN_SERVER_KEY_FILE", str(key_file))
    message = _refusal()
    assert "RAREGEN_SERVER_KEY_FILE" in message and "server-key new" in message
    assert not key_file.exists()  # nothing generated
    # the wallet alone signs nothing: no server key needed
    create_app({"ROLE": "wallet", "RATELIMIT_STORAGE_URI": "memory://"})
    write_key_file(key_file, "regtest")
    create_app({"RATELIMIT_STORAGE_URI": "memory://"})


def test_production_refuses_wallet_without_mail_server(prod) -> None:
    from raregen import create_app

    prod.delenv("RAREGEN_MAIL_SERVER")
    assert "RAREGEN_MAIL_SERVER" in _refusal()
    assert "RAREGEN_MAIL_SERVER" in _refusal(ROLE="wallet")
    create_app({"ROLE": "publisher", "RATELIMIT_STORAGE_URI": "memory://"})  # mails nothing


def test_production_names_every_missing_setting_in_one_line(environ) -> None:
    message = _refusal()
    for name in ("RAREGEN_SECRET_KEY", "RAREGEN_SERVER_KEY_FILE", "RAREGEN_MAIL_SERVER"):
        assert name in message


@pytest.mark.parametrize("env_name", ["development", "test"])
def test_development_and_test_make_what_is_missing(environ, tmp_path, env_name) -> None:
    from raregen import create_app

    environ.setenv("RAREGEN_ENV", env_name)
    app = create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    assert len(app.secret_key) == 64
    assert (tmp_path / "instance" / "secret_key").exists()


def test_production_server_wallet_never_generates_a_key(environ, tmp_path) -> None:
    """Regression: a production server whose key file is gone made itself a new key."""
    from raregen import create_app
    from raregen.publish.services import server_wallet

    environ.setenv("RAREGEN_ENV", "test")
    app = create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    app.config["ENV_NAME"] = "production"
    with pytest.raises(FileNotFoundError):
        server_wallet(app)
    assert not Path(app.config["SERVER_KEY_FILE"]).exists()
    app.config["ENV_NAME"] = "development"
    assert server_wallet(app).network == "regtest"
    assert Path(app.config["SERVER_KEY_FILE"]).stat().st_mode & 0o777 == 0o600


_HOLDER = """
import sys
from raregen.config import hold_sqlite_lock
hold_sqlite_lock(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def test_production_refuses_sqlite_held_by_another_process(prod, tmp_path) -> None:
    from raregen import create_app

    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    prod.setenv("RAREGEN_DATABASE_URL", url)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        message = _refusal()
        assert "RAREGEN_DATABASE_URL" in message and f"pid {holder.pid}" in message
        # development shares SQLite between processes as before
        create_app({"ENV_NAME": "development", "RATELIMIT_STORAGE_URI": "memory://"})
    finally:
        try:
            holder.communicate("", timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()  # a holder that does not end when told: stopped all the same
            holder.wait(10)
    # the holder ended: the lock went with it; this process takes it, and may build more apps
    create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    create_app({"RATELIMIT_STORAGE_URI": "memory://"})
    # PostgreSQL takes no lock
    create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql://127.0.0.1:1/x",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )


# ---------------------------------------------------------------------------------------
# docs/SETTINGS.md
# ---------------------------------------------------------------------------------------


def test_every_setting_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and field.description.endswith("."), name
        assert "|" not in field.description, name  # a Markdown table cell


def test_settings_doc_is_generated_from_the_fields() -> None:
    """docs/SETTINGS.md is ``python -m raregen.config --markdown``: regenerate it after
    changing a field."""
    committed = (ROOT / "docs" / "SETTINGS.md").read_text()
    assert committed == settings_markdown(), (
        "docs/SETTINGS.md is stale: run .venv/bin/python -m raregen.config --markdown "
        "> docs/SETTINGS.md"
    )


def test_module_entry_point_checks_the_environment() -> None:
    env = clean_environ(RAREGEN_PUBLISH_MODE="bogus")
    done = subprocess.run(
        [sys.executable, "-m", "raregen.config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG
    expected = (
        "raregen: invalid setting RAREGEN_PUBLISH_MODE='bogus' "
        "(allowed values: immediate, batch, packed, auto)"
    )
    assert done.stderr.splitlines() == [expected]
