"""Ledger tasks: record what the source says, read what the ledger knows."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.ledger import LedgerDatabase
from dunning.ledger import SyncReport
from dunning.policy import Policy, default_policy, today
from tasks._logging import task_logger


@task(name="sync-ledger", cache_policy=NO_CACHE)
def sync_ledger(
    ledger: LedgerDatabase,
    invoices: pd.DataFrame,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> SyncReport:
    """Record the source's invoices in the ledger: new, part-paid, paid, cancelled, reopened;
    then settle promises to pay (kept if paid by the promised date plus the policy's grace,
    broken once that day has passed unpaid).

    Example:
        ```python
        report = sync_ledger(LedgerDatabase.load("default"), result.invoices)
        report.paid  # invoices paid since the last sweep
        report.promises_broken  # each is owed a "promise broken" message and a task
        ```
    """
    policy = policy or default_policy()
    now = now or datetime.now(UTC)
    store = ledger.get_ledger()
    report = store.sync_invoices(invoices, now=now)
    report.promises_kept, report.promises_broken = store.resolve_promises(
        today(policy, now), policy.promise_grace_days
    )
    task_logger().info("ledger sync: %s", vars(report))
    return report
