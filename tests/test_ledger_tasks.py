"""Opening a human task is one operation: the task, its CRM outbox entry and its event are
written together, whoever opens it (the sweep's act step, replies, the desk, WhatsApp)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from apps.desk import decisions
from apps.desk.auth import User
from dunning.act import execute_action
from dunning.crm import queue_task
from dunning.ledger import CrmEntry, Event, HumanTask, Ledger
from dunning.policy import default_policy
from dunning.schema import Invoice
from dunning.whatsapp.consent import mark_contact_invalid
from dunning.whatsapp.send import WhatsAppResult, _after_refusal

TODAY = date(2026, 12, 9)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path}/ledger.db")
    return Ledger(request.getfixturevalue("pg_url"))


def crm_tasks(ledger: Ledger) -> dict[str, dict]:
    """The CRM outbox's task entries: key -> payload."""
    entries = ledger.frame(CrmEntry, kind="task")
    return dict(zip(entries["key"], entries["payload"], strict=True))


def test_a_task_is_opened_with_its_crm_entry_and_event_once(ledger):
    opened = ledger.open_task(
        key="F-1:final:email:escalation",
        title="Call Ebro",
        invoice_number="F-1",
        customer_id="C1",
        assignee="manager",
        due_on=TODAY,
        note="twice promised",
        crm={"priority": "HIGH", "task_type": "CALL", "email": "a@ebro.example"},
    )
    assert opened
    assert crm_tasks(ledger) == {
        "F-1:final:email:escalation": {
            "title": "Call Ebro",
            "assignee": "manager",
            "due_on": "2026-12-09",
            "priority": "HIGH",
            "task_type": "CALL",
            "note": "twice promised",
            "email": "a@ebro.example",
        }
    }
    entry = ledger.frame(CrmEntry).iloc[0]
    assert (entry["invoice_number"], entry["customer_id"], entry["state"]) == (
        "F-1",
        "C1",
        "pending",
    )
    # A second opener (a retried task run, a concurrent sweep) changes nothing.
    assert not ledger.open_task(key="F-1:final:email:escalation", title="Call Ebro again")
    assert len(ledger.frame(HumanTask)) == 1 and len(ledger.frame(CrmEntry)) == 1
    assert len(ledger.frame(Event, kind="task_opened")) == 1


def test_the_crm_entry_may_have_its_own_key_and_an_older_entry_is_kept(ledger):
    ledger.open_task(key="F-2:due:task", title="No email", crm_key="F-2:due:task:task")
    assert list(crm_tasks(ledger)) == ["F-2:due:task:task"]
    # An entry queued under the key before (by an older version) does not stop the task.
    assert queue_task(ledger, key="F-3:x", title="queued before", assignee="", due_on=None)
    assert ledger.open_task(key="F-3:x", title="opened now")
    assert crm_tasks(ledger)["F-3:x"]["title"] == "queued before"
    assert set(ledger.frame(HumanTask)["key"]) == {"F-2:due:task", "F-3:x"}


def test_the_desk_retry_task_reaches_the_crm(ledger):
    ledger.open_task(key="F-1:call", title="Call", invoice_number="F-1", customer_id="C1",
                     assignee="account_owner", due_on=TODAY)  # fmt: skip
    task_id = int(ledger.frame(HumanTask, key="F-1:call")["id"].iloc[0])
    user = User("cobrador@acme.example", "collector")
    retry_on = date(2026, 12, 11)
    closing = decisions.Closing("no_answer", on=retry_on)
    decisions.close_task(ledger, user, task_id, closing, TODAY)
    retry = crm_tasks(ledger)["F-1:call:retry:2026-12-11"]
    assert (retry["title"], retry["assignee"], retry["due_on"]) == (
        "Call",
        "account_owner",
        "2026-12-11",
    )


def test_whatsapp_openers_reach_the_crm(ledger):
    mark_contact_invalid(
        ledger, customer_id="C1", phone="+34600111222", reason="131026", invoice_number="F-1"
    )
    invoice = Invoice(
        invoice_number="F-1",
        customer_id="C1",
        customer_name="Ebro",
        email="a@ebro.example",
        amount_total=100.0,
        amount_due=100.0,
        issue_date=date(2026, 10, 1),
        due_date=date(2026, 11, 1),
    )
    refused = WhatsAppResult(
        "rejected", reason="template_rejected", detail="bad parameters", code=132000
    )
    _after_refusal(ledger, refused, invoice, "+34600111222", template="reminder_due")
    tasks = crm_tasks(ledger)
    assert tasks["whatsapp-contact:C1:+34600111222"]["assignee"] == "account_owner"
    assert tasks["whatsapp-template:reminder_due:132000"]["assignee"] == "admin"
    assert set(ledger.frame(HumanTask)["key"]) == set(tasks)


def test_the_sweeps_no_email_task_reaches_the_crm(ledger):
    invoice = Invoice(
        invoice_number="F-100",
        customer_id="C1",
        customer_name="Ebro",
        amount_total=100.0,
        amount_due=100.0,
        due_date=date(2026, 11, 1),
    )
    outcome = execute_action(
        {
            "key": "F-100:overdue_7:task",
            "invoice": "F-100",
            "customer": "C1",
            "stage": "overdue_7",
            "channel": "task",
            "language": "es",
            "country": "ES",
            "timezone": "Europe/Madrid",
        },
        ledger=ledger,
        policy=default_policy(),
        lookup=lambda _: invoice,
        pool=None,
        identity=None,
        now=datetime(2026, 11, 10, 10, 0, tzinfo=UTC),
    )
    assert outcome.status == "task"
    entry = crm_tasks(ledger)["F-100:overdue_7:task:task"]
    assert (entry["task_type"], entry["customer_name"], entry["due_on"]) == (
        "CALL",
        "Ebro",
        "2026-11-10",
    )
    assert list(ledger.frame(HumanTask)["key"]) == ["F-100:overdue_7:task"]
