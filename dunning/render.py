"""Render reminder messages from Jinja2 templates, formatted for the customer's locale.

Templates live in `templates/email/<lang>/<template>.subject.txt`, `.txt` and `.html`. They
run in a sandboxed environment (a template edited by a user cannot reach Python internals)
with autoescaping on for HTML, because customer names come from outside. Amounts and dates
are formatted with Babel for the customer's locale (`1.234,56 €` for es_ES, `$1,234.56` for
en_US) before they reach the template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from dunning.schema import Invoice

#: The repository's templates folder; `DUNNING_TEMPLATES` points elsewhere.
DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def templates_dir() -> Path:
    return Path(os.environ.get("DUNNING_TEMPLATES", DEFAULT_TEMPLATES))


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    language: str


@lru_cache(maxsize=8)
def _environment(root: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(root),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,  # a typo in a template fails loudly, not as a blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def locale_for(language: str, country: str) -> Locale:
    """The Babel locale of a customer: language and country (es + MX -> es_MX)."""
    for candidate in (f"{language}_{country}", language, "en"):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en")


def format_money(amount: float, currency: str, locale: Locale) -> str:
    return format_currency(amount, currency, locale=locale)


def format_day(day: date | None, locale: Locale) -> str:
    return format_date(day, format="long", locale=locale) if day else ""


def message_context(
    *,
    customer_name: str,
    invoice_number: str,
    amount_due: float,
    amount_total: float,
    currency: str,
    due_date: date,
    issue_date: date | None,
    today: date,
    language: str,
    country: str,
    payment_link: str = "",
    company_name: str = "",
    reply_to: str = "",
    stage: str = "",
    tone: str = "",
    has_attachment: bool = False,
) -> dict[str, Any]:
    """Everything a template may use, already formatted for the customer's locale."""
    loc = locale_for(language, country)
    days = (today - due_date).days
    return {
        "customer_name": customer_name,
        "invoice_number": invoice_number,
        "amount_due": format_money(amount_due, currency, loc),
        "amount_total": format_money(amount_total, currency, loc),
        "part_paid": amount_due < amount_total - 0.005,
        "currency": currency,
        "due_date": format_day(due_date, loc),
        "issue_date": format_day(issue_date, loc),
        "days_overdue": max(days, 0),
        "days_to_due": max(-days, 0),
        "payment_link": payment_link if payment_link.startswith(("https://", "http://")) else "",
        "company_name": company_name,
        "reply_to": reply_to,
        "stage": stage,
        "tone": tone,
        "has_attachment": has_attachment,
    }


def invoice_context(
    invoice: Invoice,
    *,
    today: date,
    language: str,
    country: str = "",
    payment_link: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """`message_context` for one invoice of the normalized schema.

    `payment_link` None means the invoice's own link; `extra` are the other
    `message_context` arguments (company_name, reply_to, stage, tone, has_attachment).
    """
    return message_context(
        customer_name=invoice.customer_name or invoice.customer_id,
        invoice_number=invoice.invoice_number,
        amount_due=invoice.amount_due,
        amount_total=invoice.amount_total,
        currency=invoice.currency,
        due_date=invoice.due_date,
        issue_date=invoice.issue_date,
        today=today,
        language=language,
        country=country or invoice.country,
        payment_link=invoice.payment_link if payment_link is None else payment_link,
        **extra,
    )


def render_email(
    template: str,
    language: str,
    context: dict[str, Any],
    *,
    fallback_language: str = "en",
    root: Path | None = None,
) -> RenderedMessage:
    """Render subject, text and HTML of `template` in `language` (or the fallback language).

    Example:
        >>> ctx = message_context(customer_name="Acme", invoice_number="F-1", ...)
        >>> render_email("overdue_7", "es", ctx).subject
    """
    env = _environment(str(root or templates_dir()))
    for lang in dict.fromkeys((language, fallback_language, "en")):
        try:
            parts = [
                env.get_template(f"email/{lang}/{template}.{ext}").render(context).strip()
                for ext in ("subject.txt", "txt", "html")
            ]
        except TemplateNotFound:
            continue
        subject = " ".join(parts[0].split())  # a subject is one line
        return RenderedMessage(subject, parts[1] + "\n", parts[2] + "\n", lang)
    raise TemplateNotFound(
        f"no email template {template!r} for language {language!r} or {fallback_language!r} "
        f"under {root or templates_dir()}/email/"
    )
