"""Settings from the environment: read once into a typed, validated :class:`Settings`.

Every setting is an environment variable ``RAREGEN_<NAME>`` (a few well-known ones also
without the prefix: ``DATABASE_URL``, ``REDIS_URL``, ``SECRET_KEY``, ``PORT``; the prefixed
name wins). An empty value counts as unset. Units are in the names: ``_SECONDS``,
``_SAT_PER_KB`` (satoshis per 1000 bytes), ``_BYTES``, ``_SATS`` (satoshis).

* :func:`read_settings` validates the environment: a value outside its allowed values (a
  misspelt role or mode, a negative or non-numeric number, an unknown broadcaster) raises
  :class:`SettingsError` naming the variable, the value and what is allowed.
* :func:`load_settings` turns it into the upper-case dict of ``app.config``.
* :func:`check_startup` refuses, in production, a start that would quietly do the wrong
  thing (no secret key, no server key, no mail server for the wallet, SQLite shared by
  several processes).
* :func:`refuse` is what every entry point does with a :class:`SettingsError`: one line on
  stderr and exit status :data:`EXIT_CONFIG`, no traceback.

``python -m raregen.config --markdown`` prints the settings reference (docs/SETTINGS.md) from
the fields' descriptions.
"""

from __future__ import annotations

import fcntl
import os
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from raregen.paths import ROOT

PREFIX = "RAREGEN_"

#: RQ worker processes of the development run (``RAREGEN_WORKER_PROCESSES``): one per core
#: of the 2-core development machine.
DEFAULT_WORKER_PROCESSES = 2

#: Exit status of a process that refuses its settings (``EX_CONFIG`` of sysexits.h).
EXIT_CONFIG = 78

Role = Literal["all", "publisher", "wallet"]
EnvName = Literal["production", "development", "test"]
Network = Literal["mainnet", "testnet", "regtest"]
PublishMode = Literal["immediate", "batch", "packed", "auto"]
BroadcasterName = Literal["node", "arc", "woc"]
FeeRateSource = Literal["config", "policy"]
WocNetwork = Literal["main", "test", "stn"]
LogFormat = Literal["text", "json"]


