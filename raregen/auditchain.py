"""The hash chain of the audit log: canonical text of an entry, its SHA-256, and the walk
that finds the first broken link.

Pure code: imports neither Flask nor the database, so the database triggers (PostgreSQL
computes the same text in SQL; SQLite calls :func:`sqlite_entry_hash`) and the verifier
share one definition. docs/OPERATIONS.md ("Audit log") describes the serialisation.

Canonical text of an entry (UTF-8, then SHA-256, lowercase hex)::

    raregen-audit-v1
    <seq>
    <id>
    <created_at>
    <actor>
    <action>
    <subject>
    <detail>
    <prev_hash>

each field on its own line (the lines joined by ``\\n``, no newline at the end), written as
``<n>:<value>`` where ``n`` is the length of the value's UTF-8 bytes (so a value holding a
newline or a colon cannot be confused with the next field), or ``~`` for NULL. Integers are
decimal; ``created_at`` (naive UTC) is ``YYYY-MM-DDTHH:MM:SS.ffffff``. ``prev_hash`` of the
first entry (``seq`` 1) is :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

#: ``prev_hash`` of the first entry of the chain: 64 zeros.
GENESIS = "0" * 64
#: First line of the canonical text (changes if the serialisation ever does).
VERSION_LINE = "raregen-audit-v1"


def _field(value: str | int | None) -> str:
    if value is None:
        return "~"
    text = str(value)
    return f"{len(text.encode('utf-8'))}:{text}"


def timestamp_text(value: datetime | str) -> str:
    """``created_at`` as the canonical text ``YYYY-MM-DDTHH:MM:SS.ffffff``.

    Args:
        value: a naive UTC datetime, or the text SQLite stores (any form
            :meth:`datetime.fromisoformat` reads, e.g. ``2026-11-29 12:00:00.000123``).

    Raises:
        ValueError: text that is not a date and time.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


def canonical(
    seq: int,
    entry_id: int,
    created_at: datetime | str,
    actor: str,
    action: str,
    subject: str | None,
    detail: str | None,
    prev_hash: str,
) -> str:
    """The canonical text of one entry (see the module docstring)."""
    fields = (seq, entry_id, timestamp_text(created_at), actor, action, subject, detail, prev_hash)
    return "\n".join([VERSION_LINE, *(_field(f) for f in fields)])


