"""What the desk's pages read from the ledger: a page of tasks, one customer, a search.

Every query is bounded (LIMIT) and served by an index (`apps.desk.indexes`), so a page
answers fast on a ledger of 100k invoices and a million events.

Who sees what: managers see every task and customer. A collector sees the open tasks
assigned to their own email or to the role `account_owner` (the role the ladder gives the
account owner's calls), and the customers that have such a task (open or closed); tasks
for the role `manager` stay with managers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from apps.desk.auth import User
from dunning.ledger.models import (
    Action,
    CustomerStatus,
    Event,
    HumanTask,
    InboundMessage,
    InvoiceRecord,
    Pause,
    Promise,
)

T_TASK = HumanTask.__table__
T_INV = InvoiceRecord.__table__
T_EVENT = Event.__table__
T_ACTION = Action.__table__
T_INBOUND = InboundMessage.__table__
T_PAUSE = Pause.__table__
T_PROMISE = Promise.__table__
T_STATUS = CustomerStatus.__table__

#: The role whose tasks every collector sees (the ladder's "call the customer" tasks).
SHARED_ROLE = "account_owner"
TIMELINE_LIMIT = 200


def visible_assignees(user: User) -> list[str] | None:
    """The assignees whose tasks `user` sees; None means all (a manager)."""
    return None if user.is_manager else [user.email, SHARED_ROLE]


def can_see_customer(engine: Engine, user: User, customer_id: str) -> bool:
    """Managers see every customer; a collector those with a task assigned to them."""
    if user.is_manager:
        return True
    stmt = (
        sa.select(T_TASK.c.id)
        .where(T_TASK.c.customer_id == customer_id, T_TASK.c.assignee.in_(visible_assignees(user)))
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).first() is not None


def can_close_task(user: User, assignee: str) -> bool:
    """A manager closes any task; a collector the ones they see."""
    assignees = visible_assignees(user)
    return assignees is None or assignee in assignees


@dataclass
class TaskPage:
    """One page of open tasks (`has_next`: another page follows)."""

    rows: list[dict[str, Any]]
    page: int
    has_next: bool
    assignees: list[str] = field(default_factory=list)


def open_tasks(
    engine: Engine, user: User, *, assignee: str = "", page: int = 1, per_page: int = 50
) -> TaskPage:
    """Open tasks the user sees, soonest due first, then the largest amount at stake.

    `assignee` narrows the list to one assignee (a manager's filter; a collector's choice
    among their own). Pages start at 1; the page size is `per_page`.
    """
    page = max(page, 1)
    allowed = visible_assignees(user)
    stmt = (
        sa.select(
            T_TASK.c.id,
            T_TASK.c.title,
            T_TASK.c.assignee,
            T_TASK.c.due_on,
            T_TASK.c.note,
            T_TASK.c.invoice_number,
            T_TASK.c.customer_id,
            T_TASK.c.created_at,
            T_INV.c.customer_name,
            T_INV.c.amount_due,
            T_INV.c.currency,
            T_INV.c.due_date.label("invoice_due"),
        )
        .select_from(T_TASK.outerjoin(T_INV, T_INV.c.invoice_number == T_TASK.c.invoice_number))
        .where(T_TASK.c.status == "open")
        .order_by(
            T_TASK.c.due_on.is_(None),
            T_TASK.c.due_on,
            sa.func.coalesce(T_INV.c.amount_due, 0).desc(),
            T_TASK.c.id,
        )
        .limit(per_page + 1)
        .offset((page - 1) * per_page)
    )
    if allowed is not None:
        stmt = stmt.where(T_TASK.c.assignee.in_(allowed))
    if assignee:
        stmt = stmt.where(T_TASK.c.assignee == assignee)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if allowed is None:
            names = sa.select(T_TASK.c.assignee).where(T_TASK.c.status == "open").distinct()
            assignees = sorted(str(a) for (a,) in conn.execute(names) if a)
        else:
            assignees = allowed
    return TaskPage(
        rows=rows[:per_page], page=page, has_next=len(rows) > per_page, assignees=assignees
    )


def task(engine: Engine, task_id: int) -> dict[str, Any] | None:
    """One task by id, with its invoice's customer and amount; None if there is none."""
    stmt = (
        sa.select(T_TASK, T_INV.c.customer_name, T_INV.c.amount_due, T_INV.c.currency)
        .select_from(T_TASK.outerjoin(T_INV, T_INV.c.invoice_number == T_TASK.c.invoice_number))
        .where(T_TASK.c.id == task_id)
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def customer_page(engine: Engine, customer_id: str) -> dict[str, Any] | None:
    """Everything the customer page shows; None for a customer the ledger does not know.

    Keys: `customer_id`, `name`, `email`, `phone`, `status` (row or None), `invoices`,
    `pauses` (active), `promises`, `tasks`, `timeline` (newest first, at most 200 entries),
    `stages` (invoice number -> the latest stage sent).
    """
    with engine.connect() as conn:
        invoices = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(T_INV)
                .where(T_INV.c.customer_id == customer_id)
                .order_by((T_INV.c.status == "open").desc(), T_INV.c.due_date.desc())
                .limit(200)
            )
        ]
        if not invoices:
            return None
        numbers = [i["invoice_number"] for i in invoices]
        status = conn.execute(
            sa.select(T_STATUS).where(T_STATUS.c.customer_id == customer_id)
        ).first()
        pauses = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(T_PAUSE)
                .where(
                    T_PAUSE.c.active,
                    sa.or_(
                        T_PAUSE.c.customer_id == customer_id, T_PAUSE.c.invoice_number.in_(numbers)
                    ),
                )
                .order_by(T_PAUSE.c.created_at.desc())
            )
        ]
        promises = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(T_PROMISE)
                .where(T_PROMISE.c.customer_id == customer_id)
                .order_by(T_PROMISE.c.made_at.desc())
                .limit(20)
            )
        ]
        tasks = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(T_TASK)
                .where(T_TASK.c.customer_id == customer_id)
                .order_by((T_TASK.c.status == "open").desc(), T_TASK.c.created_at.desc())
                .limit(50)
            )
        ]
        timeline = _timeline(conn, customer_id, numbers)
        stages: dict[str, str] = {}
        for r in conn.execute(
            sa.select(T_ACTION.c.invoice_number, T_ACTION.c.stage)
            .where(T_ACTION.c.customer_id == customer_id, T_ACTION.c.state == "sent")
            .order_by(T_ACTION.c.sent_at)
        ):
            stages[r.invoice_number] = r.stage  # the latest sent stage wins
    first = invoices[0]
    return {
        "customer_id": customer_id,
        "name": first["customer_name"] or customer_id,
        "email": first["email"],
        "phone": first["phone"],
        "status": dict(status._mapping) if status else None,
        "invoices": invoices,
        "pauses": pauses,
        "promises": promises,
        "tasks": tasks,
        "timeline": timeline,
        "stages": stages,
    }


