"""Ledger tasks: record what the source says, read what the ledger knows."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.ledger import LedgerDatabase
from dunning.ledger import SyncReport


@task(name="sync-ledger", cache_policy=NO_CACHE)
def sync_ledger(ledger: LedgerDatabase, invoices: pd.DataFrame) -> SyncReport:
    """Record the source's invoices in the ledger: new, part-paid, paid, cancelled, reopened.

    Example:
        ```python
        report = sync_ledger(LedgerDatabase.load("default"), result.invoices)
        report.paid  # invoices paid since the last sweep
        ```
    """
    report = ledger.get_ledger().sync_invoices(invoices)
    get_run_logger().info("ledger sync: %s", vars(report))
    return report
