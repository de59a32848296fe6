"""The collections desk's reads and writes: pages of tasks, a customer's page, search,
closing a task, ending a customer's holds, desk users, their sessions and failed logins; and
the indexes they need.

Who may see what is the desk's rule (`apps.desk.queries`): these functions take the list of
assignees whose tasks the user sees (None: all). Every query is bounded (LIMIT) and served
by an index (`DESK_INDEXES`), so a page answers fast on a ledger of 100k invoices and a
million events. The indexes live here rather than in the models so the flows' schema stays
as it is; each is `CREATE INDEX IF NOT EXISTS` (SQLite and PostgreSQL both support it),
created when the desk starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import sqlalchemy as sa
from sqlmodel import Session

from dunning.ledger.models import (
    Action,
    CustomerStatus,
    DeskLoginFailure,
    DeskSession,
    DeskUser,
    Event,
    HumanTask,
    InboundMessage,
    InvoiceRecord,
    Pause,
    Promise,
    utcnow,
)

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

T_TASK = HumanTask.__table__
T_INV = InvoiceRecord.__table__
T_EVENT = Event.__table__
T_ACTION = Action.__table__
T_INBOUND = InboundMessage.__table__
T_PAUSE = Pause.__table__
T_PROMISE = Promise.__table__
T_STATUS = CustomerStatus.__table__

TIMELINE_LIMIT = 200


def customer_has_task_for(ledger: Ledger, customer_id: str, assignees: list[str]) -> bool:
    """True if the customer has a task (open or closed) assigned to one of `assignees`, or
    an invoice whose account owner (`owner_email`) is one of them."""
    stmt = (
        sa.select(T_TASK.c.id)
        .where(T_TASK.c.customer_id == customer_id, T_TASK.c.assignee.in_(assignees))
        .limit(1)
    )
    owned = (
        sa.select(T_INV.c.invoice_number)
        .where(T_INV.c.customer_id == customer_id, T_INV.c.owner_email.in_(assignees))
        .limit(1)
    )
    with ledger.engine.connect() as conn:
        return conn.execute(stmt).first() is not None or conn.execute(owned).first() is not None


def owned_customers(ledger: Ledger, owner: str, limit: int = 200) -> list[dict[str, Any]]:
    """The customers `owner` (an email) is the account owner of: those with an invoice whose
    `owner_email` is theirs, with the same figures as a search."""
    mine = sa.select(T_INV.c.customer_id).where(T_INV.c.owner_email == owner.strip().lower())
    return _customers_where(ledger, None, T_INV.c.customer_id.in_(mine), limit)


@dataclass
class TaskPage:
    """One page of open tasks (`has_next`: another page follows)."""

    rows: list[dict[str, Any]]
    page: int
    has_next: bool
    assignees: list[str] = field(default_factory=list)


def open_tasks(
    ledger: Ledger,
    allowed: list[str] | None,
    *,
    assignee: str = "",
    page: int = 1,
    per_page: int = 50,
) -> TaskPage:
    """Open tasks assigned to one of `allowed` (None: to anyone), soonest due first, then
    the largest amount at stake.

    `assignee` narrows the list to one assignee. Pages start at 1; the page size is
    `per_page`. The page's `assignees` are those with open tasks (or `allowed`, if given).
    """
    page = max(page, 1)
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
    with ledger.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
        if allowed is None:
            names = sa.select(T_TASK.c.assignee).where(T_TASK.c.status == "open").distinct()
            assignees = sorted(str(a) for (a,) in conn.execute(names) if a)
        else:
            assignees = allowed
    return TaskPage(
        rows=rows[:per_page], page=page, has_next=len(rows) > per_page, assignees=assignees
    )


def task(ledger: Ledger, task_id: int) -> dict[str, Any] | None:
    """One task by id, with its invoice's customer and amount; None if there is none."""
    stmt = (
        sa.select(T_TASK, T_INV.c.customer_name, T_INV.c.amount_due, T_INV.c.currency)
        .select_from(T_TASK.outerjoin(T_INV, T_INV.c.invoice_number == T_TASK.c.invoice_number))
        .where(T_TASK.c.id == task_id)
    )
    with ledger.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def _dicts(conn: sa.Connection, stmt: sa.Select) -> list[dict[str, Any]]:
    """The rows `stmt` selects, each as a dict of column name to value."""
    return [dict(row) for row in conn.execute(stmt).mappings()]


