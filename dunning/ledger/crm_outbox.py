"""The CRM outbox's rows (`crm_entries`): queueing, claiming and marking entries.

What an entry means and how it reaches a CRM is `dunning.crm`'s business; this module is
the SQL behind it. Every write is one statement (an INSERT against the unique `key`, or a
conditional UPDATE), so concurrent sweeps and deliveries never queue or take an entry twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dunning.ledger.models import CrmEntry, utcnow

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

KINDS = ("note", "task", "status")
#: A `delivering` claim older than this was left by a worker that died: it is taken again.
CLAIM_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class QueuedEntry:
    """A CRM entry to queue together with the step that did it (a sent message's note goes
    in the same transaction as its `sent` state: `Ledger.record_sent`)."""

    key: str
    kind: str
    payload: dict[str, Any]
    invoice_number: str = ""
    customer_id: str = ""

    def row(self) -> dict[str, Any]:
        """The pending `crm_entries` row (see `entry_row`)."""
        return entry_row(
            key=self.key,
            kind=self.kind,
            payload=self.payload,
            invoice_number=self.invoice_number,
            customer_id=self.customer_id,
        )


def entry_row(
    *,
    key: str,
    kind: str,
    payload: dict[str, Any],
    invoice_number: str = "",
    customer_id: str = "",
) -> dict[str, Any]:
    """A pending `crm_entries` row, every column filled (a Core INSERT skips model defaults).

    Raises:
        ValueError: an unknown entry kind.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown CRM entry kind {kind!r}; use one of {', '.join(KINDS)}")
    now = utcnow()
    return {
        "key": key,
        "kind": kind,
        "invoice_number": invoice_number,
        "customer_id": customer_id,
        "payload": jsonable(payload),
        "state": "pending",
        "crm": "",
        "external_id": "",
        "attempts": 0,
        "error": "",
        "created_at": now,
        "updated_at": now,
    }


def task_payload(
    *,
    title: str,
    assignee: str,
    due_on: date | None,
    priority: str = "MEDIUM",
    task_type: str = "TODO",
    **details: Any,
) -> dict[str, Any]:
    """The payload of a `task` entry (see `dunning.crm` for the fields a CRM reads)."""
    return {
        "title": title,
        "assignee": assignee,
        "due_on": due_on.isoformat() if due_on else None,
        "priority": priority,
        "task_type": task_type,
        **details,
    }


def queue_entry(
    ledger: Ledger,
    *,
    key: str,
    kind: str,
    payload: dict[str, Any],
    invoice_number: str = "",
    customer_id: str = "",
) -> bool:
    """Queue an entry once per key; False if one with this key was already queued.

    Example:
        >>> queue_entry(ledger, key="F-1:overdue_7:email:note", kind="note",
        ...             invoice_number="F-1", customer_id="C1",
        ...             payload={"text": "Reminder overdue_7 sent to ap@c1.example"})
    """
    row = entry_row(
        key=key,
        kind=kind,
        payload=payload,
        invoice_number=invoice_number,
        customer_id=customer_id,
    )
    try:
        with ledger.engine.begin() as conn:
            conn.execute(sa.insert(CrmEntry), row)
    except IntegrityError:
        return False
    return True


def pending_entries(ledger: Ledger, limit: int | None = None) -> list[CrmEntry]:
    """Entries waiting for the CRM (and claims abandoned by a dead worker), oldest first."""
    stmt = sa.select(CrmEntry).where(_takeable()).order_by(CrmEntry.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    with ledger.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [CrmEntry.model_validate(dict(r)) for r in rows]


def count_by_state(ledger: Ledger) -> dict[str, int]:
    """How many entries are pending, delivering, done and failed."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(CrmEntry.state, sa.func.count()).group_by(CrmEntry.state)
        ).all()
    return {state: int(n) for state, n in rows}


def claim_entry(ledger: Ledger, entry: CrmEntry) -> bool:
    """Take a pending entry for delivery; False if another delivery took it first."""
    table = CrmEntry.__table__
    with ledger.engine.begin() as conn:
        taken = conn.execute(
            sa.update(table)
            .where(table.c.id == entry.id, table.c.attempts == entry.attempts, _takeable())
            .values(state="delivering", attempts=entry.attempts + 1, updated_at=utcnow())
        )
    return taken.rowcount == 1


def mark_delivered(ledger: Ledger, key: str, *, crm: str, external_id: str) -> None:
    """The CRM took the entry and gave it this id."""
    _update(ledger, key, state="done", crm=crm, external_id=str(external_id)[:200], error="")


def mark_failed(ledger: Ledger, key: str, error: str, *, crm: str, permanent: bool) -> None:
    """Record why delivery failed; a permanent failure stops retries (`failed`)."""
    _update(ledger, key, state="failed" if permanent else "pending", crm=crm, error=error[:1000])


def requeue_failed(ledger: Ledger, crm: str | None = None) -> int:
    """Put failed entries back in the queue (after fixing what the CRM complained about)."""
    table = CrmEntry.__table__
    stmt = sa.update(table).where(table.c.state == "failed")
    if crm:
        stmt = stmt.where(table.c.crm == crm)
    with ledger.engine.begin() as conn:
        return conn.execute(stmt.values(state="pending", updated_at=utcnow())).rowcount


def mark_batch_done(ledger: Ledger, limit: int, *, crm: str) -> int:
    """Mark the oldest `limit` takeable entries done in one statement, each with the id
    `<crm>:<kind>:<entry id>` (the built-in ledger CRM's delivery); returns how many."""
    table = CrmEntry.__table__
    batch = sa.select(table.c.id).where(_takeable()).order_by(table.c.id).limit(limit)
    external_id = sa.literal(f"{crm}:") + table.c.kind + ":" + sa.cast(table.c.id, sa.String)
    with ledger.engine.begin() as conn:
        done = conn.execute(
            sa.update(table)
            .where(table.c.id.in_(batch.scalar_subquery()), _takeable())
            .values(
                state="done",
                crm=crm,
                external_id=external_id,
                error="",
                attempts=table.c.attempts + 1,
                updated_at=utcnow(),
            )
        )
    return done.rowcount


def _takeable() -> sa.ColumnElement[bool]:
    table = CrmEntry.__table__
    return (table.c.state == "pending") | (
        (table.c.state == "delivering") & (table.c.updated_at < utcnow() - CLAIM_LEASE)
    )


def _update(ledger: Ledger, key: str, **values: Any) -> None:
    table = CrmEntry.__table__
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(table).where(table.c.key == key).values(updated_at=utcnow(), **values)
        )


def jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    """Dates as ISO strings, for a JSON column (payloads, event details)."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in detail.items()}
