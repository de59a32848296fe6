"""The ledger's side of WhatsApp consent and the service window: active opt-outs and the
customer's last message on a channel (the rules are `dunning.whatsapp.consent`'s)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from dunning.ledger.models import InboundMessage, Pause

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger


def has_opt_out(ledger: Ledger, channel: str, customer_id: str, invoice_number: str = "") -> bool:
    """True while an active opt-out pause on `channel` (or on every channel) covers the
    customer, or the invoice when one is given."""
    who = Pause.customer_id == customer_id
    if invoice_number:
        who = sa.or_(who, Pause.invoice_number == invoice_number)
    with ledger.engine.connect() as conn:
        row = conn.execute(
            sa.select(Pause.id)
            .where(Pause.active, Pause.kind == "opt_out", Pause.channel.in_(["", channel]), who)
            .limit(1)
        ).first()
    return row is not None


def last_inbound_at(ledger: Ledger, channel: str, sender: str) -> datetime | None:
    """When `sender` last wrote to us on `channel` (UTC), as the inbox saw it; None if never."""
    with ledger.engine.connect() as conn:
        at = conn.execute(
            sa.select(sa.func.max(InboundMessage.received_at)).where(
                InboundMessage.channel == channel, InboundMessage.sender == sender
            )
        ).scalar()
    if at is None:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def end_opt_out(ledger: Ledger, customer_id: str, channel: str, *, reason: str = "") -> int:
    """End the customer's active opt-out of `channel` only (an SMS START does not undo an
    email opt-out); returns how many ended, each recorded as `pause_opt_out_ended`."""
    from dunning.ledger.models import utcnow

    stmt = (
        sa.update(Pause)
        .where(
            Pause.active,
            Pause.kind == "opt_out",
            Pause.channel == channel,
            Pause.customer_id == customer_id,
        )
        .values(active=False, ended_at=utcnow())
    )
    with ledger.engine.begin() as conn:
        ended = conn.execute(stmt).rowcount
    if ended:
        ledger.record_event(
            "pause_opt_out_ended",
            customer_id=customer_id,
            actor="customer",
            channel=channel,
            reason=reason,
        )
    return ended
