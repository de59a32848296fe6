"""A reply to a statement is about every invoice in it (`grouping: statement`).

A statement is one email listing several invoices of a customer; the customer answers that
one email. End to end: the statement goes out over real SMTP (a sink on loopback), the
customer's answer lands in a real IMAP server (dovecot), `process-replies` runs on a real
Prefect server, and the next sweep shows the consequence. The core cases (already paid, a
dispute, a document request) run the core's sweep and `handle_reply` with the real
classifier, without Prefect.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, DunningPolicy
from dunning.documents import Library
from dunning.ledger import (
    Action,
    CrmEntry,
    Event,
    HumanTask,
    InboundMessage,
    Ledger,
    Pause,
    Promise,
)
from dunning.ledger.inbound import close_invoice
from dunning.policy import Policy, default_policy
from dunning.replies.act import handle_reply
from dunning.smtp import SmtpPool, SmtpSettings
from dunning.thanks import act_on_case
from tests.faults.core import IDENTITY, csv_source
from tests.faults.core import sweep as core_sweep
from tests.invoices import write_invoices
from tests.mailboxes import mailbox_block, new_mailbox
from tests.test_flows import channel_for
from tests.test_replies_flow import customer_reply, replies, sent_to, sweep

ANA = "ana@cliente-uno.example"  # C1: three invoices in one statement
LUIS = "luis@cliente-dos.example"  # C2: two invoices, never answers (the control)
STATEMENT_INVOICES = ["F-1", "F-2", "F-3"]
# Due Friday 2026-10-30: overdue_7 is due by Monday 9 November; overdue_15 falls on
# Saturday the 14th and goes on Monday the 16th.
FIRST_SWEEP = datetime.fromisoformat("2026-11-09T10:00:00+01:00")
NEXT_STAGE = datetime.fromisoformat("2026-11-16T10:00:00+01:00")
REPLY_DAY = datetime(2026, 11, 10, 10, 30, tzinfo=UTC)


def statement_policy() -> Policy:
    policy = default_policy().model_copy(update={"grouping": "statement"}, deep=True)
    policy.replies.manager_emails = ["direccion@acme.example"]
    return policy


def portfolio(tmp_path: Path) -> Path:
    rows = [
        dict(
            invoice_number=number,
            customer_id=customer,
            customer_name=f"Cliente {customer} S.L.",
            email=address,
            amount_total=f"{amount:.2f}",
            amount_due=f"{amount:.2f}",
            due_date="2026-10-30",
        )
        for number, customer, address, amount in [
            ("F-1", "C1", ANA, 1210.0),
            ("F-2", "C1", ANA, 350.5),
            ("F-3", "C1", ANA, 99.9),
            ("G-1", "C2", LUIS, 500.0),
            ("G-2", "C2", LUIS, 700.0),
        ]
    ]
    return write_invoices(tmp_path / "invoices.csv", rows)


@pytest.fixture
def world(tmp_path: Path, imap_server, prefect_api):
    """The portfolio, a statement policy, a ledger, a mail sink and an empty mailbox."""
    login = new_mailbox(imap_server, tmp_path)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        yield {
            "source": CsvInvoiceSource(path=str(portfolio(tmp_path))),
            "ledger_url": f"sqlite:///{tmp_path}/ledger.db",
            "sink": sink,
            "channel": channel_for(sink),
            "policy": DunningPolicy(**statement_policy().model_dump()),
            "mailbox": mailbox_block(imap_server, login),
            "imap": imap_server,
            "login": login,
        }


def test_a_promise_in_reply_to_a_statement_pauses_all_its_invoices(world):
    w, sink = world, world["sink"]
    assert sweep(w, FIRST_SWEEP)["sent"] == 2  # one statement per customer
    (statement,) = sent_to(sink, ANA)
    body = statement.get_body(("plain",)).get_content()
    assert all(number in body for number in STATEMENT_INVOICES)

    customer_reply(w, ANA, "Hola, pagaré el 15. Un saludo, Ana", to_reminder=statement)
    counts = replies(w)
    assert counts["processed"] == 1, counts

    ledger = Ledger(w["ledger_url"])
    (reply,) = ledger.frame(InboundMessage).to_dict("records")
    assert reply["intent"] == "promise_to_pay" and reply["action_key"].startswith("C1:statement-")
    # Each invoice of the statement has the promise, and each is paused until then.
    promises = ledger.frame(Promise).sort_values("invoice_number")
    assert promises[["invoice_number", "promised_on", "state"]].values.tolist() == [
        [number, date(2026, 11, 15), "open"] for number in STATEMENT_INVOICES
    ]
    assert set(ledger.frame(Promise)["customer_id"]) == {"C1"}
    # The promise is confirmed in Ana's thread by ONE email naming the three invoices.
    (confirmation,) = [m for m in sent_to(sink, ANA) if m["In-Reply-To"]]
    assert "15 de noviembre de 2026" in confirmation["Subject"]
    for part in ("plain", "html"):
        text = confirmation.get_body((part,)).get_content()
        assert "15 de noviembre de 2026" in text
        assert all(number in text for number in STATEMENT_INVOICES), text
    # Its keys: one per promise, every one sent (a later run finds them all taken).
    keys = ledger.frame(Action, stage="promise_confirmation")
    assert sorted(keys["invoice_number"]) == STATEMENT_INVOICES
    assert set(keys["state"]) == {"sent"}
    # The reply's event and its CRM note name every invoice, not only the first.
    (received,) = ledger.frame(Event, kind="reply_received")["detail"]
    assert received["invoices"] == STATEMENT_INVOICES
    (note,) = ledger.frame(CrmEntry, key=f"reply:{reply['id']}:note")["payload"]
    assert "invoices F-1, F-2, F-3" in note["text"] and note["invoices"] == STATEMENT_INVOICES

    # Processing the mailbox again sends Ana nothing more.
    before = len(sent_to(sink, ANA))
    assert replies(w)["processed"] == 0
    assert len(sent_to(sink, ANA)) == before

    # overdue_15 is due for every invoice: Luis gets his statement, Ana nothing at all.
    second = sweep(w, NEXT_STAGE)
    assert second["sent"] == 1 and second["skipped"].get("promise_to_pay") == 3, second
    assert len(sent_to(sink, LUIS)) == 2
    assert len(sent_to(sink, ANA)) == before


# -- the core: the other intents, without Prefect ----------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def core(request: pytest.FixtureRequest, tmp_path: Path):
    """The statement sent by the core's sweep (ledger on SQLite and PostgreSQL);
    `answer(text)` acts on Ana's reply to it."""
    csv = portfolio(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "certificado_bancario.pdf").write_bytes(b"%PDF-1.4 bank")
    library = Library(
        path=str(tmp_path / "docs"),
        country="ES",
        files={"bank_certificate": "certificado_bancario.pdf"},
    )
    read, lookup = csv_source(str(csv))
    url = (
        f"sqlite:///{tmp_path}/ledger.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    ledger = Ledger(url)
    policy = statement_policy()
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(sink.host, sink.port, timeout=10), size=2)
        outcomes = core_sweep(read, lookup, ledger, pool, now=FIRST_SWEEP, policy=policy)
        assert [o["status"] for o in outcomes] == ["sent", "sent"]
        (statement,) = [m for m in sink.messages() if m["To"] == ANA]

        def answer(text: str, via: SmtpPool = pool) -> dict:
            n = len(ledger.inbound())
            (new_id,) = ledger.store_inbound(
                [
                    InboundMessage(
                        provider_id=f"<r{n}@cliente-uno.example>",
                        sender=ANA,
                        subject=f"Re: {statement['Subject']}",
                        text=text,
                        received_at=REPLY_DAY,
                        in_reply_to=statement["Message-ID"],
                        references=statement["Message-ID"],
                    )
                ]
            )
            return handle_reply(
                ledger.inbound_message(new_id),
                ledger=ledger,
                policy=policy,
                lookup=lookup,
                pool=via,
                identity=IDENTITY,
                documents=library,
            ).to_dict()

        yield {
            "ledger": ledger,
            "sink": sink,
            "answer": answer,
            "statement": statement,
            "lookup": lookup,
            "pool": pool,
            "policy": policy,
            "tmp_path": tmp_path,
        }
        pool.close()


