"""What each understood reply leads to: ledger entries, answers at the real SMTP server,
tasks for people. The classification is given (the classifier has its own tests and
evaluation), so each case shows the action for one intent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from apps.mailsink import MailSink
from dunning.act import EmailIdentity
from dunning.importers import read_invoice_file
from dunning.ledger import Action, CrmEntry, HumanTask, InboundMessage, Ledger, Pause, Promise
from dunning.mail import message_id
from dunning.policy import BankDetails, default_policy
from dunning.replies.act import handle_reply
from dunning.replies.imap import is_auto_reply
from dunning.replies.match import match_message
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from tests.invoices import write_invoices

RECEIVED = datetime(2026, 11, 10, 10, 30, tzinfo=UTC)
IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme S.L.")


@dataclass(frozen=True)
class Understood:
    """A classification as `dunning.replies.classify` returns it."""

    intent: str
    confidence: float = 0.95
    lang: str = "es"
    promise_date: date | None = None
    angry: bool = False
    new_contact: str = ""


@pytest.fixture
def env(tmp_path: Path):
    pdf = tmp_path / "F-1.pdf"
    pdf.write_bytes(b"%PDF-1.4 F-1")
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(
                invoice_number="F-1",
                customer_id="C1",
                email="ana@a.example",
                phone="+34 612 345 678",
                due_date="2026-11-02",
                pdf_path=str(pdf),
            ),
            dict(
                invoice_number="F-2", customer_id="C1", email="ana@a.example", due_date="2026-11-05"
            ),
            dict(
                invoice_number="G-9",
                customer_id="C2",
                email="bob@b.example",
                due_date="2026-11-05",
                language="en",
                country="US",
                currency="USD",
            ),
        ],
    )
    invoices = read_invoice_file(csv).invoices
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(invoices)
    by_number = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}
    policy = default_policy().model_copy(deep=True)
    policy.replies.manager_emails = ["boss@acme.example"]
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        yield dict(
            ledger=ledger, sink=sink, pool=pool, policy=policy, lookup=by_number.get, tmp=tmp_path
        )
        pool.close()


def receive(
    env: dict,
    understood: Understood,
    *,
    sender: str = "ana@a.example",
    text: str = "...",
    subject: str = "Re: Factura F-1",
    **fields,
) -> dict:
    """Store a message in the inbox and act on it with the given understanding."""
    n = len(env["ledger"].inbound())
    (new_id,) = env["ledger"].store_inbound(
        [
            InboundMessage(
                provider_id=f"<m{n}@a.example>",
                sender=sender,
                subject=subject,
                text=text,
                received_at=RECEIVED,
                **fields,
            )
        ]
    )
    outcome = handle_reply(
        env["ledger"].inbound_message(new_id),
        ledger=env["ledger"],
        policy=env["policy"],
        lookup=env["lookup"],
        pool=env["pool"],
        identity=IDENTITY,
        classify=lambda *a, **k: understood,
        attachments_root=str(env["tmp"]),  # as CsvInvoiceSource: the invoice file's folder
    )
    return outcome.to_dict()


def mails_to(env: dict, address: str) -> list:
    return [m for m in env["sink"].messages() if address in m["To"]]


def test_matching_prefers_our_message_id_then_invoice_numbers_then_the_sender(env):
    ledger: Ledger = env["ledger"]
    ledger.claim(
        key="F-2:overdue_7:email",
        invoice_number="F-2",
        customer_id="C1",
        stage="overdue_7",
        channel="email",
    )
    ours = message_id("F-2:overdue_7:email", "acme.example")
    ledger.mark_sending("F-2:overdue_7:email", ours)

    def match(**fields):  # noqa: ANN202
        return match_message(InboundMessage(provider_id="<x>", **fields), ledger)

    by_id = match(sender="other@x.example", in_reply_to=ours, text="sobre la F-1")
    assert (by_id.how, by_id.invoice_numbers, by_id.action_key) == (
        "message_id",
        ["F-2"],
        "F-2:overdue_7:email",
    )
    by_number = match(sender="nobody@x.example", subject="Factura G-9", text="hola")
    assert (by_number.how, by_number.customer_id, by_number.invoice_numbers) == (
        "invoice_number",
        "C2",
        ["G-9"],
    )
    by_sender = match(sender="ANA@a.example", text="hola, una pregunta")
    assert (by_sender.how, by_sender.invoice_numbers) == ("sender", ["F-1", "F-2"])
    by_phone = match(sender="+34612345678", text="hola", channel="whatsapp")
    assert by_phone.customer_id == "C1"
    assert match(sender="stranger@x.example", text="hola").how == "none"


def test_promise_with_a_date_is_recorded_for_the_invoice(env):
    out = receive(
        env,
        Understood("promise_to_pay", promise_date=date(2026, 11, 20)),
        text="Pagaremos la F-1 el 20 de noviembre",
    )
    promises = env["ledger"].frame(Promise)
    assert promises[["invoice_number", "promised_on"]].values.tolist() == [
        ["F-1", date(2026, 11, 20)]
    ]
    # One confirmation, in the customer's thread ("we note payment on <date>").
    (confirmation,) = env["sink"].messages()
    assert confirmation["To"] == "ana@a.example" and confirmation["In-Reply-To"]
    assert "20 de noviembre de 2026" in confirmation["Subject"]
    assert out["state"] == "processed"


def test_promise_too_far_away_goes_to_a_person(env):
    out = receive(env, Understood("promise_to_pay", promise_date=date(2027, 6, 1)), text="F-1")
    assert env["ledger"].frame(Promise).empty and out["state"] == "needs_human"


def test_dispute_stops_the_customer_and_alerts_the_manager_once(env):
    understood = Understood("dispute")
    receive(env, understood, text="La F-1 está mal facturada <script>x</script>")
    pauses = env["ledger"].frame(Pause, kind="dispute")
    assert pauses["invoice_number"].tolist() == ["F-1"]
    # `dispute_scope: customer` (the default): C1's other invoice F-2 stops too, not C2's.
    day = date(2026, 11, 10)
    assert env["ledger"].pause_reason("F-2", "C1", "email", day) == "disputed"
    assert env["ledger"].pause_reason("G-9", "C2", "email", day) == ""
    assert env["ledger"].pause_reason("F-2", "C1", "email", day, dispute_scope="invoice") == ""
    (alert,) = mails_to(env, "boss@acme.example")
    html = alert.get_body(("html",)).get_content()
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    tasks = env["ledger"].frame(HumanTask)
    assert tasks["assignee"].tolist() == ["manager"]
    # The same task and a note of the reply wait in the CRM outbox.
    crm = env["ledger"].frame(CrmEntry).set_index("kind")
    assert crm.loc["task", "payload"]["priority"] == "HIGH"
    assert "dispute" in crm.loc["note", "payload"]["text"]


def test_an_angry_message_stops_automation_whatever_its_intent(env):
    out = receive(
        env, Understood("opt_out", angry=True), text="DEJEN DE ACOSARME con la F-2", subject="F-2"
    )
    assert env["ledger"].frame(Pause, kind="dispute")["invoice_number"].tolist() == ["F-2"]
    assert out["state"] == "needs_human" and len(mails_to(env, "boss@acme.example")) == 1


def test_already_paid_pauses_for_verification_and_asks_a_person(env):
    receive(env, Understood("already_paid"), text="Ya pagamos la F-2 ayer", subject="Re: F-2")
    pause = env["ledger"].frame(Pause, kind="verify_payment").iloc[0]
    assert (pause.invoice_number, pause.until) == ("F-2", date(2026, 11, 15))
    assert env["ledger"].frame(HumanTask)["title"].tolist() == ["Verify payment of invoice F-2"]


def test_copy_request_is_answered_with_the_pdf_once(env):
    receive(env, Understood("invoice_copy_request"), text="Envíenme la F-1 por favor")
    (answer,) = mails_to(env, "ana@a.example")
    assert [a.get_filename() for a in answer.iter_attachments()] == ["F-1.pdf"]
    assert answer["In-Reply-To"] == "<m0@a.example>"
    assert "F-1" in answer["Subject"]
    # The same message processed again (a retried run) answers nothing more.
    message = env["ledger"].inbound()[0]
    handle_reply(
        message,
        ledger=env["ledger"],
        policy=env["policy"],
        lookup=env["lookup"],
        pool=env["pool"],
        identity=IDENTITY,
        classify=lambda *a, **k: Understood("invoice_copy_request"),
    )
    assert len(mails_to(env, "ana@a.example")) == 1


def test_bank_details_are_sent_from_the_policy(env):
    env["policy"].replies.bank_details = BankDetails(
        beneficiary="Acme S.L.", iban="ES9121000418450200051332"
    )
    receive(env, Understood("bank_details_request"), text="¿Número de cuenta para la F-1?")
    (answer,) = mails_to(env, "ana@a.example")
    assert "ES91 2100 0418 4502 0005 1332" in answer.get_body(("plain",)).get_content()


def test_bank_details_without_configuration_go_to_a_person(env):
    out = receive(env, Understood("bank_details_request"), text="IBAN para la F-1?")
    assert out["state"] == "needs_human" and not env["sink"].messages()


def test_opt_out_is_recorded_for_the_channel_and_confirmed_once(env):
    receive(env, Understood("opt_out"), text="No me escriban más sobre la F-1")
    receive(env, Understood("opt_out"), text="Que no me escriban más")
    pauses = env["ledger"].frame(Pause, kind="opt_out")
    assert pauses[["customer_id", "channel"]].values.tolist() == [["C1", "email"]] * 2
    assert len(mails_to(env, "ana@a.example")) == 1


def test_wrong_contact_proposes_the_new_address_to_a_person(env):
    receive(
        env,
        Understood("wrong_contact", new_contact="pagos@a.example"),
        text="Ya no trabajo aquí, escriban a pagos@a.example",
    )
    task = env["ledger"].frame(HumanTask).iloc[0]
    assert "pagos@a.example" in task.note and "C1" in task.title


def test_payment_plan_request_holds_reminders_while_a_person_reviews(env):
    receive(env, Understood("payment_plan_request"), text="¿Podemos pagar la F-1 en 3 plazos?")
    assert env["ledger"].frame(Pause, kind="hold")["invoice_number"].tolist() == ["F-1"]
    assert "payment plan" in env["ledger"].frame(HumanTask).iloc[0].title


def test_low_confidence_gets_a_drafted_answer_for_a_person_not_an_email(env):
    out = receive(env, Understood("promise_to_pay", confidence=0.3), text="mmm F-1 vale")
    task = env["ledger"].frame(HumanTask).iloc[0]
    assert "Drafted answer" in task.note and "F-1" in task.note
    assert out["state"] == "needs_human" and env["ledger"].frame(Promise).empty
    assert not env["sink"].messages()


def test_out_of_office_and_auto_replies_are_never_answered(env):
    out = receive(env, Understood("out_of_office"), text="Fuera de la oficina", subject="F-1")
    assert out["state"] == "processed" and not env["sink"].messages()
    auto = receive(
        env,
        Understood("invoice_copy_request"),
        text="F-1 copy",
        headers={"auto-submitted": "auto-replied"},
    )
    assert auto["state"] == "ignored" and not env["sink"].messages()
    assert env["ledger"].frame(Action).empty


@pytest.mark.parametrize(
    ("headers", "subject", "auto"),
    [
        ({"auto-submitted": "auto-replied"}, "Re: Factura", True),
        ({"auto-submitted": "no"}, "Re: Factura", False),
        ({"x-auto-response-suppress": "All"}, "", True),
        ({"precedence": "bulk"}, "", True),
        ({"return-path": "<>"}, "", True),
        ({}, "Respuesta automática: Factura F-1", True),
        ({}, "Resposta automática: Fatura", True),
        ({}, "Automatic reply: Invoice", True),
        ({}, "Re: Factura F-1", False),
    ],
)
def test_auto_replies_are_recognised(headers, subject, auto):
    assert is_auto_reply(headers, subject) is auto


def test_unmatched_message_becomes_a_task(env):
    out = receive(env, Understood("other"), sender="x@nowhere.example", text="hola", subject="Hola")
    assert out["matched_by"] == "none" and out["state"] == "needs_human"
    assert "matches no invoice" in env["ledger"].frame(HumanTask).iloc[0].title


def test_a_stranger_naming_an_invoice_gets_nothing_and_a_person_looks(env):
    out = receive(
        env,
        Understood("invoice_copy_request"),
        sender="stranger@evil.example",
        text="¿Me envían una copia de la factura F-1?",
    )
    assert out["matched_by"] == "invoice_number" and out["state"] == "needs_human"
    assert not env["sink"].messages()  # no PDF to someone who is not the customer
    assert "not a known contact" in env["ledger"].frame(HumanTask).iloc[0].title


def test_a_colleague_at_the_customers_domain_may_promise_but_gets_no_documents(env):
    # Issue 16: documents, bank details and opt-outs need a known contact, not a colleague.
    out = receive(env, Understood("invoice_copy_request"), sender="pagos@a.example", text="F-1")
    assert out["state"] == "needs_human" and not mails_to(env, "pagos@a.example")
    receive(
        env,
        Understood("promise_to_pay", promise_date=date(2026, 11, 20)),
        sender="pagos@a.example",
        text="Pagaremos la F-1 el 20",
    )
    assert env["ledger"].frame(Promise)["invoice_number"].tolist() == ["F-1"]


def test_a_bare_number_is_an_amount_not_another_customers_invoice(env):
    env["ledger"].sync_invoices(
        read_invoice_file(
            write_invoices(
                env["tmp"] / "more.csv",
                [
                    dict(
                        invoice_number="1500",
                        customer_id="C9",
                        email="z@z.example",
                        due_date="2026-11-05",
                    )
                ],
            )
        ).invoices
    )
    out = receive(
        env,
        Understood("promise_to_pay", promise_date=date(2026, 11, 13)),
        subject="Pago",
        text="Les pagaremos los 1500 euros el viernes",
    )
    assert out["matched_by"] == "sender" and out["invoices"] == ["F-1", "F-2"]
    assert set(env["ledger"].frame(Promise)["invoice_number"]) == {"F-1", "F-2"}


def test_folded_headers_and_a_future_date_are_stored_safely():
    from imap_tools import MailMessage

    from dunning.replies.imap import to_inbound

    raw = (
        b"From: ana@a.example\r\nSubject: Re: Factura F-1\r\n"
        b"Message-ID: <reply-1@a.example>\r\n"
        b"References: <a@acme.example>\r\n <b@acme.example>\r\n"
        b"Date: Tue, 01 Jan 2030 10:00:00 +0000\r\n\r\nPagaremos manana\r\n"
    )
    stored = to_inbound(MailMessage.from_bytes(raw))
    assert stored.references == "<a@acme.example> <b@acme.example>"
    assert stored.received_at <= datetime.now(UTC)


def test_a_message_left_processing_by_a_dead_run_is_taken_again(env):
    from datetime import timedelta

    ledger: Ledger = env["ledger"]
    ids = ledger.store_inbound(
        [InboundMessage(provider_id=f"<c{i}@a.example>", sender="ana@a.example") for i in range(3)]
    )
    assert ledger.claim_inbound() == ids
    assert ledger.claim_inbound() == []  # a live run has them
    ledger.update_inbound(ids[0], processed_at=datetime.now(UTC) - timedelta(hours=2))
    assert ledger.claim_inbound() == [ids[0]]  # its run died: taken again
