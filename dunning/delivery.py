"""Hand one claimed outbox email to the mail server and record what happened, once.

The caller has already claimed the action's key in the ledger (so only one caller gets
here). The action is marked `sending` before the server sees the message: a crash
before the answer is recorded leaves it in doubt, and it is never resent silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from typing import Any

from dunning.ledger import Ledger
from dunning.ledger.batch import Writes
from dunning.ledger.crm_outbox import QueuedEntry
from dunning.mail import Envelope
from dunning.smtp import NotSent, OutcomeUnknown, SmtpPool


@dataclass(frozen=True)
class Delivery:
    """`status` is sent, rejected (refused for good) or in_doubt; `detail` the reason."""

    status: str
    detail: str = ""


def deliver(
    ledger: Ledger,
    pool: SmtpPool,
    key: str,
    message: Message,
    envelope: Envelope,
    *,
    invoice_number: str = "",
    customer_id: str = "",
    note: QueuedEntry | None = None,
    also_sent: Sequence[str] = (),
    also_sent_response: str = "",
    then: Writes | None = None,
    sending: bool = False,
    **event: Any,
) -> Delivery:
    """Send a claimed action's message and record the outcome (events included).

    `event` adds to (or overrides) the `sent` event's detail: recipient, message_id, subject.
    Once the server accepted it, the `sent` state, the `sent` event, the message's CRM
    `note` (`dunning.crm.note_entry`) and the `also_sent` keys (a statement's invoices,
    marked sent with `also_sent_response`) and what follows from sending it (`then`: the
    stage's escalation, an attachment left out) are recorded in one transaction.

    `sending` says the claim already marked the action `sending` with this message's id
    (`ClaimRequest.message_id`).

    Raises `NotSent` for a temporary refusal, after recording it, so a retrying caller
    tries again; a permanent refusal is recorded and returned as `rejected`.
    """
    where = {"invoice_number": invoice_number, "customer_id": customer_id, "action_key": key}
    if not sending:
        ledger.mark_sending(key, message["Message-ID"])
    try:
        reply = pool.send(message, envelope)
    except NotSent as exc:
        ledger.mark_failed(key, str(exc), permanent=exc.permanent)
        ledger.record_event("send_failed", **where, error=str(exc), permanent=exc.permanent)
        if not exc.permanent:
            raise
        return Delivery("rejected", str(exc))
    except OutcomeUnknown as exc:
        ledger.record_event("in_doubt", **where, error=str(exc))
        return Delivery("in_doubt", str(exc))
    detail = {
        "recipient": ", ".join(envelope.recipients),
        "message_id": str(message["Message-ID"]),
        "subject": str(message["Subject"]),
    }
    ledger.record_sent(
        key,
        reply,
        event={"invoice_number": invoice_number, "customer_id": customer_id} | detail | event,
        note=note,
        also_sent=also_sent,
        also_sent_response=also_sent_response,
        then=then,
    )
    return Delivery("sent")
