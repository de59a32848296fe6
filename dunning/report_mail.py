"""The portfolio report as an email: HTML with the charts inline, the open items as XLSX.

The message is `multipart/mixed`: a `multipart/alternative` (plain text, and HTML inside a
`multipart/related` with each chart as an inline `image/png` referenced as `cid:`), then the
open items as an `.xlsx` attachment. Text comes from the sandboxed Jinja2 templates
`templates/report/report.*` in the words of `templates/report/<language>/strings.yaml` (es, en;
English when the locale's language has none), with money, numbers and dates formatted by
Babel for the report's locale (default es_ES).

Example:
    >>> msg = build_report_email(report, charts, locale="es_ES",
    ...                          from_address="cobros@acme.es", to="direccion@acme.es")
    >>> SmtpPool(settings).send(msg, Envelope("cobros@acme.es", ["direccion@acme.es"]))
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any

import pandas as pd
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import TemplateNotFound

from dunning.exports import safe_frame
from dunning.mail import domain_of, split_addresses
from dunning.render import RenderedMessage, layout_words, shared_environment, templates_dir
from dunning.reports import CONVERSION_DAYS, PortfolioReport

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Rows of each list in the email body (the attachment has every open item).
BODY_ROWS = 10

#: Headers and sheet names of the XLSX, per language.
XLSX_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "sheet_items": "Open items",
        "sheet_aging": "Aging",
        "invoice_number": "Invoice",
        "customer_id": "Customer id",
        "customer_name": "Customer",
        "currency": "Currency",
        "amount_total": "Invoice amount",
        "balance": "Outstanding",
        "issue_date": "Issue date",
        "due_date": "Due date",
        "days_past_due": "Days past due",
        "bucket": "Bucket",
        "status": "Status",
        "count": "Invoices",
        "amount": "Amount",
        "share": "Share",
        "file": "open-items",
    },
    "es": {
        "sheet_items": "Partidas abiertas",
        "sheet_aging": "Antigüedad",
        "invoice_number": "Factura",
        "customer_id": "Id cliente",
        "customer_name": "Cliente",
        "currency": "Moneda",
        "amount_total": "Importe factura",
        "balance": "Pendiente",
        "issue_date": "Fecha de emisión",
        "due_date": "Vencimiento",
        "days_past_due": "Días vencida",
        "bucket": "Tramo",
        "status": "Estado",
        "count": "Facturas",
        "amount": "Importe",
        "share": "Peso",
        "file": "partidas-abiertas",
    },
}
_ITEM_COLUMNS = [
    "invoice_number",
    "customer_id",
    "customer_name",
    "currency",
    "amount_total",
    "balance",
    "issue_date",
    "due_date",
    "days_past_due",
    "bucket",
    "status",
]


def report_language(locale: str) -> str:
    """The template language of a locale: `es_MX` -> `es`."""
    return Locale.parse(locale).language


def report_context(
    report: PortfolioReport,
    *,
    locale: str = "es_ES",
    image_src: Mapping[str, str] | None = None,
    chart_titles: Mapping[str, str] | None = None,
    company_name: str = "",
) -> dict[str, Any]:
    """Everything the report templates may use, formatted for `locale` with Babel.

    `image_src` maps a chart name to where the HTML finds it (`cid:aging` in the email,
    `aging.png` in the CLI's folder).
    """
    loc = Locale.parse(locale)

    def money(amount: float | None, currency: str) -> str:
        if amount is None or pd.isna(amount):
            return "—"
        return format_currency(amount, currency, locale=loc)

    def num(value: float | None, digits: int = 1) -> str:
        if value is None or pd.isna(value):
            return "—"
        return format_decimal(round(float(value), digits), locale=loc)

    def pct(value: float | None) -> str:
        if value is None or pd.isna(value):
            return "—"
        # One decimal at most, in the locale's own pattern ("16,3 %" es, "16.3%" en).
        return format_percent(round(float(value), 3), locale=loc, decimal_quantization=False)

    def day(value: date | pd.Timestamp | None) -> str:
        if value is None or pd.isna(value):
            return "—"
        return format_date(pd.Timestamp(value).date(), format="long", locale=loc)

    currencies = []
    for r in report.summary.to_dict("records"):
        code = r["currency"]
        aged = report.aging[report.aging["currency"] == code]
        top = report.top_overdue[report.top_overdue["currency"] == code].head(BODY_ROWS)
        currencies.append(
            {
                "code": code,
                "receivables": money(r["receivables"], code),
                "overdue": money(r["overdue"], code),
                "overdue_share": pct(r["overdue_share"]),
                "open_invoices": r["open_invoices"],
                "overdue_invoices": r["overdue_invoices"],
                "dso_countback": num(r["dso_countback"]),
                "dso_simple": num(r["dso_simple"]),
                "cei": num(r["cei"]),
                "avg_days_late": num(r["avg_days_late"]),
                "collected": money(r["collected"], code),
                "disputed": money(r["disputed"], code),
                "aging": [
                    {
                        "bucket": a["bucket"],
                        "count": a["count"],
                        "amount": money(a["amount"], code),
                        "share": pct(a["share"]),
                    }
                    for a in aged.to_dict("records")
                ],
                "top": [
                    {
                        "customer": t["customer_name"],
                        "overdue": money(t["overdue"], code),
                        "invoices": t["invoices"],
                        "oldest_days": t["oldest_days"],
                    }
                    for t in top.to_dict("records")
                ],
            }
        )
    disputes = report.disputes
    return {
        "as_of": day(report.as_of),
        "period_start": day(report.period_start),
        "period_days": report.period_days,
        "dso_days": report.dso_days,
        "company_name": company_name,
        "currencies": currencies,
        "charts": [
            {"name": name, "src": src, "title": (chart_titles or {}).get(name, name)}
            for name, src in (image_src or {}).items()
        ],
        "has_ledger": report.has_ledger,
        "messages": [
            {
                "channel": m["channel"],
                "sent": m["sent"],
                "delivered": num(m["delivered"], 0),
                "read": num(m["read"], 0),
                "answered": num(m["answered"], 0),
                "replied": m["replied"],
                "reply_rate": pct(m["reply_rate"]),
                "paid_within": num(m["paid_within"], 0),
                "failed": m["failed"],
            }
            for m in report.messages.to_dict("records")
        ],
        "conversion_days": CONVERSION_DAYS,
        "conversion": [
            {
                "stage": c["stage"],
                "sent": c["sent"],
                "paid_within": c["paid_within"],
                "awaiting": c["awaiting"],
                "rate": pct(c["rate"]),
            }
            for c in report.conversion.to_dict("records")
        ],
        "promises": {k: (pct(v) if k == "kept_rate" else v) for k, v in report.promises.items()},
        "disputes_open": len(disputes),
        "disputes_oldest": num(disputes["age_days"].max(), 0) if len(disputes) else "—",
        "disputes": [
            {
                "invoice": d["invoice_number"] or "—",
                "customer": d["customer_name"] or d["customer_id"],
                "amount": money(d["amount"], d["currency"]) if d["currency"] else "—",
                "age_days": num(d["age_days"], 0),
            }
            for d in disputes.head(BODY_ROWS).to_dict("records")
        ],
        "tasks": report.tasks,
        "open_items_count": len(report.open_items),
        "notes": report.notes,
        "problems_count": len(report.problems),
        "problems": report.problems[:BODY_ROWS],
    }


def render_report(
    context: Mapping[str, Any], language: str, *, root: Path | None = None
) -> RenderedMessage:
    """Subject, text and HTML of the report from `templates/report/report.*`.

    In the words of `templates/report/<language>/strings.yaml`; English when the language has
    none.
    """
    env = shared_environment(str(root or templates_dir()))
    for lang in dict.fromkeys((language, "en")):
        try:
            layout = {"lang": lang, "words": layout_words(env, f"report/{lang}/strings.yaml")}
            parts = [
                env.get_template(f"report/report.{ext}").render({**context, **layout}).strip()
                for ext in ("subject.txt", "txt", "html")
            ]
        except TemplateNotFound:
            continue
        return RenderedMessage(" ".join(parts[0].split()), parts[1] + "\n", parts[2] + "\n", lang)
    raise TemplateNotFound(
        f"no report template for language {language!r} or 'en' under "
        f"{root or templates_dir()}/report/"
    )


def open_items_xlsx(report: PortfolioReport, *, locale: str = "es_ES") -> bytes:
    """The open items (every one, most overdue first) and the aging table as an XLSX file.

    Amounts stay numbers and dates stay dates, so the sheet can be summed and filtered; text
    that a spreadsheet would run as a formula (a customer named `=HYPERLINK(...)`) is
    written as plain text (`dunning.exports.safe_frame`).
    """
    words = XLSX_LABELS.get(report_language(locale), XLSX_LABELS["en"])
    items = report.open_items.reindex(columns=_ITEM_COLUMNS).copy()
    items["bucket"] = items["bucket"].astype(str)
    for column in ("issue_date", "due_date"):
        items[column] = pd.to_datetime(items[column]).dt.date
    aged = report.aging[["currency", "bucket", "count", "amount", "share"]]
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for frame, sheet_name in ((items, words["sheet_items"]), (aged, words["sheet_aging"])):
            safe_frame(frame.rename(columns=words)).to_excel(
                writer, sheet_name=sheet_name, index=False
            )
        for sheet in writer.sheets.values():
            for column in sheet.columns:
                width = max(len(str(c.value or "")) for c in column[:200])
                sheet.column_dimensions[column[0].column_letter].width = min(width + 2, 40)
            sheet.freeze_panes = "A2"
    return buffer.getvalue()


def xlsx_filename(report: PortfolioReport, locale: str = "es_ES") -> str:
    """`partidas-abiertas-2026-12-07.xlsx` (es) / `open-items-2026-12-07.xlsx` (en)."""
    words = XLSX_LABELS.get(report_language(locale), XLSX_LABELS["en"])
    return f"{words['file']}-{report.as_of.isoformat()}.xlsx"


def build_report_email(
    report: PortfolioReport,
    charts: Mapping[str, bytes],
    *,
    from_address: str,
    to: str,
    locale: str = "es_ES",
    from_name: str = "",
    reply_to: str = "",
    message_id_domain: str = "",
    chart_titles: Mapping[str, str] | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """The report email: HTML with `charts` (PNG bytes by name) inline, open items attached.

    Args:
        report: the computed report.
        charts: PNG bytes by chart name (see `dunning.charts.portfolio_charts`).
        from_address: the From address (the email channel's).
        to: the management list, comma- or semicolon-separated.
        locale: Babel locale of numbers, dates and the template language.

    Raises:
        ValueError: `to` holds no address.
    """
    recipients = split_addresses(to)
    if not recipients:
        raise ValueError(
            f"no recipient address in {to!r}; give the management list as comma-separated "
            "addresses, e.g. 'ceo@acme.es, cfo@acme.es'"
        )
    domain = message_id_domain or domain_of(from_address)
    cids = {name: make_msgid(idstring=name, domain=domain) for name in charts}
    context = report_context(
        report,
        locale=locale,
        image_src={name: f"cid:{cid[1:-1]}" for name, cid in cids.items()},
        chart_titles=chart_titles,
        company_name=from_name,
    )
    rendered = render_report(context, report_language(locale))
    msg = EmailMessage()
    msg["From"] = formataddr((from_name, from_address)) if from_name else from_address
    msg["To"] = ", ".join(recipients)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(sent_at or datetime.now().astimezone())
    # A fresh id each time: a corrected report sent again must not be deduplicated away.
    msg["Message-ID"] = make_msgid(idstring=f"report.{report.as_of.isoformat()}", domain=domain)
    msg["X-Dunning-Report"] = report.as_of.isoformat()
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    html_part = msg.get_payload()[1]
    for name, png in charts.items():
        html_part.add_related(
            png, maintype="image", subtype="png", cid=cids[name], filename=f"{name}.png"
        )
    msg.add_attachment(
        open_items_xlsx(report, locale=locale),
        maintype="application",
        subtype=XLSX_TYPE.split("/", 1)[1],
        filename=xlsx_filename(report, locale),
    )
    msg["Content-Language"] = rendered.language
    return msg
