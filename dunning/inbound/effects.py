"""What a verified webhook event does to the ledger, before anyone else hears of it.

1. `store_event`: the event is written to `webhook_events` first (unique per provider and
   event id: a replay or a provider's retry is recognised and ignored);
2. `apply_event`: its effect on the ledger: a WhatsApp message goes to the inbox (state
   `new`, for the replies flow), a status onto the action that sent the message, a paid or
   cancelled invoice is closed at once (`close_invoice`);
3. the receiver then emits it as a Prefect event (`apps.webhooks.emit`) and marks it.

`closed_in_ledger` is what the act step asks just before sending: an invoice a webhook
reported paid gets no reminder, even before the source itself shows the payment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dunning.inbound.providers import Incoming
from dunning.ledger import Event, InboundMessage, InvoiceRecord, Ledger, WebhookEvent
from dunning.ledger.models import utcnow
from dunning.whatsapp.phones import from_wa_id
from dunning.whatsapp.status import StatusUpdate, apply_status

CLOSED = ("paid", "cancelled")
#: How long a webhook's "paid" outweighs a source that still shows the invoice open (the
#: source may lag; after this the source is believed again, e.g. a reversed payment).
TRUST_WEBHOOK_CLOSE = timedelta(days=7)
_CLOSING = {
    ("stripe", "invoice.paid"): "paid",
    ("stripe", "invoice.voided"): "cancelled",
    ("erp", "invoice.paid"): "paid",
    ("erp", "invoice.cancelled"): "cancelled",
}


def store_event(ledger: Ledger, incoming: Incoming) -> tuple[int, bool]:
    """Write the event once; returns (row id, True if new).

    An event seen before whose effect failed (`failed`) counts as new again, so a
    provider's retry gets it applied.
    """
    row = {
        "provider": incoming.provider,
        "event_id": incoming.event_id,
        "kind": incoming.kind,
        "invoice_number": incoming.invoice_number,
        "payload": incoming.payload,
        "received_at": utcnow(),
        "state": "stored",
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
                table.c.provider == incoming.provider, table.c.event_id == incoming.event_id
            )
        ).one()
        if existing.state != "failed":
            return int(existing.id), False
        conn.execute(
            sa.update(table).where(table.c.id == existing.id).values(state="stored", error="")
        )
    return int(existing.id), True


def apply_event(ledger: Ledger, row_id: int, incoming: Incoming) -> dict[str, Any]:
    """Apply a stored event's effect; returns what the Prefect event should say of it.

    A failure marks the row `failed` (with the error) and is raised, so the provider is
    answered 500 and retries; the retry applies it again (effects are idempotent).
    """
    try:
        return _apply(ledger, incoming)
    except Exception as exc:
        with ledger.engine.begin() as conn:
            conn.execute(
                sa.update(WebhookEvent)
                .where(WebhookEvent.id == row_id)
                .values(state="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
            )
        raise


def _apply(ledger: Ledger, incoming: Incoming) -> dict[str, Any]:
    key = (incoming.provider, incoming.kind)
    if key in _CLOSING:
        close_invoice(
            ledger,
            incoming.invoice_number,
            _CLOSING[key],
            provider=incoming.provider,
            event_id=incoming.event_id,
        )
        return {"status": _CLOSING[key]}
    if incoming.provider == "erp":
        status = str((incoming.payload.get("invoice") or {}).get("status") or "")
        if status in CLOSED:  # an `updated` that says paid is a payment too
            close_invoice(
                ledger, incoming.invoice_number, status, provider="erp", event_id=incoming.event_id
            )
            return {"status": status}
        return {}
    if incoming.provider == "whatsapp" and incoming.kind == "message":
        return store_whatsapp_message(ledger, incoming.payload)
    if incoming.provider == "whatsapp" and incoming.kind.startswith("status."):
        return apply_whatsapp_status(ledger, incoming.payload)
    return {}


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
    now = now or datetime.now(UTC)
    with ledger.engine.connect() as conn:
        status = conn.execute(
            sa.select(InvoiceRecord.status).where(InvoiceRecord.invoice_number == invoice_number)
        ).scalar()
        if status in CLOSED:
            return status
        latest = conn.execute(
            sa.select(Event.kind, Event.at)
            .where(
                Event.invoice_number == invoice_number,
                Event.actor.like("webhook:%"),
                Event.kind.in_(["invoice_paid", "invoice_cancelled", "invoice_reopened"]),
            )
            .order_by(Event.at.desc(), Event.id.desc())
            .limit(1)
        ).first()
    if latest is None or latest.kind == "invoice_reopened":
        return None
    at = latest.at if latest.at.tzinfo else latest.at.replace(tzinfo=UTC)
    if now - at > TRUST_WEBHOOK_CLOSE:
        return None
    return latest.kind.removeprefix("invoice_")


def is_closed_in_ledger(ledger: Ledger, invoice_number: str) -> bool:
    """True if the invoice is paid or cancelled as far as the ledger knows (see above)."""
    return closed_in_ledger(ledger, invoice_number) is not None


def store_whatsapp_message(ledger: Ledger, message: dict[str, Any]) -> dict[str, Any]:
    """Put a customer's WhatsApp message in the inbox (`new`, for the replies flow).

    The text is the message's (or the button/list choice's title; `[image]` and the like
    for media, with the caption). `in_reply_to` is the `wamid` of our message it answers.
    """
    kind = str(message.get("type") or "")
    sender = from_wa_id(str(message.get("from") or ""))
    inbound = InboundMessage(
        provider_id=str(message["id"]),
        channel="whatsapp",
        received_at=_when(message.get("timestamp")),
        sender=sender,
        sender_name=str(message.get("profile_name") or ""),
        text=_text(message),
        in_reply_to=str((message.get("context") or {}).get("id") or ""),
        headers={"type": kind, "wa_id": str(message.get("from") or "")},
    )
    ids = ledger.store_inbound([inbound])
    return {"inbound_id": ids[0] if ids else None, "sender": sender}


def apply_whatsapp_status(ledger: Ledger, status: dict[str, Any]) -> dict[str, Any]:
    """Record a delivery status on the action that sent the message."""
    errors = status.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = first.get("code")
    key = apply_status(
        ledger,
        StatusUpdate(
            message_id=str(status["id"]),
            status=str(status.get("status") or ""),
            at=_when(status.get("timestamp")),
            recipient=from_wa_id(str(status.get("recipient_id") or "")),
            error_code=int(code) if str(code or "").isdigit() else None,
            error=str(first.get("title") or first.get("message") or ""),
        ),
    )
    return {"action_key": key or ""}


def _text(message: dict[str, Any]) -> str:
    kind = message.get("type")
    if kind == "text":
        return str((message.get("text") or {}).get("body") or "")
    if kind == "button":
        return str((message.get("button") or {}).get("text") or "")
    if kind == "interactive":
        reply = message.get("interactive") or {}
        chosen = reply.get("button_reply") or reply.get("list_reply") or {}
        return str(chosen.get("title") or "")
    media = message.get(kind) if isinstance(message.get(kind), dict) else {}
    caption = str(media.get("caption") or "")
    return f"[{kind}] {caption}".strip()


def _when(timestamp: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC)
    except (TypeError, ValueError):
        return utcnow()
