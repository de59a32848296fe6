"""The customer's case in the ledger: payments that owe a thank-you, promises that owe a
confirmation, ladder statuses to clear, a customer's open disputes.

What is done with these rows (messages, CRM entries) is `dunning.thanks`'s and the desk's
business; this module is the SQL behind it. Every query is bounded by a time window or one
customer, so a sweep on a large ledger pays only for the recent payments and promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dunning.ledger.models import (
    Action,
    ActionState,
    CrmEntry,
    CustomerStatus,
    Event,
    InvoiceRecord,
    Pause,
    Promise,
    PromiseState,
    utcnow,
)

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

#: Invoice statuses whose invoice owes nothing any more.
_CLOSED = ("paid", "cancelled")


def paid_after_reminder(
    ledger: Ledger,
    *,
    since: datetime,
    reminder_stages: Iterable[str],
    done_note_suffix: str,
    invoices: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Invoices an `invoice_paid` event (source sync or webhook) reported since `since`, for
    which a reminder of one of `reminder_stages` went out to the customer (sent, on a
    message channel), and whose payment note is not queued yet (CRM key `<invoice>` +
    `done_note_suffix`): the payments still to act on. Oldest payment first.

    Each row: the ledger's invoice columns plus `paid_at` and `reminded_amount` (the largest
    amount a sent reminder asked for: what the customer paid).
    """
    stages = list(reminder_stages)
    reminded = (
        sa.select(
            Action.invoice_number.label("number"),
            sa.func.max(Action.amount_due).label("reminded_amount"),
        )
        .where(
            Action.state == ActionState.sent.value,
            # Neither a human task nor an internal stage (channel "none") reached the customer.
            Action.channel.not_in(("task", "none")),
            Action.stage.in_(stages),
        )
        .group_by(Action.invoice_number)
        .subquery()
    )
    paid = (
        sa.select(Event.invoice_number.label("number"), sa.func.max(Event.at).label("paid_at"))
        .where(Event.kind == "invoice_paid", Event.at >= since)
        .group_by(Event.invoice_number)
        .subquery()
    )
    inv = InvoiceRecord.__table__
    noted = sa.select(CrmEntry.key).where(
        CrmEntry.key == inv.c.invoice_number.concat(done_note_suffix)
    )
    stmt = (
        sa.select(inv, paid.c.paid_at, reminded.c.reminded_amount)
        .join(paid, paid.c.number == inv.c.invoice_number)
        .join(reminded, reminded.c.number == inv.c.invoice_number)
        .where(~sa.exists(noted))
        .order_by(paid.c.paid_at, inv.c.invoice_number)
    )
    if invoices is not None:
        stmt = stmt.where(inv.c.invoice_number.in_(list(invoices)))
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def recent_open_promises(
    ledger: Ledger, *, since: datetime, invoices: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Open promises made since `since`, with their invoice's ledger columns (the invoice's
    columns win over the promise's on a name clash; `promise_id` is the promise's id)."""
    inv = InvoiceRecord.__table__
    stmt = (
        sa.select(
            inv,
            Promise.id.label("promise_id"),
            Promise.promised_on,
            Promise.source,
            Promise.made_at,
        )
        .join(inv, inv.c.invoice_number == Promise.invoice_number)
        .where(Promise.state == PromiseState.open, Promise.made_at >= since)
        .order_by(Promise.id)
    )
    if invoices is not None:
        stmt = stmt.where(Promise.invoice_number.in_(list(invoices)))
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def taken_keys(ledger: Ledger, keys: Iterable[str]) -> set[str]:
    """Which of these outbox keys the ledger already holds (in any state but `failed`)."""
    keys = list(keys)
    if not keys:
        return set()
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(Action.key).where(
                Action.key.in_(keys), Action.state != ActionState.failed.value
            )
        )
        return {str(k) for (k,) in rows}


def customers_with_status(ledger: Ledger, limit: int = 10_000) -> list[dict[str, Any]]:
    """Customers whose collection status is set (not empty): customer_id, status,
    updated_at. Few (those the ladder put on hold), so a sweep reads them all."""
    stmt = (
        sa.select(CustomerStatus.customer_id, CustomerStatus.status, CustomerStatus.updated_at)
        .where(CustomerStatus.status != "")
        .order_by(CustomerStatus.customer_id)
        .limit(limit)
    )
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def customer_contact(ledger: Ledger, customer_id: str) -> dict[str, str]:
    """The customer's name and email as its latest-seen invoice has them (for the CRM)."""
    inv = InvoiceRecord.__table__
    stmt = (
        sa.select(inv.c.customer_name, inv.c.email)
        .where(inv.c.customer_id == customer_id)
        .order_by(inv.c.last_seen.desc())
        .limit(1)
    )
    with ledger.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return {"customer_name": row.customer_name or "", "email": row.email or ""} if row else {}


def overdue_invoices(ledger: Ledger, customer_id: str, today: date, limit: int = 50) -> list[str]:
    """The customer's invoices the ledger's rows show owed and past their due date (at most
    `limit`; a webhook may have closed some since: see `closed_in_ledger`)."""
    inv = InvoiceRecord.__table__
    stmt = (
        sa.select(inv.c.invoice_number)
        .where(
            inv.c.customer_id == customer_id,
            inv.c.status.not_in(_CLOSED),
            inv.c.amount_due > 0.004,
            inv.c.due_date < today,
        )
        .order_by(inv.c.invoice_number)
        .limit(limit)
    )
    with ledger.engine.connect() as conn:
        return [str(n) for (n,) in conn.execute(stmt)]


def open_disputes(ledger: Ledger, customer_id: str) -> list[dict[str, Any]]:
    """The active dispute pauses that concern a customer: customer-wide ones, ones naming
    the customer, and ones naming one of its invoices (a desk dispute may name only the
    invoice)."""
    inv = InvoiceRecord.__table__
    its_invoices = sa.select(inv.c.invoice_number).where(inv.c.customer_id == customer_id)
    stmt = (
        sa.select(Pause.id, Pause.invoice_number, Pause.customer_id, Pause.reason)
        .where(
            Pause.active,
            Pause.kind == "dispute",
            sa.or_(Pause.customer_id == customer_id, Pause.invoice_number.in_(its_invoices)),
        )
        .order_by(Pause.id)
    )
    with ledger.engine.connect() as conn:
        return [dict(r) for r in conn.execute(stmt).mappings()]


def invoice_dispute_state(ledger: Ledger, invoice_number: str) -> tuple[str | None, bool]:
    """The invoice's customer as the ledger knows it (None: an invoice never seen) and
    whether an active dispute pause names the invoice already."""
    inv = InvoiceRecord.__table__
    with ledger.engine.connect() as conn:
        customer = conn.execute(
            sa.select(inv.c.customer_id).where(inv.c.invoice_number == invoice_number)
        ).scalar()
        disputed = conn.execute(
            sa.select(Pause.id)
            .where(Pause.active, Pause.kind == "dispute", Pause.invoice_number == invoice_number)
            .limit(1)
        ).first()
    return customer, disputed is not None


def end_disputes(ledger: Ledger, pause_ids: Iterable[int]) -> int:
    """End these dispute pauses (a manager resolved the customer's case); how many ended."""
    ids = [int(i) for i in pause_ids]
    if not ids:
        return 0
    with ledger.engine.begin() as conn:
        return conn.execute(
            sa.update(Pause)
            .where(Pause.id.in_(ids), Pause.active)
            .values(active=False, ended_at=utcnow())
        ).rowcount