def entry_hash(
    seq: int,
    entry_id: int,
    created_at: datetime | str,
    actor: str,
    action: str,
    subject: str | None,
    detail: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 (FIPS 180-4) of the entry's canonical UTF-8 text, lowercase hex (64 chars)."""
    text = canonical(seq, entry_id, created_at, actor, action, subject, detail, prev_hash)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sqlite_entry_hash(*args: object) -> str:
    """:func:`entry_hash` as the SQLite function ``raregen_audit_hash`` (8 arguments, in the
    order of :func:`canonical`), registered on every SQLite connection of the app and called
    by the chain trigger."""
    seq, entry_id, created_at, actor, action, subject, detail, prev_hash = args
    return entry_hash(
        int(seq),  # type: ignore[call-overload]
        int(entry_id),  # type: ignore[call-overload]
        str(created_at),
        str(actor),
        str(action),
        None if subject is None else str(subject),
        None if detail is None else str(detail),
        str(prev_hash),
    )


@dataclass(frozen=True)
class Entry:
    """One audit row as the verifier reads it (``seq``, ``prev_hash``, ``hash`` None on a row
    the chain trigger never saw)."""

    id: int
    seq: int | None
    created_at: datetime | str
    actor: str
    action: str
    subject: str | None
    detail: str | None
    prev_hash: str | None
    hash: str | None

    def computed(self, seq: int | None = None) -> str:
        """The hash this row's fields give, with its own ``seq`` or the one given."""
        return entry_hash(
            self.seq if seq is None else seq,  # type: ignore[arg-type]
            self.id,
            self.created_at,
            self.actor,
            self.action,
            self.subject,
            self.detail,
            self.prev_hash or "",
        )


@dataclass(frozen=True)
class Problem:
    """The first break found: the entry (``entry_id``, ``seq``), a kind (``edited``,
    ``deleted``, ``inserted``, ``reordered``, ``unchained``, ``anchor``) and one line for
    the operator."""

    entry_id: int | None
    seq: int | None
    kind: str
    message: str


@dataclass(frozen=True)
class Report:
    """Outcome of :func:`verify_entries`: entries checked, the head (last ``seq`` and its
    hash; None for an empty log) and the first problem (None: the chain is intact)."""

    count: int
    head_seq: int | None
    head_hash: str | None
    problem: Problem | None


def _diagnose_link(entry: Entry, prev: Entry | None, owner: dict[str, Entry]) -> Problem:
    """Name what is wrong with ``entry`` whose hash or ``prev_hash`` does not fit after
    ``prev`` (None: it is the first entry). ``owner`` maps each hash seen so far and later to
    its entry."""
    expected_seq = 1 if prev is None else (prev.seq or 0) + 1
    own_ok = entry.hash == entry.computed()
    linked = owner.get(entry.prev_hash or "")
    if entry.prev_hash == "" or entry.prev_hash is None:
        linked = None
    # where the entry was chained: right after the entry whose hash it names
    chained_at = (
        (linked.seq or 0) + 1 if linked is not None else (1 if entry.prev_hash == GENESIS else None)
    )
    if own_ok:
        if entry.seq is not None and entry.seq > expected_seq and chained_at != expected_seq:
            missing = entry.seq - expected_seq
            span = f"seq {expected_seq}" if missing == 1 else f"seq {expected_seq}..{entry.seq - 1}"
            return Problem(
                entry.id,
                entry.seq,
                "deleted",
                f"entry {entry.id} (seq {entry.seq}): {missing} entr{'y' if missing == 1 else 'ies'}"
                f" before it deleted ({span} missing)",
            )
        if chained_at is not None and chained_at != entry.seq:
            return Problem(
                entry.id,
                entry.seq,
                "reordered",
                f"entry {entry.id} (seq {entry.seq}): reordered, its predecessor is entry "
                f"{linked.id if linked else '-'} (seq {chained_at - 1}), not "
                f"{'the chain start' if prev is None else f'entry {prev.id}'}",
            )
        return Problem(
            entry.id,
            entry.seq,
            "inserted",
            f"entry {entry.id} (seq {entry.seq}): inserted, its prev_hash names no entry of "
            "the chain",
        )
    # the stored hash does not match the fields at this seq
    if (
        chained_at is not None
        and chained_at != entry.seq
        and entry.hash == entry.computed(chained_at)
    ):
        if prev is not None and chained_at == prev.seq:
            return Problem(
                prev.id,
                prev.seq,
                "inserted",
                f"entry {prev.id} (seq {prev.seq}): inserted, entry {entry.id} after it was "
                f"chained at seq {chained_at} directly after entry {linked.id if linked else '-'}",
            )
        return Problem(
            entry.id,
            entry.seq,
            "reordered",
            f"entry {entry.id} (seq {entry.seq}): reordered, it was chained at seq {chained_at}",
        )
    return Problem(
        entry.id,
        entry.seq,
        "edited",
        f"entry {entry.id} (seq {entry.seq}): edited, its hash does not match its fields",
    )


def verify_entries(entries: Iterable[Entry], *, anchor: tuple[int, str] | None = None) -> Report:
    """Walk the chain and report the first broken entry.

    Args:
        entries: every row of ``audit_log``, chained ones by ``seq`` ascending, then the
            rows without ``seq`` (as :func:`raregen.audit.verify` reads them). Read twice:
            pass a list.
        anchor: ``(seq, hash)`` noted down earlier (e.g. from ``audit verify``'s last line):
            that entry must still be there with that hash. Catches what a chain alone cannot:
            entries cut from the end, or a chain rewritten from the start.

    Returns:
        :class:`Report`. The checks, in chain order: the row has ``seq`` and ``hash``
        (``unchained``: written past the trigger), its stored hash matches its fields
        (``edited``, or ``reordered``/``inserted`` when it matches them at the ``seq`` it
        was chained at), ``prev_hash`` is the previous entry's hash and no ``seq`` is
        skipped (``deleted``, ``inserted``, ``reordered``); the first entry is ``seq`` 1 with
        :data:`GENESIS`.
    """
    rows = list(entries)
    owner = {e.hash: e for e in rows if e.hash}
    prev: Entry | None = None
    count = 0
    for entry in rows:
        if entry.seq is None or entry.hash is None or entry.prev_hash is None:
            return Report(
                count,
                prev.seq if prev else None,
                prev.hash if prev else None,
                Problem(
                    entry.id,
                    entry.seq,
                    "unchained",
                    f"entry {entry.id} (seq -): inserted outside the chain (no seq, prev_hash or hash)",
                ),
            )
        expected_seq = 1 if prev is None else (prev.seq or 0) + 1
        expected_prev = GENESIS if prev is None else prev.hash
        if (
            entry.seq != expected_seq
            or entry.prev_hash != expected_prev
            or entry.hash != entry.computed()
        ):
            problem = _diagnose_link(entry, prev, owner)
            return Report(count, prev.seq if prev else None, prev.hash if prev else None, problem)
        prev = entry
        count += 1
    head_seq, head_hash = (prev.seq, prev.hash) if prev else (None, None)
    if anchor is not None:
        seq, expected = anchor
        found = next((e for e in rows if e.seq == seq), None)
        if found is None or found.hash != expected.lower():
            what = "missing (cut from the end?)" if found is None else "has another hash"
            return Report(
                count,
                head_seq,
                head_hash,
                Problem(
                    found.id if found else None,
                    seq,
                    "anchor",
                    f"anchor seq {seq}: {what}; the log was "
                    + ("truncated" if found is None else "rewritten")
                    + " after the anchor was noted",
                ),
            )
    return Report(count, head_seq, head_hash, None)