class SettingsError(ValueError):
    """A setting, or a combination of settings, with which the app must not start.

    ``str(error)`` is one line naming the environment variable, the value (never the value
    of a secret) and what is allowed or needed.

    Attributes:
        setting: the environment variable at fault (the first one, if several).
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


def _setting(
    name: str,
    default: Any,
    description: str,
    *,
    aliases: tuple[str, ...] = (),
    key: str | None = "",
    secret: bool = False,
    default_doc: str | None = None,
    **constraints: Any,
) -> Any:
    """A settings field read from ``RAREGEN_<name>`` (then ``aliases``).

    Args:
        name: the variable's name without the prefix.
        default: the value when unset.
        description: its meaning (Markdown), shown in docs/SETTINGS.md.
        aliases: further variable names, read when the prefixed one is unset.
        key: its ``app.config`` key ("": ``name``; None: not copied as such).
        secret: never shown in an error message.
        default_doc: the default as the docs show it (when it depends on the instance).
        constraints: pydantic constraints (``ge``, ``gt``, ``le``, ``min_length``).
    """
    env = (PREFIX + name, *aliases)
    return Field(
        default,
        description=description,
        validation_alias=AliasChoices(*env),
        json_schema_extra={
            "env": list(env),
            "key": name if key == "" else key,
            "secret": secret,
            "default_doc": default_doc,
        },
        **constraints,
    )


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of RareGen, read from the environment (see docs/SETTINGS.md)."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True
    )

    # -- process and environment ------------------------------------------------------------
    instance_path: str | None = _setting(
        "INSTANCE_PATH",
        None,
        "The instance folder: the default SQLite file, key files, the development node's "
        "data and outbox.",
        key=None,
        default_doc="`instance/` in the repository",
    )
    role: Role = _setting(
        "ROLE",
        "all",
        "The components this process serves: `all` (publisher and wallet in one app), "
        "`publisher` (the `/v1` API and the internal endpoints), `wallet` (the wallet pages "
        "and `/wallet/api`; publishes go to `RAREGEN_PUBLISHER_URL`).",
    )
    env: EnvName = _setting(
        "ENV",
        "production",
        "`production` refuses to start without a secret key, without a server key (roles "
        "`all` and `publisher`), without a mail server (roles `all` and `wallet`) and when a "
        "second process opens the same SQLite database. `development` (set by `scripts/run`) "
        "serves mailed sign-in codes at `/dev/outbox`; never use it on a server others "
        "reach. `test` (the test suite) has no `/dev/outbox`. Both skip the production "
        "checks and make a missing secret key and server key in the instance folder.",
        key="ENV_NAME",
    )
    secret_key: str | None = _setting(
        "SECRET_KEY",
        None,
        "Key signing the session cookies (a long random string). Required in production; "
        "elsewhere a per-instance `secret_key` file is made when unset.",
        aliases=("SECRET_KEY",),
        secret=True,
    )
    database_url: str | None = _setting(
        "DATABASE_URL",
        None,
        "SQLAlchemy URL of the database (`postgresql://...` uses psycopg 3). In production a "
        "SQLite database serves one process only (an exclusive lock on `<file>.raregen.lock` "
        "beside it): use PostgreSQL for a web app with workers.",
        aliases=("DATABASE_URL",),
        key="SQLALCHEMY_DATABASE_URI",
        default_doc="SQLite file `raregen.sqlite` in the instance folder",
    )
    redis_url: str = _setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis of the RQ queues and the rate limits (`scripts/run` starts an embedded one "
        "when unset).",
        aliases=("REDIS_URL",),
    )
    port: int = _setting(
        "PORT",
        5000,
        "TCP port of the web app of the development run (`scripts/run`, on 127.0.0.1).",
        aliases=("PORT",),
        ge=1,
        le=65535,
    )
    queue_name: str = _setting(
        "QUEUE_NAME", "publish", "Name (prefix) of the RQ queues.", min_length=1
    )
    worker_processes: int = _setting(
        "WORKER_PROCESSES",
        DEFAULT_WORKER_PROCESSES,
        "RQ worker processes `scripts/run` starts; each runs its jobs in-process, one at a "
        "time, so about one per core keeps the cores busy (`WORKERS` overrides it there).",
        ge=1,
    )

    # -- server wallet (docs/PROTOCOL.md §4) -------------------------------------------------------
    server_wif: str | None = _setting(
        "SERVER_WIF",
        None,
        "The server key as a WIF; takes precedence over the key file.",
        secret=True,
    )
    server_key_file: str | None = _setting(
        "SERVER_KEY_FILE",
        None,
        "File holding the server key's WIF. Made (mode 0600) by `flask --app app server-key "
        "new`, or on first use outside production; production refuses to start without it or "
        "`RAREGEN_SERVER_WIF`.",
        default_doc="`server.key` in the instance folder",
    )
    receipt_wif: str | None = _setting(
        "RECEIPT_WIF",
        None,
        "The acceptance-receipt signing key as a WIF (docs/PROOFS.md); never the funds key. "
        "Takes precedence over the key file.",
        secret=True,
    )
    receipt_key_file: str | None = _setting(
        "RECEIPT_KEY_FILE",
        None,
        "File holding the receipt key (hex secret). Made (mode 0600) by `flask --app app "
        "server-key new --receipt`, or on first use outside production; production refuses "
        "to start a publisher without it or `RAREGEN_RECEIPT_WIF`.",
        default_doc="`receipt.key` in the instance folder",
    )
    receipt_deadline_seconds: int = _setting(
        "RECEIPT_DEADLINE_SECONDS",
        6 * 3600,
        "Seconds after acceptance by which a receipt says the record should be in a block.",
        gt=0,
    )
    proof_capture: bool = _setting(
        "PROOF_CAPTURE",
        True,
        "Store each confirmed transaction's merkle path (BRC-74 BUMP) and block header.",
    )
    proof_recheck_blocks: int = _setting(
        "PROOF_RECHECK_BLOCKS",
        6,
        "Confirmations whose blocks are re-checked against the main chain on every "
        "confirmation pass (reorganisations send their jobs back to `sent`).",
        ge=0,
    )
    proof_headers_count: int = _setting(
        "PROOF_HEADERS_COUNT",
        6,
        "Block headers after the proof's block carried in a complete proof file.",
        ge=0,
    )
    network: Network = _setting(
        "NETWORK", "regtest", "The chain: address and WIF prefixes, regtest-only commands."
    )

    # -- broadcasting (docs/PROTOCOL.md §5) --------------------------------------------------------
    broadcasters: Annotated[list[BroadcasterName], NoDecode] = _setting(
        "BROADCASTERS",
        ["node"],
        "Broadcast backends, comma-separated, in failover order.",
        min_length=1,
    )
    node_rpc_url: str = _setting("NODE_RPC_URL", "http://127.0.0.1:18332", "SV Node JSON-RPC URL.")
    node_rpc_user: str = _setting("NODE_RPC_USER", "raregen", "SV Node JSON-RPC user.")
    node_rpc_password: str = _setting(
        "NODE_RPC_PASSWORD",
        "",
        "SV Node JSON-RPC password; when empty, URL, user and password come from "
        "`RAREGEN_NODE_RPC_FILE` if it exists.",
        secret=True,
    )
    node_rpc_file: str | None = _setting(
        "NODE_RPC_FILE",
        None,
        "JSON file `{url, user, password}` of the development node (written by `scripts/run`).",
        default_doc="`node/rpc.json` in the instance folder",
    )
    arc_url: str | None = _setting("ARC_URL", None, "ARC endpoint (backend `arc`).")
    arc_api_key: str | None = _setting(
        "ARC_API_KEY", None, "ARC bearer token (backend `arc`).", secret=True
    )
    woc_url: str | None = _setting("WOC_URL", None, "WhatsOnChain endpoint (backend `woc`).")
    woc_network: WocNetwork = _setting(
        "WOC_NETWORK", "main", "WhatsOnChain network path segment (backend `woc`)."
    )

    # -- fees and pool (docs/PROTOCOL.md §4) -------------------------------------------------------
    fee_rate_sat_per_kb: int = _setting(
        "FEE_RATE_SAT_PER_KB", 100, "Fee rate, satoshis per 1000 bytes.", ge=0
    )
    fee_rate_floor_sat_per_kb: int = _setting(
        "FEE_RATE_FLOOR_SAT_PER_KB",
        1,
        "The fee rate is never below this, satoshis per 1000 bytes.",
        ge=0,
    )
    fee_rate_source: FeeRateSource = _setting(
        "FEE_RATE_SOURCE",
        "config",
        "`config`: `RAREGEN_FEE_RATE_SAT_PER_KB`; `policy`: the broadcaster's policy (ARC "
        "`/v1/policy`, the node's settings), cached `RAREGEN_FEE_RATE_CACHE_SECONDS`, "
        "`RAREGEN_FEE_RATE_SAT_PER_KB` while unknown.",
    )
    fee_rate_cache_seconds: int = _setting(
        "FEE_RATE_CACHE_SECONDS", 300, "How long a policy fee rate is reused.", ge=0
    )
    reservation_timeout_seconds: int = _setting(
        "RESERVATION_TIMEOUT_SECONDS", 300, "UTXO reservation and job lease.", gt=0
    )
    max_attempts: int = _setting(
        "MAX_ATTEMPTS", 8, "Broadcast attempts of a job before it fails.", ge=1
    )
    pool_target_count: int = _setting(
        "POOL_TARGET_COUNT", 200, "Publish UTXOs the pool is refilled to.", ge=0
    )
    pool_utxo_sats: int = _setting(
        "POOL_UTXO_SATS",
        0,
        "Value of each publish UTXO, satoshis; 0 derives it from the fee rate and the "
        "payload limit.",
        ge=0,
    )
    pool_low_water: int = _setting(
        "POOL_LOW_WATER", 50, "Available UTXOs below which the pool is replenished.", ge=0
    )
    max_unconfirmed_depth: int = _setting(
        "MAX_UNCONFIRMED_DEPTH",
        20,
        "Longest chain of unconfirmed transactions the pool builds on.",
        ge=0,
    )

    # -- intake (docs/PROTOCOL.md §2) --------------------------------------------------------------
    max_payload_bytes: int = _setting(
        "MAX_PAYLOAD_BYTES",
        100_000,
        "Size limit of `signedPayload`, bytes (a request body may be twice that plus 4096).",
        gt=0,
    )
    max_clock_skew_seconds: int = _setting(
        "MAX_CLOCK_SKEW_SECONDS", 60, "How far in the future a record's time may be.", ge=0
    )
    max_ttl_seconds: int = _setting(
        "MAX_TTL_SECONDS", 3600, "Longest validity window of a signed record.", gt=0
    )
    publish_rate_limit: str = _setting(
        "PUBLISH_RATE_LIMIT",
        "6000 per minute",
        "Publish requests per client IP address, in the `limits` notation.",
    )
    publish_mode: PublishMode = _setting(
        "PUBLISH_MODE",
        "auto",
        "`auto`: a record is sent at once when the service is quiet, and the records waiting "
        "are taken together (up to `BATCH_SIZE`, one broadcast call) under load, no window; "
        "`immediate`: one transaction per record, one RQ job each; `batch`: records collected "
        "and sent in batches; `packed`: many records in one transaction (docs/PROTOCOL.md §6).",
    )
    auto_pack: bool = _setting(
        "AUTO_PACK",
        False,
        "`auto` mode: put the records waiting into one transaction each run (as `packed` "
        "does, up to `PACKED_MAX_RECORDS`) instead of one transaction per record.",
    )
    auto_collectors: int = _setting(
        "AUTO_COLLECTORS",
        2,
        "`auto` mode: collector runs at once under load (a step took a tenth of `BATCH_SIZE` "
        "or more); one per worker process is enough.",
        ge=1,
        le=16,
    )
    batch_size: int = _setting("BATCH_SIZE", 500, "Records per batch.", gt=0)
    batch_window_seconds: int = _setting(
        "BATCH_WINDOW_SECONDS", 5, "Longest wait for a batch to fill.", ge=0
    )
    batch_run_seconds: int = _setting(
        "BATCH_RUN_SECONDS",
        60,
        "One collector run keeps taking batches while full ones wait, for at most this long.",
        gt=0,
    )
    packed_max_records: int = _setting(
        "PACKED_MAX_RECORDS", 1000, "Packed mode: records per transaction.", gt=0
    )
    packed_max_bytes: int = _setting(
        "PACKED_MAX_BYTES", 1_000_000, "Packed mode: size bound of a transaction, bytes.", gt=0
    )

    # -- periodic tasks ---------------------------------------------------------------------
    confirm_interval_seconds: int = _setting(
        "CONFIRM_INTERVAL_SECONDS", 5, "How often confirmations are checked.", gt=0
    )
    reaper_interval_seconds: int = _setting(
        "REAPER_INTERVAL_SECONDS", 30, "How often expired leases are settled.", gt=0
    )
    sweep_grace_seconds: int = _setting(
        "SWEEP_GRACE_SECONDS",
        30,
        "Age under which a queued job is left to its web process by the sweeper.",
        ge=0,
    )
    settle_dirty_interval_seconds: int = _setting(
        "SETTLE_DIRTY_INTERVAL_SECONDS", 60, "How often dirty UTXOs are settled.", gt=0
    )
    replenish_interval_seconds: int = _setting(
        "REPLENISH_INTERVAL_SECONDS", 30, "How often the pool level is checked.", gt=0
    )
    purge_interval_seconds: int = _setting(
        "PURGE_INTERVAL_SECONDS",
        3600,
        "How often expired wallet one-time codes and key challenges are deleted.",
        gt=0,
    )
    dev_mine_interval_seconds: int = _setting(
        "DEV_MINE_INTERVAL_SECONDS",
        5,
        "Development run: seconds between the regtest blocks it mines.",
        gt=0,
    )

    # -- wallet and web ---------------------------------------------------------------------
    service_token: str | None = _setting(
        "SERVICE_TOKEN",
        None,
        "Bearer token of the wallet's calls to the publisher's internal endpoints.",
        secret=True,
    )
    trusted_proxies: int = _setting(
        "TRUSTED_PROXIES",
        0,
        "Reverse proxies in front of the app whose `X-Forwarded-For/-Proto/-Host` are "
        "trusted (0: none; the peer address is the client).",
        ge=0,
    )
    metrics_token: str | None = _setting(
        "METRICS_TOKEN",
        None,
        "Bearer token of `/metrics`; unset: loopback clients only.",
        secret=True,
    )
    publisher_url: str | None = _setting(
        "PUBLISHER_URL", None, "The publisher's base URL (role `wallet`)."
    )
    public_base_url: str = _setting(
        "PUBLIC_BASE_URL", "", "The wallet's public base URL, for links in mails."
    )
    mail_server: str | None = _setting(
        "MAIL_SERVER",
        None,
        "SMTP server of the sign-in mails. Required in production for roles `all` and "
        "`wallet`; without it the codes go to the log (and in development to "
        "`/dev/outbox`).",
    )
    mail_port: int = _setting("MAIL_PORT", 25, "SMTP port.", ge=1, le=65535)
    mail_use_tls: bool = _setting("MAIL_USE_TLS", False, "SMTP with STARTTLS.")
    mail_use_ssl: bool = _setting("MAIL_USE_SSL", False, "SMTP over TLS.")
    mail_username: str | None = _setting("MAIL_USERNAME", None, "SMTP user.")
    mail_password: str | None = _setting("MAIL_PASSWORD", None, "SMTP password.", secret=True)
    mail_sender: str = _setting(
        "MAIL_SENDER",
        "RareGen <no-reply@raregen.local>",
        "From address of the sign-in mails.",
        key="MAIL_DEFAULT_SENDER",
    )
    otp_validity_seconds: int = _setting(
        "OTP_VALIDITY_SECONDS", 600, "Validity of an emailed sign-in code.", gt=0
    )
    otp_max_tries: int = _setting(
        "OTP_MAX_TRIES", 5, "Wrong tries after which a sign-in code is void.", ge=1
    )
    otp_rate_limit_per_email: str = _setting(
        "OTP_RATE_LIMIT_PER_EMAIL",
        "5 per 15 minutes",
        "Sign-in code requests per address, in the `limits` notation.",
    )
    otp_rate_limit_per_ip: str = _setting(
        "OTP_RATE_LIMIT_PER_IP",
        "20 per hour",
        "Sign-in code requests per client IP, in the `limits` notation.",
    )
    session_lifetime_seconds: int = _setting(
        "SESSION_LIFETIME_SECONDS", 14 * 86400, "Lifetime of a wallet session.", gt=0
    )
    free_monthly_credits: int = _setting(
        "FREE_MONTHLY_CREDITS",
        20,
        "Monthly allowance of a free account, granted on its first publish of the month.",
        ge=0,
    )
    paid_monthly_credits: int = _setting(
        "PAID_MONTHLY_CREDITS", 1000, "Monthly allowance of a paid account.", ge=0
    )
    backup_max_bytes: int = _setting(
        "BACKUP_MAX_BYTES",
        64 * 1024,
        "Size limit of an encrypted wallet backup (decoded ciphertext), bytes.",
        gt=0,
    )
    body_read_timeout_seconds: int = _setting(
        "BODY_READ_TIMEOUT_SECONDS",
        2,
        "Longest wait for the next bytes of a request body read straight from gunicorn's "
        "socket (`raregen.web.bodyread`), seconds; 0: no bound. Behind nginx bodies arrive "
        "whole.",
        ge=0,
    )
    publisher_timeout_seconds: int = _setting(
        "PUBLISHER_TIMEOUT_SECONDS",
        15,
        "Timeout of the wallet's calls to the publisher (role `wallet`).",
        gt=0,
    )
    cookie_secure: bool | None = _setting(
        "COOKIE_SECURE",
        None,
        "Session cookie sent over HTTPS only (`Secure`). Unset: on in production when "
        "`RAREGEN_PUBLIC_BASE_URL` starts with `https://`, off otherwise; set, it wins.",
        key="SESSION_COOKIE_SECURE",
        default_doc="unset",
    )
    # -- webhooks (docs/API.md "Webhooks") ---------------------------------------------------
    webhook_interval_seconds: int = _setting(
        "WEBHOOK_INTERVAL_SECONDS",
        2,
        "How often the periodic delivery run looks for due webhook events (a state change "
        "also starts one at once).",
        gt=0,
    )
    webhook_timeout_seconds: int = _setting(
        "WEBHOOK_TIMEOUT_SECONDS", 10, "Timeout of one webhook POST (connect and read).", gt=0
    )
    webhook_retry_hours: int = _setting(
        "WEBHOOK_RETRY_HOURS",
        24,
        "How long an undelivered webhook event is retried (exponential backoff) before it "
        "is given up.",
        gt=0,
    )
    webhook_retry_base_seconds: int = _setting(
        "WEBHOOK_RETRY_BASE_SECONDS",
        5,
        "Delay after the first failed attempt of an event; doubled after each further one.",
        gt=0,
    )
    webhook_retry_max_seconds: int = _setting(
        "WEBHOOK_RETRY_MAX_SECONDS", 3600, "Longest delay between two attempts.", gt=0
    )
    webhook_disable_after_failures: int = _setting(
        "WEBHOOK_DISABLE_AFTER_FAILURES",
        50,
        "Consecutive failed attempts after which an endpoint is disabled and its owner told.",
        ge=1,
    )
    webhook_max_endpoints: int = _setting(
        "WEBHOOK_MAX_ENDPOINTS", 10, "Webhook endpoints per key or account.", ge=1
    )
    webhook_allow_private_urls: bool | None = _setting(
        "WEBHOOK_ALLOW_PRIVATE_URLS",
        None,
        "Allow webhook URLs whose host resolves to a private, loopback, link-local, "
        "multicast, reserved or unspecified address. Unset: allowed outside production "
        "only.",
        default_doc="unset",
    )

    ratelimit_enabled: bool = _setting("RATELIMIT_ENABLED", True, "Rate limits on.")
    ratelimit_headers: bool = _setting(
        "RATELIMIT_HEADERS_ENABLED",
        False,
        "`X-RateLimit-*` headers on every answer (two more Redis round trips per request; "
        "a 429 carries `Retry-After` either way).",
    )
    log_format: LogFormat = _setting(
        "LOG_FORMAT",
        "text",
        "`text`: plain log lines; `json`: one JSON object a line from web, workers and cron, "
        "with `request_id` and `job_id` (`raregen.logs`, docs/DEPLOY.md).",
    )
    sentry_dsn: str | None = _setting(
        "SENTRY_DSN",
        None,
        "Error reporter (sentry-sdk, Flask and RQ integrations); unset: errors are only logged.",
        secret=True,
    )
    db_pool_pre_ping: bool = _setting(
        "DB_POOL_PRE_PING",
        True,
        "Test every pooled connection with a round trip before use (RQ workers rely on it "
        "after a PostgreSQL restart). Off saves that round trip per request: a dropped "
        "connection then fails its first statement, a publish retries once and other "
        "requests answer 503 (docs/API.md).",
        key=None,
    )

    @field_validator("broadcasters", mode="before")
    @classmethod
    def _split_broadcasters(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("publish_rate_limit", "otp_rate_limit_per_email", "otp_rate_limit_per_ip")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)  # ValueError on a string that is not a rate limit
        return value


# ---------------------------------------------------------------------------------------
# describing fields: error messages and docs/SETTINGS.md
# ---------------------------------------------------------------------------------------


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``annotation`` without ``| None`` and ``Annotated``; and whether it is a list."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0])
    if origin is list:
        inner, _ = _unwrap(typing.get_args(annotation)[0])
        return inner, True
    return annotation, False


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<=")):
            bound = getattr(item, attr, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return " and ".join(parts)


def _kind(name: str) -> tuple[str, str]:
    """(type, allowed values) of field ``name``, as the docs and error messages say them."""
    field = Settings.model_fields[name]
    base, is_list = _unwrap(field.annotation)
    if typing.get_origin(base) is Literal:
        choices = ", ".join(str(c) for c in typing.get_args(base))
        if is_list:
            return "list", f"a comma-separated list of {choices}"
        return "choice", choices
    if base is bool:
        return "boolean", "true or false (also 1/0, yes/no, on/off)"
    if base is int:
        bounds = _bounds(field)
        return "integer", f"an integer {bounds}" if bounds else "an integer"
    if name in ("publish_rate_limit", "otp_rate_limit_per_email", "otp_rate_limit_per_ip"):
        return "string", "a rate limit such as `10 per minute` (`limits` notation)"
    if _bounds(field) or any(getattr(m, "min_length", None) for m in field.metadata):
        return "string", "a non-empty string"
    return "string", "any"


def _field_of_env(env_name: str) -> str | None:
    for name, field in Settings.model_fields.items():
        if env_name in _extra(field).get("env", ()):
            return name
    return None


def _format_errors(exc: ValidationError) -> SettingsError:
    problems = []
    first = None
    for error in exc.errors():
        loc_name = str(error["loc"][0]) if error["loc"] else "?"
        name = _field_of_env(loc_name)
        if name is None:  # not expected: every field is read through its aliases
            problems.append(f"{loc_name}: {error['msg']}")
            first = first or loc_name
            continue
        field = Settings.model_fields[name]
        # the variable that was read: the first of the field's names that is set
        env_name = next((e for e in _extra(field)["env"] if os.environ.get(e)), loc_name)
        first = first or env_name
        value = os.environ.get(env_name, error.get("input"))
        shown = "(hidden)" if _extra(field).get("secret") else repr(value)
        problems.append(f"{env_name}={shown} (allowed values: {_kind(name)[1]})")
    return SettingsError("invalid setting " + "; ".join(problems), first)


def read_settings() -> Settings:
    """Read and validate every setting from the environment.

    Raises:
        SettingsError: a value outside its allowed values (the message names each such
            variable, its value and the allowed values, on one line).
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise _format_errors(exc) from None
    except SourceError as exc:  # a value pydantic-settings could not decode
        raise SettingsError(f"invalid setting: {exc}".replace("\n", " ")) from None