def answers_to_ana(core: dict) -> list[EmailMessage]:
    return [m for m in core["sink"].messages() if m["To"] == ANA and m["In-Reply-To"]]


def test_already_paid_pauses_every_invoice_of_the_statement_for_verification(core):
    outcome = core["answer"]("Buenos días, ya pagamos todo la semana pasada.")
    assert outcome["intent"] == "already_paid" and outcome["invoices"] == STATEMENT_INVOICES
    ledger: Ledger = core["ledger"]
    paused = ledger.frame(Pause, kind="verify_payment", active=True)
    assert sorted(paused["invoice_number"]) == STATEMENT_INVOICES
    days = default_policy().replies.payment_verification_days
    assert set(paused["until"]) == {date(2026, 11, 10 + days)}
    titles = sorted(ledger.frame(HumanTask)["title"])
    assert titles == [f"Verify payment of invoice {n}" for n in STATEMENT_INVOICES]
    assert answers_to_ana(core) == []  # nothing is sent back while a person verifies


def test_a_dispute_of_a_statement_stops_the_whole_customer_as_before(core):
    outcome = core["answer"](
        "Estas facturas están mal, el importe no corresponde a lo pactado. No pienso pagar."
    )
    assert outcome["intent"] == "dispute" and outcome["invoices"] == STATEMENT_INVOICES
    disputes = core["ledger"].frame(Pause, kind="dispute", active=True)
    assert sorted(disputes["invoice_number"]) == STATEMENT_INVOICES
    assert set(disputes["customer_id"]) == {"C1"}
    assert "all invoices of customer C1" in "; ".join(outcome["done"])


