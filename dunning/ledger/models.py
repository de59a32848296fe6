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


#: Why an invoice gets nothing while a pause of this kind is active (the planner's and the
#: send-time check's skip reasons).
PAUSE_REASONS: dict[str, str] = {
    "dispute": "disputed",
    "opt_out": "opted_out",
    "hold": "on_hold",
    "verify_payment": "on_hold",
    "promise": "promise_to_pay",
}


class InvoiceRecord(SQLModel, table=True):
    """Every invoice seen at the source, as of the last sweep."""

    __tablename__ = "invoices"

    invoice_number: str = Field(primary_key=True)
    customer_id: str = Field(default="", index=True)
    customer_name: str = ""
    email: str = ""
    phone: str = ""
    currency: str = "EUR"
    amount_total: float = 0.0
    amount_due: float = 0.0
    due_date: date | None = None
    status: str = "open"
    #: The account owner and their manager as the source gave them ("" when it gave none).
    owner_email: str = Field(default="", index=True)
    manager_email: str = ""
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
    delivery_status: str = Field(
        default="", description="What the provider reported later: delivered | read | failed"
    )
    delivered_at: datetime | None = None
    read_at: datetime | None = None


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
    kind: str = Field(index=True, description="dispute | promise | opt_out | hold | verify_payment")
    channel: str = Field(default="", description="Only this channel (opt-outs); empty: all")
    invoice_number: str | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    until: date | None = Field(default=None, description="Last paused day; open-ended if empty")
    reason: str = ""
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class InboundMessage(SQLModel, table=True):
    """The inbox: every message a customer sent us (email over IMAP, WhatsApp by webhook).

    Written first, understood and acted on later, so nothing is lost when a step fails.
    `provider_id` (the Message-ID or WhatsApp message id) makes a second fetch a no-op.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("provider_id", name="uq_inbound_provider_id"),)

    id: int | None = Field(default=None, primary_key=True)
    provider_id: str
    channel: str = Field(default="email", description="email | whatsapp")
    received_at: datetime = Field(default_factory=utcnow, index=True)
    sender: str = Field(default="", index=True, description="Address or E.164 phone")
    sender_name: str = ""
    subject: str = ""
    text: str = ""
    in_reply_to: str = ""
    references: str = ""
    headers: dict = Field(default_factory=dict, sa_column=Column(JSON))
    # What matching and classification found:
    action_key: str = Field(default="", description="The reminder this answers, if known")
    invoice_numbers: list = Field(default_factory=list, sa_column=Column(JSON))
    customer_id: str = Field(default="", index=True)
    intent: str = ""
    confidence: float | None = None
    lang: str = ""
    promise_date: date | None = None
    state: str = Field(
        default="new", index=True, description="new | processed | needs_human | ignored"
    )
    outcome: str = ""
    processed_at: datetime | None = None


class PromiseState(StrEnum):
    open = "open"
    kept = "kept"
    broken = "broken"
    cancelled = "cancelled"


class Promise(SQLModel, table=True):
    """A customer's promise to pay an invoice by a date: kept if paid by then plus grace."""

    __tablename__ = "promises"

    id: int | None = Field(default=None, primary_key=True)
    invoice_number: str = Field(index=True)
    customer_id: str = Field(default="", index=True)
    promised_on: date
    amount: float | None = None
    source: str = Field(default="", description="reply:<inbound id> | desk:<user> | ...")
    state: str = Field(default=PromiseState.open, index=True)
    made_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


