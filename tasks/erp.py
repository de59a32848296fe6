"""Fetch invoices from an invoice-source block: a file, or an ERP's API under a Prefect rate
limit of its own.

Every request to a system (Odoo, Stripe, Holded, a REST API, a CRM) first takes a slot of
the Prefect global concurrency limit named by the block (`rate_limit_name()`), which decays
at `requests_per_second`: all flows and workers sharing the system share its rate. A limit
whose name does not exist is silently not enforced by Prefect, so `ensure_rate_limit`
creates it before the first request (and the requests use `strict=True`, so a missing limit
fails loudly instead of going unthrottled).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.sync import rate_limit
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

from blocks.sources import InvoiceSource
from dunning.connectors.http import ConnectorError, throttled
from dunning.importers import ImportResult, describe_quarantine, release_freed_memory
from dunning.source_marks import with_changes
from tasks._logging import task_logger

#: Limits this process has already made sure of: (API URL, name, rate).
_ensured: set[tuple[str, str, float]] = set()


def ensure_rate_limit(block: Any) -> str | None:
    """Create or update the block's rate limit on the Prefect server; its name (None: none).

    Example:
        ```python
        from blocks import StripeInvoiceSource
        from tasks.erp import ensure_rate_limit

        ensure_rate_limit(StripeInvoiceSource.load("stripe"))  # e.g. in a setup script
        ```
    """
    name = block.rate_limit_name()
    if not name:
        return None
    rate = float(block.requests_per_second)
    slots = max(1, math.ceil(rate))
    seen = (str(PREFECT_API_URL.value()), name, rate)
    if seen in _ensured:
        return name
    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots, slot_decay_per_second=rate)
                )
            except ObjectAlreadyExists:  # a concurrent sweep created it first
                pass
        else:
            if current.limit != slots or current.slot_decay_per_second != rate:
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=slots, slot_decay_per_second=rate)
                )
    _ensured.add(seen)
    return name


@contextlib.contextmanager
def rate_limited(block: Any) -> Iterator[None]:
    """Take a slot of the block's rate limit before every HTTP request made inside."""
    name = block.rate_limit_name()
    if not name:
        yield
        return
    with throttled(lambda: rate_limit(name, strict=True)):
        yield


@task(name="fetch-invoices", cache_policy=NO_CACHE)
def fetch_open_invoices(source: InvoiceSource, since: datetime | None = None) -> ImportResult:
    """Read every invoice from the source, quarantining bad records.

    With `since` (the last sweep), a source that can list what changed (Odoo, Stripe, a REST
    API with `changed_since_param`) is also asked for the invoices changed since then, so
    invoices paid or cancelled meanwhile reach the ledger even though they are no longer in
    the open list.

    A problem with the source itself (missing file, bad credentials, API down after every
    retry) fails the task with a message that names the block and says what to fix. Bad
    records are logged, one line each, and returned in `ImportResult.quarantine`.

    Example:
        ```python
        from prefect import flow
        from blocks import OdooInvoiceSource
        from tasks.erp import fetch_open_invoices

        @flow
        def show_open():
            result = fetch_open_invoices(OdooInvoiceSource.load("odoo"))
            return result.invoices.query("status == 'open'")
        ```
    """
    logger = task_logger()
    ensure_rate_limit(source)
    with rate_limited(source):
        result = source.read()
        if since is not None and source.supports_changes:
            try:
                changed = source.read_changed_since(since)
            except ConnectorError as exc:  # e.g. Stripe keeps events for 30 days only
                logger.warning("changes since %s not available: %s", since.isoformat(), exc)
            else:
                closed = len(changed.invoices)
                result = with_changes(result, changed)
                logger.info("%d invoices changed since %s", closed, since.isoformat())
    where = getattr(source, "path", None) or source.label
    logger.info("read %d invoices from %s", len(result.invoices), where)
    _log_quarantine(result)
    # The file's raw cells and the validation's intermediate columns are freed by now.
    release_freed_memory()
    return result


@task(name="fetch-invoice", cache_policy=NO_CACHE)
def fetch_one_invoice(source: InvoiceSource, invoice_number: str) -> ImportResult:
    """Read one invoice from the source (by number, without a full read where the API
    allows), for the one-invoice flow."""
    ensure_rate_limit(source)
    with rate_limited(source):
        result = source.read_one(invoice_number)
    _log_quarantine(result)
    return result


def _log_quarantine(result: ImportResult) -> None:
    logger = task_logger()
    for line in describe_quarantine(result.quarantine)[:100]:
        logger.warning(line)
    if result.quarantined_rows > 100:
        logger.warning("... %d quarantined rows in all", result.quarantined_rows)
