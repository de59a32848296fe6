"""Portfolio report tasks: load the ledger, compute, draw, publish artifacts, email."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import date
from typing import Any

from prefect import task
from prefect.artifacts import (
    create_image_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE

from blocks.email import EmailChannel
from blocks.ledger import LedgerDatabase
from blocks.sources import InvoiceSource
from dunning.importers import describe_quarantine
from dunning.mail import Envelope, split_addresses
from dunning.reports import (
    PortfolioInput,
    PortfolioReport,
    build_portfolio_report,
    portfolio_input,
    read_ledger,
    report_markdown,
    report_tables,
)
from tasks._logging import task_logger
from tasks.retry import retry_if_temporary

#: Tables published as artifacts: report table name -> description.
TABLE_ARTIFACTS: dict[str, str] = {
    "aging": "Receivables by days past due, per currency",
    "top-overdue": "Customers owing most past due, per currency",
    "dso-trend": "Countback and simple DSO at each month end",
    "collections": "Amount collected per week",
    "messages": "Reminders sent, delivered, read, replied, failed, per channel",
    "conversion": "Reminders followed by payment within 7 days, per stage",
    "disputes": "Open disputes and their age",
    "open-items": "Open items at the report date (first 500)",
}


@task(name="load-portfolio", cache_policy=NO_CACHE)
def load_portfolio(
    ledger: LedgerDatabase,
    source: InvoiceSource | None = None,
    rates: Mapping[str, float] | None = None,
    base_currency: str = "",
) -> PortfolioInput:
    """Read the ledger's tables (and the source's issue dates, if a source is given).

    Rows the source quarantines are reported in the report's problems, not dropped silently.

    Example:
        ```python
        data = load_portfolio(LedgerDatabase.load("default"), CsvInvoiceSource.load("default"))
        data.invoices  # the report frame: one row per invoice the ledger knows
        ```
    """
    frames = read_ledger(ledger.connection_url())
    problems: list[str] = []
    invoices = None
    if source is not None:
        loaded = source.read()
        invoices = loaded.invoices
        problems = describe_quarantine(loaded.quarantine)
    data = portfolio_input(
        ledger=frames,
        invoices=invoices,
        problems=problems,
        rates=rates,
        base_currency=base_currency,
    )
    task_logger().info(
        "portfolio: %d invoices, %d actions, %d inbound messages, %d promises",
        len(data.invoices),
        len(frames.actions),
        len(frames.inbound),
        len(frames.promises),
    )
    return data


@task(name="compute-portfolio-report", cache_policy=NO_CACHE)
def compute_report(data: PortfolioInput, as_of: date, period_days: int = 30) -> PortfolioReport:
    """Every number of the report at `as_of`: aging, DSO, CEI, days late, reminders, promises.

    One task run for the whole portfolio (vectorized pandas), not one per invoice.
    """
    report = build_portfolio_report(
        data.invoices,
        as_of,
        ledger=data.ledger,
        period_days=period_days,
        problems=data.problems,
        notes=data.notes,
    )
    task_logger().info(
        "report at %s: %s",
        as_of,
        {
            r.currency: f"receivables {r.receivables:.2f}, DSO {r.dso_countback:.1f}"
            for r in report.summary.itertuples()
        },
    )
    return report


@task(name="draw-portfolio-charts", cache_policy=NO_CACHE)
def draw_charts(report: PortfolioReport, locale: str = "es_ES") -> dict[str, bytes]:
    """The aging, DSO-trend and weekly-collections charts as PNG bytes (matplotlib Agg)."""
    from dunning.charts import portfolio_charts

    return portfolio_charts(report, locale=locale)


def data_url(png: bytes) -> str:
    """A PNG as a `data:` URL: what the Prefect UI shows inline with no file server."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@task(name="publish-portfolio-artifacts", cache_policy=NO_CACHE)
def publish_artifacts(report: PortfolioReport, charts: Mapping[str, bytes]) -> list[str]:
    """Publish the report in the flow run's Artifacts tab; returns the artifact keys.

    - `portfolio-report`: markdown summary with the charts embedded (data URIs);
    - `portfolio-<table>`: one table artifact per non-empty table (aging, top overdue, DSO
      trend, collections, reminders, conversions, disputes, open items);
    - `portfolio-chart-<name>`: one image artifact per chart (a `data:image/png` URL, so the
      UI shows it without any file server).

    Keys keep a history across runs in the Artifacts page.
    """
    urls = {name: data_url(png) for name, png in charts.items()}
    keys = []
    create_markdown_artifact(
        key="portfolio-report",
        markdown=report_markdown(report, images=urls),
        description=f"Portfolio report as of {report.as_of.isoformat()}",
    )
    keys.append("portfolio-report")
    tables = report_tables(report)
    for name, description in TABLE_ARTIFACTS.items():
        if tables[name]:
            key = f"portfolio-{name}"
            create_table_artifact(key=key, table=tables[name], description=description)
            keys.append(key)
    for name, url in urls.items():
        key = f"portfolio-chart-{name.replace('_', '-')}"
        create_image_artifact(image_url=url, key=key, description=f"Chart: {name}")
        keys.append(key)
    return keys


@task(
    name="email-portfolio-report",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=[5, 30, 120],
    retry_condition_fn=retry_if_temporary,
)
def email_report(
    report: PortfolioReport,
    charts: Mapping[str, bytes],
    channel: EmailChannel,
    recipients: str,
    locale: str = "es_ES",
) -> dict[str, Any]:
    """Email the report to the management list through the email channel's SMTP pool.

    HTML body with the charts inline (`cid:` images), plain-text alternative, open items as
    an XLSX attachment. A temporary SMTP failure is retried; a refusal fails the task.

    Returns the recipients, the Message-ID and the server's reply.
    """
    from dunning.charts import chart_title
    from dunning.report_mail import build_report_email

    identity = channel.identity()
    message = build_report_email(
        report,
        charts,
        from_address=identity.from_address,
        from_name=identity.from_name,
        reply_to=identity.reply_to,
        to=recipients,
        locale=locale,
        chart_titles={name: chart_title(name, locale) for name in charts},
    )
    to = split_addresses(recipients)
    reply = channel.pool().send(message, Envelope(identity.from_address, to))
    task_logger().info("report emailed to %s: %s", ", ".join(to), reply)
    return {"recipients": to, "message_id": message["Message-ID"], "reply": reply}
