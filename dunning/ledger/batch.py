"""A batch's worth of the act step's ledger work in a few statements.

A sweep acts on thousands of actions. Read and written one by one, each cost ~18 SQL
statements in ~6 transactions (each taking SQLite's write lock): more than half of the
action's CPU. Here the same work is set-based:

* `presend_checks`: what the ledger says about every action of a batch just before it is
  claimed (closed by a webhook? paused? the promised date), one read transaction;
* `claim_many`: outbox claims, one INSERT ... ON CONFLICT DO NOTHING for all; a claim
  that carries its message id goes straight to `sending` (claim and "about to hand it to
  the provider" in one statement);
* `Writes` / `apply_writes`: what a step records besides its own row (events, human tasks,
  customer statuses, CRM entries), as typed values written in the caller's transaction,
  so a sent message and its escalation are recorded together or not at all.

`Ledger` (store.py) is the door: its methods open the transactions and call these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from dunning.ledger.crm_outbox import QueuedEntry, entry_row, jsonable, task_payload
from dunning.ledger.inbound import CLOSED, TRUST_WEBHOOK_CLOSE
from dunning.ledger.models import (
    PAUSE_REASONS,
    Action,
    ActionState,
    CrmEntry,
    CustomerStatus,
    Event,
    HumanTask,
    InvoiceRecord,
    Pause,
    Promise,
    utcnow,
)

#: Kinds of webhook event that open or close an invoice, newest wins.
_WEBHOOK_KINDS = ("invoice_paid", "invoice_cancelled", "invoice_reopened")
#: Rows per IN (...) list: SQLite's default limit on bound parameters is 32,766.
_CHUNK = 500


# -- typed values ----------------------------------------------------------------------------
@dataclass(frozen=True)
class NewEvent:
    """An event to record (`events` table): what happened, to which invoice, by whom."""

    kind: str
    invoice_number: str = ""
    customer_id: str = ""
    action_key: str = ""
    actor: str = "dunning"
    detail: dict[str, Any] = field(default_factory=dict)

    def row(self, at: datetime) -> dict[str, Any]:
        return {
            "at": at,
            "kind": self.kind,
            "invoice_number": self.invoice_number,
            "customer_id": self.customer_id,
            "action_key": self.action_key,
            "actor": self.actor,
            "detail": jsonable(self.detail),
        }


@dataclass(frozen=True)
class NewTask:
    """A human task to open once per `key`, with its CRM entry (key `crm_key`, default
    `key`) and a `task_opened` event. `crm` adds to or overrides the CRM payload."""

    key: str
    title: str
    invoice_number: str = ""
    customer_id: str = ""
    assignee: str = ""
    due_on: date | None = None
    note: str = ""
    crm_key: str = ""
    crm: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusChange:
    """A customer's collection status (insert or update), its `customer_status` event and,
    if given, its CRM entry."""

    customer_id: str
    status: str
    reason: str = ""
    crm: QueuedEntry | None = None


@dataclass(frozen=True)
class Writes:
    """What a step records in one transaction besides its own row. Empty by default."""

    events: tuple[NewEvent, ...] = ()
    tasks: tuple[NewTask, ...] = ()
    statuses: tuple[StatusChange, ...] = ()
    #: CRM entries, each queued once per key (kept as it is if already queued).
    entries: tuple[QueuedEntry, ...] = ()

    def __add__(self, other: Writes) -> Writes:
        return Writes(
            self.events + other.events,
            self.tasks + other.tasks,
            self.statuses + other.statuses,
            self.entries + other.entries,
        )

    def __bool__(self) -> bool:
        return bool(self.events or self.tasks or self.statuses or self.entries)


@dataclass(frozen=True)
class PresendRequest:
    """One action about to be claimed: its invoice, customer, channel and local day, and
    the promise a "promise broken" action names."""

    invoice_number: str
    customer_id: str
    channel: str
    today: date
    promise_id: int | None = None


@dataclass(frozen=True)
class PresendCheck:
    """What the ledger says about an action just before it is claimed (`presend_checks`)."""

    #: "paid" / "cancelled" if the ledger knows the invoice closed, else None.
    closed: str | None
    #: Why a pause stops it today ("" if nothing does; not read when closed).
    pause: str
    #: The promised date of the promise named by the action, if asked and found.
    promised_on: date | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """One outbox action to take for sending (`claim_many`)."""

    key: str
    invoice_number: str
    customer_id: str
    stage: str
    channel: str
    recipient: str = ""
    amount_due: float | None = None
    currency: str = ""
    flow_run_id: str = ""
    #: Set: the message is built and goes to the provider next, so the claim is taken as
    #: `sending` with this id (what `Ledger.mark_sending` would write just after).
    message_id: str = ""

    @property
    def state(self) -> ActionState:
        return ActionState.sending if self.message_id else ActionState.claimed


@dataclass(frozen=True)
class Claim:
    """Outcome of trying to take an action: `claimed` True means this caller must send it."""

    claimed: bool
    state: str
    message_id: str = ""


# -- reads -----------------------------------------------------------------------------------
def presend_checks(
    conn: sa.Connection,
    requests: Sequence[PresendRequest],
    *,
    promise_grace_days: int = 0,
    dispute_scope: str = "customer",
    now: datetime | None = None,
) -> list[PresendCheck]:
    """`PresendCheck` of each request, in order, inside the caller's (read) transaction:
    four queries however many requests there are."""
    invoices = sorted({r.invoice_number for r in requests})
    closed = closed_statuses(conn, invoices, now=now)
    pauses = _active_pauses(
        conn,
        invoices,
        sorted({r.customer_id for r in requests if r.customer_id}),
        dispute_scope,
    )
    promise_ids = sorted({r.promise_id for r in requests if r.promise_id is not None})
    promised: dict[int, date] = {}
    for ids in _chunks(promise_ids):
        promised.update(
            conn.execute(
                sa.select(Promise.id, Promise.promised_on).where(Promise.id.in_(ids))
            ).all()
        )
    return [
        PresendCheck(
            closed=closed.get(r.invoice_number),
            pause=""
            if closed.get(r.invoice_number)
            else pause_reason(pauses, r, promise_grace_days, dispute_scope),
            promised_on=promised.get(r.promise_id) if r.promise_id is not None else None,
        )
        for r in requests
    ]


def closed_statuses(
    conn: sa.Connection, invoice_numbers: Sequence[str], *, now: datetime | None = None
) -> dict[str, str]:
    """"paid" or "cancelled" for each of these invoices the ledger knows to be closed.

    Closed means: the ledger's row says so, or a webhook closed it within the last
    `TRUST_WEBHOOK_CLOSE` and no webhook reopened it since (a sweep whose source lags
    behind the payment does not bring the reminders back)."""
    now = now or datetime.now(UTC)
    closed: dict[str, str] = {}
    for numbers in _chunks(invoice_numbers):
        rows = conn.execute(
            sa.select(InvoiceRecord.invoice_number, InvoiceRecord.status).where(
                InvoiceRecord.invoice_number.in_(numbers), InvoiceRecord.status.in_(CLOSED)
            )
        ).all()
        closed.update({number: status for number, status in rows})
        open_ones = [n for n in numbers if n not in closed]
        if not open_ones:
            continue
        latest: dict[str, tuple[datetime, int, str]] = {}
        for number, kind, at, event_id in conn.execute(
            sa.select(Event.invoice_number, Event.kind, Event.at, Event.id).where(
                Event.invoice_number.in_(open_ones),
                Event.actor.like("webhook:%"),
                Event.kind.in_(_WEBHOOK_KINDS),
            )
        ).all():
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            if number not in latest or (at, event_id) > latest[number][:2]:
                latest[number] = (at, event_id, kind)
        for number, (at, _, kind) in latest.items():
            if kind != "invoice_reopened" and now - at <= TRUST_WEBHOOK_CLOSE:
                closed[number] = kind.removeprefix("invoice_")
    return closed


@dataclass(frozen=True)
class _PauseRow:
    kind: str
    channel: str
    invoice_number: str
    customer_id: str
    #: The customer of the paused invoice (a dispute on one invoice can stop them all).
    invoice_customer: str
    until: date | None


def _active_pauses(
    conn: sa.Connection, invoices: Sequence[str], customers: Sequence[str], dispute_scope: str
) -> list[_PauseRow]:
    """The active pauses that may stop any of these invoices or customers."""
    rows: dict[int, _PauseRow] = {}
    paused_invoice = aliased(InvoiceRecord)
    base = sa.select(
        Pause.id,
        Pause.kind,
        Pause.channel,
        Pause.invoice_number,
        Pause.customer_id,
        paused_invoice.customer_id.label("invoice_customer"),
        Pause.until,
    ).outerjoin(paused_invoice, paused_invoice.invoice_number == Pause.invoice_number)
    wheres = [Pause.invoice_number.in_(chunk) for chunk in _chunks(invoices)]
    for chunk in _chunks(customers):
        wheres.append(Pause.customer_id.in_(chunk))
        if dispute_scope == "customer":
            wheres.append(sa.and_(Pause.kind == "dispute", paused_invoice.customer_id.in_(chunk)))
    for where in wheres:
        for r in conn.execute(base.where(Pause.active, where)).all():
            rows[r.id] = _PauseRow(
                r.kind,
                r.channel or "",
                r.invoice_number or "",
                r.customer_id or "",
                r.invoice_customer or "",
                r.until,
            )
    return list(rows.values())


def pause_reason(
    pauses: Sequence[_PauseRow],
    request: PresendRequest,
    promise_grace_days: int,
    dispute_scope: str,
) -> str:
    """Why `request` gets nothing today ("" if nothing stops it), among `pauses`.

    A pause naming an invoice stops that invoice; one without an invoice stops all the
    customer's. With `dispute_scope` "customer" a dispute about any of the customer's
    invoices (or the customer) stops them all. Pauses on another channel do not count.
    """
    customer = request.customer_id

    def applies(p: _PauseRow) -> bool:
        if p.channel not in ("", request.channel):
            return False
        if p.invoice_number == request.invoice_number:
            return True
        if customer and p.customer_id == customer and not p.invoice_number:
            return True
        return bool(
            customer
            and dispute_scope == "customer"
            and p.kind == "dispute"
            and customer in (p.customer_id, p.invoice_customer)
        )

    stopping = [p for p in pauses if applies(p)]
    for kind in PAUSE_REASONS:  # in order of precedence
        grace = timedelta(days=promise_grace_days if kind == "promise" else 0)
        for p in stopping:
            if p.kind == kind and (p.until is None or p.until + grace >= request.today):
                return PAUSE_REASONS[kind]
    return ""


# -- writes ----------------------------------------------------------------------------------
def claim_many(
    conn: sa.Connection,
    requests: Sequence[ClaimRequest],
    *,
    stale_after: timedelta,
    insert: sa.Insert,
) -> list[Claim]:
    """Take each action for sending, or say who has it, in the caller's transaction.

    One INSERT ... ON CONFLICT DO NOTHING for all; a key already there is taken again only
    if it failed, or if its claim never reached the provider and is older than
    `stale_after` (one conditional UPDATE each: rare). `insert` is the dialect's INSERT of
    `actions` (`store._dialect_insert`).
    """
    if not requests:
        return []
    now = utcnow()
    rows = [
        {
            "key": r.key,
            "invoice_number": r.invoice_number,
            "customer_id": r.customer_id,
            "stage": r.stage,
            "channel": r.channel,
            "state": r.state.value,
            "recipient": r.recipient,
            "amount_due": r.amount_due,
            "currency": r.currency,
            "flow_run_id": r.flow_run_id,
            "attempts": 1,
            "created_at": now,
            "updated_at": now,
            "message_id": r.message_id,
            "provider_response": "",
            "error": "",
            "delivery_status": "",
        }
        for r in requests
    ]
    new = insert.on_conflict_do_nothing(index_elements=["key"]).returning(insert.table.c.key)
    if len(rows) == 1:  # the usual case (an email, just before it goes): no executemany
        taken = set(conn.execute(new, rows[0]).scalars())
    else:
        taken = set(conn.execute(new, rows).scalars())
    if len(taken) == len(requests):
        return [Claim(True, r.state.value) for r in requests]
    table = Action.__table__
    retake = (table.c.state == ActionState.failed.value) | (
        (table.c.state == ActionState.claimed.value) & (table.c.updated_at < now - stale_after)
    )
    for r in requests:
        if r.key in taken:
            continue
        again = conn.execute(
            sa.update(table)
            .where(table.c.key == r.key, retake)
            .values(
                state=r.state.value,
                attempts=table.c.attempts + 1,
                updated_at=now,
                recipient=r.recipient,
                amount_due=r.amount_due,
                flow_run_id=r.flow_run_id,
                **({"message_id": r.message_id} if r.message_id else {}),
            )
        )
        if again.rowcount == 1:
            taken.add(r.key)
    others = [r.key for r in requests if r.key not in taken]
    current: dict[str, tuple[str, str]] = {}
    for keys in _chunks(others):
        current.update(
            (key, (state, message_id or ""))
            for key, state, message_id in conn.execute(
                sa.select(table.c.key, table.c.state, table.c.message_id).where(
                    table.c.key.in_(keys)
                )
            ).all()
        )
    return [
        Claim(True, r.state.value)
        if r.key in taken
        else Claim(False, *current.get(r.key, (ActionState.claimed.value, "")))
        for r in requests
    ]


def apply_writes(
    conn: sa.Connection, writes: Writes, *, insert_of: Any, now: datetime | None = None
) -> tuple[str, ...]:
    """Record `writes` in the caller's transaction; returns the keys of the tasks opened
    (a task whose key exists is left as it is, and its CRM entry and event are not written).

    `insert_of(model)` is the dialect's INSERT of a model's table (`store._dialect_insert`).
    """
    now = now or utcnow()
    events = [e.row(now) for e in writes.events]
    entries = [e.row() for e in writes.entries]
    opened: list[str] = []
    for task in writes.tasks:
        new = conn.execute(
            insert_of(HumanTask)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(HumanTask.__table__.c.id),
            {
                "key": task.key,
                "title": task.title,
                "invoice_number": task.invoice_number,
                "customer_id": task.customer_id,
                "assignee": task.assignee,
                "due_on": task.due_on,
                "status": "open",
                "note": task.note,
                "created_at": now,
                "outcome": "",
            },
        ).first()
        if new is None:  # opened before (another sweep, an earlier attempt)
            continue
        opened.append(task.key)
        details = {"note": task.note} if task.note else {}
        payload = task_payload(
            title=task.title,
            assignee=task.assignee,
            due_on=task.due_on,
            **{**details, **(task.crm or {})},
        )
        entries.append(
            entry_row(
                key=task.crm_key or task.key,
                kind="task",
                payload=payload,
                invoice_number=task.invoice_number,
                customer_id=task.customer_id,
            )
        )
        events.append(
            NewEvent(
                "task_opened",
                invoice_number=task.invoice_number,
                customer_id=task.customer_id,
                action_key=task.key,
                detail={"title": task.title, "assignee": task.assignee},
            ).row(now)
        )
    for change in writes.statuses:
        values = {"status": change.status, "reason": change.reason, "updated_at": now}
        upsert = insert_of(CustomerStatus)
        conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["customer_id"], set_={k: upsert.excluded[k] for k in values}
            ),
            {"customer_id": change.customer_id, **values},
        )
        events.append(
            NewEvent(
                "customer_status",
                customer_id=change.customer_id,
                detail={"status": change.status, "reason": change.reason},
            ).row(now)
        )
        if change.crm is not None:
            entries.append(change.crm.row())
    if events:
        conn.execute(sa.insert(Event), events)
    if entries:
        # An entry queued under its key earlier (by an older version, a retry) stays.
        conn.execute(insert_of(CrmEntry).on_conflict_do_nothing(index_elements=["key"]), entries)
    return tuple(opened)


def _chunks(values: Sequence[Any]) -> list[list[Any]]:
    values = list(values)
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]
