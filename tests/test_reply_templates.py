"""Answers to customers' replies, the broken-promise notice and the manager alert, in es/en/pt.

Each message is rendered the way the sender renders it (`message_context` + the extra
variables the caller adds) and checked for what its reader would notice.
"""

from __future__ import annotations

from datetime import date

import pytest

from dunning.policy import BankDetails
from dunning.render import message_context, render_email

NBSP = "\u00a0"
CUSTOMER_FACING = ["promise_broken", "answer_copy", "answer_bank", "optout_confirm", "answer_ack"]
TEMPLATES = [*CUSTOMER_FACING, "manager_alert"]

# language, country, 1,210.00 EUR as Babel writes it for that locale
LOCALES = [
    ("es", "ES", f"1.210,00{NBSP}€"),
    ("en", "US", "€1,210.00"),
    ("pt", "BR", f"€{NBSP}1.210,00"),
]
PROMISED = {
    "es": "15 de diciembre de 2026",
    "en": "December 15, 2026",
    "pt": "15 de dezembro de 2026",
}
IBAN = "ES91 2100 0418 4502 0005 1332"
HOSTILE = "Pagaré cuando quiera <script>alert(1)</script> & no antes"

# What the caller adds for the reply flows; each value is recognisable so a leak shows.
EXTRAS = {
    "promised_on": "",
    "bank": None,
    "intent": "dispute",
    "reason": "INTERNAL-REASON-angry-tone-0.93",
    "sender": "Ana Pérez <ana@acme.es>",
    "received_at": "20/12/2026 10:14",
    "reply_excerpt": HOSTILE,
    "task_title": "INTERNAL-TASK-call-the-customer",
}


def context(language: str = "es", country: str = "ES", **changes: object) -> dict:
    values = {
        "customer_name": "Ferretería Acme SL",
        "invoice_number": "F-2026-0042",
        "amount_due": 1210.0,
        "amount_total": 1210.0,
        "currency": "EUR",
        "due_date": date(2026, 12, 1),
        "issue_date": date(2026, 11, 1),
        "today": date(2026, 12, 20),
        "language": language,
        "country": country,
        "payment_link": "https://pay.example.com/i/F-2026-0042",
        "company_name": "Suministros Norte SL",
        "reply_to": "cobros@norte.es",
    }
    extras = {k: changes.pop(k) for k in list(changes) if k in EXTRAS}
    return message_context(**(values | changes)) | extras


def bank(**changes: object) -> BankDetails:
    values = {"beneficiary": "Suministros Norte SL", "iban": IBAN, "bank_name": "CaixaBank"}
    return BankDetails(**(values | changes))


# -- every template, every language ---------------------------------------------------------