def test_a_document_asked_for_in_reply_to_a_statement_is_sent_once(core):
    outcome = core["answer"]("Hola, ¿me pueden mandar el certificado de cuenta bancaria?")
    assert outcome["intent"] == "document_request" and outcome["invoices"] == STATEMENT_INVOICES
    (sent,) = answers_to_ana(core)
    assert [a.get_filename() for a in sent.iter_attachments()] == ["certificado_bancario.pdf"]
    assert sent["In-Reply-To"] == "<r0@cliente-uno.example>"
    answered = core["ledger"].frame(Action, stage="answer_document")
    assert len(answered) == 1


def test_an_invoice_paid_since_the_statement_is_left_out_of_the_reply(core):
    ledger: Ledger = core["ledger"]
    close_invoice(ledger, "F-2", "paid", provider="stripe", event_id="evt_1")
    outcome = core["answer"]("Hola, pagaré el 15. Un saludo, Ana")
    assert outcome["invoices"] == ["F-1", "F-3"]
    promised = ledger.frame(Promise)
    assert sorted(promised["invoice_number"]) == ["F-1", "F-3"]


# -- the confirmation of a promise to a statement: one email, every key sent once ----------------


def confirmation_keys(ledger: Ledger) -> dict[str, str]:
    """invoice -> state of its promise-confirmation outbox key."""
    rows = ledger.frame(Action, stage="promise_confirmation")
    return dict(zip(rows["invoice_number"], rows["state"], strict=True))


def next_sweep_confirms(core: dict, pool: SmtpPool | None = None) -> list:
    """The sweep's case step (`act_on_case`) an hour after the reply."""
    return act_on_case(
        core["ledger"],
        core["policy"],
        lookup=core["lookup"],
        pool=pool or core["pool"],
        identity=IDENTITY,
        now=REPLY_DAY + timedelta(hours=1),
    )


def test_a_promise_to_a_statement_is_confirmed_by_one_email_and_every_key_ends_sent(core):
    outcome = core["answer"]("Hola, pagaré el 15. Un saludo, Ana")
    assert outcome["intent"] == "promise_to_pay" and outcome["invoices"] == STATEMENT_INVOICES
    (sent,) = answers_to_ana(core)
    assert sent["In-Reply-To"] == "<r0@cliente-uno.example>"
    body = sent.get_body(("plain",)).get_content()
    assert "15 de noviembre de 2026" in body
    assert all(f"F-{n}" in body for n in (1, 2, 3)), body
    ledger: Ledger = core["ledger"]
    assert confirmation_keys(ledger) == dict.fromkeys(STATEMENT_INVOICES, "sent")
    # The message went once, under the first promise's key; the others say they went in it.
    rows = ledger.frame(Action, stage="promise_confirmation").sort_values("invoice_number")
    first_key = rows["key"].iloc[0]
    assert sent["X-Dunning-Key"] == first_key
    assert rows["provider_response"].iloc[1:].tolist() == [f"in confirmation {first_key}"] * 2
    # The sweep's case step finds every key taken: nothing more.
    assert next_sweep_confirms(core) == []
    assert len(answers_to_ana(core)) == 1
    assert len([m for m in core["sink"].messages() if m["To"] == ANA]) == 2  # statement + it


