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
- `task`: `title`, `assignee` (a person's email, or a role such as account_owner, manager
  when nobody fills it), `role` (the policy's role it was resolved from, if any), `due_on`
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
from datetime import date
from typing import Any, Protocol, runtime_checkable

from dunning.connectors.http import AuthError, ConnectorError, Unavailable
from dunning.ledger import Ledger
from dunning.ledger.crm_outbox import (
    CLAIM_LEASE,
    KINDS,
    QueuedEntry,
    claim_entry,
    count_by_state,
    mark_batch_done,
    mark_delivered,
    mark_failed,
    pending_entries,
    queue_entry,
    requeue_failed,
    task_payload,
)
from dunning.ledger.models import CrmEntry, utcnow

__all__ = [
    "CLAIM_LEASE",
    "KINDS",
    "QueuedEntry",
    "CrmRejected",
    "CrmSink",
    "CrmUnavailable",
    "DeliveryReport",
    "LedgerSink",
    "claim_entry",
    "count_by_state",
    "deliver_pending",
    "entry_text",
    "mark_delivered",
    "mark_failed",
    "note_entry",
    "pending_entries",
    "queue_entry",
    "queue_note",
    "queue_status",
    "queue_task",
    "requeue_failed",
]


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


# -- queueing (the rows are `dunning.ledger.crm_outbox`'s) ---------------------------------------
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


def note_entry(
    *,
    key: str,
    text: str,
    invoice_number: str = "",
    customer_id: str = "",
    **details: Any,
) -> QueuedEntry:
    """The note `queue_note` would queue, as a value: a sent message's note is handed to
    `dunning.delivery.deliver`, which records it in the transaction that marks it sent."""
    payload = {"text": text, "at": utcnow().isoformat(), **details}
    return QueuedEntry(key, "note", payload, invoice_number, customer_id)


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
    """Queue a human task for the CRM; False if already queued.

    A task opened in the ledger is queued by `Ledger.open_task` itself; this is for a task
    that exists only in the CRM.
    """
    payload = task_payload(
        title=title,
        assignee=assignee,
        due_on=due_on,
        priority=priority,
        task_type=task_type,
        **details,
    )
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
    entry = status_entry(
        key=key,
        status=status,
        reason=reason,
        invoice_number=invoice_number,
        customer_id=customer_id,
        **details,
    )
    return queue_entry(
        ledger,
        key=entry.key,
        kind=entry.kind,
        payload=entry.payload,
        invoice_number=entry.invoice_number,
        customer_id=entry.customer_id,
    )


def status_entry(
    *,
    key: str,
    status: str,
    reason: str = "",
    invoice_number: str = "",
    customer_id: str = "",
    **details: Any,
) -> QueuedEntry:
    """The status change `queue_status` would queue, as a value (recorded with the step
    that made it: `Ledger.record_sent`'s `then`)."""
    payload = {"status": status, "reason": reason, **details}
    return QueuedEntry(key, "status", payload, invoice_number, customer_id)


# -- delivering ------------------------------------------------------------------------------
def deliver_pending(ledger: Ledger, sink: CrmSink, *, limit: int = 200) -> DeliveryReport:
    """Deliver up to `limit` pending entries to `sink`, oldest first.

    Stops at the first sign the CRM is unavailable (network, 5xx/429 after retries, refused
    credentials): that entry and the rest stay pending for the next run. An entry the CRM
    refuses for good, or whose delivery fails in a way we did not expect, is marked failed
    with the reason (`requeue_failed` retries it) and the batch goes on.
    """
    report = DeliveryReport(crm=sink.crm_name)
    if isinstance(sink, LedgerSink):
        # The ledger already holds what the entries say: the whole batch is done at once.
        report.delivered = mark_batch_done(ledger, limit, crm=sink.crm_name)
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
