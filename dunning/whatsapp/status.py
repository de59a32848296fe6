"""Delivery statuses Meta reports by webhook (sent, delivered, read, failed), on the outbox.

Statuses can arrive late, twice or out of order (a `read` may come without a `delivered`,
or before it): an action only moves forward, sent -> delivered -> read, and `failed` is
recorded whenever it comes. Every applied status is an event in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from dunning.ledger import Ledger
from dunning.ledger.delivery import record_delivery_status
from dunning.whatsapp.client import INVALID_RECIPIENT_CODES, MARKETING_OPT_OUT_CODES
from dunning.whatsapp.consent import CHANNEL, mark_contact_invalid


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
    row = record_delivery_status(
        ledger, update.message_id, update.status, update.at, error=update.error
    )
    if row is None:
        return None
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
