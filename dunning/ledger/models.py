"""Ledger tables (SQLModel): the durable record of what was seen, sent, promised and decided.

Times are UTC. The outbox (`actions`) carries the idempotency key with a
unique constraint: it is what makes every reminder go out at most once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class ActionState(StrEnum):
    """Life of an outbox row.

    claimed -> sending -> sent is the happy path. `failed` means the provider certainly did
    not take the message (it may be claimed again); `rejected` means it refused it for good.
    A row left in `sending` means the provider may have the message and nobody recorded the
    answer (a crash): it is reported as in doubt and never resent automatically.
    """

    claimed = "claimed"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    rejected = "rejected"


#: Why an action is not taken again when the ledger already has it in this state
#: (a `failed` action is absent: it may be claimed again).
TAKEN_REASONS: dict[str, str] = {
    ActionState.sent: "already_sent",
    ActionState.claimed: "in_progress",
    ActionState.sending: "in_doubt",
    ActionState.rejected: "rejected",
}


class InvoiceRecord(SQLModel, table=True):
    """Every invoice seen at the source, as of the last sweep."""

    __tablename__ = "invoices"

    invoice_number: str = Field(primary_key=True)
    customer_id: str = Field(default="", index=True)
    customer_name: str = ""
    email: str = ""
    currency: str = "EUR"
    amount_total: float = 0.0
    amount_due: float = 0.0
    due_date: date | None = None
    status: str = "open"
    first_seen: datetime = Field(default_factory=utcnow)
    last_seen: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class Action(SQLModel, table=True):
    """The outbox: one row per (invoice, stage, channel), ever."""

    __tablename__ = "actions"
    __table_args__ = (UniqueConstraint("key", name="uq_actions_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(description="Idempotency key: invoice:stage:channel")
    invoice_number: str = Field(index=True)
    customer_id: str = Field(default="", index=True)
    stage: str
    channel: str
    state: str = Field(default=ActionState.claimed, index=True)
    recipient: str = ""
    amount_due: float | None = None
    currency: str = ""
    message_id: str = ""
    provider_response: str = ""
    error: str = ""
    attempts: int = 1
    flow_run_id: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class Event(SQLModel, table=True):
    """Everything that happened, in order: sends, skips, failures, status changes."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(index=True)
    invoice_number: str = Field(default="", index=True)
    customer_id: str = Field(default="", index=True)
    action_key: str = ""
    actor: str = "dunning"
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON))


class HumanTask(SQLModel, table=True):
    """Work for a person: call the customer, fix a contact, decide on a final notice."""

    __tablename__ = "human_tasks"
    __table_args__ = (UniqueConstraint("key", name="uq_human_tasks_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(description="Idempotency key, so a task is opened once")
    invoice_number: str = Field(default="", index=True)
    customer_id: str = Field(default="", index=True)
    title: str
    assignee: str = ""
    due_on: date | None = None
    status: str = Field(default="open", index=True)
    note: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    outcome: str = ""


class CustomerStatus(SQLModel, table=True):
    """The customer's collection status (the built-in CRM's status field)."""

    __tablename__ = "customer_status"

    customer_id: str = Field(primary_key=True)
    status: str
    reason: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class Pause(SQLModel, table=True):
    """Stops reminders for an invoice or a whole customer: dispute, promise, opt-out, hold."""

    __tablename__ = "pauses"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True, description="dispute | promise | opt_out | hold")
    invoice_number: str | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    until: date | None = Field(default=None, description="Last paused day; open-ended if empty")
    reason: str = ""
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
