"""The CRM outbox: notes, tasks and status changes waiting for (or delivered to) the CRM.

Every action worth a line in the CRM is first written to the ledger (`crm_entries`, unique
`key`), in the step that did it; delivery to the configured CRM happens later, in batches
(`deliver_pending`). A CRM that is down, or refuses our credentials, leaves the entries
`pending` and the next run delivers them; an entry the CRM refuses for good (no record to
attach it to, a bad property) becomes `failed` with the CRM's reason, and `requeue_failed`
puts it back once that is fixed.

Entry kinds and their payload (anyone may add entries, e.g. for replies received):

- `note`: `text` (what happened, one paragraph), `at` (ISO time), and what a CRM may use to
  attach it: `email`, `customer_name`, plus free details (`stage`, `channel`, `subject`,
  `message_id`, `direction` "out"/"in", `amount_due`, `currency`).
- `task`: `title`, `assignee` (a role such as account_owner, manager, or a person), `due_on`
  (ISO date), `priority` (LOW, MEDIUM, HIGH), `task_type` (TODO, CALL, EMAIL), `note`,
  `email`, `customer_name`.
- `status`: `status` (e.g. on_hold), `reason`, `email`, `customer_name`.

Delivery is at least once: a crash between the CRM's answer and the ledger's update sends
that one entry again on a later run. Concurrent deliveries never take the same entry: each
claims it (state `delivering`) with one conditional UPDATE; a claim left by a crashed worker
is taken again after `CLAIM_LEASE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dunning.connectors.http import AuthError, ConnectorError, Unavailable
from dunning.ledger import Ledger
from dunning.ledger.models import CrmEntry, utcnow

KINDS = ("note", "task", "status")
#: A `delivering` claim older than this was left by a worker that died: it is taken again.
CLAIM_LEASE = timedelta(minutes=10)


class CrmUnavailable(Exception):
    """The CRM cannot take entries now (down, rate limited, refusing our credentials)."""


class CrmRejected(Exception):
    """The CRM refused this entry for good (say why: the message is stored on the entry)."""


@runtime_checkable
class CrmSink(Protocol):
    """Something that records an entry in a CRM and returns the CRM's id for it."""

    crm_name: str

    def deliver(self, entry: CrmEntry) -> str:
        """Record the entry; the CRM's id of what was created (note, task, record)."""
        ...


class LedgerSink:
    """The built-in CRM: the ledger already holds the tasks, statuses and events, so
    delivering an entry only marks it done (the desk shows them)."""

    crm_name = "ledger"

    def deliver(self, entry: CrmEntry) -> str:
        """Nothing to send; the entry's own id."""
        return f"ledger:{entry.kind}:{entry.id}"


@dataclass
class DeliveryReport:
    """What one delivery batch did; `error` says why it stopped early (CRM down)."""

    crm: str
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    error: str = ""

    def merge(self, other: DeliveryReport) -> DeliveryReport:
        """This batch followed by `other` (pending and error are the latest)."""
        return DeliveryReport(
            crm=other.crm,
            delivered=self.delivered + other.delivered,
            failed=self.failed + other.failed,
            pending=other.pending,
            error=other.error or self.error,
        )


