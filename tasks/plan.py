"""Plan the sweep: evaluate the ladder for all invoices at once."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.ledger import LedgerDatabase
from dunning.plan import plan
from dunning.policy import Policy, Window


@task(name="plan-actions", cache_policy=NO_CACHE)
def plan_actions(
    invoices: pd.DataFrame,
    policy: Policy,
    ledger: LedgerDatabase,
    now: datetime,
    window: Window | None = None,
) -> pd.DataFrame:
    """The next action (or the reason for none) of every invoice, vectorized.

    One task run for the whole portfolio, not one per invoice: 100k invoices plan in about
    a second.

    Example:
        ```python
        planned = plan_actions(result.invoices, policy, ledger, now=datetime.now(UTC))
        planned[planned.skip_reason.isna()][["invoice", "stage", "send_at"]]
        ```
    """
    planned = plan(invoices, policy, now, ledger.get_ledger().planning_state(), window=window)
    acting = planned["skip_reason"].isna()
    get_run_logger().info(
        "planned %d actions for %d invoices; skipped: %s",
        int(acting.sum()),
        len(planned),
        planned["skip_reason"].value_counts().to_dict(),
    )
    return planned
