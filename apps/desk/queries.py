"""What the desk's pages read from the ledger (a page of tasks, one customer, a search), as
the logged-in user may see it. The queries are `dunning.ledger.desk`'s.

Who sees what: managers see every task and customer. A collector sees the open tasks
assigned to their own email or to the role `account_owner` (the role the ladder gives the
account owner's calls when the invoice names no owner), the customers that have such a task
(open or closed) and the customers they own (an invoice's `owner_email` is theirs: "my
customers"); tasks for the role `manager` stay with managers.
"""

from __future__ import annotations

from typing import Any

from apps.desk.auth import User
from dunning.ledger import Ledger, desk
from dunning.ledger.desk import TaskPage

__all__ = [
    "SHARED_ROLE",
    "TaskPage",
    "can_close_task",
    "can_see_customer",
    "customer_page",
    "my_customers",
    "open_tasks",
    "search",
    "task",
    "visible_assignees",
]

#: The role whose tasks every collector sees (the ladder's "call the customer" tasks).
SHARED_ROLE = "account_owner"


def visible_assignees(user: User) -> list[str] | None:
    """The assignees whose tasks `user` sees; None means all (a manager)."""
    return None if user.is_manager else [user.email, SHARED_ROLE]


def can_see_customer(ledger: Ledger, user: User, customer_id: str) -> bool:
    """Managers see every customer; a collector those with a task assigned to them and
    those they own."""
    if user.is_manager:
        return True
    return desk.customer_has_task_for(ledger, customer_id, visible_assignees(user) or [])


def can_close_task(user: User, assignee: str) -> bool:
    """A manager closes any task; a collector the ones they see."""
    assignees = visible_assignees(user)
    return assignees is None or assignee in assignees


def open_tasks(
    ledger: Ledger, user: User, *, assignee: str = "", page: int = 1, per_page: int = 50
) -> TaskPage:
    """Open tasks the user sees, soonest due first, then the largest amount at stake.

    `assignee` narrows the list to one assignee (a manager's filter; a collector's choice
    among their own). Pages start at 1; the page size is `per_page`.
    """
    return desk.open_tasks(
        ledger, visible_assignees(user), assignee=assignee, page=page, per_page=per_page
    )


def task(ledger: Ledger, task_id: int) -> dict[str, Any] | None:
    """One task by id, with its invoice's customer and amount; None if there is none."""
    return desk.task(ledger, task_id)


def customer_page(ledger: Ledger, customer_id: str) -> dict[str, Any] | None:
    """Everything the customer page shows (see `dunning.ledger.desk.customer_page`)."""
    return desk.customer_page(ledger, customer_id)


def my_customers(ledger: Ledger, user: User, limit: int = 200) -> list[dict[str, Any]]:
    """The customers the user is the account owner of (invoices' `owner_email`)."""
    return desk.owned_customers(ledger, user.email, limit)


def search(ledger: Ledger, user: User, query: str, limit: int = 50) -> list[dict[str, Any]]:
    """Customers the user sees matching a name, invoice number, email or phone."""
    return desk.search(ledger, visible_assignees(user), query, limit)
