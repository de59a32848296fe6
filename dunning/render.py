"""Render reminder messages from Jinja2 templates, formatted for the customer's locale.

Templates live in `templates/email/<lang>/<template>.subject.txt`, `.txt` and `.html`; the
bodies extend the one layout `templates/email/_layout.{html,txt}`, whose words come from
`templates/email/<lang>/strings.yaml`. The `templates` folder is installed as a package, and
this module is the one place that finds it (`templates_dir`) and the one factory of Jinja
environments (`template_environment`) for email, report and desk templates. Amounts and dates
are formatted with Babel for the customer's locale (`1.234,56 €` for es_ES, `$1,234.56` for
en_US) before they reach the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    Undefined,
    select_autoescape,
)
from jinja2.sandbox import SandboxedEnvironment

from dunning.schema import Invoice
from dunning.settings import settings

#: The installed package that holds the templates (the repository's top-level `templates/`).
TEMPLATES_PACKAGE = "templates"


def templates_dir() -> Path:
    """The templates folder: `DUNNING_TEMPLATES` if set, else the installed `templates` package.

    Found through importlib.resources, so a wheel install (`pip install .`) renders what the
    source tree renders.
    """
    override = settings().templates
    return override if override else _packaged_templates()


@lru_cache(maxsize=1)
def _packaged_templates() -> Path:
    root = Path(str(files(TEMPLATES_PACKAGE)))
    if not (root / "email" / "_layout.html").is_file():
        # `templates` is a generic name: say so if another one shadows ours.
        raise RuntimeError(
            f"the {TEMPLATES_PACKAGE!r} package at {root} is not prefect-dunning's (it has no "
            "email/_layout.html): a folder or distribution of that name shadows it; set "
            "DUNNING_TEMPLATES to prefect-dunning's templates folder"
        )
    return root


def template_environment(
    root: str | Path, *, strict: bool = True, overlay: str | Path | None = None
) -> SandboxedEnvironment:
    """A new Jinja environment over the templates under `root`: how every template is run.

    Sandboxed, because users edit the templates and a template must not reach Python
    internals; HTML autoescaped, because customer names and replies come from outside.
    `strict` (StrictUndefined) makes a typo fail loudly rather than render as a blank; the
    desk's pages, which test optional values with `if`, turn it off. `overlay` (a policy's
    `templates_dir`) is searched first, file by file, so it holds only what it changes or
    adds and still extends the built-in layouts.
    """
    return SandboxedEnvironment(
        loader=_loader(root, overlay),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined if strict else Undefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _loader(root: str | Path, overlay: str | Path | None) -> BaseLoader:
    if not overlay:
        return FileSystemLoader(str(root))
    return ChoiceLoader([FileSystemLoader(str(overlay)), FileSystemLoader(str(root))])


@lru_cache(maxsize=8)
def shared_environment(root: str, overlay: str | None = None) -> SandboxedEnvironment:
    """The strict environment over `root` (and a policy's `overlay` folder first), built once
    per pair of folders (email and report messages)."""
    return template_environment(root, overlay=overlay)


def template_exists(name: str, overlay: str | Path | None = None) -> bool:
    """Whether template `name` (e.g. `email/es/due.subject.txt`) is found in `overlay` or in
    the built-in templates: what a policy is checked against when it is loaded."""
    try:
        root = str(templates_dir())
        _loader(root, overlay).get_source(shared_environment(root), name)
    except TemplateNotFound:
        return False
    return True


def layout_words(env: SandboxedEnvironment, name: str) -> Mapping[str, Any]:
    """A layout's words in one language, from the YAML file `name` under the templates root.

    Strings by name, or mappings of strings by name (e.g. the report's aging buckets), read
    only. Read through the environment's loader on every call, so an edited file shows at once
    like an edited template; parsed once per content. Raises `TemplateNotFound` when the
    language has no such file.
    """
    loader: BaseLoader | None = env.loader
    if loader is None:
        raise TemplateNotFound(name)
    source, _, _ = loader.get_source(env, name)
    return _parse_words(source, name)


@lru_cache(maxsize=64)
def _parse_words(source: str, name: str) -> Mapping[str, Any]:
    words = yaml.safe_load(source) or {}

    def strings(value: object) -> bool:
        return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())

    if not isinstance(words, dict) or not all(
        isinstance(v, str) or strings(v) for v in words.values()
    ):
        raise ValueError(f"{name}: expected a mapping of names to strings (or to mappings of them)")
    # Read-only: the parsed words are shared by every message rendered after.
    return MappingProxyType(
        {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in words.items()}
    )


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str
    language: str


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
    overlay: str | Path | None = None,
) -> RenderedMessage:
    """Render subject, text and HTML of `template` in `language` (or the fallback language).

    `overlay` is the policy's `templates_dir`, searched before `root` file by file.

    Example:
        >>> ctx = message_context(customer_name="Acme", invoice_number="F-1", ...)
        >>> render_email("overdue_7", "es", ctx).subject
    """
    env = shared_environment(str(root or templates_dir()), str(overlay) if overlay else None)
    for lang in dict.fromkeys((language, fallback_language, "en")):
        try:
            layout = {"lang": lang, "words": layout_words(env, f"email/{lang}/strings.yaml")}
            parts = [
                env.get_template(f"email/{lang}/{template}.{ext}").render(context | layout).strip()
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
