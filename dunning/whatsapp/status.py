"""Delivery statuses Meta reports by webhook (sent, delivered, read, failed), on the outbox.

Statuses can arrive late, twice or out of order (a `read` may come without a `delivered`,
or before it): an action only moves forward, sent -> delivered -> read, and `failed` is
recorded whenever it comes. Every applied status is an event in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from dunning.ledger import Action, Ledger
from dunning.whatsapp.client import INVALID_RECIPIENT_CODES, MARKETING_OPT_OUT_CODES
from dunning.whatsapp.consent import CHANNEL, mark_contact_invalid

_RANK = {"": 0, "sent": 1, "delivered": 2, "read": 3}


@dataclass(frozen=True)
class StatusUpdate:
    """One status of one message, as the webhook carries it."""

    message_id: str
    status: str
    at: datetime
    recipient: str = ""
    error_code: int | None = None
    error: str = ""


def apply_status(ledger: Ledger, update: StatusUpdate) -> str | None:
    """Record a delivery status on the action that sent the message; returns its key.

    `None` when no action has that message id (a message not sent by us). A failure with
    131026 marks the contact; 131050 records a WhatsApp opt-out.
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
            ).where(table.c.message_id == update.message_id)
        ).first()
        if row is None:
            return None
        values: dict = {}
        if update.status == "failed":
            values = {"delivery_status": "failed", "error": update.error[:1000]}
        elif _RANK.get(update.status, 0) > _RANK.get(row.delivery_status or "", 0):
            values = {"delivery_status": update.status}
        if update.status in ("delivered", "read") and row.delivered_at is None:
            values["delivered_at"] = update.at  # a read message was delivered, reported or not
        if update.status == "read":
            values["read_at"] = update.at
        if values:
            conn.execute(sa.update(table).where(table.c.key == row.key).values(**values))
    ledger.record_event(
        f"whatsapp_{update.status}",
        invoice_number=row.invoice_number,
        customer_id=row.customer_id,
        action_key=row.key,
        actor="whatsapp",
        message_id=update.message_id,
        at=update.at,
        code=update.error_code,
        error=update.error,
    )
    phone = update.recipient or row.recipient
    if update.error_code in INVALID_RECIPIENT_CODES:
        mark_contact_invalid(
            ledger,
            customer_id=row.customer_id,
            phone=phone if phone.startswith("+") else f"+{phone}",
            reason=update.error,
            invoice_number=row.invoice_number,
        )
    elif update.error_code in MARKETING_OPT_OUT_CODES:
        ledger.add_pause(
            "opt_out",
            customer_id=row.customer_id,
            channel=CHANNEL,
            reason=update.error[:300],
            actor="whatsapp",
        )
    return row.key


def delivery_rates(actions: pd.DataFrame) -> pd.DataFrame:
    """Per channel: messages sent, delivered, read, failed after sending, and the rates.

    `actions` is the outbox as a frame (`Ledger.frame(Action)`, or a run's actions). Rates
    are shares of the messages sent; email has no receipts, so its rates are empty (NaN).

    Example:
        >>> delivery_rates(ledger.frame(Action))
                  sent  delivered  read  failed  delivered_rate  read_rate
        channel
        whatsapp    10          9     6       1             0.9        0.6
    """
    columns = ["sent", "delivered", "read", "failed", "delivered_rate", "read_rate"]
    if actions.empty:
        return pd.DataFrame(columns=columns).rename_axis("channel")
    sent = actions[actions["state"] == "sent"]
    status = sent["delivery_status"].fillna("")
    counts = pd.DataFrame(
        {
            "channel": sent["channel"],
            "sent": 1,
            "delivered": sent["delivered_at"].notna() | status.isin(["delivered", "read"]),
            "read": sent["read_at"].notna() | (status == "read"),
            "failed": status == "failed",
        }
    )
    out = counts.groupby("channel")[["sent", "delivered", "read", "failed"]].sum().astype(int)
    receipts = out.index == CHANNEL
    out["delivered_rate"] = (out["delivered"] / out["sent"]).where(receipts)
    out["read_rate"] = (out["read"] / out["sent"]).where(receipts)
    return out[columns]
