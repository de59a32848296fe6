"""HubSpot notes, tasks and status against an in-process portal, through the CRM outbox."""

from __future__ import annotations

from datetime import date

import pytest

from dunning.connectors.hubspot import HubSpotSink
from dunning.crm import (
    count_by_state,
    deliver_pending,
    queue_note,
    queue_status,
    queue_task,
    requeue_failed,
)
from dunning.ledger import CrmEntry, Ledger
from tests.connectors.fake_hubspot import FakeHubSpot


@pytest.fixture
def hubspot():
    with FakeHubSpot() as api:
        yield api


@pytest.fixture
def ledger(tmp_path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path}/l.db")


def crm_of(api, make_client, token: str | None = None, **kw) -> HubSpotSink:
    http = make_client(
        api.url,
        headers={"Authorization": f"Bearer {token or api.token}"},
        auth_hint="check access_token (HubSpot: Settings > Private Apps)",
        retries=kw.pop("retries", 4),
    )
    return HubSpotSink(
        http, company_id_property="erp_customer_id", owner_ids={"manager": "900"}, **kw
    )


def seed(api) -> tuple[str, str]:
    contact = api.add("contacts", email="ap@ebro.example", hubspot_owner_id="111")
    company = api.add(
        "companies", name="Talleres Ebro", erp_customer_id="C-7", hubspot_owner_id="222"
    )
    return contact, company


def test_notes_tasks_and_status_land_on_the_contact_and_company(hubspot, make_client, ledger):
    contact, company = seed(hubspot)
    queue_note(
        ledger,
        key="F-1:overdue_7:email:note",
        invoice_number="F-1",
        customer_id="C-7",
        text="Reminder overdue_7 sent by email to ap@ebro.example: 1.234,56 € due",
        email="ap@ebro.example",
    )
    queue_task(
        ledger,
        key="F-1:overdue_15:escalation",
        invoice_number="F-1",
        customer_id="C-7",
        title="Call the customer",
        assignee="account_owner",
        due_on=date(2026, 12, 10),
        priority="MEDIUM",
        task_type="CALL",
        email="ap@ebro.example",
    )
    queue_task(
        ledger,
        key="F-1:final:escalation",
        invoice_number="F-1",
        customer_id="C-7",
        title="Final notice: decide",
        assignee="manager",
        due_on=date(2026, 12, 11),
        priority="HIGH",
        email="ap@ebro.example",
    )
    queue_status(
        ledger,
        key="F-1:final:status",
        invoice_number="F-1",
        customer_id="C-7",
        status="on_hold",
        reason="final sent",
        email="ap@ebro.example",
    )
    report = deliver_pending(ledger, crm_of(hubspot, make_client))
    assert (report.delivered, report.failed, report.pending, report.error) == (4, 0, 0, "")
    (note,) = hubspot.notes()
    assert "1.234,56 € due" in note["properties"]["hs_note_body"]
    assert sorted(note["associations"]) == [("companies", company), ("contacts", contact)]
    tasks = {t["properties"]["hs_task_subject"]: t["properties"] for t in hubspot.tasks()}
    call = tasks["Call the customer"]
    assert (call["hubspot_owner_id"], call["hs_task_type"], call["hs_task_status"]) == (
        "222",
        "CALL",
        "NOT_STARTED",
    )  # account owner = the company's owner
    assert call["hs_timestamp"].startswith("2026-12-10")
    final = tasks["Final notice: decide"]
    assert (final["hubspot_owner_id"], final["hs_task_priority"]) == ("900", "HIGH")
    assert hubspot.objects["companies"][company]["properties"]["dunning_status"] == "on_hold"
    ids = ledger.frame(CrmEntry).set_index("key")["external_id"]
    assert ids["F-1:overdue_7:email:note"] == note["id"]
    assert ids["F-1:final:status"] == f"companies/{company}"


