"""Deliver the CRM outbox (notes, human tasks, statuses queued by the act step) to the CRM."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.crm import CrmBlock
from blocks.ledger import LedgerDatabase
from dunning.crm import CrmUnavailable, deliver_pending
from tasks._logging import task_logger
from tasks.erp import ensure_rate_limit, rate_limited


@task(name="deliver-crm-entries", cache_policy=NO_CACHE)
def deliver_crm_entries(crm: CrmBlock, ledger: LedgerDatabase, limit: int = 200) -> dict[str, Any]:
    """Deliver up to `limit` pending CRM entries, oldest first: one task run per batch.

    Entries the CRM refuses for good are marked failed with its reason and the batch goes
    on. When the CRM is unavailable (down, rate limiting past every retry, refusing the
    credentials) the task fails, so Prefect retries the batch (the flow sets the retries
    from the CRM block); what is left stays pending in the ledger for the next run.

    Returns the batch's report: crm, delivered, failed, pending.

    Example:
        ```python
        from blocks import HubSpotCrm, LedgerDatabase
        from tasks.crm import deliver_crm_entries

        deliver_crm_entries(HubSpotCrm.load("hubspot"), LedgerDatabase.load("default"))
        ```
    """
    ensure_rate_limit(crm)
    with rate_limited(crm):
        report = deliver_pending(ledger.get_ledger(), crm.sink(), limit=limit)
    logger = task_logger()
    logger.info(
        "%s: %d delivered, %d failed, %d pending",
        crm.label,
        report.delivered,
        report.failed,
        report.pending,
    )
    if report.error:
        error = report.error if crm.label in report.error else f"{crm.label}: {report.error}"
        raise CrmUnavailable(error)
    return {
        "crm": report.crm,
        "delivered": report.delivered,
        "failed": report.failed,
        "pending": report.pending,
    }
