"""The weekly portfolio report: numbers, charts, artifacts and the management email."""

from __future__ import annotations

from datetime import date
from typing import Any

from babel import Locale, UnknownLocaleError
from prefect import flow, get_run_logger

from blocks import (
    SOURCE_TYPES,
    DunningPolicy,
    EmailChannel,
    InvoiceSource,
    LedgerDatabase,
    resolve_block,
)
from dunning.mail import split_addresses
from dunning.policy import today
from dunning.reports import report_numbers
from dunning.settings import settings
from tasks.portfolio import (
    compute_report,
    draw_charts,
    email_report,
    load_portfolio,
    publish_artifacts,
)


@flow(name="portfolio-report")
def portfolio_report(
    ledger: str | LedgerDatabase = "default",
    channel: str | EmailChannel | None = "default",
    recipients: str = "",
    source: str | InvoiceSource | None = None,
    as_of: date | None = None,
    locale: str = "es_ES",
    period_days: int = 30,
    rates: dict[str, float] | None = None,
    base_currency: str = "",
    policy: str | DunningPolicy | None = None,
) -> dict[str, Any]:
    """Show management how the portfolio is doing: aging, DSO, CEI, reminders, promises.

    Reads the ledger (and the invoice source for real issue dates, if given), computes the
    report at `as_of`, draws the charts, publishes them in this run's Artifacts tab (markdown
    summary with the charts, one table per section, one image per chart) and emails the
    management list an HTML report with the charts inline and the open items as XLSX.

    Args:
        ledger: the ledger-database block, or its name.
        channel: the email-channel block (SMTP and sender), or its name; empty: no email.
        recipients: the management list, comma-separated (`ceo@acme.es, cfo@acme.es`);
            if empty, the `DUNNING_REPORT_TO` setting; both empty: artifacts only.
        source: the invoice-source block or its name, for real issue dates (the ledger
            keeps none and uses the day it first saw each invoice); empty: ledger only.
        as_of: the report's day; if empty, today in the policy's timezone.
        locale: Babel locale of the email's numbers, dates and language (es_ES, en_US, ...).
        period_days: days of activity reported (CEI, reminders, conversions, promises).
        rates: exchange rates to `base_currency` (`{"USD": 0.92}`) to report one total;
            empty: one section per currency (amounts are never mixed).
        base_currency: the currency the rates convert to.
        policy: the dunning-policy block or its name, for its timezone (which day "today"
            is); if empty, the `DUNNING_POLICY` setting, else the built-in default policy
            (Europe/Madrid).

    Returns:
        The headline numbers per currency, the artifact keys and the email sent (if any).

    Example:
        ```python
        portfolio_report(recipients="direccion@acme.es", locale="es_ES")
        ```
    """
    logger = get_run_logger()
    try:
        Locale.parse(locale)
    except (ValueError, UnknownLocaleError):
        raise ValueError(
            f"locale {locale!r} is not a known locale; use e.g. es_ES, es_MX, en_US"
        ) from None
    recipients = recipients or settings().report_to
    bad = [a for a in split_addresses(recipients) if "@" not in a.strip("@")]
    if bad:
        raise ValueError(
            f"recipients {bad} are not email addresses; give the management list as "
            "comma-separated addresses, e.g. 'ceo@acme.es, cfo@acme.es'"
        )
    day = as_of or today(
        resolve_block(policy, DunningPolicy, default=DunningPolicy.from_settings).to_policy()
    )
    ledger_block = resolve_block(ledger, LedgerDatabase)
    source_block = resolve_block(source, SOURCE_TYPES) if source else None
    data = load_portfolio(ledger_block, source_block, rates, base_currency)
    report = compute_report(data, day, period_days)
    charts = draw_charts(report, locale)
    keys = publish_artifacts(report, charts)
    result = report_numbers(report) | {"artifacts": keys, "email": None}
    if recipients.strip():
        if not channel:
            raise ValueError("recipients given but no email channel: set `channel`")
        channel_block = resolve_block(channel, EmailChannel)
        sent = email_report(report, charts, channel_block, recipients, locale)
        result["email"] = sent
    else:
        logger.info("no recipients: the report is in the artifacts only")
    return result
