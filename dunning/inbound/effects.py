"""What a verified webhook event does to the ledger, before anyone else hears of it.

1. `store_event`: the event is written to `webhook_events` first, `received` (unique per
   provider and event id: a replay or a provider's retry is recognised and ignored);
2. `apply_event`: its effect on the ledger: a WhatsApp message goes to the inbox (state
   `new`, for the replies flow), a status onto the action that sent the message, a paid or
   cancelled invoice is closed at once (`close_invoice`); then the row is marked `stored`;
3. the receiver then emits it as a Prefect event (`apps.webhooks.emit`) and marks it.

Steps 1 and 2 are two transactions. If the process dies between them the row stays
`received`: the provider's retry is not taken for a duplicate but applies it, and the
receiver applies every such event when it starts (`reapply_unapplied`). Every provider's
effect is chosen in one table (`_EFFECTS`), for the live call and the re-application alike:
a Twilio opt-out stored before a crash is applied by the same code as a live one. Effects are
idempotent (the inbox is unique per message id, a closed invoice stays closed), so applying
twice does no harm.

The SQL behind each step is `dunning.ledger.inbound`'s (so is `closed_in_ledger`, what the
act step asks just before sending: an invoice a webhook reported paid gets no reminder, even
before the source itself shows the payment).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dunning.inbound.providers import Incoming
from dunning.ledger import InboundMessage, Ledger
from dunning.ledger.cases import invoice_dispute_state
from dunning.ledger.inbound import (
    CLOSED,
    close_invoice,
    mark_webhook_applied,
    mark_webhook_failed,
    store_webhook_event,
    unapplied_webhook_events,
)
from dunning.ledger.models import utcnow
from dunning.twilio.webhooks import PROVIDER as TWILIO
from dunning.twilio.webhooks import TwilioEffects, apply_twilio_event
from dunning.whatsapp.phones import from_wa_id
from dunning.whatsapp.status import StatusUpdate, apply_status

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
    return store_webhook_event(
        ledger,
        provider=incoming.provider,
        event_id=incoming.event_id,
        kind=incoming.kind,
        invoice_number=incoming.invoice_number,
        payload=incoming.payload,
    )


def apply_event(
    ledger: Ledger, row_id: int, incoming: Incoming, *, twilio: TwilioEffects | None = None
) -> dict[str, Any]:
    """Apply a stored event's effect; returns what the Prefect event should say of it (a
    Twilio event's also holds `twiml`, the answer Twilio waits for).

    `twilio` is what Twilio's effects need besides the ledger (the voice channel's settings,
    the policy); without it, their defaults. A failure marks the row `failed` (with the
    error) and is raised, so the provider is answered 500 and retries; the retry applies it
    again (effects are idempotent).
    """
    try:
        result = _EFFECTS.get(incoming.provider, _no_effect)(ledger, incoming, twilio)
    except Exception as exc:
        mark_webhook_failed(ledger, row_id, f"{type(exc).__name__}: {exc}")
        raise
    mark_webhook_applied(ledger, row_id)
    return result


def reapply_unapplied(ledger: Ledger, *, twilio: TwilioEffects | None = None) -> int:
    """Apply every stored event whose effect is not in the ledger (a crash between storing
    and applying, or a failed effect), whatever its provider; returns how many were applied.

    An event that fails again stays `failed` (with its error) for the next try.
    """
    applied = 0
    for row in unapplied_webhook_events(ledger):
        incoming = Incoming(
            provider=row["provider"],
            event_id=row["event_id"],
            kind=row["kind"],
            invoice_number=row["invoice_number"],
            payload=row["payload"] or {},
        )
        try:
            apply_event(ledger, row["id"], incoming, twilio=twilio)
        except Exception:  # recorded on the row by apply_event; the others still go
            continue
        applied += 1
    return applied


def _apply_closing(ledger: Ledger, incoming: Incoming, _: TwilioEffects | None) -> dict[str, Any]:
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
        if status == "disputed":  # the ERP records a dispute: the customer's case stops
            return _record_dispute(ledger, incoming)
    return {}


def _record_dispute(ledger: Ledger, incoming: Incoming) -> dict[str, Any]:
    """An ERP event saying the invoice is disputed: a dispute pause (which the policy's
    `dispute_scope` widens to the whole customer) and a task for the manager role (the
    receiver sends no email), once per invoice while the dispute lasts."""
    number = incoming.invoice_number
    customer, already = invoice_dispute_state(ledger, number)
    if already:
        return {"status": "disputed"}
    invoice = incoming.payload.get("invoice") or {}
    reason = str(invoice.get("dispute_reason") or "disputed in the ERP")[:300]
    ledger.add_pause(
        "dispute",
        invoice_number=number,
        customer_id=customer or None,
        reason=f"{reason} (ERP event {incoming.event_id})",
        actor="webhook:erp",
    )
    ledger.open_task(
        key=f"webhook:erp:{incoming.event_id}:dispute",
        title=f"Dispute on invoice {number} recorded in the ERP: review and answer in person",
        invoice_number=number,
        customer_id=customer or "",
        assignee="manager",
        due_on=utcnow().date(),
        note=reason,
        crm={"priority": "HIGH"},
    )
    return {"status": "disputed"}


def _apply_whatsapp(ledger: Ledger, incoming: Incoming, _: TwilioEffects | None) -> dict[str, Any]:
    if incoming.kind == "message":
        return store_whatsapp_message(ledger, incoming.payload)
    if incoming.kind.startswith("status."):
        return apply_whatsapp_status(ledger, incoming.payload)
    return {}


def _apply_twilio(
    ledger: Ledger, incoming: Incoming, twilio: TwilioEffects | None
) -> dict[str, Any]:
    twiml, done = apply_twilio_event(ledger, incoming, twilio or TwilioEffects())
    return {**done, "twiml": twiml}


def _no_effect(ledger: Ledger, incoming: Incoming, _: TwilioEffects | None) -> dict[str, Any]:
    return {}


#: Each provider's effects, for events applied live and re-applied at start alike.
_EFFECTS: dict[str, Callable[[Ledger, Incoming, TwilioEffects | None], dict[str, Any]]] = {
    "stripe": _apply_closing,
    "erp": _apply_closing,
    "whatsapp": _apply_whatsapp,
    TWILIO: _apply_twilio,
}


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
    except (TypeError, ValueError, OverflowError, OSError):  # absent, or out of any range
        return utcnow()
