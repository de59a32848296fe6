"""Thank customers for payments and confirm their promises (`dunning.thanks`), after the
sweep's act step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.sources import InvoiceSource
from dunning.policy import Policy
from dunning.thanks import act_on_case
from tasks._logging import task_logger
from tasks.erp import ensure_rate_limit, rate_limited


@task(name="thank-and-confirm", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def thank_and_confirm(
    source: InvoiceSource,
    policy: Policy,
    channel: EmailChannel | None,
    ledger: LedgerDatabase,
    now: datetime,
    invoices: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Thank the customers whose chased invoices were paid, and confirm new promises.

    For every invoice the ledger saw paid in the last 14 days (source sync or a payment
    webhook) after a reminder went out: one thank-you email (`on_payment: thank_you`, per
    policy or segment; `none` sends nothing), the payment as a CRM note, and the ladder's
    customer status (e.g. `on_hold`) cleared once nothing is overdue. For every promise to
    pay made in the last 7 days without a confirmation (a desk promise): one confirmation
    email, unless `confirm_promises: false`; promises of one customer made together (same
    source, same date) get one email listing their invoices. Each message has its own
    outbox key, so a webhook's run and the next sweep seeing the same payment thank the
    customer once.

    `invoices` limits it to these (the one-invoice run); None: the whole ledger.

    Returns one row per payment or confirmation acted on: invoice (the first), invoices
    (all it names), customer, message, status (sent, skipped, failed), reason, recipient.

    Example:
        ```python
        from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
        from dunning.policy import default_policy
        from tasks.thanks import thank_and_confirm

        thank_and_confirm(CsvInvoiceSource(path="invoices.csv"), default_policy(),
                          EmailChannel.load("default"), LedgerDatabase.load("default"),
                          datetime.now(UTC))
        ```
    """
    ensure_rate_limit(source)

    def lookup(number: str):  # noqa: ANN202 - an Invoice or None
        with rate_limited(source):
            return source.get_invoice(number)

    outcomes = act_on_case(
        ledger.get_ledger(),
        policy,
        lookup=lookup,
        pool=channel.pool() if channel else None,
        identity=channel.identity() if channel else None,
        now=now,
        invoices=invoices,
    )
    sent = sum(o.status == "sent" for o in outcomes)
    if outcomes:
        task_logger().info(
            "%d payment(s) and promise(s) acted on, %d email(s) sent", len(outcomes), sent
        )
    return [o.to_dict() for o in outcomes]
