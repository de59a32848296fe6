"""Replies end to end: reminders go out over real SMTP, customers answer into a real IMAP
server (dovecot), the `process-replies` flow runs on a real Prefect server, and the next
sweeps show the consequences (no reminder on a dispute, a promise pauses then resumes)."""

from __future__ import annotations

from datetime import date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from imap_tools import MailBoxUnencrypted

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, DunningPolicy, LedgerDatabase
from dunning.ledger import HumanTask, InboundMessage, Ledger, Pause, Promise
from dunning.policy import default_policy
from flows.replies import process_replies
from flows.sweep import dunning_sweep
from tests.invoices import write_invoices
from tests.mailboxes import PASSWORD, mailbox_block, new_mailbox
from tests.test_flows import channel_for

MAILBOX_USER = "cobros@empresa.example"
MANAGER = "direccion@acme.example"
# Invoices due Monday 2026-11-02: overdue_7 goes out Monday 9th, overdue_15 Tuesday 17th.
FIRST_SWEEP = datetime.fromisoformat("2026-11-09T10:00:00+01:00")
REPLIES_ON = datetime.fromisoformat("2026-11-10T11:30:00+01:00")
CUSTOMERS = {
    "F-1": (
        "ana@cliente-a.example",
        "Hola, les haremos la transferencia el 20 de noviembre. Un saludo, Ana",
    ),
    "F-2": (
        "luis@cliente-b.example",
        "Esta factura está mal: el importe no corresponde a lo "
        "pactado y llevamos semanas reclamando. No pienso pagarla así.",
    ),
    "F-3": (
        "compras@cliente-c.example",
        "Buenos días, ¿me pueden reenviar la factura en PDF? No la encuentro.",
    ),
    "F-4": (
        "jefe@cliente-d.example",
        "Estoy fuera de la oficina hasta el 16 de noviembre sin acceso al correo.",
    ),
}


@pytest.fixture
def world(tmp_path: Path, imap_server, prefect_api):
    """Four overdue invoices, a ledger, a mail sink, an empty mailbox and the blocks."""
    pdf = tmp_path / "F-3.pdf"
    pdf.write_bytes(b"%PDF-1.4 invoice F-3")
    rows = [
        dict(
            invoice_number=n,
            customer_id=f"C{n[-1]}",
            customer_name=f"Cliente {n[-1]} S.L.",
            email=addr,
            amount_total="1210.00",
            amount_due="1210.00",
            due_date="2026-11-02",
            pdf_path=str(pdf) if n == "F-3" else "",
        )
        for n, (addr, _) in CUSTOMERS.items()
    ]
    csv = write_invoices(tmp_path / "invoices.csv", rows)
    login = new_mailbox(imap_server, tmp_path)
    policy = default_policy().model_copy(deep=True)
    policy.replies.manager_emails = [MANAGER]
    with MailSink(tmp_path / "outbox", port=0) as sink:
        yield {
            "source": CsvInvoiceSource(path=str(csv)),
            "ledger_url": f"sqlite:///{tmp_path}/ledger.db",
            "sink": sink,
            "channel": channel_for(sink),
            "policy": DunningPolicy(**policy.model_dump()),
            "mailbox": mailbox_block(imap_server, login),
            "imap": imap_server,
            "login": login,
        }


def sweep(w: dict, now: datetime) -> dict:
    return dunning_sweep(
        source=w["source"],
        channel=w["channel"],
        ledger=LedgerDatabase(url=w["ledger_url"]),
        policy=w["policy"],
        now=now,
    )


def replies(w: dict) -> dict:
    return process_replies(
        mailbox=w["mailbox"],
        source=w["source"],
        channel=w["channel"],
        ledger=LedgerDatabase(url=w["ledger_url"]),
        policy=w["policy"],
    )


