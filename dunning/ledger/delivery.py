"""Outbox rows after the claim: setting columns of an action, and the delivery statuses a
provider reports later (sent, delivered, read, failed) by message id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dunning.ledger.models import Action

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

#: Delivery statuses only move forward: sent -> delivered -> read (`failed` always counts).
_RANK = {"": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class DeliveredAction:
    """The action a delivery status was recorded on."""

    key: str
    invoice_number: str
    customer_id: str
    recipient: str


def update_action(ledger: Ledger, key: str, **values: Any) -> None:
    """Set columns of one outbox row (the recipient, the provider's message id)."""
    table = Action.__table__
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.key == key).values(**values))


def record_delivery_status(
    ledger: Ledger, message_id: str, status: str, at: datetime, error: str = ""
) -> DeliveredAction | None:
    """Record a provider's status on the action that sent `message_id`; None if no action
    has that message id (a message not sent by us).

    Statuses can arrive late, twice or out of order: `delivery_status` only moves forward,
    `failed` is recorded whenever it comes (with `error`), and a read message counts as
    delivered whether or not its delivery was reported.
    """
    table = Action.__table__
    with ledger.engine.begin() as conn:
        row = conn.execute(
            sa.select(
                table.c.key,
                table.c.invoice_number,
                table.c.customer_id,
                table.c.recipient,
                table.c.delivery_status,
                table.c.delivered_at,
            ).where(table.c.message_id == message_id)
        ).first()
        if row is None:
            return None
        values: dict[str, Any] = {}
        if status == "failed":
            values = {"delivery_status": "failed", "error": error[:1000]}
        elif _RANK.get(status, 0) > _RANK.get(row.delivery_status or "", 0):
            values = {"delivery_status": status}
        if status in ("delivered", "read") and row.delivered_at is None:
            values["delivered_at"] = at
        if status == "read":
            values["read_at"] = at
        if values:
            conn.execute(sa.update(table).where(table.c.key == row.key).values(**values))
    return DeliveredAction(row.key, row.invoice_number, row.customer_id, row.recipient)