def customer_page(ledger: Ledger, customer_id: str) -> dict[str, Any] | None:
    """Everything the customer page shows; None for a customer the ledger does not know.

    Keys: `customer_id`, `name`, `email`, `phone`, `status` (row or None), `invoices`,
    `pauses` (active), `promises`, `tasks`, `timeline` (newest first, at most 200 entries),
    `stages` (invoice number -> the latest stage sent).
    """
    with ledger.engine.connect() as conn:
        invoices = _dicts(
            conn,
            sa.select(T_INV)
            .where(T_INV.c.customer_id == customer_id)
            .order_by((T_INV.c.status == "open").desc(), T_INV.c.due_date.desc())
            .limit(200),
        )
        if not invoices:
            return None
        numbers = [i["invoice_number"] for i in invoices]
        status = conn.execute(
            sa.select(T_STATUS).where(T_STATUS.c.customer_id == customer_id)
        ).first()
        pauses = _dicts(
            conn,
            sa.select(T_PAUSE)
            .where(
                T_PAUSE.c.active,
                sa.or_(T_PAUSE.c.customer_id == customer_id, T_PAUSE.c.invoice_number.in_(numbers)),
            )
            .order_by(T_PAUSE.c.created_at.desc()),
        )
        promises = _dicts(
            conn,
            sa.select(T_PROMISE)
            .where(T_PROMISE.c.customer_id == customer_id)
            .order_by(T_PROMISE.c.made_at.desc())
            .limit(20),
        )
        tasks = _dicts(
            conn,
            sa.select(T_TASK)
            .where(T_TASK.c.customer_id == customer_id)
            .order_by((T_TASK.c.status == "open").desc(), T_TASK.c.created_at.desc())
            .limit(50),
        )
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
    """The customer's events and replies, newest first; sends carry their delivery status,
    and every event of an action a flow made (sent, failed, ...) the flow run's id
    (`flow_run`, a UUID; None for the desk's, the webhooks' and the replies' own)."""
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
    keys = {e["action_key"] for e in events if e["action_key"]}
    actions: dict[str, dict[str, Any]] = {}
    if keys:
        for r in conn.execute(
            sa.select(
                T_ACTION.c.key,
                T_ACTION.c.state,
                T_ACTION.c.delivery_status,
                T_ACTION.c.delivered_at,
                T_ACTION.c.read_at,
                T_ACTION.c.flow_run_id,
            ).where(T_ACTION.c.key.in_(sorted(keys)))
        ):
            actions[r.key] = dict(r._mapping)
    entries: list[dict[str, Any]] = []
    for e in events:
        detail = e["detail"] or {}
        action = actions.get(e["action_key"])
        entries.append(
            {
                "at": e["at"],
                "kind": e["kind"],
                "invoice_number": e["invoice_number"],
                "actor": e["actor"],
                "detail": detail if isinstance(detail, dict) else {"detail": detail},
                "delivery": action if e["kind"] == "sent" else None,
                "flow_run": _flow_run(action["flow_run_id"]) if action else None,
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
                "flow_run": None,
            }
        )
    entries.sort(key=lambda x: _sortable(x["at"]), reverse=True)
    return entries[:TIMELINE_LIMIT]


def _flow_run(value: str | None) -> UUID | None:
    """The Prefect flow run an action was taken in; None outside a flow run (the command
    line, a test) or for an id that is not one (never made into a link)."""
    try:
        return UUID(value) if value else None
    except ValueError:
        return None


def _sortable(value: datetime | None) -> datetime:
    if value is None:
        return datetime.min
    return value.replace(tzinfo=None) if value.tzinfo else value


def search(
    ledger: Ledger, allowed: list[str] | None, query: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Customers matching a name, invoice number, email or phone (one row per customer),
    among those with a task assigned to one of `allowed` (None: every customer).

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
    rows = _customers_where(ledger, allowed, sa.or_(*by_key), limit)
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
    with ledger.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(names)]
    if not ids:
        return []
    return _customers_where(ledger, allowed, T_INV.c.customer_id.in_(ids), limit)