@pytest.mark.parametrize(("language", "country", "amount"), LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_renders_invoice_and_amount_in_the_customers_locale(
    template: str, language: str, country: str, amount: str
) -> None:
    extras = EXTRAS | {"promised_on": PROMISED[language], "bank": bank()}
    ctx = context(language, country, **extras)
    msg = render_email(template, language, ctx)

    assert msg.language == language  # its own template, not the English fallback
    assert msg.subject and "\n" not in msg.subject
    for part in (msg.text, msg.html):
        assert "F-2026-0042" in part
        assert amount in part
        assert "{{" not in part and "{%" not in part
    assert f'<html lang="{language}">' in msg.html


@pytest.mark.parametrize(("language", "country", "amount"), LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_renders_without_any_of_the_callers_extra_variables(
    template: str, language: str, country: str, amount: str
) -> None:
    # act.py renders promise_broken from message_context alone; the environment is strict,
    # so a template that used an extra variable unguarded would raise here.
    msg = render_email(template, language, context(language, country))
    assert "F-2026-0042" in msg.text
    assert amount in msg.html


@pytest.mark.parametrize("language", ["es", "en", "pt"])
@pytest.mark.parametrize("template", CUSTOMER_FACING)
def test_customer_messages_do_not_leak_internal_details(template: str, language: str) -> None:
    ctx = context(language, **(EXTRAS | {"bank": bank()}))
    msg = render_email(template, language, ctx)
    everything = msg.subject + msg.text + msg.html
    for internal in ("INTERNAL-REASON", "INTERNAL-TASK", "dispute", "alert(1)", "[Dunning]"):
        assert internal not in everything


# -- promise_broken -------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["es", "en", "pt"])
def test_promise_broken_names_the_promised_date(language: str) -> None:
    msg = render_email(
        "promise_broken", language, context(language, promised_on=PROMISED[language])
    )
    assert PROMISED[language] in msg.text
    assert f"<strong>{PROMISED[language]}</strong>" in msg.html
    assert 'href="https://pay.example.com/i/F-2026-0042"' in msg.html


@pytest.mark.parametrize(
    ("language", "without_date"),
    [
        ("es", "Nos comunicó que realizaría el pago de la factura F-2026-0042"),
        ("en", "F-2026-0042, for €1,210.00, would be paid. However"),
        ("pt", f"no valor de €{NBSP}1.210,00, seria paga. No entanto"),
    ],
)
def test_promise_broken_without_a_date_reads_naturally(language: str, without_date: str) -> None:
    country = {"es": "ES", "en": "US", "pt": "BR"}[language]
    msg = render_email("promise_broken", language, context(language, country, promised_on=""))
    assert without_date in msg.text
    assert " el  " not in msg.text and " on ." not in msg.text and " em ." not in msg.text
    assert "<strong></strong>" not in msg.html


def test_promise_broken_asks_for_payment_or_a_new_date() -> None:
    msg = render_email("promise_broken", "en", context("en", "US"))
    assert "reply to this email with a new payment date" in msg.text
    assert "https://pay.example.com/i/F-2026-0042" in msg.text


# -- answer_copy ----------------------------------------------------------------------------


def test_answer_copy_with_the_pdf_attached() -> None:
    msg = render_email("answer_copy", "en", context("en", "US", has_attachment=True))
    assert "a PDF copy of invoice F-2026-0042 is attached" in msg.text
    assert msg.text.count("attached") == 1  # the base's own PDF line is not repeated
    assert "December 1, 2026" in msg.text  # the due date


def test_answer_copy_without_pdf_points_to_the_link() -> None:
    msg = render_email("answer_copy", "es", context(has_attachment=False))
    assert "puede descargar la factura F-2026-0042" in msg.text
    assert "Puede descargar la factura y pagarla en este enlace:" in msg.text
    assert "https://pay.example.com/i/F-2026-0042" in msg.text
    assert "Ver y pagar la factura</a>" in msg.html
    assert "adjunt" not in msg.text.lower()


def test_answer_copy_without_pdf_or_link_promises_to_send_it() -> None:
    msg = render_email("answer_copy", "pt", context("pt", "BR", payment_link=""))
    assert "Em breve enviaremos a cópia da fatura F-2026-0042" in msg.text
    assert "link" not in msg.text
    assert "href=" not in msg.html.replace('href="mailto:', "")


# -- answer_bank ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "reference", "certificate"),
    [
        ("es", "Concepto de la transferencia", "certificado bancario de titularidad"),
        ("en", "Payment reference", "bank certificate confirming the account holder"),
        ("pt", "Referência da transferência", "declaração do banco que comprova a titularidade"),
    ],
)
def test_answer_bank_lists_the_account_and_the_reference(
    language: str, reference: str, certificate: str
) -> None:
    details = bank()
    ctx = context(language, bank=details, has_attachment=True)
    msg = render_email("answer_bank", language, ctx)
    for part in (msg.text, msg.html):
        assert IBAN in part
        assert "Suministros Norte SL" in part
        assert details.bic and details.bic in part  # derived from the IBAN by schwifty
        assert "CaixaBank" in part
        assert certificate in part
    assert f"{reference}: F-2026-0042" in msg.text
    # The attachment is the bank certificate: the base's "invoice PDF attached" line is gone.
    assert "PDF" not in msg.text


def test_answer_bank_from_a_plain_mapping_without_bic_or_bank_name() -> None:
    ctx = context("en", "US", bank={"beneficiary": "Norte SL", "iban": IBAN})
    msg = render_email("answer_bank", "en", ctx)
    assert f"- IBAN: {IBAN}" in msg.text
    assert "BIC" not in msg.text + msg.html
    assert "- Bank:" not in msg.text
    assert "certificate" not in msg.text


def test_answer_bank_without_details_says_they_will_follow() -> None:
    msg = render_email("answer_bank", "es", context(bank=None))
    assert "En breve le enviaremos nuestros datos bancarios" in msg.text
    assert "IBAN" not in msg.text + msg.html


# -- optout_confirm and answer_ack ----------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "last", "still_due"),
    [
        ("es", "último mensaje que le enviaremos por correo electrónico", "sigue pendiente"),
        ("en", "last message we will send you by email", "remains due"),
        ("pt", "última mensagem que lhe enviaremos por e-mail", "continua pendente"),
    ],
)
def test_optout_confirms_and_keeps_the_invoice_due(
    language: str, last: str, still_due: str
) -> None:
    msg = render_email("optout_confirm", language, context(language))
    assert last in msg.text
    assert still_due in msg.text
    assert "cobros@norte.es" in msg.text
    assert 'href="mailto:cobros@norte.es"' in msg.html


def test_answer_ack_thanks_and_promises_a_person() -> None:
    msg = render_email("answer_ack", "en", context("en", "US"))
    assert "Thank you for your message about invoice F-2026-0042" in msg.text
    assert "a member of our team will get back to you shortly" in msg.text


# -- manager_alert --------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["es", "en", "pt"])
def test_manager_alert_shows_the_reply_escaped_in_html(language: str) -> None:
    msg = render_email("manager_alert", language, context(language, **EXTRAS))
    assert msg.subject.startswith("[Dunning] ")
    assert "F-2026-0042" in msg.subject and "Ferretería Acme SL" in msg.subject
    assert "<script>" not in msg.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; no antes" in msg.html
    assert HOSTILE in msg.text  # plain text shows it as written
    for value in ("INTERNAL-REASON-angry-tone-0.93", "20/12/2026 10:14", "INTERNAL-TASK"):
        assert value in msg.text and value in msg.html
    assert "Ana Pérez <ana@acme.es>" in msg.text
    assert "Ana Pérez &lt;ana@acme.es&gt;" in msg.html
    assert "Estimado" not in msg.text and "Dear" not in msg.text  # not addressed to the customer


def test_manager_alert_keeps_the_replys_line_breaks() -> None:
    excerpt = "Hola,\n\nno pienso pagar.\nAna"
    msg = render_email("manager_alert", "es", context(reply_excerpt=excerpt))
    assert excerpt in msg.text
    assert "white-space:pre-wrap" in msg.html and excerpt in msg.html
