"""Operator commands: ``flask --app app audit verify`` and ``flask --app app audit tail``."""

from __future__ import annotations

import json
import re

import click
from flask import Flask
from flask.cli import AppGroup

import raregen.audit as audit
from raregen.db import transaction

audit_cli = AppGroup("audit", help="Check and read the hash-chained audit log.")

_ANCHOR = re.compile(r"([0-9]+):([0-9a-fA-F]{64})")


def _anchor(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> tuple[int, str] | None:
    if value is None:
        return None
    match = _ANCHOR.fullmatch(value.strip())
    if match is None:
        raise click.BadParameter("expected SEQ:HASH (HASH: 64 hex digits)")
    return int(match.group(1)), match.group(2).lower()


@audit_cli.command("verify")
@click.option(
    "--anchor",
    callback=_anchor,
    default=None,
    metavar="SEQ:HASH",
    help="An entry noted earlier (the head this command printed): it must still be there "
    "with this hash. Catches entries cut from the end or a chain rewritten whole.",
)
def audit_verify(anchor: tuple[int, str] | None) -> None:
    """Walk the chain; report the first edited, deleted, inserted or reordered entry.

    Exit 0 with one summary line (entries, head seq and hash: note it down as a later
    --anchor); exit 1 with one line naming the first broken entry.
    """
    with transaction():
        report = audit.verify(anchor)
    if report.problem is not None:
        raise click.ClickException(f"audit log BROKEN: {report.problem.message}")
    if report.head_seq is None:
        click.echo("audit log intact: 0 entries")
        return
    click.echo(
        f"audit log intact: {report.count} entries, head seq {report.head_seq} "
        f"hash {report.head_hash}"
    )


@audit_cli.command("tail")
@click.option(
    "-n",
    "count",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many of the newest entries.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_tail(count: int, as_json: bool) -> None:
    """Show the newest entries, oldest of them first."""
    with transaction():
        entries = audit.tail(count)
    for entry in entries:
        if as_json:
            click.echo(json.dumps(entry, sort_keys=True, ensure_ascii=False))
            continue
        detail = "" if entry["detail"] is None else json.dumps(entry["detail"], sort_keys=True)
        click.echo(
            f"{entry['seq']:>8}  {entry['created_at']}  {entry['actor']:20}  "
            f"{entry['action']:32}  {entry['subject'] or '-'}  {detail}  "
            f"{entry['hash'][:16]}"
        )


def register(app: Flask) -> None:
    """Add the ``audit`` command group to ``app`` (every role: both write the log)."""
    app.cli.add_command(audit_cli)