def default_instance_path() -> str:
    """The Flask instance folder: ``RAREGEN_INSTANCE_PATH``, else ``instance/`` in the
    repository."""
    return os.environ.get("RAREGEN_INSTANCE_PATH") or str(ROOT / "instance")


def load_settings(instance_path: str, settings: Settings | None = None) -> dict[str, Any]:
    """All settings as the upper-case dict of ``app.config``.

    Args:
        instance_path: the Flask instance folder; the SQLite file, the dev server key and
            the regtest node's data live there by default.
        settings: already read settings (default: :func:`read_settings`).

    Returns:
        A dict of upper-case setting names for ``app.config``.

    Raises:
        SettingsError: an invalid value (:func:`read_settings`).
    """
    settings = settings or read_settings()
    inst = Path(instance_path)
    config: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        key = _extra(field).get("key")
        if key:
            value = getattr(settings, name)
            config[key] = list(value) if isinstance(value, list) else value
    config["SQLALCHEMY_DATABASE_URI"] = (
        settings.database_url or f"sqlite:///{inst / 'raregen.sqlite'}"
    )
    config["SERVER_KEY_FILE"] = settings.server_key_file or str(inst / "server.key")
    config["RECEIPT_KEY_FILE"] = settings.receipt_key_file or str(inst / "receipt.key")
    config["NODE_RPC_FILE"] = settings.node_rpc_file or str(inst / "node" / "rpc.json")
    config["MAX_CONTENT_LENGTH"] = settings.max_payload_bytes * 2 + 4096
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": settings.db_pool_pre_ping}
    return config