# -- queueing --------------------------------------------------------------------------------
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
    if kind not in KINDS:
        raise ValueError(f"unknown CRM entry kind {kind!r}; use one of {', '.join(KINDS)}")
    row = {
        "key": key,
        "kind": kind,
        "invoice_number": invoice_number,
        "customer_id": customer_id,
        "payload": _jsonable(payload),
        "state": "pending",
        "crm": "",
        "external_id": "",
        "attempts": 0,
        "error": "",
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    try:
        with ledger.engine.begin() as conn:
            conn.execute(sa.insert(CrmEntry), row)
    except IntegrityError:
        return False
    return True


def queue_note(
    ledger: Ledger,
    *,
    key: str,
    text: str,
    invoice_number: str = "",
    customer_id: str = "",
    **details: Any,
) -> bool:
    """Queue a note (`text` plus any details) for the CRM; False if already queued."""
    payload = {"text": text, "at": utcnow().isoformat(), **details}
    return queue_entry(
        ledger,
        key=key,
        kind="note",
        payload=payload,
        invoice_number=invoice_number,
        customer_id=customer_id,
    )


def queue_task(
    ledger: Ledger,
    *,
    key: str,
    title: str,
    assignee: str,
    due_on: date | None,
    invoice_number: str = "",
    customer_id: str = "",
    priority: str = "MEDIUM",
    task_type: str = "TODO",
    **details: Any,
) -> bool:
    """Queue a human task for the CRM; False if already queued."""
    payload = {
        "title": title,
        "assignee": assignee,
        "due_on": due_on.isoformat() if due_on else None,
        "priority": priority,
        "task_type": task_type,
        **details,
    }
    return queue_entry(
        ledger,
        key=key,
        kind="task",
        payload=payload,
        invoice_number=invoice_number,
        customer_id=customer_id,
    )


def queue_status(
    ledger: Ledger,
    *,
    key: str,
    status: str,
    reason: str = "",
    invoice_number: str = "",
    customer_id: str = "",
    **details: Any,
) -> bool:
    """Queue a customer status change for the CRM; False if already queued."""
    return queue_entry(
        ledger,
        key=key,
        kind="status",
        payload={"status": status, "reason": reason, **details},
        invoice_number=invoice_number,
        customer_id=customer_id,
    )


# -- delivering ------------------------------------------------------------------------------
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


def _takeable() -> sa.ColumnElement[bool]:
    table = CrmEntry.__table__
    return (table.c.state == "pending") | (
        (table.c.state == "delivering") & (table.c.updated_at < utcnow() - CLAIM_LEASE)
    )


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


def deliver_pending(ledger: Ledger, sink: CrmSink, *, limit: int = 200) -> DeliveryReport:
    """Deliver up to `limit` pending entries to `sink`, oldest first.

    Stops at the first sign the CRM is unavailable (network, 5xx/429 after retries, refused
    credentials): that entry and the rest stay pending for the next run. An entry the CRM
    refuses for good, or whose delivery fails in a way we did not expect, is marked failed
    with the reason (`requeue_failed` retries it) and the batch goes on.
    """
    report = DeliveryReport(crm=sink.crm_name)
    if isinstance(sink, LedgerSink):
        report.delivered = _done_in_ledger(ledger, limit)
        report.pending = count_by_state(ledger).get("pending", 0)
        return report
    for entry in pending_entries(ledger, limit):
        if not claim_entry(ledger, entry):
            continue
        try:
            external_id = sink.deliver(entry)
        except (CrmUnavailable, Unavailable, AuthError) as exc:
            mark_failed(ledger, entry.key, str(exc), crm=sink.crm_name, permanent=False)
            report.error = str(exc)
            break
        except (CrmRejected, ConnectorError) as exc:
            mark_failed(ledger, entry.key, str(exc), crm=sink.crm_name, permanent=True)
            report.failed += 1
            continue
        except Exception as exc:  # an answer we did not expect: this entry, not the queue
            error = f"unexpected {type(exc).__name__}: {exc}"
            mark_failed(ledger, entry.key, error, crm=sink.crm_name, permanent=True)
            report.failed += 1
            continue
        mark_delivered(ledger, entry.key, crm=sink.crm_name, external_id=external_id)
        report.delivered += 1
    report.pending = count_by_state(ledger).get("pending", 0)
    return report


def _done_in_ledger(ledger: Ledger, limit: int) -> int:
    """What `LedgerSink` delivery amounts to, for a whole batch in one statement: the
    oldest `limit` takeable entries marked done, each with its `ledger:kind:id` id."""
    table = CrmEntry.__table__
    batch = sa.select(table.c.id).where(_takeable()).order_by(table.c.id).limit(limit)
    external_id = sa.literal("ledger:") + table.c.kind + ":" + sa.cast(table.c.id, sa.String)
    with ledger.engine.begin() as conn:
        done = conn.execute(
            sa.update(table)
            .where(table.c.id.in_(batch.scalar_subquery()), _takeable())
            .values(
                state="done",
                crm=LedgerSink.crm_name,
                external_id=external_id,
                error="",
                attempts=table.c.attempts + 1,
                updated_at=utcnow(),
            )
        )
    return done.rowcount


def entry_text(entry: CrmEntry) -> str:
    """One human-readable paragraph for the entry, for CRMs that take free text."""
    p = entry.payload or {}
    if entry.kind == "note":
        return str(p.get("text") or "")
    if entry.kind == "task":
        lines = [str(p.get("title") or "")]
        if p.get("note"):
            lines.append(str(p["note"]))
        if entry.invoice_number:
            lines.append(f"Invoice {entry.invoice_number}.")
        return "\n".join(line for line in lines if line)
    reason = f" ({p['reason']})" if p.get("reason") else ""
    return f"Customer collection status set to {p.get('status')}{reason}."


def _update(ledger: Ledger, key: str, **values: Any) -> None:
    table = CrmEntry.__table__
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(table).where(table.c.key == key).values(updated_at=utcnow(), **values)
        )


def _jsonable(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in payload.items()}
