"""``raregen``: the command-line client for API users.

Commands::

    raregen keygen [--key FILE]                 make a secp256k1 key file (mode 0600), print the pubkey
    raregen pubkey [--key FILE]                 print the key file's public key
    raregen sign RECORD.json [--type T]         print the v1 request body for the record
    raregen publish RECORD.json [--wait confirmed]  sign, POST /v1/publish, follow the job
    raregen status JOBID                        print the job's status
    raregen verify TXID [--raw HEX|FILE]        verify the records of a transaction locally
    raregen proof JOBID [-o FILE]               save the job's proof file (docs/PROOFS.md)
    raregen verify --proof FILE [--file ORIGINAL] [--check-header node|URL]
                                                check a proof file offline (exit 0 valid,
                                                1 invalid, 3 could not check)

The server is ``--server`` or ``RAREGEN_SERVER`` (default http://127.0.0.1:5000); the key
file is ``--key`` or ``RAREGEN_KEY_FILE`` (default ``~/.config/raregen/key``). The commands
use the client library (:mod:`raregen.client`): retries, errors with their codes. A bad
argument or a refusal is one line on stderr (``raregen: error: ...``) and a non-zero exit:
2 for usage, 1 otherwise (``verify``: 1 no record, 2 an invalid one).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import coincurve

from raregen.client.api import DEFAULT_SERVER, Client, Job, load_key
from raregen.client.errors import RareGenError


class _Group(click.Group):
    """The command group, answering every error in one line without a traceback."""

    def main(
        self,
        args: Any = None,
        prog_name: Any = None,
        complete_var: Any = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(
                args, prog_name or "raregen", complete_var, standalone_mode=False, **extra
            )
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"raregen: error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("raregen: aborted", err=True)
            sys.exit(1)
        except RareGenError as exc:
            click.echo(f"raregen: error: {exc}", err=True)
            sys.exit(1)
        except OSError as exc:
            click.echo(
                f"raregen: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
                err=True,
            )
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _default_key() -> str:
    return os.environ.get("RAREGEN_KEY_FILE") or str(Path.home() / ".config" / "raregen" / "key")


def _load_key(path: str) -> coincurve.PrivateKey:
    if not Path(path).expanduser().exists():
        raise click.ClickException(f"no key file at {path}; run `raregen keygen` first")
    try:
        return load_key(path)
    except (ValueError, OSError):
        raise click.ClickException(f"{path} does not hold a hex secp256k1 private key") from None


def _load_record(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path} as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.ClickException("the record file must hold a JSON object")
    return data


@click.group(cls=_Group, help=__doc__.split("\n\n")[0])
@click.option(
    "--server",
    default=lambda: os.environ.get("RAREGEN_SERVER", DEFAULT_SERVER),
    show_default="RAREGEN_SERVER or http://127.0.0.1:5000",
    help="RareGen base URL.",
)
@click.pass_context
def main(ctx: click.Context, server: str) -> None:
    ctx.obj = {"server": server.rstrip("/")}


@main.command()
@click.option("--key", "key_path", default=_default_key, help="Where to write the key.")
@click.option("--force", is_flag=True, help="Overwrite an existing key file.")
def keygen(key_path: str, force: bool) -> None:
    """Make a new secp256k1 key, write it (hex, mode 0600) and print its public key."""
    path = Path(key_path).expanduser()
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; use --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = coincurve.PrivateKey()
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.secret.hex() + "\n")
    click.echo(key.public_key.format(compressed=True).hex())
    click.echo(f"key written to {path}; register the public key with the operator:", err=True)
    click.echo("  flask --app app keys add <PUBKEY>", err=True)


@main.command()
@click.option("--key", "key_path", default=_default_key, help="Key file.")
def pubkey(key_path: str) -> None:
    """Print the public key (compressed, hex) of the key file."""
    click.echo(_load_key(key_path).public_key.format(compressed=True).hex())


@main.command()
@click.argument("record_file")
@click.option("--key", "key_path", default=_default_key, help="Key file.")
@click.option("--type", "record_type", default=None, help='Record kind, e.g. "work".')
@click.option(
    "--ttl",
    default=600,
    show_default=True,
    type=click.IntRange(1),
    help="Seconds the signature is valid.",
)
@click.pass_obj
def sign(
    obj: dict[str, str], record_file: str, key_path: str, record_type: str | None, ttl: int
) -> None:
    """Print the signed v1 request body for the record in RECORD_FILE."""
    client = Client(obj["server"], _load_key(key_path))
    try:
        body = client.sign(_load_record(record_file), record_type, ttl=ttl)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"cannot sign this record: {exc}") from None
    click.echo(json.dumps(body))


@main.command()
@click.argument("record_file")
@click.option("--key", "key_path", default=_default_key, help="Key file.")
@click.option("--type", "record_type", default=None, help='Record kind, e.g. "work".')
@click.option(
    "--ttl",
    default=600,
    show_default=True,
    type=click.IntRange(1),
    help="Seconds the signature is valid.",
)
@click.option(
    "--wait",
    type=click.Choice(["none", "sent", "confirmed"]),
    default="confirmed",
    show_default=True,
    help="Follow the job until this state.",
)
@click.option(
    "--timeout",
    default=600,
    show_default=True,
    type=click.IntRange(0),
    help="Seconds to wait at most.",
)
@click.pass_obj
def publish(
    obj: dict[str, str],
    record_file: str,
    key_path: str,
    record_type: str | None,
    ttl: int,
    wait: str,
    timeout: int,
) -> None:
    """Sign RECORD_FILE, submit it, and follow the job; prints the txid."""
    client = Client(obj["server"], _load_key(key_path))
    record = _load_record(record_file)
    started = time.monotonic()
    try:
        body = client.sign(record, record_type, ttl=ttl)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"cannot sign this record: {exc}") from None
    job = client.submit(body)
    click.echo(f"job {job.job_id} {job.status}", err=True)
    if wait == "none":
        click.echo(job.job_id)
        return

    def progress(current: Job) -> None:
        extra = f" txid={current.txid}" if current.txid else ""
        if current.block_height is not None:
            extra += f" block={current.block_height}"
        click.echo(f"  [{time.monotonic() - started:6.1f}s] {current.status}{extra}", err=True)

    job.refresh()
    job.wait(until=wait, timeout=timeout, poll=0.5, on_change=progress)
    click.echo(job.txid)


@main.command()
@click.argument("job_id")
@click.pass_obj
def status(obj: dict[str, str], job_id: str) -> None:
    """Print the status of JOB_ID as JSON."""
    click.echo(json.dumps(Client(obj["server"]).status(job_id).data, indent=2))


def _proof_max_bytes() -> int:
    # proof checking needs bsv-sdk (Merkle paths); imported only when a proof is checked so
    # that the client command loads no server-side library (test_client_cli)
    from raregen.proofs.verify import DEFAULT_MAX_BYTES

    value = os.environ.get("RAREGEN_PROOF_MAX_BYTES")
    return int(value) if value and value.isdigit() else DEFAULT_MAX_BYTES


def _verify_proof(
    proof_path: str,
    original: str | None,
    check_header: str | None,
    node_url: str | None,
    node_user: str | None,
    node_password: str | None,
    max_bytes: int,
    as_json: bool,
) -> None:
    """``raregen verify --proof``: every check printed, then what is left to trust."""
    # bsv-sdk only when a proof is checked (see _proof_max_bytes)
    from raregen.proofs import headers
    from raregen.proofs import verify as proofs

    try:
        with open(proof_path, "rb") as fh:
            data = fh.read(max_bytes + 1)
        original_bytes = Path(original).read_bytes() if original else None
    except OSError as exc:
        click.echo(f"could-not-check: PROOF_UNREADABLE: {exc.strerror or exc}", err=True)
        sys.exit(3)
    result = proofs.verify_proof_bytes(data, original=original_bytes, max_bytes=max_bytes)
    source = None
    if check_header and result.verdict == "valid" and result.info.get("status") == "complete":
        block_hash, height = result.info["blockHash"], int(result.info["blockHeight"])
        if check_header == "node":
            if not node_url:
                raise click.UsageError(
                    "--check-header node needs --node-url (or RAREGEN_CHECK_NODE_URL)"
                )
            answer, detail = headers.check_with_node(
                block_hash, height, node_url, node_user, node_password
            )
        else:
            answer, detail = headers.check_with_url(block_hash, height, check_header)
        source = {"answer": answer, "detail": detail}
        if answer == "disagrees":
            result.verdict, result.reason = "invalid", "HEADER_NOT_ON_CHAIN"
        elif answer == "unreachable":
            result.verdict, result.reason = "could-not-check", "HEADER_SOURCE_UNREACHABLE"
        else:
            result.trust = (
                f"nothing more than the header source you named: it has block "
                f"{height} ({block_hash}) on its chain."
            )
    if as_json:
        out = result.to_dict()
        out["headerSource"] = source
        click.echo(json.dumps(out, indent=2))
        sys.exit(result.exit_code)
    marks = {"pass": "ok  ", "fail": "FAIL", "skip": "--  "}
    for check in result.checks:
        detail = f"  ({check.detail})" if check.detail else ""
        click.echo(f"[{marks[check.state]}] {check.code:<22} {check.title}{detail}")
    if source is not None:
        click.echo(f"header source: {source['answer']}: {source['detail']}")
    if result.verdict == "valid":
        if result.info.get("status") == "pending":
            click.echo("verdict: valid (not yet in a block)")
        else:
            click.echo("verdict: valid")
        click.echo(f"left to trust: {result.trust}")
    else:
        click.echo(f"verdict: {result.verdict}: {result.reason}")
    sys.exit(result.exit_code)


@main.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Where to save it (default: raregen-proof-<txid>-<vout>.json, or "
    "raregen-proof-<jobId>.json while pending, in the current directory; '-' prints "
    "it).",
)
@click.pass_obj
def proof(obj: dict[str, str], job_id: str, output: str | None) -> None:
    """Download the proof file of JOB_ID (pending before confirmation, complete after)."""
    doc = Client(obj["server"]).proof(job_id)
    text = json.dumps(doc, indent=2) + "\n"
    if output == "-":
        click.echo(text, nl=False)
        return
    if output is None:
        if doc.get("status") == "complete":
            output = f"raregen-proof-{doc.get('txid')}-{doc.get('vout')}.json"
        else:
            output = f"raregen-proof-{job_id}.json"
        output = Path(output).name
    Path(output).write_text(text, encoding="utf-8")
    click.echo(f"{doc.get('status')} proof saved to {output}", err=True)
    click.echo(output)


@main.command()
@click.argument("txid", required=False)
@click.option(
    "--raw",
    default=None,
    help="The raw transaction as hex, or a file holding it "
    "(default: fetched from the server's /v1/records/TXID).",
)
@click.option(
    "--proof",
    "proof_file",
    default=None,
    help="A raregen-proof file to check offline (instead of TXID).",
)
@click.option(
    "--file",
    "original",
    default=None,
    help="With --proof: the original work, whose SHA-256 must be the contentHash.",
)
@click.option(
    "--check-header",
    default=None,
    metavar="node|URL",
    help="With --proof: ask a header source you name whether the block is on the "
    "chain: 'node' (an SV Node's RPC, --node-url) or a URL answering "
    'GET URL/<blockhash> -> {"height": H} or 404.',
)
@click.option(
    "--node-url",
    default=lambda: os.environ.get("RAREGEN_CHECK_NODE_URL"),
    help="SV Node RPC URL for --check-header node (RAREGEN_CHECK_NODE_URL).",
)
@click.option(
    "--node-user",
    default=lambda: os.environ.get("RAREGEN_CHECK_NODE_USER"),
    help="RPC user (RAREGEN_CHECK_NODE_USER).",
)
@click.option(
    "--node-password",
    default=lambda: os.environ.get("RAREGEN_CHECK_NODE_PASSWORD"),
    help="RPC password (RAREGEN_CHECK_NODE_PASSWORD).",
)
@click.option(
    "--max-bytes",
    type=int,
    default=_proof_max_bytes,
    help="Largest proof file read (RAREGEN_PROOF_MAX_BYTES; default 4 MiB).",
)
@click.option("--json", "as_json", is_flag=True, help="With --proof: print the result as JSON.")
@click.pass_obj
def verify(
    obj: dict[str, str],
    txid: str | None,
    raw: str | None,
    proof_file: str | None,
    original: str | None,
    check_header: str | None,
    node_url: str | None,
    node_user: str | None,
    node_password: str | None,
    max_bytes: int,
    as_json: bool,
) -> None:
    """Verify every RareGen record of transaction TXID from its raw bytes alone; or, with
    --proof FILE, check a proof file offline (exit 0 valid, 1 invalid, 3 could not check)."""
    if proof_file is not None:
        _verify_proof(
            proof_file,
            original,
            check_header,
            node_url,
            node_user,
            node_password,
            max_bytes,
            as_json,
        )
        return
    if txid is None:
        raise click.UsageError("give a TXID, or --proof FILE")
    raw_hex = None
    if raw is not None:
        stripped = raw.strip()
        is_hex = all(c in "0123456789abcdefABCDEF" for c in stripped) and len(stripped) > 64
        if is_hex:
            raw_hex = stripped
        else:
            try:
                raw_hex = Path(raw).read_text().strip()
            except OSError:
                raise click.ClickException(
                    f"--raw is neither hex nor a readable file: {raw}"
                ) from None
    try:
        result = Client(obj["server"]).verify(txid, raw_hex)
    except ValueError as exc:
        raise click.ClickException(f"not a transaction of this txid: {exc}") from None
    if not result.records:
        click.echo(f"{txid}: no RareGen records")
        sys.exit(1)
    for rec in result.records:
        mark = "VALID" if rec.valid else "INVALID"
        click.echo(
            f"{txid}:{rec.vout}  {mark}  pubkey={rec.pubkey33.hex()}  "
            f"layout=v{rec.version} ({rec.scheme or 'malformed'})"
        )
        click.echo(f"  payload: {rec.signed_payload}")
        if rec.error:
            click.echo(f"  note: {rec.error}")
    sys.exit(0 if result.valid else 2)


if __name__ == "__main__":
    main()