def _customers_where(
    ledger: Ledger, allowed: list[str] | None, condition: sa.ColumnElement[bool], limit: int
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
    if allowed is not None:
        tasked = sa.select(T_TASK.c.customer_id).where(T_TASK.c.assignee.in_(allowed))
        owned = sa.select(T_INV.c.customer_id).where(T_INV.c.owner_email.in_(allowed))
        stmt = stmt.where(sa.or_(T_INV.c.customer_id.in_(tasked), T_INV.c.customer_id.in_(owned)))
    with ledger.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


#: name -> (table, columns). Why each exists is in the comment beside it.
DESK_INDEXES: dict[str, tuple[str, str]] = {
    # The task list: open tasks by assignee, soonest due first.
    "ix_desk_tasks_status_assignee_due": ("human_tasks", "status, assignee, due_on"),
    "ix_desk_tasks_status_due": ("human_tasks", "status, due_on"),
    # A customer's timeline, newest first (by customer and by invoice).
    "ix_desk_events_customer_at": ("events", "customer_id, at"),
    "ix_desk_events_invoice_at": ("events", "invoice_number, at"),
    # The customer page's latest stage per invoice.
    "ix_desk_actions_customer_sent": ("actions", "customer_id, sent_at"),
    # A customer's promises and pauses.
    "ix_desk_promises_customer": ("promises", "customer_id, made_at"),
    # Search by email and phone (exact or prefix).
    "ix_desk_invoices_email": ("invoices", "email"),
    "ix_desk_invoices_phone": ("invoices", "phone"),
    # Search by name: a scan of this narrow index instead of the invoice rows.
    "ix_desk_invoices_name_customer": ("invoices", "customer_name, customer_id"),
}


def ensure_desk_indexes(ledger: Ledger) -> list[str]:
    """Create the desk's indexes that are missing; returns the names it made sure of."""
    with ledger.engine.begin() as conn:
        for name, (table, columns) in DESK_INDEXES.items():
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
    return list(DESK_INDEXES)


# -- decisions -------------------------------------------------------------------------------
def human_task(ledger: Ledger, task_id: int) -> HumanTask | None:
    """One human task by id (None if there is none)."""
    with Session(ledger.engine) as session:
        row = session.get(HumanTask, task_id)
        return row.model_copy() if row is not None else None


def close_open_task(ledger: Ledger, task_id: int, *, outcome: str, note: str) -> bool:
    """Close the task if it is still open, with its outcome and note; False if it was not.

    One conditional UPDATE: two people closing the same task at once close it once.
    """
    with Session(ledger.engine) as session:
        closed = session.execute(
            sa.update(HumanTask)
            .where(HumanTask.id == task_id, HumanTask.status == "open")
            .values(status="closed", outcome=outcome, closed_at=utcnow(), note=note)
        ).rowcount
        session.commit()
    return bool(closed)


def end_customer_pauses(ledger: Ledger, customer_id: str, kinds: tuple[str, ...]) -> int:
    """End the customer-wide active pauses of these kinds (not those naming an invoice,
    which `Ledger.end_pauses` would also match); returns how many ended."""
    with Session(ledger.engine) as session:
        ended = session.execute(
            sa.update(Pause)
            .where(
                Pause.active,
                Pause.kind.in_(kinds),
                Pause.customer_id == customer_id,
                Pause.invoice_number.is_(None),
            )
            .values(active=False, ended_at=utcnow())
        ).rowcount
        session.commit()
    return ended


# -- desk users ------------------------------------------------------------------------------
def desk_user(ledger: Ledger, email: str) -> DeskUser | None:
    """The desk user with this (normalized) email, active or not; None if there is none."""
    with Session(ledger.engine) as session:
        row = session.get(DeskUser, email)
        return row.model_copy() if row is not None else None


def save_desk_user(ledger: Ledger, email: str, *, role: str, password_hash: str) -> bool:
    """Create the user, or set an existing one's role and hash and reactivate it; True if
    created.

    Changing an existing user's password or role ends all their sessions (in the same
    transaction): a cookie saved before the change stops working.
    """
    with Session(ledger.engine) as session:
        row = session.get(DeskUser, email)
        created = row is None
        if row is None:
            row = DeskUser(email=email, role=role, password_hash=password_hash)
        else:
            row.role, row.password_hash, row.active = role, password_hash, True
            session.execute(_revoke(DeskSession.email == email))
        session.add(row)
        session.commit()
    return created


def deactivate_desk_user(ledger: Ledger, email: str) -> bool:
    """Remove a user from the desk (the row stays, inactive, for the record) and end all
    their sessions; False if there is no such active user."""
    with Session(ledger.engine) as session:
        changed = session.execute(
            sa.update(DeskUser).where(DeskUser.email == email, DeskUser.active).values(active=False)
        ).rowcount
        session.execute(_revoke(DeskSession.email == email))
        session.commit()
    return bool(changed)


# -- desk sessions -------------------------------------------------------------------------
def create_desk_session(ledger: Ledger, session_id: str, email: str, expires_at: datetime) -> None:
    """Record a new login's session (`session_id`: the hash of the cookie's token)."""
    with Session(ledger.engine) as session:
        session.add(DeskSession(id=session_id, email=email, expires_at=expires_at))
        session.commit()


def session_user(ledger: Ledger, session_id: str, now: datetime | None = None) -> DeskUser | None:
    """The active user of a live session (not revoked, not expired); None otherwise."""
    now = now or utcnow()
    stmt = (
        sa.select(DeskUser)
        .join(DeskSession, DeskSession.email == DeskUser.email)
        .where(
            DeskSession.id == session_id,
            DeskSession.revoked_at.is_(None),
            DeskSession.expires_at > now,
            DeskUser.active,
        )
    )
    with Session(ledger.engine) as session:
        row = session.execute(stmt).scalars().first()
        return row.model_copy() if row is not None else None


def revoke_desk_session(ledger: Ledger, session_id: str) -> None:
    """End one session (logout)."""
    with Session(ledger.engine) as session:
        session.execute(_revoke(DeskSession.id == session_id))
        session.commit()


def _revoke(condition: sa.ColumnElement[bool]) -> sa.Update:
    return (
        sa.update(DeskSession)
        .where(condition, DeskSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


# -- failed logins -------------------------------------------------------------------------
def record_login_failure(ledger: Ledger, email: str, address: str, reason: str) -> None:
    """Record a failed login (an unknown email too: the attempt is what counts)."""
    with Session(ledger.engine) as session:
        session.add(DeskLoginFailure(email=email[:254], address=address[:64], reason=reason))
        session.commit()


@dataclass(frozen=True)
class FailureCount:
    """Failed logins in a window: how many, and when the latest was (UTC)."""

    count: int
    latest: datetime | None


def count_login_failures(
    ledger: Ledger,
    *,
    since: datetime,
    email: str | None = None,
    address: str | None = None,
    reason: str = "wrong_password",
) -> FailureCount:
    """Failed logins of one `reason` since `since`, for one email or one address (or both)."""
    stmt = sa.select(sa.func.count(), sa.func.max(DeskLoginFailure.at)).where(
        DeskLoginFailure.at > since, DeskLoginFailure.reason == reason
    )
    if email is not None:
        stmt = stmt.where(DeskLoginFailure.email == email)
    if address is not None:
        stmt = stmt.where(DeskLoginFailure.address == address)
    with ledger.engine.connect() as conn:
        count, latest = conn.execute(stmt).one()
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return FailureCount(int(count or 0), latest)


def login_failure_summary(
    ledger: Ledger, since: datetime, limit: int = 50
) -> dict[str, list[dict[str, Any]]]:
    """What the managers' security page shows: failed logins since `since` grouped by
    account and by address (most first), and the latest ones.

    Keys: `by_email`, `by_address` (each row: key, `failures`, `latest`) and `recent`.
    """
    t = DeskLoginFailure.__table__
    recent = sa.select(t).where(t.c.at > since).order_by(t.c.at.desc()).limit(limit)

    def grouped(column: sa.Column) -> sa.Select:
        return (
            sa.select(
                column.label("key"),
                sa.func.count().label("failures"),
                sa.func.max(t.c.at).label("latest"),
            )
            .where(t.c.at > since)
            .group_by(column)
            .order_by(sa.func.count().desc(), column)
            .limit(limit)
        )

    with ledger.engine.connect() as conn:
        return {
            "by_email": [dict(r._mapping) for r in conn.execute(grouped(t.c.email))],
            "by_address": [dict(r._mapping) for r in conn.execute(grouped(t.c.address))],
            "recent": [dict(r._mapping) for r in conn.execute(recent)],
        }


def record_login(ledger: Ledger, email: str, *, password_hash: str | None = None) -> None:
    """Stamp the user's last login (and store a rehashed password, when given)."""
    values: dict[str, Any] = {"last_login": utcnow()}
    if password_hash is not None:
        values["password_hash"] = password_hash
    with Session(ledger.engine) as session:
        session.execute(sa.update(DeskUser).where(DeskUser.email == email).values(**values))
        session.commit()
