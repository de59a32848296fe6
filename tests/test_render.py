"""Messages: locale formatting, every stage's template in es and en, escaping, the email."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from dunning.mail import build_email, message_id
from dunning.policy import default_policy
from dunning.render import format_money, locale_for, message_context, render_email

STAGES = [s.name for s in default_policy().ladder()]
NBSP = "\u00a0"


def context(language: str = "es", country: str = "ES", **changes: object) -> dict:
    values = {
        "customer_name": "Ferretería Acme SL",
        "invoice_number": "F-2026-0042",
        "amount_due": 1234.56,
        "amount_total": 1234.56,
        "currency": "EUR",
        "due_date": date(2026, 12, 1),
        "issue_date": date(2026, 11, 1),
        "today": date(2026, 12, 9),
        "language": language,
        "country": country,
        "payment_link": "https://pay.example.com/i/F-2026-0042",
        "company_name": "Suministros Norte SL",
        "reply_to": "cobros@norte.es",
    } | changes
    return message_context(**values)


# -- locale formatting -----------------------------------------------------------------------


def test_amounts_in_the_customers_locale() -> None:
    assert format_money(1234.56, "EUR", locale_for("es", "ES")) == f"1.234,56{NBSP}€"
    assert format_money(1234.56, "USD", locale_for("en", "US")) == "$1,234.56"


def test_unknown_locale_falls_back_to_the_language_or_english() -> None:
    assert format_money(1234.56, "EUR", locale_for("es", "")) == f"1.234,56{NBSP}€"
    assert format_money(1234.56, "USD", locale_for("xx", "ZZ")) == "$1,234.56"


def test_context_is_formatted_for_the_locale() -> None:
    es = context("es", "ES")
    assert es["amount_due"] == f"1.234,56{NBSP}€"
    assert es["due_date"] == "1 de diciembre de 2026"
    assert es["days_overdue"] == 8
    en = context("en", "US", currency="USD")
    assert en["amount_due"] == "$1,234.56"
    assert en["due_date"] == "December 1, 2026"


# -- templates -------------------------------------------------------------------------------


def test_the_default_ladder_has_six_stages() -> None:
    assert STAGES == ["pre_due", "due", "overdue_1", "overdue_7", "overdue_15", "final"]


@pytest.mark.parametrize(
    ("language", "country", "currency", "amount", "due"),
    [
        ("es", "ES", "EUR", f"1.234,56{NBSP}€", "1 de diciembre de 2026"),
        ("en", "US", "USD", "$1,234.56", "December 1, 2026"),
    ],
)
@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_renders_the_essentials(
    stage: str, language: str, country: str, currency: str, amount: str, due: str
) -> None:
    today = date(2026, 11, 28) if stage == "pre_due" else date(2026, 12, 9)
    ctx = context(language, country, currency=currency, today=today, stage=stage)
    msg = render_email(stage, language, ctx)

    assert msg.language == language
    assert "F-2026-0042" in msg.subject
    assert "\n" not in msg.subject
    for part in (msg.text, msg.html):
        assert "Ferretería Acme SL" in part
        assert "F-2026-0042" in part
        assert amount in part
        assert due in part
        assert "https://pay.example.com/i/F-2026-0042" in part
    assert 'href="https://pay.example.com/i/F-2026-0042"' in msg.html
    assert "{{" not in msg.text + msg.html


def test_days_overdue_are_in_the_message() -> None:
    es = render_email("overdue_7", "es", context("es", "ES"))
    assert "hace 8 días" in es.subject
    en = render_email("overdue_7", "en", context("en", "US"))
    assert "8 days" in en.subject + en.text


def test_part_paid_message_shows_remaining_and_total() -> None:
    msg = render_email("overdue_7", "es", context(amount_due=400.5, amount_total=1234.56))
    assert f"400,50{NBSP}€" in msg.text
    assert f"1.234,56{NBSP}€" in msg.text


def test_a_language_without_templates_falls_back_to_english() -> None:
    msg = render_email("due", "de", context("de", "DE"))
    assert msg.language == "en"
    assert "F-2026-0042" in msg.subject


def test_html_escapes_a_hostile_customer_name() -> None:
    name = '<script>alert("x")</script> & Co'
    msg = render_email("overdue_7", "es", context(customer_name=name))
    assert "<script>" not in msg.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in msg.html
    assert name in msg.text  # plain text shows it as it is


def test_a_javascript_payment_link_is_dropped() -> None:
    ctx = context(payment_link="javascript:alert(document.cookie)")
    assert ctx["payment_link"] == ""
    msg = render_email("overdue_1", "es", ctx)
    assert "javascript" not in msg.html.lower()
    assert "javascript" not in msg.text.lower()
    assert "href=" not in msg.html.replace('href="mailto:', "")


def test_quotes_in_a_payment_link_cannot_break_out_of_the_attribute() -> None:
    link = 'https://pay.example.com/x" onmouseover="alert(1)'
    msg = render_email("overdue_1", "en", context("en", "US", payment_link=link))
    assert 'onmouseover="alert' not in msg.html
    assert "https://pay.example.com/x&#34; onmouseover=&#34;alert(1)" in msg.html


# -- the email -------------------------------------------------------------------------------


def build(tmp_path: Path | None = None, key: str = "F-2026-0042:overdue_7:email", **kw: object):
    rendered = render_email("overdue_7", "es", context())
    return build_email(
        rendered,
        from_address="cobros@norte.es",
        from_name="Suministros Norte SL",
        to="ap@acme.es",
        reply_to="Ana Cobros <ana@norte.es>",
        key=key,
        **kw,
    )


def test_email_headers() -> None:
    msg = build()
    assert msg["To"] == "ap@acme.es"
    assert msg["From"] == "Suministros Norte SL <cobros@norte.es>"
    assert msg["Reply-To"] == "Ana Cobros <ana@norte.es>"
    assert "F-2026-0042" in msg["Subject"]
    assert msg["Content-Language"] == "es"
    body = msg.get_body(("plain",)).get_content()
    assert f"1.234,56{NBSP}€" in body
    assert "&lt;" not in body
    assert msg.get_body(("html",)) is not None


def test_message_id_is_deterministic_per_key() -> None:
    first = build(key="F-1:overdue_7:email")["Message-ID"]
    again = build(key="F-1:overdue_7:email")["Message-ID"]
    other = build(key="F-1:overdue_15:email")["Message-ID"]
    assert first == again
    assert first != other
    assert first.startswith("<") and first.endswith("@norte.es>")
    assert first == message_id("F-1:overdue_7:email", "norte.es")


def test_message_id_domain_can_be_set() -> None:
    assert build(message_id_domain="mail.norte.es")["Message-ID"].endswith("@mail.norte.es>")


def test_pdf_attachment(tmp_path: Path) -> None:
    pdf = tmp_path / "F-2026-0042.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% invoice\n%%EOF\n")
    msg = build(attachment=pdf)

    # Through the wire format and back, as the recipient sees it.
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "F-2026-0042.pdf"
    assert attachment.get_content() == pdf.read_bytes()
    assert parsed.get_body(("plain",)) is not None
    assert parsed["Content-Language"] == "es"


def test_no_attachment_when_none_is_given() -> None:
    assert list(build().iter_attachments()) == []
