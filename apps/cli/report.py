"""`dunning report ...`: Portfolio reports: aging, DSO, promises, conversions, with charts.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dunning.policy import today

if TYPE_CHECKING:
    from dunning.reports import PortfolioReport

app = typer.Typer(help="Portfolio reports: aging, DSO, promises, conversions, with charts.")

#: Files written by `dunning report` besides the charts (`<chart>.png`) and the XLSX.
TABLE_FILES = (
    "summary",
    "aging",
    "top-overdue",
    "dso-trend",
    "collections",
    "days-late",
    "cei",
    "messages",
    "conversion",
    "disputes",
)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_rates(value: str | None) -> dict[str, float] | None:
    if not value:
        return None
    rates = {}
    for part in value.split(","):
        currency, _, rate = part.partition("=")
        try:
            rates[currency.strip().upper()] = float(rate)
        except ValueError:
            raise typer.BadParameter(
                f"{part.strip()!r} is not CURRENCY=RATE; use e.g. --rates USD=0.92,MXN=0.051"
            ) from None
    return rates


@app.callback(invoke_without_command=True)
def report(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the report files to.")],
    ledger: Annotated[
        str | None, typer.Option("--ledger", help="Ledger SQLAlchemy URL (or SQLite path).")
    ] = None,
    invoices: Annotated[
        Path | None,
        typer.Option(
            "--invoices",
            help="CSV/XLSX invoice table (REPORT_COLUMNS, or the IBM sample). With --ledger: "
            "the source of real issue dates.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Report day, YYYY-MM-DD (default: today in Europe/Madrid)."),
    ] = None,
    locale: Annotated[str, typer.Option("--locale", help="Babel locale of report.html.")] = "es_ES",
    period_days: Annotated[int, typer.Option("--period-days", help="Days of activity.")] = 30,
    rates: Annotated[
        str | None, typer.Option("--rates", help="Convert: USD=0.92,MXN=0.051 (to --base).")
    ] = None,
    base: Annotated[str, typer.Option("--base", help="Currency the rates convert to.")] = "",
) -> None:
    """Write the portfolio report to a folder: what the weekly flow publishes and emails.

    Files: `summary.md` (the markdown artifact), `report.html` (the email's HTML, charts
    as files beside it), `aging.png`, `dso_trend.png`, `collections.png`, the open items as
    `open-items-<day>.xlsx` / `partidas-abiertas-<day>.xlsx`, one CSV per table,
    `report.json` (headline numbers) and `problems.txt` (input rows left out, if any).

    Example:
        dunning report --ledger sqlite:///var/ledger.db --as-of 2026-12-07 --out var/report
    """
    from dunning.importers import describe_quarantine
    from dunning.reports import (
        build_portfolio_report,
        portfolio_input,
        read_invoice_table,
        read_ledger,
    )

    if not (ledger or invoices):
        _fail("give --ledger URL, --invoices FILE, or both")
    try:
        day = date.fromisoformat(as_of) if as_of else today()
    except ValueError:
        raise typer.BadParameter(f"--as-of {as_of!r} is not a date; use YYYY-MM-DD") from None
    problems: list[str] = []
    table = None
    try:
        if invoices:
            loaded = read_invoice_table(invoices)
            table = loaded.invoices
            problems = describe_quarantine(loaded.problems)
        frames = read_ledger(ledger) if ledger else None
        data = portfolio_input(
            ledger=frames,
            invoices=table,
            problems=problems,
            rates=_parse_rates(rates),
            base_currency=base,
        )
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
    for line in problems:
        typer.echo(line, err=True)
    result = build_portfolio_report(
        data.invoices,
        day,
        ledger=data.ledger,
        period_days=period_days,
        problems=data.problems,
        notes=data.notes,
    )
    written = write_report_files(result, out, locale=locale)
    typer.echo(json.dumps({"out": str(out), "files": written}, ensure_ascii=False))


def write_report_files(report: PortfolioReport, out: Path, *, locale: str = "es_ES") -> list[str]:
    """Write every file of the report to `out` (created if needed); returns their names."""
    from dunning.charts import chart_title, portfolio_charts
    from dunning.exports import write_csv
    from dunning.report_mail import (
        open_items_xlsx,
        render_report,
        report_context,
        report_language,
        xlsx_filename,
    )
    from dunning.reports import report_frames, report_markdown, report_numbers

    out.mkdir(parents=True, exist_ok=True)
    charts = portfolio_charts(report, locale=locale)
    files: dict[str, bytes | str] = {f"{name}.png": png for name, png in charts.items()}
    files["summary.md"] = report_markdown(report, images={n: f"{n}.png" for n in charts})
    context = report_context(
        report,
        locale=locale,
        image_src={n: f"{n}.png" for n in charts},
        chart_titles={n: chart_title(n, locale) for n in charts},
    )
    files["report.html"] = render_report(context, report_language(locale)).html
    files[xlsx_filename(report, locale)] = open_items_xlsx(report, locale=locale)
    files["report.json"] = json.dumps(report_numbers(report), indent=2, ensure_ascii=False)
    tables = report_frames(report)
    for name in TABLE_FILES:
        # Text cells a spreadsheet would run as formulas are written as plain text.
        files[f"{name}.csv"] = write_csv(tables[name])
    if report.problems:
        files["problems.txt"] = "\n".join(report.problems) + "\n"
    for name, content in files.items():
        path = out / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return sorted(files)