def customer_reply(
    w: dict,
    sender: str,
    text: str,
    *,
    to_reminder: EmailMessage | None,
    subject: str = "",
    **headers: str,
) -> None:
    """The customer answers: the message lands in our mailbox over IMAP."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "maria@acme.example"
    msg["Subject"] = subject or (f"Re: {to_reminder['Subject']}" if to_reminder else "Hola")
    msg["Date"] = format_datetime(REPLIES_ON)
    msg["Message-ID"] = f"<{abs(hash((sender, text)))}@{sender.split('@')[1]}>"
    if to_reminder is not None:
        msg["In-Reply-To"] = to_reminder["Message-ID"]
        msg["References"] = to_reminder["Message-ID"]
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    quoted = ""
    if to_reminder is not None:
        body = to_reminder.get_body(("plain",)).get_content()
        quoted = "\n\nEl lun, 9 nov 2026, Acme S.L. escribió:\n" + "\n".join(
            "> " + line for line in body.splitlines()
        )
    msg.set_content(text + quoted)
    with MailBoxUnencrypted("127.0.0.1", w["imap"].port).login(w["login"], PASSWORD) as box:
        box.append(msg.as_bytes(), "INBOX")


def sent_to(sink: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in sink.messages() if address in m["To"]]


def test_replies_are_fetched_matched_understood_and_acted_on(world):
    w, sink = world, world["sink"]
    assert sweep(w, FIRST_SWEEP)["sent"] == 4
    reminders = {n: sent_to(sink, addr)[0] for n, (addr, _) in CUSTOMERS.items()}

    for number, (addr, text) in CUSTOMERS.items():
        extra = {"Auto_Submitted": "auto-replied"} if number == "F-4" else {}
        customer_reply(w, addr, text, to_reminder=reminders[number], **extra)
    customer_reply(w, "someone@unknown.example", "¿Quién es? No les conozco.", to_reminder=None)

    counts = replies(w)
    assert counts["fetched"] == 5 and counts["processed"] == 5, counts
    ledger = Ledger(w["ledger_url"])

    # Promise: recorded with its date, reminders for F-1 paused until then (plus grace).
    promises = ledger.frame(Promise)
    assert promises[["invoice_number", "promised_on", "state"]].values.tolist() == [
        ["F-1", date(2026, 11, 20), "open"]
    ]
    # Dispute: F-2 stopped at once, the manager alerted by email with the customer's words.
    disputes = ledger.frame(Pause, kind="dispute", active=True)
    assert disputes["invoice_number"].tolist() == ["F-2"]
    alert = sent_to(sink, MANAGER)
    assert len(alert) == 1 and "F-2" in alert[0].get_body(("plain",)).get_content()
    # Copy request: answered in the customer's thread with the PDF attached.
    answer = [m for m in sent_to(sink, "compras@cliente-c.example") if m is not reminders["F-3"]]
    answer = [m for m in answer if m["In-Reply-To"]]
    assert len(answer) == 1
    assert [a.get_filename() for a in answer[0].iter_attachments()] == ["F-3.pdf"]
    # Auto-reply: nothing sent back.
    assert len(sent_to(sink, "jefe@cliente-d.example")) == 1  # only the reminder
    # Unknown sender: a task for a person, nothing dropped.
    tasks = ledger.frame(HumanTask)
    assert tasks["title"].str.contains("matches no invoice").sum() == 1
    inbox = ledger.frame(InboundMessage)
    assert set(inbox["state"]) <= {"processed", "needs_human", "ignored"}
    assert inbox.set_index("sender").loc["ana@cliente-a.example", "intent"] == "promise_to_pay"

    # The mailbox is emptied into the processed folder; a second run does nothing more.
    with MailBoxUnencrypted("127.0.0.1", w["imap"].port).login(w["login"], PASSWORD) as box:
        assert len(list(box.fetch())) == 0
        box.folder.set("Processed")
        assert len(list(box.fetch())) == 5
    before = len(sink.messages())
    assert replies(w)["processed"] == 0
    assert len(sink.messages()) == before

    # Next ladder stage (overdue_15, Tue 17th): disputed F-2 and promised F-1 get nothing.
    second = sweep(w, datetime.fromisoformat("2026-11-17T10:00:00+01:00"))
    assert second["skipped"].get("disputed") == 1 and second["skipped"].get("promise_to_pay") == 1
    assert len(sent_to(sink, "luis@cliente-b.example")) == 1
    # Ana: the first reminder and the confirmation of her promise (in her thread), no more.
    to_ana = sent_to(sink, "ana@cliente-a.example")
    assert len(to_ana) == 2 and to_ana[1]["X-Dunning-Key"].startswith("F-1:promise_confirmation-")

    # The promised day (20th) plus two days' grace passes unpaid: the promise is broken,
    # the customer gets one "promise broken" message and a person gets a task.
    third = sweep(w, datetime.fromisoformat("2026-11-23T10:00:00+01:00"))
    assert third["sync"]["promises_broken"] == 1
    to_ana = sent_to(sink, "ana@cliente-a.example")
    assert len(to_ana) == 3 and "X-Dunning-Key" in to_ana[2]
    assert to_ana[2]["X-Dunning-Key"].startswith("F-1:promise_broken-")
    assert ledger.frame(HumanTask)["title"].str.contains("Promise to pay broken").sum() == 1