# ---------------------------------------------------------------------------------------
# production start-up checks
# ---------------------------------------------------------------------------------------

#: SQLite lock files this process holds: path -> open descriptor (kept for its lifetime;
#: a process forked from it, such as RQ's scheduler or work horse, shares the lock).
_SQLITE_LOCKS: dict[str, int] = {}


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database.removeprefix("file:")).resolve()


def hold_sqlite_lock(url: str) -> None:
    """Take, for the rest of this process's life, the exclusive lock on
    ``<database>.raregen.lock`` beside the SQLite database of ``url`` (``flock(2)``, released
    by the kernel when the process ends, however it ends). Nothing for other databases.

    Raises:
        SettingsError: another process holds it (its pid is named).
    """
    database = _sqlite_file(url)
    if database is None:
        return
    path = str(database) + ".raregen.lock"
    if path in _SQLITE_LOCKS:
        return
    try:
        database.parent.mkdir(parents=True, exist_ok=True)  # the instance folder, at first
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SettingsError(
            f"RAREGEN_DATABASE_URL: cannot open the lock file {path} beside the SQLite "
            f"database: {exc.strerror}",
            "RAREGEN_DATABASE_URL",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise SettingsError(
            f"RAREGEN_DATABASE_URL: the SQLite database {database} is in use by another "
            f"process (pid {holder}); in production SQLite serves one process (a web app, a "
            "worker and the scheduler are three): use PostgreSQL, or RAREGEN_ENV=development",
            "RAREGEN_DATABASE_URL",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _SQLITE_LOCKS[path] = fd


def check_startup(config: Mapping[str, Any]) -> None:
    """Refuse, in production (``ENV_NAME == "production"``), to start a process that would
    quietly run wrong. Nothing in development or test.

    Refused:

    * no ``SECRET_KEY`` (elsewhere a per-instance file is made);
    * roles ``all`` and ``publisher``: no ``SERVER_WIF`` and no file at ``SERVER_KEY_FILE``
      (elsewhere one is generated; ``flask --app app server-key new`` makes one);
    * roles ``all`` and ``publisher``: no ``RECEIPT_WIF`` and no file at ``RECEIPT_KEY_FILE``;
    * roles ``all`` and ``wallet``: no ``MAIL_SERVER`` (sign-in codes would only be logged);
    * SQLite opened by a second process (:func:`hold_sqlite_lock`, taken here).

    Args:
        config: the app's merged configuration (environment and test overrides).

    Raises:
        SettingsError: one line naming every missing setting, or the SQLite lock holder.
    """
    if config.get("ENV_NAME") != "production":
        return
    role = config.get("ROLE")
    missing: list[tuple[str, str]] = []  # (variable, problem)
    if not config.get("SECRET_KEY"):
        problem = "RAREGEN_SECRET_KEY (or SECRET_KEY) is not set: set a long random string"
        missing.append(("RAREGEN_SECRET_KEY", problem))
    if role in ("all", "publisher") and not config.get("SERVER_WIF"):
        key_file = config.get("SERVER_KEY_FILE")
        if not key_file or not Path(key_file).is_file():
            problem = (
                "no server key: RAREGEN_SERVER_WIF is not set and RAREGEN_SERVER_KEY_FILE "
                f"({key_file}) does not exist: make it with 'flask --app app server-key new'"
            )
            missing.append(("RAREGEN_SERVER_KEY_FILE", problem))
    if role in ("all", "publisher") and not config.get("RECEIPT_WIF"):
        key_file = config.get("RECEIPT_KEY_FILE")
        if not key_file or not Path(key_file).is_file():
            problem = (
                "no receipt key: RAREGEN_RECEIPT_WIF is not set and RAREGEN_RECEIPT_KEY_FILE "
                f"({key_file}) does not exist: make it with "
                "'flask --app app server-key new --receipt'"
            )
            missing.append(("RAREGEN_RECEIPT_KEY_FILE", problem))
    if role in ("all", "wallet") and not config.get("MAIL_SERVER"):
        problem = (
            f"RAREGEN_MAIL_SERVER is not set (RAREGEN_ROLE={role}): sign-in codes would only "
            "be written to the log"
        )
        missing.append(("RAREGEN_MAIL_SERVER", problem))
    if missing:
        raise SettingsError(
            "refusing to start in production (RAREGEN_ENV=production): "
            + "; ".join(problem for _, problem in missing),
            missing[0][0],
        )
    hold_sqlite_lock(str(config.get("SQLALCHEMY_DATABASE_URI") or ""))


def refuse(exc: SettingsError) -> NoReturn:
    """End the process for ``exc``: one line ``raregen: <message>`` on stderr, exit status
    :data:`EXIT_CONFIG`, no traceback. Every entry point calls it (web app, ``worker.py``,
    the ``flask`` commands, ``scripts/run``).

    Under gunicorn it raises gunicorn's ``AppImportError`` instead: gunicorn prints that
    line, and its arbiter stops rather than start the worker again and again.
    """
    line = f"raregen: {exc}"
    if "gunicorn.arbiter" in sys.modules:
        from gunicorn.errors import AppImportError

        raise AppImportError(line) from None
    print(line, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


# ---------------------------------------------------------------------------------------
# docs/SETTINGS.md
# ---------------------------------------------------------------------------------------


def _default_text(name: str) -> str:
    field = Settings.model_fields[name]
    doc = _extra(field).get("default_doc")
    if doc:
        return str(doc)
    default = field.default
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return f"`{','.join(default)}`"
    if default == "":
        return "empty"
    return f"`{default}`"


def settings_markdown() -> str:
    """The settings reference (docs/SETTINGS.md) as Markdown, from :class:`Settings`."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated by `python -m raregen.config --markdown > docs/SETTINGS.md` from the",
        "     fields of raregen/config.py; edit those, not this file. -->",
        "",
        "Every setting is an environment variable. An empty value counts as unset. Where a",
        "setting has a second name, the `RAREGEN_` one wins. A value outside its allowed",
        "values stops every entry point (web app, `worker.py`, the `flask` commands,",
        "`scripts/run`) with one line naming the variable, the value and the allowed values,",
        f"and exit status {EXIT_CONFIG}.",
        "",
        "In production (`RAREGEN_ENV=production`, the default) a process also refuses to",
        "start without `RAREGEN_SECRET_KEY`; without a server key (`RAREGEN_SERVER_WIF`, or",
        "the file `RAREGEN_SERVER_KEY_FILE`, made by `flask --app app server-key new`) for",
        "roles `all` and `publisher`; without `RAREGEN_MAIL_SERVER` for roles `all` and",
        "`wallet`; and on a SQLite database another process has open. Each process of a",
        "production deployment on SQLite takes an exclusive lock (`flock`) on the file",
        "`<database>.raregen.lock` beside the database and keeps it while it runs, so a",
        "second process (a second gunicorn worker, a worker beside the web app, a `flask`",
        "command while the server runs) refuses to start and names the holder's pid. SQLite",
        "in production therefore means one process: use PostgreSQL for a web app with",
        "workers. (Restart such a server: a gunicorn reload starts new workers before the old",
        "ones stop. Processes forked from a holder, such as RQ's scheduler and work horses,",
        "share its lock; so would the workers of gunicorn `--preload`, which the check",
        "cannot tell apart: do not preload on SQLite.)",
        "",
        "| variable | type | default | allowed values | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        env = " / ".join(f"`{e}`" for e in _extra(field)["env"])
        kind, allowed = _kind(name)
        if _extra(field).get("secret"):
            kind += " (secret)"
        lines.append(
            f"| {env} | {kind} | {_default_text(name)} | {allowed} | {field.description} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m raregen.config --markdown``: print docs/SETTINGS.md; without it, validate
    the environment (one line and exit status 78 if invalid)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m raregen.config", description=main.__doc__)
    parser.add_argument("--markdown", action="store_true", help="print docs/SETTINGS.md")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(settings_markdown())
        return 0
    try:
        read_settings()
    except SettingsError as exc:
        refuse(exc)
    print("settings are valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
