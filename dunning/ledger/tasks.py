"""Human tasks as a list: what `dunning tasks list` prints (the desk has its own paged view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dunning.ledger.models import HumanTask, InvoiceRecord

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

T_TASK = HumanTask.__table__
T_INV = InvoiceRecord.__table__


def invoice_people(ledger: Ledger, invoice_number: str) -> tuple[str, str]:
    """The invoice's (owner_email, manager_email) as the last sync saw them; ("", "") when
    the ledger does not know the invoice or the source names nobody."""
    stmt = sa.select(T_INV.c.owner_email, T_INV.c.manager_email).where(
        T_INV.c.invoice_number == invoice_number
    )
    with ledger.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return (str(row[0] or ""), str(row[1] or "")) if row else ("", "")


#: The columns of a listed task, in the order they are printed.
TASK_COLUMNS = ("id", "invoice", "customer", "title", "assignee", "due", "state")


def list_tasks(
    ledger: Ledger, *, assignee: str = "", state: str | None = "open", limit: int = 1000
) -> list[dict[str, Any]]:
    """Tasks with `TASK_COLUMNS` (`customer` is the invoice's customer name, else the
    customer id; `due` an ISO date or None), soonest due first, at most `limit`.

    `assignee` keeps one assignee's tasks (an email or a role, compared without case);
    `state` one state (`open`, `closed`), None all of them.

    Example:
        >>> list_tasks(Ledger("sqlite:///ledger.db"), assignee="ana@example.com")
    """
    stmt = (
        sa.select(
            T_TASK.c.id,
            T_TASK.c.invoice_number,
            T_TASK.c.customer_id,
            T_TASK.c.title,
            T_TASK.c.assignee,
            T_TASK.c.due_on,
            T_TASK.c.status,
            T_INV.c.customer_name,
        )
        .select_from(T_TASK.outerjoin(T_INV, T_INV.c.invoice_number == T_TASK.c.invoice_number))
        .order_by(T_TASK.c.due_on.is_(None), T_TASK.c.due_on, T_TASK.c.id)
        .limit(limit)
    )
    if assignee:
        stmt = stmt.where(sa.func.lower(T_TASK.c.assignee) == assignee.strip().lower())
    if state:
        stmt = stmt.where(T_TASK.c.status == state)
    with ledger.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    return [
        {
            "id": row["id"],
            "invoice": row["invoice_number"],
            "customer": row["customer_name"] or row["customer_id"],
            "title": row["title"],
            "assignee": row["assignee"],
            "due": row["due_on"].isoformat() if row["due_on"] else None,
            "state": row["status"],
        }
        for row in rows
    ]
