"""Fetch invoices from an invoice-source block."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.sources import CsvInvoiceSource
from dunning.importers import ImportResult, describe_quarantine


@task(name="fetch-invoices", cache_policy=NO_CACHE)
def fetch_open_invoices(source: CsvInvoiceSource) -> ImportResult:
    """Read every invoice from the source, quarantining bad rows.

    A problem with the file itself (missing, wrong encoding, mapping to absent columns) fails
    the task with a message that says what to fix. Bad rows are logged, one line each, and
    returned in `ImportResult.quarantine`; the rest go on.

    Example:
        ```python
        from prefect import flow
        from blocks import CsvInvoiceSource
        from tasks.erp import fetch_open_invoices

        @flow
        def show_open():
            result = fetch_open_invoices(CsvInvoiceSource.load("default"))
            return result.invoices.query("status == 'open'")
        ```
    """
    from prefect import get_run_logger

    result = source.read()
    logger = get_run_logger()
    logger.info("read %d invoices from %s", len(result.invoices), source.path)
    for line in describe_quarantine(result.quarantine)[:100]:
        logger.warning(line)
    if result.quarantined_rows > 100:
        logger.warning("... %d quarantined rows in all", result.quarantined_rows)
    return result
