"""Odoo invoices and chatter against an in-process server speaking JSON-2 and JSON-RPC."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from dunning.connectors.http import AuthError, Unavailable
from dunning.connectors.odoo import OdooChatter, OdooClient, OdooInvoices
from dunning.crm import count_by_state, deliver_pending, pending_entries, queue_note, queue_task
from dunning.ledger import Ledger
from tests.connectors.fake_odoo import FakeOdoo
from tests.connectors.portfolio import portfolio

ITEMS = portfolio(3000)


@pytest.fixture
def odoo():
    with FakeOdoo() as api:
        yield api


def invoices_of(
    api: FakeOdoo, make_client, protocol: str = "json2", key: str | None = None, **kw
) -> OdooInvoices:
    key = key or api.api_key
    headers = {"Authorization": f"bearer {key}"} if protocol == "json2" else {}
    http = make_client(
        api.url,
        headers=headers,
        auth_hint="check api_key (Odoo: Preferences > Account Security)",
        **kw,
    )
    client = OdooClient(
        http, protocol=protocol, database=api.database, login=api.login, api_key=key
    )
    return OdooInvoices(client, base_url=api.url, source="Odoo 'prod'", page_size=200)


def test_reads_thousands_of_open_invoices_over_many_pages(odoo, make_client):
    odoo.load(ITEMS)
    result = invoices_of(odoo, make_client).read()
    owed = [it for it in ITEMS if it.state in ("open", "partial")]
    assert len(result.invoices) == len(owed) and result.quarantine.empty
    pages = odoo.hits("/json/2/account.move/search_read")
    assert len(pages) == len(owed) // 200 + 1
    frame = result.invoices.set_index("invoice_number")
    partial = next(it for it in owed if it.state == "partial" and it.currency == "EUR")
    row = frame.loc[partial.number]
    assert row.amount_due == pytest.approx(partial.due) and row.amount_total == pytest.approx(
        partial.total
    )
    assert (row.email, row.country, row.language, row.currency) == (
        partial.email,
        partial.country,
        partial.lang[:2],
        "EUR",
    )
    assert row.due_date == pd.Timestamp(partial.due_date) and row.status == "open"
    yen = next(it for it in owed if it.currency == "JPY")
    assert frame.loc[yen.number].amount_due == yen.due
    # Partners are read once per page for the new ones, never per invoice.
    assert len(odoo.hits("/json/2/res.partner/read")) <= len(pages)
    # The salesperson (invoice_user_id) is the account owner, their user read once.
    assert set(frame["owner_email"]) == {"marta.ventas@acme.example"}
    assert len(odoo.hits("/json/2/res.users/read")) == 1


def test_jsonrpc_endpoint_reads_the_same_invoices(odoo, make_client):
    odoo.load(ITEMS[:700])
    via_json2 = invoices_of(odoo, make_client).read().invoices
    via_rpc = invoices_of(odoo, make_client, protocol="jsonrpc").read().invoices
    pd.testing.assert_frame_equal(via_json2, via_rpc)
    assert odoo.rpc_calls.count(("common", "authenticate")) == 1


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
def test_bad_api_key_names_the_block_and_hides_the_key(odoo, make_client, protocol):
    odoo.load(ITEMS[:5])
    source = invoices_of(odoo, make_client, protocol=protocol, key="wrong-key-999")
    with pytest.raises(AuthError) as err:
        source.read()
    message = str(err.value)
    assert "Test Source 'prod'" in message and "api_key" in message
    assert "wrong-key-999" not in message
    if protocol == "json2":
        assert "401" in message and "Invalid apikey" in message


def test_429_waits_as_long_as_retry_after_says_capped(odoo, make_client, waits):
    odoo.load(ITEMS[:300])
    odoo.fail("/json/2/account.move", 429, headers={"Retry-After": "7"})
    odoo.fail("/json/2/res.partner", 429, headers={"Retry-After": "3600"})
    result = invoices_of(odoo, make_client, max_wait=20).read()
    assert len(result.invoices) == sum(it.state in ("open", "partial") for it in ITEMS[:300])
    assert waits == [7.0, 20.0]


def test_500s_are_retried_then_the_read_completes(odoo, make_client, waits):
    odoo.load(ITEMS[:300])
    odoo.fail("/json/2/account.move", 500, times=2)
    result = invoices_of(odoo, make_client).read()
    assert len(result.invoices) == sum(it.state in ("open", "partial") for it in ITEMS[:300])
    assert len(waits) == 2 and waits[1] > waits[0]  # exponential backoff


def test_a_server_that_keeps_failing_gives_up_with_a_clear_error(odoo, make_client):
    odoo.load(ITEMS[:10])
    odoo.fail("/json/2/", 502, times=100)
    with pytest.raises(Unavailable, match=r"still failing after 3 attempts \(502"):
        invoices_of(odoo, make_client, retries=2).read()


def test_malformed_records_are_quarantined_with_row_and_field(odoo, make_client):
    odoo.add_partner(1, name="Bueno S.A.", email="ap@bueno.example")
    odoo.add_partner(2, name="Malo S.A.", email="pagos(at)malo")
    odoo.add_move(id=1, name="F-OK", partner_id_int=1)
    odoo.add_move(id=2, name="F-NODUE", partner_id_int=1, invoice_date_due=False)
    odoo.add_move(id=3, name="F-MAIL", partner_id_int=2)
    odoo.add_move(id=4, name="F-AMT", partner_id_int=1, amount_residual="n/a")
    odoo.add_move(
        id=5, name="F-OK2", partner_id_int=1, payment_state="partial", amount_residual=40.0
    )
    result = invoices_of(odoo, make_client).read()
    assert sorted(result.invoices["invoice_number"]) == ["F-OK", "F-OK2"]
    q = result.quarantine.set_index("invoice_number")
    assert (q.loc["F-NODUE", "row"], q.loc["F-NODUE", "field"]) == (2, "due_date")
    assert q.loc["F-MAIL", "field"] == "email" and q.loc["F-MAIL", "value"] == "pagos(at)malo"
    assert q.loc["F-AMT", "field"] == "amount_due" and "not a number" in q.loc["F-AMT", "reason"]


def test_payment_states_as_the_contract_says(odoo, make_client):
    odoo.add_partner(1, email="ap@x.example")
    for n, state in enumerate(["not_paid", "partial", "in_payment", "blocked"], start=1):
        odoo.add_move(id=n, name=f"F-{state}", partner_id_int=1, payment_state=state)
    odoo.add_move(id=9, name="F-paid", partner_id_int=1, payment_state="paid")
    source = invoices_of(odoo, make_client)
    status = source.read().invoices.set_index("invoice_number")["status"].to_dict()
    assert status == {
        "F-not_paid": "open",
        "F-partial": "open",
        "F-in_payment": "paid",
        "F-blocked": "disputed",
    }
    assert source.get_invoice("F-paid").status == "paid"
    assert source.get_invoice("F-none") is None


def test_incremental_read_returns_only_what_changed_including_payments(odoo, make_client):
    odoo.add_partner(1, email="ap@x.example")
    odoo.add_move(id=1, name="F-OLD", partner_id_int=1, write_date="2026-11-01 08:00:00")
    odoo.add_move(
        id=2,
        name="F-PAID",
        partner_id_int=1,
        payment_state="paid",
        amount_residual=0.0,
        write_date="2026-12-08 10:00:00",
    )
    odoo.add_move(
        id=3, name="F-CANC", partner_id_int=1, state="cancel", write_date="2026-12-08 11:00:00"
    )
    changed = invoices_of(odoo, make_client).read_changed_since(
        datetime(2026, 12, 8, 9, 0, tzinfo=UTC)
    )
    got = changed.invoices.set_index("invoice_number")["status"].to_dict()
    assert got == {"F-PAID": "paid", "F-CANC": "cancelled"}


def test_portal_link_becomes_the_payment_link(odoo, make_client):
    odoo.add_partner(1, email="ap@x.example")
    odoo.add_move(id=42, name="F-42", partner_id_int=1)
    source = invoices_of(odoo, make_client)
    source.portal_url_template = "{base_url}/my/invoices/{id}?access_token={access_token}"
    (link,) = source.read().invoices["payment_link"]
    assert link == f"{odoo.url}/my/invoices/42?access_token=tok42"


@pytest.mark.parametrize("protocol", ["json2", "jsonrpc"])
def test_chatter_notes_and_activities_for_the_salesperson(odoo, make_client, tmp_path, protocol):
    odoo.add_partner(1, email="ap@x.example")
    odoo.add_move(id=5, name="F-5", partner_id_int=1)
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    queue_note(
        ledger,
        key="F-5:due:email:note",
        invoice_number="F-5",
        customer_id="1",
        text="Reminder due sent by email to ap@x.example",
    )
    queue_task(
        ledger,
        key="F-5:final:escalation",
        invoice_number="F-5",
        customer_id="1",
        title="Final notice: decide",
        assignee="manager",
        due_on=datetime(2026, 12, 10).date(),
    )
    queue_task(
        ledger,
        key="F-5:overdue_15:escalation",
        invoice_number="F-5",
        title="Call the customer",
        assignee="account_owner",
        due_on=datetime(2026, 12, 11).date(),
    )
    queue_task(  # as the sweep queues it: the resolved address and the policy's role
        ledger,
        key="F-5:overdue_7:escalation",
        invoice_number="F-5",
        title="Remind the customer",
        assignee="marta.ventas@acme.example",
        role="account_owner",
        due_on=datetime(2026, 12, 9).date(),
    )
    queue_note(ledger, key="F-404:due:email:note", invoice_number="F-404", text="x")
    sink = OdooChatter(invoices_of(odoo, make_client, protocol=protocol), manager_user_id=9)
    report = deliver_pending(ledger, sink)
    assert (report.delivered, report.failed, report.pending) == (4, 1, 0)
    (note,) = odoo.models["mail.message"].values()
    assert note["res_id"] == 5 and note["subtype_xmlid"] == "mail.mt_note"
    assert "Reminder due sent by email" in note["body"]
    activities = {a["summary"]: a for a in odoo.models["mail.activity"].values()}
    assert activities["Final notice: decide"]["user_id"] == 9
    assert activities["Call the customer"]["user_id"] == 2  # the invoice's salesperson
    assert activities["Remind the customer"]["user_id"] == 2
    assert activities["Call the customer"]["res_model_id"] == 312
    assert activities["Call the customer"]["date_deadline"] == "2026-12-11"
    assert count_by_state(ledger) == {"done": 4, "failed": 1}


def test_odoo_down_keeps_entries_pending_until_it_is_back(odoo, make_client, tmp_path):
    odoo.add_partner(1, email="ap@x.example")
    odoo.add_move(id=5, name="F-5", partner_id_int=1)
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    for n in range(3):
        queue_note(ledger, key=f"k{n}", invoice_number="F-5", text=f"note {n}")
    sink = OdooChatter(invoices_of(odoo, make_client, retries=1))
    odoo.down = True
    report = deliver_pending(ledger, sink)
    assert (report.delivered, report.pending) == (0, 3) and "503" in report.error
    odoo.down = False
    assert deliver_pending(ledger, sink).delivered == 3
    assert pending_entries(ledger) == [] and len(odoo.models["mail.message"]) == 3
