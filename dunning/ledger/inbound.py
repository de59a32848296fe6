"""Webhook events in the ledger (`webhook_events`) and what they close.

- `store_webhook_event` writes a verified event once (unique per provider and event id), as
  `received`; `mark_webhook_applied` moves it to `stored` once its effect is in the ledger,
  `mark_webhook_failed` records an effect that failed. An event still `received` (the
  process died between the two commits) or `failed` is applied again on the provider's
  retry and when the receiver starts (`unapplied_webhook_events`): never lost, never
  answered as a duplicate before its effect is in.
- `pending_webhook_events`, `mark_emitted`, `note_emit_error`, `count_pending_webhook_events`:
  the receiver's bookkeeping of which events reached the Prefect server.
- `close_invoice` closes an invoice a webhook reported paid or cancelled, and
  `closed_in_ledger` is what the act step asks just before sending.
- `replied_to`: the message of ours a customer's reply answers (its thread's message ids)
  and every invoice that message was about: one for a reminder, all of a statement's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dunning.ledger.models import Action, InvoiceRecord, WebhookEvent, utcnow

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

CLOSED = ("paid", "cancelled")
#: Webhook events whose effect is not (yet) in the ledger.
UNAPPLIED = ("received", "failed")
#: How long a webhook's "paid" outweighs a source that still shows the invoice open (the
#: source may lag; after this the source is believed again, e.g. a reversed payment).
TRUST_WEBHOOK_CLOSE = timedelta(days=7)


def store_webhook_event(
    ledger: Ledger,
    *,
    provider: str,
    event_id: str,
    kind: str,
    invoice_number: str,
    payload: dict[str, Any],
) -> tuple[int, bool]:
    """Write the event once, as `received`; returns (row id, True if its effect is still
    to be applied).

    An event seen before whose effect is not in the ledger (`received`: a crash between
    storing and applying; `failed`) counts as new again, so a provider's retry applies it.
    """
    row = {
        "provider": provider,
        "event_id": event_id,
        "kind": kind,
        "invoice_number": invoice_number,
        "payload": payload,
        "received_at": utcnow(),
        "state": "received",
        "error": "",
    }
    try:
        with ledger.engine.begin() as conn:
            new_id = conn.execute(sa.insert(WebhookEvent).returning(WebhookEvent.id), row).scalar()
        return int(new_id), True
    except IntegrityError:
        pass
    table = WebhookEvent.__table__
    with ledger.engine.begin() as conn:
        existing = conn.execute(
            sa.select(table.c.id, table.c.state).where(
                table.c.provider == provider, table.c.event_id == event_id
            )
        ).one()
        if existing.state not in UNAPPLIED:
            return int(existing.id), False
        conn.execute(
            sa.update(table).where(table.c.id == existing.id).values(state="received", error="")
        )
    return int(existing.id), True


def mark_webhook_applied(ledger: Ledger, row_id: int) -> None:
    """The event's effect is in the ledger: it now waits to be emitted (`stored`)."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.state.in_(UNAPPLIED))
            .values(state="stored", error="")
        )


def unapplied_webhook_events(ledger: Ledger, limit: int = 1000) -> list[dict[str, Any]]:
    """Events whose effect is not in the ledger (`received` or `failed`), oldest first."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(WebhookEvent.__table__)
            .where(WebhookEvent.state.in_(UNAPPLIED))
            .order_by(WebhookEvent.id)
            .limit(limit)
        ).mappings()
        return [dict(r) for r in rows]


def mark_webhook_failed(ledger: Ledger, row_id: int, error: str) -> None:
    """The event's effect failed (the provider is answered 500 and retries)."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == row_id)
            .values(state="failed", error=error[:1000])
        )


def pending_webhook_events(ledger: Ledger, limit: int = 200) -> list[dict[str, Any]]:
    """Stored events not yet emitted, oldest first."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(WebhookEvent.__table__)
            .where(WebhookEvent.state == "stored")
            .order_by(WebhookEvent.id)
            .limit(limit)
        ).mappings()
        return [dict(r) for r in rows]


def count_pending_webhook_events(ledger: Ledger) -> int:
    """How many stored events wait to be emitted."""
    with ledger.engine.connect() as conn:
        query = sa.select(sa.func.count()).where(WebhookEvent.state == "stored")
        return int(conn.execute(query).scalar() or 0)


def mark_emitted(ledger: Ledger, row_id: int) -> None:
    """The Prefect server took the event."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == row_id, WebhookEvent.state == "stored")
            .values(state="emitted", emitted_at=utcnow(), error="")
        )


def note_emit_error(ledger: Ledger, row_ids: list[int], error: str) -> None:
    """Keep the events `stored` (to be sent again) and say why they were not."""
    if not row_ids:
        return
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id.in_(row_ids), WebhookEvent.state == "stored")
            .values(error=error[:1000])
        )