def test_a_confirmation_refused_for_now_is_sent_once_by_the_next_run_listing_all(core):
    # The mail server refuses the confirmation once (451): nothing is marked done.
    with MailSink(core["tmp_path"] / "flaky", port=0, fail_first=1) as flaky:
        pool = SmtpPool(SmtpSettings(flaky.host, flaky.port, timeout=10), size=1)
        try:
            outcome = core["answer"]("Hola, pagaré el 15. Un saludo, Ana", via=pool)
            assert any("failed" in done for done in outcome["done"]), outcome["done"]
            assert flaky.messages() == []
            assert confirmation_keys(core["ledger"]) == dict.fromkeys(STATEMENT_INVOICES, "failed")
            # The next run confirms the same promises together: one email, the three listed.
            (confirmed,) = next_sweep_confirms(core, pool)
            assert confirmed.status == "sent" and confirmed.invoices == STATEMENT_INVOICES
            assert next_sweep_confirms(core, pool) == []
        finally:
            pool.close()
        (sent,) = flaky.messages()
    body = sent.get_body(("plain",)).get_content()
    assert all(number in body for number in STATEMENT_INVOICES) and "15 de noviembre" in body
    assert confirmation_keys(core["ledger"]) == dict.fromkeys(STATEMENT_INVOICES, "sent")


def test_a_crash_after_the_server_took_the_confirmation_never_sends_it_again(core, monkeypatch):
    # The process dies after the mail server accepted the one confirmation and before the
    # ledger recorded it (the commit of `record_sent` never happens).
    def killed(*args: object, **kwargs: object) -> None:
        raise RuntimeError("killed before the sent state was committed")

    monkeypatch.setattr(Ledger, "record_sent", killed)
    with pytest.raises(RuntimeError, match="killed"):
        core["answer"]("Hola, pagaré el 15. Un saludo, Ana")
    monkeypatch.undo()
    (sent,) = answers_to_ana(core)
    assert all(number in sent.get_body(("plain",)).get_content() for number in STATEMENT_INVOICES)
    # Every key is in doubt with that one email: no later run confirms any invoice again.
    assert confirmation_keys(core["ledger"]) == dict.fromkeys(STATEMENT_INVOICES, "sending")
    assert next_sweep_confirms(core) == []
    assert len(answers_to_ana(core)) == 1


def test_two_runs_confirming_the_same_statement_promise_at_once_send_one_email(core):
    with MailSink(core["tmp_path"] / "busy", port=0, fail_first=1) as sink:
        pools = [SmtpPool(SmtpSettings(sink.host, sink.port, timeout=10), size=1) for _ in "ab"]
        try:
            core["answer"]("Hola, pagaré el 15. Un saludo, Ana", via=pools[0])  # refused (451)
            assert confirmation_keys(core["ledger"]) == dict.fromkeys(STATEMENT_INVOICES, "failed")
            # Two runs (the replies flow and a sweep, say) confirm the same promises at once.
            start = threading.Barrier(2)

            def run(pool: SmtpPool) -> list:
                start.wait()
                return next_sweep_confirms(core, pool)

            with ThreadPoolExecutor(2) as runs:
                results = list(runs.map(run, pools))
        finally:
            for pool in pools:
                pool.close()
        (sent,) = sink.messages()
    body = sent.get_body(("plain",)).get_content()
    assert all(number in body for number in STATEMENT_INVOICES)
    done = [o for result in results for o in result if o.status == "sent"]
    assert [o.invoices for o in done] == [STATEMENT_INVOICES]
    assert confirmation_keys(core["ledger"]) == dict.fromkeys(STATEMENT_INVOICES, "sent")
