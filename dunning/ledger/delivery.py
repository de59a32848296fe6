"""Outbox rows after the claim: setting columns of an action, and the delivery statuses a
provider reports later (sent, delivered, read, failed) by message id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dunning.ledger.models import Action, Event

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


def action_by_message_id(ledger: Ledger, message_id: str) -> DeliveredAction | None:
    """The action that sent (or placed) the provider's message or call `message_id`."""
    table = Action.__table__
    with ledger.engine.connect() as conn:
        row = conn.execute(
            sa.select(
                table.c.key, table.c.invoice_number, table.c.customer_id, table.c.recipient
            ).where(table.c.message_id == message_id)
        ).first()
    return None if row is None else DeliveredAction(*row)


def set_delivery_outcome(ledger: Ledger, key: str, outcome: str, at: datetime) -> None:
    """Record a call's outcome (completed, busy, no-answer, failed, machine) on its action:
    unlike message statuses these do not rank, the latest attempt's outcome is the one."""
    values: dict[str, Any] = {"delivery_status": outcome}
    if outcome in ("completed", "machine"):
        values["delivered_at"] = at
    update_action(ledger, key, **values)


def customers_with_recipient(ledger: Ledger, channel: str, recipient: str) -> list[str]:
    """Customers we sent to `recipient` (an E.164 number) on `channel`, most recent first."""
    table = Action.__table__
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.customer_id, sa.func.max(table.c.id).label("last"))
            .where(table.c.channel == channel, table.c.recipient == recipient)
            .group_by(table.c.customer_id)
            .order_by(sa.desc("last"))
        ).all()
    return [r.customer_id for r in rows if r.customer_id]


def action_attempts(ledger: Ledger, key: str) -> int:
    """How many times the action was tried (a call's attempts; 1 for a message)."""
    with ledger.engine.connect() as conn:
        value = conn.execute(sa.select(Action.attempts).where(Action.key == key)).scalar()
    return int(value or 1)


def calls_to_retry(
    ledger: Ledger, outcomes: set[str], max_attempts: int, before: datetime
) -> list[dict[str, Any]]:
    """Sent voice actions whose last call ended in one of `outcomes`, with fewer than
    `max_attempts` calls, last updated before `before`."""
    table = Action.__table__
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                table.c.key,
                table.c.invoice_number,
                table.c.customer_id,
                table.c.stage,
                table.c.recipient,
                table.c.attempts,
                table.c.delivery_status,
            ).where(
                table.c.channel == "voice",
                table.c.state == "sent",
                table.c.delivery_status.in_(sorted(outcomes)),
                table.c.attempts < max_attempts,
                table.c.updated_at < before,
            )
        ).mappings()
        return [dict(r) for r in rows]


def claim_call_retry(ledger: Ledger, key: str, attempts: int, outcome: str) -> bool:
    """Take the next attempt of a call: one conditional update, so of two sweeps retrying
    the same call only one wins (the other sees the attempt count moved)."""
    from dunning.ledger.models import utcnow

    table = Action.__table__
    with ledger.engine.begin() as conn:
        won = conn.execute(
            sa.update(table)
            .where(
                table.c.key == key,
                table.c.attempts == attempts,
                table.c.delivery_status == outcome,
            )
            .values(attempts=attempts + 1, delivery_status="retrying", updated_at=utcnow())
        ).rowcount
    return bool(won)


def latest_event_detail(ledger: Ledger, kind: str, action_key: str) -> dict[str, Any]:
    """The detail of the newest `kind` event of the action `action_key` ({} when none): a
    call's scripts, recorded when it was placed, for Twilio's fetch of the call's TwiML."""
    with ledger.engine.connect() as conn:
        detail = conn.execute(
            sa.select(Event.detail)
            .where(Event.kind == kind, Event.action_key == action_key)
            .order_by(Event.id.desc())
            .limit(1)
        ).scalar()
    return dict(detail or {})