def test_tasks_for_resolved_people_find_their_owner(hubspot, make_client, ledger):
    """The sweep queues the person's email and the policy's role it came from."""
    seed(hubspot)
    people = [
        ("Call Ebro", "ana@acme.example", "account_owner"),  # unmapped: the company's owner
        ("Call Ebro again", "luis@acme.example", "account_owner"),  # mapped by email
        ("Decide on Ebro", "jorge@acme.example", "manager"),  # mapped by role
    ]
    for n, (title, assignee, role) in enumerate(people):
        queue_task(
            ledger,
            key=f"F-1:s{n}:escalation",
            invoice_number="F-1",
            customer_id="C-7",
            title=title,
            assignee=assignee,
            role=role,
            due_on=date(2026, 12, 10),
            email="ap@ebro.example",
        )
    crm = crm_of(hubspot, make_client)
    crm.owner_ids["luis@acme.example"] = "333"
    assert deliver_pending(ledger, crm).delivered == 3
    owners = {t["properties"]["hs_task_subject"]: t["properties"] for t in hubspot.tasks()}
    assert {k: v["hubspot_owner_id"] for k, v in owners.items()} == {
        "Call Ebro": "222",
        "Call Ebro again": "333",
        "Decide on Ebro": "900",
    }


def test_unknown_customer_fails_that_entry_with_the_reason(hubspot, make_client, ledger):
    seed(hubspot)
    queue_note(
        ledger,
        key="a",
        invoice_number="F-9",
        customer_id="C-404",
        text="x",
        email="nobody@nowhere.example",
    )
    queue_note(
        ledger, key="b", invoice_number="F-1", customer_id="C-7", text="y", email="ap@ebro.example"
    )
    report = deliver_pending(ledger, crm_of(hubspot, make_client))
    assert (report.delivered, report.failed) == (1, 1)
    failed = ledger.frame(CrmEntry, key="a").iloc[0]
    assert failed.state == "failed" and "nobody@nowhere.example" in failed.error
    assert "C-404" in failed.error
    hubspot.add("contacts", email="nobody@nowhere.example")  # someone creates the contact
    assert requeue_failed(ledger) == 1
    assert deliver_pending(ledger, crm_of(hubspot, make_client)).delivered == 1


def test_missing_status_property_is_reported(hubspot, make_client, ledger):
    seed(hubspot)
    queue_status(ledger, key="s", customer_id="C-7", status="on_hold", email="ap@ebro.example")
    deliver_pending(ledger, crm_of(hubspot, make_client, status_property="cobro_estado"))
    entry = ledger.frame(CrmEntry, key="s").iloc[0]
    assert entry.state == "failed" and "cobro_estado" in entry.error and "400" in entry.error


def test_bad_token_keeps_everything_pending(hubspot, make_client, ledger):
    seed(hubspot)
    for n in range(3):
        queue_note(ledger, key=f"n{n}", customer_id="C-7", text="x", email="ap@ebro.example")
    report = deliver_pending(ledger, crm_of(hubspot, make_client, token="pat-bad-000"))
    assert (report.delivered, report.pending) == (0, 3)
    assert "Private Apps" in report.error and "pat-bad-000" not in report.error
    assert count_by_state(ledger) == {"pending": 3}


def test_rate_limited_then_delivered_once_each(hubspot, make_client, ledger, waits):
    seed(hubspot)
    for n in range(5):
        queue_note(
            ledger, key=f"n{n}", customer_id="C-7", text=f"note {n}", email="ap@ebro.example"
        )
    hubspot.fail(
        "/crm/v3/objects/notes",
        429,
        headers={"Retry-After": "1"},
        body={
            "status": "error",
            "errorType": "RATE_LIMIT",
            "message": "You have reached your secondly limit.",
        },
    )
    report = deliver_pending(ledger, crm_of(hubspot, make_client))
    assert report.delivered == 5 and len(hubspot.notes()) == 5 and waits == [1.0]
    assert deliver_pending(ledger, crm_of(hubspot, make_client)).delivered == 0
    assert len(hubspot.notes()) == 5
