"""Extra ledger indexes the desk's pages need on a large ledger, created idempotently at start.

They live here rather than in the models so the flows' schema stays as it is; every statement
is `CREATE INDEX IF NOT EXISTS` (SQLite and PostgreSQL both support it).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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


def ensure_desk_indexes(engine: Engine) -> list[str]:
    """Create the desk's indexes that are missing; returns the names it made sure of."""
    with engine.begin() as conn:
        for name, (table, columns) in DESK_INDEXES.items():
            conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
    return list(DESK_INDEXES)
