"""Reusable tasks that hand work to people: open a human task, log to the CRM.

Both are thin over the core and idempotent by `key` (a retry or a second run opens or
queues nothing new), so any flow can use them: the sweep, the replies, an ad-hoc flow.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.ledger import LedgerDatabase
from dunning.crm import queue_note, queue_status
from dunning.ledger.models import utcnow
from tasks._logging import task_logger


@task(name="open-human-task", task_run_name="task-{key}", cache_policy=NO_CACHE)
def open_human_task(
    ledger: LedgerDatabase,
    key: str,
    title: str,
    *,
    invoice_number: str = "",
    customer_id: str = "",
    assignee: str = "account_owner",
    due_on: date | None = None,
    due_in_days: int = 1,
    note: str = "",
    crm: dict[str, Any] | None = None,
) -> bool:
    """Open a task for a person once per `key`, and queue it for the CRM in the same
    transaction (`Ledger.open_task`). Returns True if it was opened, False if a task with
    that key already existed (nothing is written then).

    Args:
        ledger: the ledger-database block.
        key: what makes the task unique, e.g. `F-1:call-before-legal`.
        title: what the person has to do.
        assignee: an email address, or a role (`account_owner`, `manager`).
        due_on: the day it is due; if empty, `due_in_days` after today (UTC).
        note: more detail, shown with the task.
        crm: extra CRM fields (`priority`, `task_type`, `email`, `customer_name`, ...).

    Example:
        ```python
        from prefect import flow

        from blocks import LedgerDatabase
        from tasks.people import log_to_crm, open_human_task

        @flow
        def call_big_debtors(numbers: list[str]):
            ledger = LedgerDatabase(url="sqlite:///ledger.db")
            for number in numbers:
                open_human_task(ledger, f"{number}:call", f"Call about invoice {number}",
                                invoice_number=number, assignee="ana@example.com")
                log_to_crm(ledger, f"{number}:call-note", "Call scheduled",
                           invoice_number=number)
        ```
    """
    due = due_on or utcnow().date() + timedelta(days=due_in_days)
    opened = ledger.get_ledger().open_task(
        key=key,
        title=title,
        invoice_number=invoice_number,
        customer_id=customer_id,
        assignee=assignee,
        due_on=due,
        note=note,
        crm=crm,
    )
    task_logger().info("task %s for %s: %s", key, assignee, "opened" if opened else "already open")
    return opened


@task(name="log-to-crm", task_run_name="crm-{key}", cache_policy=NO_CACHE)
def log_to_crm(
    ledger: LedgerDatabase,
    key: str,
    text: str = "",
    *,
    status: str | None = None,
    invoice_number: str = "",
    customer_id: str = "",
    details: dict[str, Any] | None = None,
) -> bool:
    """Queue a note (or, with `status`, a customer-status change whose reason is `text`) in
    the ledger's CRM outbox, once per `key`; `deliver-crm-entries` takes it to the CRM.
    Returns True if it was queued, False if that key was queued before.

    Example:
        ```python
        from prefect import flow

        from blocks import LedgerDatabase
        from tasks.people import log_to_crm

        @flow
        def note_a_call(number: str):
            ledger = LedgerDatabase(url="sqlite:///ledger.db")
            log_to_crm(ledger, f"{number}:called", "Called: pays on Friday",
                       invoice_number=number)
            log_to_crm(ledger, f"{number}:hold", "Legal review", status="on_hold",
                       customer_id="C1")
        ```
    """
    store = ledger.get_ledger()
    refs = {"invoice_number": invoice_number, "customer_id": customer_id, **(details or {})}
    if status:
        queued = queue_status(store, key=key, status=status, reason=text, **refs)
    else:
        queued = queue_note(store, key=key, text=text, **refs)
    kind = "status" if status else "note"
    task_logger().info("CRM %s %s: %s", kind, key, "queued" if queued else "already queued")
    return queued