def close_invoice(
    ledger: Ledger,
    invoice_number: str,
    status: str,
    *,
    provider: str,
    event_id: str = "",
    at: datetime | None = None,
) -> bool:
    """Close an invoice's case now because a webhook said it is paid or cancelled.

    Marks the ledger's invoice row (status, `closed_at`; a paid invoice owes 0) and records
    an `invoice_paid`/`invoice_cancelled` event by `webhook:<provider>` (also when the ledger
    has not seen the invoice yet). Returns True if the row was open until now.
    """
    if status not in CLOSED:
        raise ValueError(f"status must be one of {CLOSED}, not {status!r}")
    at = at or utcnow()
    values: dict[str, Any] = {"status": status, "closed_at": at, "last_seen": at}
    if status == "paid":
        values["amount_due"] = 0.0
    table = InvoiceRecord.__table__
    with ledger.engine.begin() as conn:
        customer = conn.execute(
            sa.select(table.c.customer_id).where(table.c.invoice_number == invoice_number)
        ).scalar()
        changed = conn.execute(
            sa.update(table)
            .where(table.c.invoice_number == invoice_number, table.c.status.not_in(CLOSED))
            .values(**values)
        ).rowcount
    ledger.record_event(
        f"invoice_{status}",
        invoice_number=invoice_number,
        customer_id=customer or "",
        actor=f"webhook:{provider}",
        event_id=event_id,
        known=customer is not None,
    )
    return bool(changed)


def closed_in_ledger(
    ledger: Ledger, invoice_number: str, *, now: datetime | None = None
) -> str | None:
    """ "paid" or "cancelled" if the ledger knows the invoice is closed, else None.

    Closed means: the ledger's row says so, or a webhook closed it within the last
    `TRUST_WEBHOOK_CLOSE` and no webhook reopened it since (a sweep whose source lags
    behind the payment does not bring the reminders back).

    Example (the act step, just after re-reading the invoice at the source):
        >>> fresh = lookup(invoice)
        >>> if fresh is not None and (closed := closed_in_ledger(ledger, invoice)):
        ...     fresh = fresh.model_copy(update={"status": closed})
    """
    from dunning.ledger.store import reading  # store imports this module's neighbours

    with reading(ledger.engine) as conn:
        return closed_status(conn, invoice_number, now=now)


def closed_status(
    conn: sa.Connection, invoice_number: str, *, now: datetime | None = None
) -> str | None:
    """`closed_in_ledger` inside the caller's (read) transaction, beside its other reads."""
    from dunning.ledger.batch import closed_statuses  # batch builds on this module

    return closed_statuses(conn, [invoice_number], now=now).get(invoice_number)


def is_closed_in_ledger(ledger: Ledger, invoice_number: str) -> bool:
    """True if the invoice is paid or cancelled as far as the ledger knows (see above)."""
    return closed_in_ledger(ledger, invoice_number) is not None


class RepliedTo(NamedTuple):
    """The message of ours a reply answers: its outbox key (a statement's own key for a
    statement), its customer, and the invoices it was about."""

    key: str
    customer_id: str
    invoice_numbers: tuple[str, ...]


def replied_to(ledger: Ledger, message_ids: Sequence[str]) -> RepliedTo | None:
    """What the latest of our messages among `message_ids` (a reply's In-Reply-To and
    References: Message-IDs, or a WhatsApp wamid) was about, or None if none is ours.

    A statement is one message for several invoices: its own outbox row (no invoice) and
    each invoice's row carry the same message id (`dunning.statement`), so a reply to it is
    about all of them. Invoices the ledger has seen paid or cancelled since are left out,
    unless that leaves none (the reply still belongs to that message).
    """
    ids = [i for i in message_ids if i]
    if not ids:
        return None
    from dunning.ledger.store import reading  # store imports this module's neighbours

    table = Action.__table__
    with reading(ledger.engine) as conn:
        latest = conn.execute(
            sa.select(table.c.message_id)
            .where(table.c.message_id.in_(ids))
            .order_by(table.c.id.desc())
            .limit(1)
        ).scalar()
        if latest is None:
            return None
        rows = conn.execute(
            sa.select(
                table.c.key, table.c.invoice_number, table.c.customer_id, InvoiceRecord.status
            )
            .select_from(
                table.outerjoin(
                    InvoiceRecord, InvoiceRecord.invoice_number == table.c.invoice_number
                )
            )
            .where(table.c.message_id == latest)
            .order_by(table.c.id.desc())
        ).all()
    # The statement's own row has no invoice: it names the message; else the latest row.
    head = next((r for r in rows if not r.invoice_number), rows[0])
    invoices = [r for r in rows if r.invoice_number]
    still_open = [r for r in invoices if r.status not in CLOSED] or invoices
    numbers = tuple(sorted({r.invoice_number for r in still_open}))
    return RepliedTo(head.key, head.customer_id, numbers)
