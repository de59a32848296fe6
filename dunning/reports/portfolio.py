"""The whole portfolio report in one object: every number, table and list, per currency.

`build_portfolio_report` runs every report function for one day; `report_markdown`,
`report_tables` and `report_numbers` turn the result into the Prefect artifacts, the CLI's
files and the flow's return value. Nothing here draws or sends (see `dunning.charts` and
`dunning.report_mail`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from babel import Locale
from babel.numbers import format_currency, format_decimal, format_percent

from dunning.exports import markdown_text
from dunning.reports.activity import (
    CONVERSION_DAYS,
    LedgerFrames,
    message_stats,
    open_disputes,
    open_task_stats,
    promise_stats,
    reminder_conversion,
)
from dunning.reports.frame import convert_currency, from_ledger
from dunning.reports.receivables import (
    aging,
    as_day,
    average_days_late,
    cei,
    collections_by_week,
    currencies,
    dso_countback,
    dso_simple,
    dso_trend,
    open_items,
    top_overdue_customers,
)


@dataclass
class PortfolioInput:
    """What a report is built from: the invoice frame, the ledger's tables if any, and the
    lines about input problems and how the numbers were made."""

    invoices: pd.DataFrame
    ledger: LedgerFrames | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def portfolio_input(
    *,
    ledger: LedgerFrames | None = None,
    invoices: pd.DataFrame | None = None,
    problems: Iterable[str] = (),
    rates: Mapping[str, float] | None = None,
    base_currency: str = "",
) -> PortfolioInput:
    """Combine the ledger and/or an invoice table into the input of a report.

    - ledger only: the ledger's invoices, issue dates from `first_seen` (see `from_ledger`);
    - invoices only: the table as it is (it must carry closing days for paid invoices);
    - both: the ledger's invoices with the table's issue dates (the table is the source).

    With `rates` and `base_currency` every amount is converted (`convert_currency`);
    otherwise each currency is reported on its own.

    Raises:
        ValueError: neither input given, or a currency without a rate.
    """
    notes: list[str] = []
    if ledger is not None:
        frame = from_ledger(ledger.invoices, invoices)
        if invoices is not None and "issue_date" in invoices.columns:
            notes.append(
                "Issue dates come from the invoice source; invoices it no longer lists use the "
                "day the ledger first saw them."
            )
        else:
            notes.append(
                "The ledger keeps no issue date: the day it first saw each invoice stands in, so "
                "DSO and CEI understate until the ledger has a few months of history (give the "
                "invoice source for real issue dates)."
            )
    elif invoices is not None:
        frame = invoices
    else:
        raise ValueError("a report needs the ledger, an invoice table, or both")
    if frame.empty:
        notes.append("No invoices to report on yet (a sweep records them in the ledger).")
    if rates:
        if not base_currency:
            raise ValueError("exchange rates given without the base currency to convert to")
        frame = convert_currency(frame, dict(rates), base_currency)
        listed = ", ".join(f"{k} {v}" for k, v in sorted(rates.items()))
        notes.append(f"Amounts converted to {base_currency.upper()} at fixed rates: {listed}.")
    return PortfolioInput(invoices=frame, ledger=ledger, problems=list(problems), notes=notes)


@dataclass
class PortfolioReport:
    """Every number of the portfolio report at `as_of` (see each field's function).

    Activity (messages, conversions, promises, collected) covers `period_days` days ending
    with `as_of`, from `period_start`. Ledger parts are empty when built without a ledger.
    """

    as_of: date
    period_start: date
    period_days: int
    dso_days: int
    summary: pd.DataFrame
    aging: pd.DataFrame
    dso_countback: pd.DataFrame
    dso_simple: pd.DataFrame
    cei: pd.DataFrame
    days_late: pd.DataFrame
    dso_trend: pd.DataFrame
    collections: pd.DataFrame
    top_overdue: pd.DataFrame
    open_items: pd.DataFrame
    messages: pd.DataFrame
    conversion: pd.DataFrame
    promises: dict[str, Any]
    disputes: pd.DataFrame
    tasks: dict[str, int]
    has_ledger: bool = False
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return list(self.summary["currency"])


def build_portfolio_report(
    invoices: pd.DataFrame,
    as_of: date,
    *,
    ledger: LedgerFrames | None = None,
    period_days: int = 30,
    dso_days: int = 90,
    trend_months: int = 12,
    weeks: int = 12,
    top_n: int = 10,
    problems: Iterable[str] = (),
    notes: Iterable[str] = (),
) -> PortfolioReport:
    """Compute the portfolio report for the end of `as_of`.

    Args:
        invoices: the report frame (`dunning.reports.frame`).
        as_of: the report's day.
        ledger: the ledger's tables, for messages, conversions, promises, disputes and tasks.
        period_days: days of activity reported (CEI, messages, conversions, promises,
            days late, collected), ending with `as_of`.
        dso_days: the period of the simple DSO.
        trend_months: month ends in the DSO trend.
        weeks: weeks in the collections chart.
        top_n: customers in the top-overdue list (per currency).
        problems: lines about input rows left out or counted specially, shown in the report.
        notes: lines about how the numbers were made (e.g. issue dates from first_seen).

    Example:
        >>> from dunning.reports import build_portfolio_report, load_ibm_sample
        >>> ibm = load_ibm_sample("ibm_accounts_receivable.csv").invoices
        >>> report = build_portfolio_report(ibm, date(2013, 6, 30))
        >>> report.summary[["currency", "receivables", "dso_countback"]]
    """
    day = as_day(as_of)
    start = day - pd.Timedelta(days=period_days)  # exclusive: period_days days end at as_of
    first = (start + pd.Timedelta(days=1)).date()
    aged = aging(invoices, day)
    countback = dso_countback(invoices, day)
    simple = dso_simple(invoices, day, dso_days)
    index = cei(invoices, day, period_days)
    late = average_days_late(invoices, day, since=start)
    weekly = collections_by_week(invoices, day, weeks)
    items = open_items(invoices, day)
    frames = ledger or LedgerFrames()
    has_ledger = ledger is not None
    disputes = open_disputes(frames.pauses, invoices, day)

    overdue = aged[aged["bucket"] != "current"].groupby("currency")[["count", "amount"]].sum()
    collected = _collected(invoices, start, day)
    summary = pd.DataFrame({"currency": pd.Series(currencies(invoices), dtype=str)})
    summary = summary.merge(
        countback[["currency", "receivables", "dso"]].rename(columns={"dso": "dso_countback"}),
        on="currency",
        how="left",
    )
    by_currency = {
        "open_invoices": items.groupby("currency").size(),
        "overdue": overdue["amount"],
        "overdue_invoices": overdue["count"],
        "dso_simple": simple.set_index("currency")["dso"],
        "cei": index.set_index("currency")["cei"],
        "avg_days_late": late.set_index("currency")["avg_days_late"],
        "collected": collected["amount_total"],
        "disputed": disputes.groupby("currency")["amount"].sum(),
    }
    for column, values in by_currency.items():
        mapped = summary["currency"].map(values)
        summary[column] = pd.to_numeric(mapped, errors="coerce").astype("float64")
    summary["receivables"] = summary["receivables"].astype("float64")
    summary["dso_countback"] = summary["dso_countback"].astype("float64")
    for column in ("open_invoices", "overdue_invoices"):
        summary[column] = summary[column].fillna(0).astype("int64")
    for column in ("overdue", "collected", "disputed"):
        summary[column] = summary[column].fillna(0.0)
    positive = summary["receivables"].where(summary["receivables"] > 0)
    summary["overdue_share"] = summary["overdue"] / positive
    summary = summary[
        [
            "currency",
            "receivables",
            "open_invoices",
            "overdue",
            "overdue_invoices",
            "overdue_share",
            "dso_countback",
            "dso_simple",
            "cei",
            "avg_days_late",
            "collected",
            "disputed",
        ]
    ]
    return PortfolioReport(
        as_of=day.date(),
        period_start=first,
        period_days=period_days,
        dso_days=dso_days,
        summary=summary,
        aging=aged,
        dso_countback=countback,
        dso_simple=simple,
        cei=index,
        days_late=late,
        dso_trend=dso_trend(invoices, day, trend_months, dso_days),
        collections=weekly,
        top_overdue=top_overdue_customers(invoices, day, top_n),
        open_items=items,
        messages=message_stats(frames.actions, frames.inbound, first, day, invoices),
        conversion=reminder_conversion(frames.actions, invoices, first, day),
        promises=promise_stats(frames.promises, first, day),
        disputes=disputes,
        tasks=open_task_stats(frames.human_tasks, day),
        has_ledger=has_ledger,
        problems=list(problems),
        notes=list(notes),
    )


def _collected(invoices: pd.DataFrame, start: pd.Timestamp, day: pd.Timestamp) -> pd.DataFrame:
    paid = (invoices["status"] == "paid") & invoices["closed_date"].notna()
    paid &= (invoices["closed_date"] > start) & (invoices["closed_date"] <= day)
    return invoices[paid].groupby("currency")[["amount_total"]].sum()


# -- output ------------------------------------------------------------------------------------


def report_numbers(report: PortfolioReport) -> dict[str, Any]:
    """The headline numbers, JSON-ready: per currency, plus promises, disputes and tasks."""
    return {
        "as_of": report.as_of.isoformat(),
        "period_start": report.period_start.isoformat(),
        "period_days": report.period_days,
        "currencies": {
            row["currency"]: {k: _plain(v) for k, v in row.items() if k != "currency"}
            for row in report.summary.to_dict("records")
        },
        "promises": {k: _plain(v) for k, v in report.promises.items()},
        "disputes_open": len(report.disputes),
        "tasks": report.tasks,
        "messages_sent": int(report.messages["sent"].sum()) if len(report.messages) else 0,
        "problems": len(report.problems),
    }


def report_frames(report: PortfolioReport) -> dict[str, pd.DataFrame]:
    """The report's tables by name (summary, aging, top-overdue, dso-trend, collections,
    days-late, cei, messages, conversion, disputes, open-items)."""
    open_cols = [
        "invoice_number",
        "customer_id",
        "customer_name",
        "currency",
        "balance",
        "due_date",
        "days_past_due",
        "bucket",
        "status",
    ]
    return {
        "summary": report.summary,
        "aging": report.aging,
        "top-overdue": report.top_overdue,
        "dso-trend": report.dso_trend,
        "collections": report.collections,
        "days-late": report.days_late,
        "cei": report.cei,
        "messages": report.messages,
        "conversion": report.conversion,
        "disputes": report.disputes,
        "open-items": report.open_items[open_cols],
    }


def report_tables(report: PortfolioReport, max_rows: int = 500) -> dict[str, list[dict]]:
    """The report's tables as JSON-ready rows (dates ISO, NaN as None), for artifacts."""
    return {name: records(frame.head(max_rows)) for name, frame in report_frames(report).items()}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain JSON values."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def report_markdown(
    report: PortfolioReport, *, locale: str = "en", images: Mapping[str, str] | None = None
) -> str:
    """The report as markdown (the flow run's summary artifact; `summary.md` of the CLI).

    `images` maps a chart name to a URL (a `data:image/png;base64,...` URI shows inline in the
    Prefect UI); each is embedded after the headline table.
    """
    loc = Locale.parse(locale)

    def money(amount: float, currency: str) -> str:
        return format_currency(amount, currency, locale=loc)

    def num(value: float | None, digits: int = 1) -> str:
        if value is None or pd.isna(value):
            return "—"
        return format_decimal(round(float(value), digits), locale=loc)

    def pct(value: float | None) -> str:
        return "—" if value is None or pd.isna(value) else format_percent(value, locale=loc)

    lines = [
        f"# Portfolio report, {report.as_of.isoformat()}",
        "",
        f"Activity from {report.period_start.isoformat()} to {report.as_of.isoformat()} "
        f"({report.period_days} days).",
        "",
        "| currency | receivables | overdue | overdue share | DSO countback | "
        f"DSO simple ({report.dso_days} d) | CEI | avg days late | collected |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.summary.itertuples():
        lines.append(
            f"| {_cell(r.currency)} | {money(r.receivables, r.currency)} "
            f"| {money(r.overdue, r.currency)}"
            f" | {pct(r.overdue_share)} | {num(r.dso_countback)} | {num(r.dso_simple)} "
            f"| {num(r.cei)} | {num(r.avg_days_late)} | {money(r.collected, r.currency)} |"
        )
    for name, url in (images or {}).items():
        lines += ["", f"![{name}]({url})"]
    lines += ["", "## Aging", "", "| currency | bucket | invoices | amount | share |"]
    lines.append("|---|---|---:|---:|---:|")
    lines += [
        f"| {_cell(r.currency)} | {r.bucket} | {r.count} | {money(r.amount, r.currency)} "
        f"| {pct(r.share)} |"
        for r in report.aging.itertuples()
    ]
    if len(report.top_overdue):
        lines += ["", "## Top overdue customers", ""]
        lines += ["| currency | customer | overdue | invoices | oldest (days) |"]
        lines.append("|---|---|---:|---:|---:|")
        lines += [
            f"| {_cell(r.currency)} | {_cell(r.customer_name)} | {money(r.overdue, r.currency)} "
            f"| {r.invoices} | {r.oldest_days} |"
            for r in report.top_overdue.itertuples()
        ]
    if report.has_ledger:
        lines += _activity_markdown(report, pct, num)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {_cell(n)}" for n in report.notes]
    if report.problems:
        lines += ["", f"## Input problems ({len(report.problems)})", ""]
        lines += [f"- {_cell(p)}" for p in report.problems[:200]]
        if len(report.problems) > 200:
            lines.append(f"- ... and {len(report.problems) - 200} more")
    return "\n".join(lines) + "\n"


def _activity_markdown(report: PortfolioReport, pct, num) -> list[str]:  # noqa: ANN001
    p = report.promises
    lines = [
        "",
        "## Reminders",
        "",
        f"| channel | sent | delivered | read | answered | replied | reply rate "
        f"| paid within {CONVERSION_DAYS} days | failed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.channel} | {r.sent} | {num(r.delivered, 0)} | {num(r.read, 0)} "
        f"| {num(r.answered, 0)} | {r.replied} | {pct(r.reply_rate)} | {num(r.paid_within, 0)} "
        f"| {r.failed} |"
        for r in report.messages.itertuples()
    ]
    lines += [
        "",
        f"## Reminder → payment within {CONVERSION_DAYS} days, by stage",
        "",
        "| stage | sent | paid within | awaiting | rate |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.stage} | {r.sent} | {r.paid_within} | {r.awaiting} | {pct(r.rate)} |"
        for r in report.conversion.itertuples()
    ]
    lines += [
        "",
        "## Promises and disputes",
        "",
        f"Promises made {p['made']}, kept {p['kept']}, broken {p['broken']}, "
        f"cancelled {p['cancelled']}, open {p['open']}; kept rate {pct(p['kept_rate'])}.",
        "",
        f"Open disputes: {len(report.disputes)}"
        + (
            f", oldest {num(report.disputes['age_days'].max(), 0)} days."
            if report.disputes["age_days"].notna().any()
            else "."
        ),
        f"Open human tasks: {report.tasks['open']}, oldest {report.tasks['oldest_days']} days.",
    ]
    return lines


def _cell(text: object) -> str:
    # Names, notes and problems come from the source: shown literally, never as an image,
    # link or HTML (`dunning.exports.markdown_text`).
    return markdown_text(text)