def _timeline(conn: sa.Connection, customer_id: str, numbers: list[str]) -> list[dict[str, Any]]:
    """The customer's events and replies, newest first; sends carry their delivery status."""
    by_customer = (
        sa.select(T_EVENT)
        .where(T_EVENT.c.customer_id == customer_id)
        .order_by(T_EVENT.c.at.desc())
        .limit(TIMELINE_LIMIT)
    )
    # Some events name only the invoice (an invoice-level pause): take those as well.
    by_invoice = (
        sa.select(T_EVENT)
        .where(T_EVENT.c.customer_id == "", T_EVENT.c.invoice_number.in_(numbers))
        .order_by(T_EVENT.c.at.desc())
        .limit(TIMELINE_LIMIT)
    )
    events = [dict(r._mapping) for r in conn.execute(by_customer)]
    events += [dict(r._mapping) for r in conn.execute(by_invoice)]
    keys = {e["action_key"] for e in events if e["kind"] == "sent" and e["action_key"]}
    delivery: dict[str, dict[str, Any]] = {}
    if keys:
        for r in conn.execute(
            sa.select(
                T_ACTION.c.key,
                T_ACTION.c.state,
                T_ACTION.c.delivery_status,
                T_ACTION.c.delivered_at,
                T_ACTION.c.read_at,
            ).where(T_ACTION.c.key.in_(sorted(keys)))
        ):
            delivery[r.key] = dict(r._mapping)
    entries: list[dict[str, Any]] = []
    for e in events:
        detail = e["detail"] or {}
        entries.append(
            {
                "at": e["at"],
                "kind": e["kind"],
                "invoice_number": e["invoice_number"],
                "actor": e["actor"],
                "detail": detail if isinstance(detail, dict) else {"detail": detail},
                "delivery": delivery.get(e["action_key"]),
            }
        )
    replies = conn.execute(
        sa.select(T_INBOUND)
        .where(T_INBOUND.c.customer_id == customer_id)
        .order_by(T_INBOUND.c.received_at.desc())
        .limit(50)
    )
    for r in replies:
        m = r._mapping
        entries.append(
            {
                "at": m["received_at"],
                "kind": "reply",
                "invoice_number": ", ".join(m["invoice_numbers"] or []),
                "actor": m["sender"],
                "detail": {
                    "channel": m["channel"],
                    "subject": m["subject"],
                    "text": m["text"],
                    "intent": m["intent"],
                    "confidence": m["confidence"],
                    "promise_date": m["promise_date"],
                    "state": m["state"],
                    "outcome": m["outcome"],
                },
                "delivery": None,
            }
        )
    entries.sort(key=lambda x: _sortable(x["at"]), reverse=True)
    return entries[:TIMELINE_LIMIT]


