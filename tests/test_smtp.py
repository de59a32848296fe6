"""Sending through a real SMTP server on loopback (the aiosmtpd mail sink)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from apps.mailsink import MailSink, free_port
from dunning.mail import Envelope, build_email
from dunning.render import message_context, render_email
from dunning.smtp import NotSent, SmtpPool, SmtpSettings, connect

ARCHIVE = "archivo@norte.es"


def reminder(to: str = "ap@acme.es", invoice: str = "F-2026-0042"):
    ctx = message_context(
        customer_name="Ferretería Acme SL",
        invoice_number=invoice,
        amount_due=1234.56,
        amount_total=1234.56,
        currency="EUR",
        due_date=date(2026, 12, 1),
        issue_date=None,
        today=date(2026, 12, 9),
        language="es",
        country="ES",
        payment_link=f"https://pay.example.com/{invoice}",
    )
    return build_email(
        render_email("overdue_7", "es", ctx),
        from_address="cobros@norte.es",
        to=to,
        reply_to="ana@norte.es",
        key=f"{invoice}:overdue_7:email",
    )


def settings(sink: MailSink) -> SmtpSettings:
    return SmtpSettings(sink.host, sink.port, timeout=10)


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "outbox", port=0) as server:
        yield server


def test_message_arrives_for_the_right_recipient(sink: MailSink) -> None:
    pool = SmtpPool(settings(sink))
    msg = reminder()
    reply = pool.send(msg, Envelope("cobros@norte.es", ["ap@acme.es"]))
    pool.close()

    assert reply.startswith("250")
    (received,) = sink.messages()
    assert received["X-Envelope-To"] == "ap@acme.es"
    assert received["X-Envelope-From"] == "cobros@norte.es"
    assert received["To"] == "ap@acme.es"
    assert received["Message-ID"] == msg["Message-ID"]
    assert received["Reply-To"] == "ana@norte.es"
    assert received["Subject"] == "Factura F-2026-0042 vencida hace 8 días"
    body = received.get_body(("plain",)).get_content()
    assert "1.234,56\u00a0€" in body
    assert "https://pay.example.com/F-2026-0042" in body


def test_bcc_archive_is_in_the_envelope_not_the_headers(sink: MailSink) -> None:
    pool = SmtpPool(settings(sink))
    pool.send(reminder(), Envelope("cobros@norte.es", ["ap@acme.es"], bcc=[ARCHIVE]))
    pool.close()

    (received,) = sink.messages()
    assert received["X-Envelope-To"] == f"ap@acme.es, {ARCHIVE}"
    assert received["Bcc"] is None
    headers = "".join(f"{k}: {v}\n" for k, v in received.items() if k != "X-Envelope-To")
    assert ARCHIVE not in headers


def test_temporary_refusal_is_not_sent_and_a_retry_sends_once(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    with MailSink(outbox, port=0, fail_first=1) as sink:
        pool = SmtpPool(settings(sink))
        envelope = Envelope("cobros@norte.es", ["ap@acme.es"])
        with pytest.raises(NotSent) as err:
            pool.send(reminder(), envelope)
        assert err.value.permanent is False
        assert "451" in str(err.value)
        assert list(outbox.glob("*.eml")) == []

        assert pool.send(reminder(), envelope).startswith("250")
        pool.close()
    assert len(list(outbox.glob("*.eml"))) == 1


def test_nothing_listening_is_not_sent(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    pool = SmtpPool(SmtpSettings("127.0.0.1", port, timeout=5))
    with pytest.raises(NotSent) as err:
        pool.send(reminder(), Envelope("cobros@norte.es", ["ap@acme.es"]))
    assert err.value.permanent is False
    assert f"127.0.0.1:{port}" in str(err.value)


def test_the_pool_reuses_one_connection(sink: MailSink) -> None:
    opened: list[smtplib.SMTP] = []

    def counting_connect(s: SmtpSettings) -> smtplib.SMTP:
        conn = connect(s)
        opened.append(conn)
        return conn

    pool = SmtpPool(settings(sink), connector=counting_connect)
    invoices = [f"F-{n}" for n in range(5)]
    for invoice in invoices:
        pool.send(reminder(invoice=invoice), Envelope("cobros@norte.es", ["ap@acme.es"]))
    pool.close()

    assert len(opened) == 1
    assert sorted(m["X-Dunning-Key"] for m in sink.messages()) == [
        f"{i}:overdue_7:email" for i in invoices
    ]