class CrmEntry(SQLModel, table=True):
    """The CRM outbox: a note, task or status for the configured CRM, kept until delivered.

    Written in the same step as the action it logs; a CRM that is down leaves the entry
    `pending` and the next run delivers it (`key` makes delivery idempotent).
    """

    __tablename__ = "crm_entries"
    __table_args__ = (UniqueConstraint("key", name="uq_crm_entries_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str
    kind: str = Field(description="note | task | status")
    invoice_number: str = Field(default="", index=True)
    customer_id: str = Field(default="", index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(
        default="pending", index=True, description="pending | delivering | done | failed"
    )
    crm: str = Field(default="", description="Which CRM took it (block type)")
    external_id: str = ""
    attempts: int = 0
    error: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class WebhookEvent(SQLModel, table=True):
    """Every verified webhook call, written before anything else is done with it.

    Unique per provider and the provider's event id, so a replayed or retried delivery is
    recognised and ignored. `state`: `received` (stored, effect not applied yet), `stored`
    (applied, not yet emitted as a Prefect event), `emitted`, or `failed` (the effect
    failed; applied again on the provider's retry).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_webhook_provider_event"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(description="whatsapp | stripe | erp")
    event_id: str
    kind: str = Field(default="", index=True, description="e.g. invoice.paid, message, status")
    invoice_number: str = Field(default="", index=True)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON))
    received_at: datetime = Field(default_factory=utcnow, index=True)
    state: str = Field(
        default="received", index=True, description="received | stored | emitted | failed"
    )
    emitted_at: datetime | None = None
    error: str = ""


class DeskUser(SQLModel, table=True):
    """A person who works in the collections desk (`dunning desk serve`)."""

    __tablename__ = "desk_users"

    email: str = Field(primary_key=True)
    role: str = Field(default="collector", description="collector | manager")
    password_hash: str = Field(description="argon2 hash; the password itself is never stored")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_login: datetime | None = None


class DeskSession(SQLModel, table=True):
    """A desk login: the server-side half of the session cookie.

    The cookie carries a random token; only its SHA-256 is stored here, so reading the
    ledger gives no working cookie. A session ends when revoked (logout, password change,
    user removed) or when it expires, whatever the cookie says.
    """

    __tablename__ = "desk_sessions"

    id: str = Field(primary_key=True, description="SHA-256 (hex) of the cookie's token")
    email: str = Field(index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None


class DeskLoginFailure(SQLModel, table=True):
    """A failed desk login: what the rate limit counts and managers see."""

    __tablename__ = "desk_login_failures"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(index=True, description="the email typed (normalized), known or not")
    address: str = Field(default="", index=True, description="the client's IP address")
    at: datetime = Field(default_factory=utcnow, index=True)
    reason: str = Field(default="", description="wrong_password | locked")


class Attachment(SQLModel, table=True):
    """A file a desk user attached to a customer or to one of its tasks (`dunning.ledger.
    attachments`). The bytes live in the attachments folder under `id`; the uploaded name
    is only shown (sanitized), never used as a path."""

    __tablename__ = "attachments"

    id: str = Field(primary_key=True, description="Random hex id, also the stored file's name")
    customer_id: str = Field(default="", index=True)
    task_id: int | None = Field(default=None, index=True)
    invoice_number: str = ""
    filename: str = Field(description="The uploaded name, sanitized, for display and download")
    content_type: str = Field(description="The type sniffed from the content, not the client's")
    size: int
    sha256: str
    uploaded_by: str = Field(description="The desk user's email")
    uploaded_at: datetime = Field(default_factory=utcnow, index=True)


class ReplyDraft(SQLModel, table=True):
    """A drafted answer to a customer's message, waiting for a person (the desk) to edit
    and approve it (sent once, through the outbox) or discard it.

    One per task (`task_key`): processing the message again finds it instead of drafting
    a second one. `state`: drafted -> sending -> sent (or rejected / in_doubt, as the
    outbox row), or drafted -> discarded.
    """

    __tablename__ = "reply_drafts"
    __table_args__ = (UniqueConstraint("task_key", name="uq_reply_drafts_task_key"),)

    id: int | None = Field(default=None, primary_key=True)
    task_key: str = Field(description="The human task's key (reply:<inbound id>:draft)")
    inbound_id: int = Field(index=True)
    invoice_number: str = Field(default="", index=True)
    customer_id: str = Field(default="", index=True)
    channel: str = "email"
    recipient: str = ""
    in_reply_to: str = Field(default="", description="The customer's Message-ID")
    references: str = ""
    lang: str = ""
    subject: str = ""
    text: str = Field(default="", description="The draft; the text sent once approved")
    sources: list = Field(default_factory=list, sa_column=Column(JSON))
    answered: bool = Field(default=False, description="The knowledge base had an answer")
    state: str = Field(default="drafted", index=True)
    decided_by: str = ""
    decided_at: datetime | None = None
    imap_appended_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
