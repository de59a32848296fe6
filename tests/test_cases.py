"""The customer's case (issue 13): a complaint stops the whole customer and reaches a
manager; only a manager resumes; a payment after a reminder is thanked once and clears the
ladder's status in the CRM; a promise is confirmed once.

Against the real parts: reminders and answers through a real SMTP sink, the sweeps as the
Prefect flows on a real Prefect server, the ledger on SQLite and PostgreSQL, the desk under
uvicorn, the HubSpot CRM as the in-process fake speaking HubSpot's payloads, replies read
by the real classifier.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from prefect_email import EmailServerCredentials

from apps.desk import decisions
from apps.desk.auth import User
from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, DunningPolicy, EmailChannel, HubSpotCrm, LedgerDatabase
from dunning.act import EmailIdentity
from dunning.importers import read_invoice_file
from dunning.inbound.effects import apply_event, store_event
from dunning.inbound.providers import stripe_events
from dunning.ledger import (
    Action,
    CrmEntry,
    CustomerStatus,
    HumanTask,
    InboundMessage,
    Ledger,
    Pause,
)
from dunning.policy import Segment, default_policy
from dunning.replies.act import handle_reply
from dunning.schema import INVOICE_COLUMNS, PEOPLE_COLUMNS, Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from dunning.thanks import act_on_case
from flows.sweep import dunning_invoice, dunning_sweep
from tests.connectors.fake_hubspot import FakeHubSpot
from tests.desk.helpers import COLLECTOR, MANAGER, csrf, login
from tests.desk.test_desk_security import (  # `desk`: the desk under uvicorn (a fixture)
    _client,
    desk,  # noqa: F401
)
from tests.invoices import DEFAULTS, write_invoices

# Invoices due Monday 2026-11-02: overdue_7 goes out Monday 9th, overdue_15 Tuesday 17th.
FIRST_SWEEP = datetime.fromisoformat("2026-11-09T10:00:00+01:00")
REPLY_AT = datetime.fromisoformat("2026-11-10T11:30:00+01:00")
SECOND_SWEEP = datetime.fromisoformat("2026-11-17T10:00:00+01:00")
ANA = "ana@cliente-a.example"  # customer C1 (invoices F-1 and F-2)
BOB = "bob@cliente-b.example"  # customer C2 (invoice G-1)
SALES_MANAGER = "jefa.ventas@acme.example"
SALESPERSON = "luis@acme.example"
#: When the run after a promise taken on the 10th happens.
PROMISE_RUN = datetime(2026, 11, 10, 16, tzinfo=UTC)
IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme S.L.")
ANGRY = (
    "Esta factura F-1 está mal: el importe no corresponde a lo pactado y llevamos semanas "
    "reclamando. No pienso pagarla así."
)


def _url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgresql":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path}/ledger.db"


def _portfolio(
    tmp_path: Path, *, manager_email: str = SALES_MANAGER, owner_email: str = ""
) -> Path:
    people = {"manager_email": manager_email, "owner_email": owner_email}
    rows = [
        dict(invoice_number="F-1", customer_id="C1", email=ANA, due_date="2026-11-02", **people),
        dict(invoice_number="F-2", customer_id="C1", email=ANA, due_date="2026-11-02", **people),
        dict(invoice_number="G-1", customer_id="C2", email=BOB, due_date="2026-11-02"),
    ]
    for row in rows:
        row.update(customer_name=f"Cliente {row['customer_id']}", issue_date="2026-10-01")
    # The default layout plus the optional people columns (the salesperson and manager).
    path = tmp_path / "invoices.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*INVOICE_COLUMNS, *PEOPLE_COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow(dict.fromkeys(writer.fieldnames, "") | DEFAULTS | row)
    return path


def _channel(sink: MailSink) -> EmailChannel:
    return EmailChannel(
        credentials=EmailServerCredentials(
            smtp_server=sink.host, smtp_port=sink.port, smtp_type="INSECURE"
        ),
        from_address=IDENTITY.from_address,
        from_name=IDENTITY.from_name,
    )


def _sweep(csv: Path, sink: MailSink, url: str, now: datetime, policy=None, crm=None) -> dict:
    return dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=_channel(sink),
        ledger=LedgerDatabase(url=url),
        policy=DunningPolicy(**policy.model_dump()) if policy else None,
        now=now,
        crm=crm,
    )


def _to(sink: MailSink, address: str) -> list:
    return [m for m in sink.messages() if address in m["To"]]


def _lookup(csv: Path):
    frame = read_invoice_file(csv).invoices
    return {r["invoice_number"]: Invoice(**r) for r in frame.to_dict("records")}.get


def _reply(ledger: Ledger, sink: MailSink, csv: Path, text: str, policy, n: int = 0) -> dict:
    """A reply from Ana about F-1, stored in the inbox and acted on (real classifier)."""
    (new_id,) = ledger.store_inbound(
        [
            InboundMessage(
                provider_id=f"<reply-{n}@cliente-a.example>",
                sender=ANA,
                subject="Re: Factura F-1",
                text=text,
                received_at=REPLY_AT,
            )
        ]
    )
    pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
    try:
        return handle_reply(
            ledger.inbound_message(new_id),
            ledger=ledger,
            policy=policy,
            lookup=_lookup(csv),
            pool=pool,
            identity=IDENTITY,
        ).to_dict()
    finally:
        pool.close()


# -- a complaint stops the whole customer -------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "text", "scope"),
    [
        ("sqlite", ANGRY, "customer"),
        ("sqlite", "RECLAMO", "customer"),
        ("postgresql", "RECLAMO", "customer"),
        ("sqlite", "RECLAMO", "invoice"),
    ],
)
def test_a_complaint_about_one_invoice_stops_the_customer_and_emails_a_manager(
    prefect_api, request, tmp_path, backend, text, scope
):
    csv = _portfolio(tmp_path)
    url = _url(backend, request, tmp_path)
    policy = default_policy().model_copy(update={"dispute_scope": scope})
    assert policy.replies.manager_emails == []  # the alert finds the invoice's manager
    with MailSink(tmp_path / "outbox", port=0) as sink:
        assert _sweep(csv, sink, url, FIRST_SWEEP, policy)["sent"] == 3
        out = _reply(Ledger(url), sink, csv, text, policy)
        assert out["intent"] == "dispute" or out["angry"], out
        (alert,) = _to(sink, SALES_MANAGER)
        assert "F-1" in alert.get_body(("plain",)).get_content()

        second = _sweep(csv, sink, url, SECOND_SWEEP, policy)

    assert len(_to(sink, BOB)) == 2  # the other customer's ladder goes on
    if scope == "customer":
        # F-1 and F-2 both stop: Ana gets nothing more.
        assert len(_to(sink, ANA)) == 2 and second["skipped"]["disputed"] == 2
    else:  # dispute_scope: invoice, as before: F-2 goes on
        keys = [m["X-Dunning-Key"] for m in _to(sink, ANA)]
        assert "F-2:overdue_15:email" in keys and "F-1:overdue_15:email" not in keys
        assert second["skipped"]["disputed"] == 1


@pytest.mark.parametrize(
    ("manager_email", "owner_email", "alerted"),
    [
        (SALES_MANAGER, SALESPERSON, SALES_MANAGER),
        ("", SALESPERSON, SALESPERSON),
        ("", "", None),
    ],
)
def test_the_dispute_alert_falls_back_to_the_owner_then_a_managers_task(
    tmp_path, manager_email, owner_email, alerted
):
    csv = _portfolio(tmp_path, manager_email=manager_email, owner_email=owner_email)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        out = _reply(ledger, sink, csv, "RECLAMO", default_policy())
        mails = sink.messages()
    assert out["intent"] == "dispute"
    if alerted:
        assert [m["To"] for m in mails] == [alerted]
    else:
        assert mails == [] and "a task for the manager role" in "; ".join(out["done"])
    # Never to nobody: the manager role has its task in every case.
    assert ledger.frame(HumanTask)["assignee"].tolist() == ["manager"]


def test_with_policy_managers_they_get_the_alert(tmp_path):
    csv = _portfolio(tmp_path)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    policy = default_policy().model_copy(deep=True)
    policy.replies.manager_emails = ["direccion@acme.example"]
    with MailSink(tmp_path / "outbox", port=0) as sink:
        _reply(ledger, sink, csv, "queja", policy)
        assert [m["To"] for m in sink.messages()] == ["direccion@acme.example"]


# -- only a manager resumes ------------------------------------------------------------------


def test_a_collector_is_refused_and_a_manager_resumes_the_customer_in_the_desk(desk):  # noqa: F811
    desk.ledger.add_pause("dispute", invoice_number="F-1", customer_id="C1", reason="RECLAMO")
    resume = {"customer_id": "C1", "invoice_number": "", "reason": "customer called, all ok"}

    with _client(desk) as collector:
        assert login(collector, COLLECTOR).status_code == 303
        page = collector.get("/customer", params={"id": "C1"})
        refused = collector.post(
            "/customer/resume", data={**resume, "csrf_token": csrf(page.text)}
        )
    assert refused.status_code == 403
    assert "only a manager can resume" in refused.text and "RECLAMO" in refused.text
    assert desk.ledger.frame(Pause, active=True)["kind"].tolist() == ["dispute"]

    with _client(desk) as manager:
        assert login(manager, MANAGER).status_code == 303
        page = manager.get("/customer", params={"id": "C1"})
        done = manager.post("/customer/resume", data={**resume, "csrf_token": csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"].endswith("done=resumed")
    assert desk.ledger.frame(Pause, active=True).empty
    # The decision reaches the CRM with who took it.
    notes = [e["text"] for e in desk.ledger.frame(CrmEntry, kind="note")["payload"]]
    assert any("resumed" in t and MANAGER[0] in t for t in notes)


def test_a_collector_still_resumes_a_hold_when_no_dispute_stops_the_customer(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.add_pause("hold", customer_id="C1", reason="call back")
    collector = User(COLLECTOR[0], "collector")
    assert decisions.resume(ledger, collector, customer_id="C1", reason="called") == 1


# -- thanks on payment -------------------------------------------------------------------------


def _stripe_paid(ledger: Ledger, number: str, event_id: str) -> None:
    """A verified Stripe `invoice.paid` webhook, stored and applied as the receiver does."""
    doc = {
        "object": "event",
        "id": event_id,
        "type": "invoice.paid",
        "created": 1763373600,
        "data": {"object": {"object": "invoice", "id": "in_1", "number": number}},
    }
    (incoming,) = stripe_events(doc)
    row_id, new = store_event(ledger, incoming)
    assert new
    apply_event(ledger, row_id, incoming)


def test_paid_after_the_final_notice_is_thanked_once_and_the_crm_status_cleared(
    prefect_api, tmp_path
):
    rows = [
        dict(
            invoice_number="F-1",
            customer_id="C1",
            customer_name="Talleres Ebro",
            email=ANA,
            issue_date="2026-09-01",
            due_date="2026-10-09",  # 31 days late on the 9th: the final notice, on_hold
        )
    ]
    csv = write_invoices(tmp_path / "invoices.csv", rows)
    url = f"sqlite:///{tmp_path}/ledger.db"
    with MailSink(tmp_path / "outbox", port=0) as sink, FakeHubSpot() as hubspot:
        hubspot.add("contacts", email=ANA)
        company = hubspot.add("companies", name="Talleres Ebro", erp_customer_id="C1")
        crm = HubSpotCrm(
            access_token=hubspot.token,
            base_url=hubspot.url,
            company_id_property="erp_customer_id",
            owner_ids={"manager": "900"},
            requests_per_second=50,
        )
        status = lambda: hubspot.objects["companies"][company]["properties"]["dunning_status"]  # noqa: E731
        first = _sweep(csv, sink, url, FIRST_SWEEP, crm=crm)
        assert first["sent"] == 1 and status() == "on_hold"

        # Stripe says paid; the webhook's one-invoice run (the source still shows it open).
        ledger = Ledger(url)
        _stripe_paid(ledger, "F-1", "evt_paid_1")
        dunning_invoice(
            invoice="F-1",
            source=CsvInvoiceSource(path=str(csv)),
            channel=_channel(sink),
            ledger=LedgerDatabase(url=url),
            now=SECOND_SWEEP,
            crm=crm,
        )
        # The next sweeps see the payment at the source too: nothing more is sent.
        write_invoices(csv, [rows[0] | {"status": "paid", "amount_due": "0"}])
        _sweep(csv, sink, url, SECOND_SWEEP, crm=crm)
        _sweep(csv, sink, url, SECOND_SWEEP, crm=crm)

        thanks = [m for m in sink.messages() if m["X-Dunning-Key"] == "F-1:thank_you:email"]
        assert len(thanks) == 1 and len(sink.messages()) == 2
        assert thanks[0]["To"] == ANA and "pago recibido" in thanks[0]["Subject"]
        body = thanks[0].get_body(("plain",)).get_content()
        assert "Hemos recibido el pago de la factura F-1" in body
        assert "Pagar ahora" not in thanks[0].get_body(("html",)).get_content()
        assert status() == ""  # on_hold cleared: nothing overdue any more
        notes = [n["properties"]["hs_note_body"] for n in hubspot.notes()]
        assert sum("Invoice F-1 paid" in n for n in notes) == 1
    assert ledger.frame(CustomerStatus).set_index("customer_id").loc["C1", "status"] == ""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_thanks_only_after_a_reminder_and_not_for_a_segment_with_on_payment_none(
    request, tmp_path, backend
):
    csv = _portfolio(tmp_path)
    ledger = Ledger(_url(backend, request, tmp_path))
    invoices = read_invoice_file(csv).invoices
    ledger.sync_invoices(invoices)
    for number, customer in (("F-1", "C1"), ("G-1", "C2")):  # F-2 never got a reminder
        key = f"{number}:overdue_7:email"
        ledger.claim(key=key, invoice_number=number, customer_id=customer, stage="overdue_7",
                     channel="email", amount_due=100.0, currency="EUR")  # fmt: skip
        ledger.mark_sending(key, f"<{number}@acme.example>")
        ledger.mark_sent(key)
    ledger.set_customer_status("C1", "on_hold", reason="final sent")
    paid = invoices.assign(status="paid", amount_due=0.0)
    ledger.sync_invoices(paid, now=datetime(2026, 11, 16, 9, tzinfo=UTC))
    policy = default_policy().model_copy(deep=True)
    policy.segments = [
        Segment(name="quiet", customer_ids=["C2"], stages=policy.stages, on_payment="none")
    ]
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        now = datetime(2026, 11, 16, 10, tzinfo=UTC)
        kw = dict(lookup=_lookup(csv), pool=pool, identity=IDENTITY, now=now)
        first = act_on_case(ledger, policy, **kw)
        again = act_on_case(ledger, policy, **kw)
        pool.close()
        mails = sink.messages()
    assert [m["X-Dunning-Key"] for m in mails] == ["F-1:thank_you:email"]
    assert {(o.invoice, o.status, o.reason) for o in first} == {
        ("F-1", "sent", ""),
        ("G-1", "skipped", "on_payment: none"),
    }
    assert again == []
    # Both payments reach the CRM (G-1's too, without a thank-you); C1's on_hold is cleared.
    notes = ledger.frame(CrmEntry, kind="note")
    paid_notes = notes[notes["key"].str.endswith(":paid:crm:note")]
    assert sorted(paid_notes["invoice_number"]) == ["F-1", "G-1"]
    statuses = ledger.frame(CrmEntry, kind="status")
    assert statuses["payload"].tolist()[0]["status"] == ""
    assert ledger.frame(CustomerStatus)["status"].tolist() == [""]


# -- promise confirmations ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_desk_promise_is_confirmed_once_by_the_next_run(request, tmp_path, backend):
    csv = _portfolio(tmp_path)
    ledger = Ledger(_url(backend, request, tmp_path))
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    ledger.open_task(key="F-1:call", title="Call", invoice_number="F-1", customer_id="C1",
                     assignee="account_owner", due_on=date(2026, 11, 10))  # fmt: skip
    task_id = int(ledger.frame(HumanTask)["id"].iloc[0])
    manager = User(MANAGER[0], "manager")
    closing = decisions.Closing("promise", on=date(2026, 11, 20))
    decisions.close_task(ledger, manager, task_id, closing, date(2026, 11, 10))
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        kw = dict(lookup=_lookup(csv), pool=pool, identity=IDENTITY, now=PROMISE_RUN)
        act_on_case(ledger, default_policy(), **kw)
        act_on_case(ledger, default_policy(), **kw)
        pool.close()
        mails = sink.messages()
    (confirmation,) = mails
    assert confirmation["To"] == ANA
    assert "20 de noviembre de 2026" in confirmation["Subject"]
    assert confirmation["X-Dunning-Key"].startswith("F-1:promise_confirmation-")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_desk_promises_of_one_customer_for_one_date_are_confirmed_by_one_email(
    request, tmp_path, backend
):
    csv = _portfolio(tmp_path)
    ledger = Ledger(_url(backend, request, tmp_path))
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    manager = User(MANAGER[0], "manager")
    for number in ("F-1", "F-2"):  # the collector takes Ana's promise for both invoices
        ledger.open_task(
            key=f"{number}:call",
            title="Call",
            invoice_number=number,
            customer_id="C1",
            assignee="account_owner",
            due_on=date(2026, 11, 10),
        )
    for task_id in sorted(ledger.frame(HumanTask)["id"]):
        closing = decisions.Closing("promise", on=date(2026, 11, 20))
        decisions.close_task(ledger, manager, int(task_id), closing, date(2026, 11, 10))
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        kw = dict(lookup=_lookup(csv), pool=pool, identity=IDENTITY, now=PROMISE_RUN)
        # The one-invoice run (a webhook about F-2) confirms the whole group, not F-2 alone;
        # the sweep after it has nothing left.
        (outcome,) = act_on_case(ledger, default_policy(), **kw, invoices=["F-2"])
        assert act_on_case(ledger, default_policy(), **kw) == []
        pool.close()
        (confirmation,) = sink.messages()
    assert outcome.status == "sent" and outcome.invoices == ["F-1", "F-2"]
    assert confirmation["To"] == ANA
    body = confirmation.get_body(("plain",)).get_content()
    assert "F-1" in body and "F-2" in body and "20 de noviembre de 2026" in body
    keys = ledger.frame(Action, stage="promise_confirmation")
    assert sorted(keys["invoice_number"]) == ["F-1", "F-2"] and set(keys["state"]) == {"sent"}
    (note,) = ledger.frame(CrmEntry, key=f"{confirmation['X-Dunning-Key']}:note")["payload"]
    assert "invoices F-1, F-2" in note["text"]


def test_no_confirmation_with_confirm_promises_false(tmp_path):
    csv = _portfolio(tmp_path)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    policy = default_policy().model_copy(update={"confirm_promises": False})
    with MailSink(tmp_path / "outbox", port=0) as sink:
        out = _reply(ledger, sink, csv, "Pagaremos la F-1 el 20 de noviembre", policy)
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        kw = dict(lookup=_lookup(csv), pool=pool, identity=IDENTITY, now=PROMISE_RUN)
        act_on_case(ledger, policy, **kw)
        pool.close()
        assert sink.messages() == []
    assert out["intent"] == "promise_to_pay" and out["promise_date"] == "2026-11-20"


def test_a_reply_promise_is_confirmed_in_its_thread_and_not_again_by_the_sweep(tmp_path):
    csv = _portfolio(tmp_path)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        _reply(ledger, sink, csv, "Pagaremos la F-1 el 20 de noviembre", default_policy())
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        kw = dict(lookup=_lookup(csv), pool=pool, identity=IDENTITY, now=PROMISE_RUN)
        assert act_on_case(ledger, default_policy(), **kw) == []
        pool.close()
        (confirmation,) = sink.messages()
    assert confirmation["In-Reply-To"] == "<reply-0@cliente-a.example>"


# -- the CRM hears of what a person must know ---------------------------------------------------


def test_an_opt_out_by_any_path_reaches_the_crm(tmp_path):
    from dunning.twilio.consent import record_opt_out

    csv = _portfolio(tmp_path)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    record_opt_out(ledger, "C1", "sms", reason="SMS STOP from +34600111222")
    record_opt_out(ledger, "C1", "sms", reason="SMS STOP again")  # already stopped: nothing
    notes = ledger.frame(CrmEntry, kind="note")
    (payload,) = notes["payload"]
    assert "opted out of sms: SMS STOP from +34600111222" in payload["text"]
    assert payload["email"] == ANA  # what a CRM attaches it to


def test_an_erp_webhook_that_says_disputed_stops_the_customer_and_tasks_a_manager(tmp_path):
    from dunning.inbound.providers import erp_events

    csv = _portfolio(tmp_path)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    doc = {
        "id": "evt-77",
        "type": "invoice.updated",
        "invoice": {"invoice_number": "F-1", "status": "disputed", "dispute_reason": "Precio"},
    }
    for _ in range(2):  # the event, then the same dispute seen again by a later event
        (incoming,) = erp_events(doc)
        row_id, _new = store_event(ledger, incoming)
        assert apply_event(ledger, row_id, incoming) == {"status": "disputed"}
        doc = doc | {"id": "evt-78"}
    assert ledger.frame(Pause, kind="dispute")["reason"].tolist() == ["Precio (ERP event evt-77)"]
    day = date(2026, 11, 10)
    assert ledger.pause_reason("F-2", "C1", "email", day) == "disputed"  # the whole customer
    assert ledger.pause_reason("G-1", "C2", "email", day) == ""
    (task,) = ledger.frame(HumanTask).itertuples()
    assert task.assignee == "manager" and "F-1" in task.title


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_promises_from_a_reply_and_the_desk_reach_the_crm(request, tmp_path, backend):
    csv = _portfolio(tmp_path)
    ledger = Ledger(_url(backend, request, tmp_path))
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=date(2026, 11, 20),
                       source="reply:7", actor="customer")  # fmt: skip
    ledger.add_promise(invoice_number="G-1", customer_id="C2", promised_on=date(2026, 11, 25),
                       source="desk:jefa@acme.example", actor="desk:jefa@acme.example")  # fmt: skip
    notes = ledger.frame(CrmEntry, kind="note").sort_values("id")
    texts = [p["text"] for p in notes["payload"]]
    assert texts == [
        "Promise to pay invoice F-1 on 2026-11-20 recorded (reply:7).",
        "Promise to pay invoice G-1 on 2026-11-25 recorded (desk:jefa@acme.example).",
    ]
    assert [p["email"] for p in notes["payload"]] == [ANA, BOB]