def _sortable(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min
    return value.replace(tzinfo=None) if value.tzinfo else value


def search(engine: Engine, user: User, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Customers matching a name, invoice number, email or phone (one row per customer).

    Invoice numbers and emails match exactly or by prefix, phones by their digits (all
    indexed lookups); names match anywhere in the name, case-insensitively, which reads the
    whole invoice table, so it runs only when the indexed lookups found nothing.
    """
    q = query.strip()
    if not q:
        return []
    # Prefix as a range: served by the primary key and the email index on every database.
    by_key = [
        sa.and_(T_INV.c.invoice_number >= q, T_INV.c.invoice_number < q + "\uffff"),
        sa.and_(T_INV.c.email >= q.lower(), T_INV.c.email < q.lower() + "\uffff"),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 6 and len(digits) >= len(q.replace(" ", "")) - 1:
        plus = "+" + digits
        by_key.append(sa.and_(T_INV.c.phone >= plus, T_INV.c.phone < plus + "\uffff"))
        by_key.append(sa.and_(T_INV.c.phone >= digits, T_INV.c.phone < digits + "\uffff"))
    rows = _customers_where(engine, user, sa.or_(*by_key), limit)
    if rows or "@" in q:
        return rows
    like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # Two steps: the matching customers from the (name, customer) index alone, a narrow scan,
    # then their figures through the customer index.
    names = (
        sa.select(T_INV.c.customer_id)
        .where(T_INV.c.customer_name.ilike(f"%{like}%", escape="\\"))
        # GROUP BY the index's columns (not DISTINCT): the scan stays on the covering index.
        .group_by(T_INV.c.customer_name, T_INV.c.customer_id)
        .limit(limit * 4)
    )
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(names)]
    if not ids:
        return []
    return _customers_where(engine, user, T_INV.c.customer_id.in_(ids), limit)


def _customers_where(
    engine: Engine, user: User, condition: sa.ColumnElement[bool], limit: int
) -> list[dict[str, Any]]:
    stmt = (
        sa.select(
            T_INV.c.customer_id,
            sa.func.max(T_INV.c.customer_name).label("customer_name"),
            sa.func.max(T_INV.c.email).label("email"),
            sa.func.max(T_INV.c.phone).label("phone"),
            sa.func.count().label("invoices"),
            sa.func.sum(sa.case((T_INV.c.status == "open", T_INV.c.amount_due), else_=0)).label(
                "open_due"
            ),
            # Amounts are only added within one currency: the page shows the sum only then.
            sa.func.count(sa.distinct(sa.case((T_INV.c.status == "open", T_INV.c.currency)))).label(
                "currencies"
            ),
            sa.func.max(sa.case((T_INV.c.status == "open", T_INV.c.currency))).label("currency"),
        )
        .where(condition)
        .group_by(T_INV.c.customer_id)
        .order_by(sa.func.max(T_INV.c.customer_name))
        .limit(limit)
    )
    allowed = visible_assignees(user)
    if allowed is not None:
        owned = sa.select(T_TASK.c.customer_id).where(T_TASK.c.assignee.in_(allowed))
        stmt = stmt.where(T_INV.c.customer_id.in_(owned))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
