"""Sweeps end to end against ERP and CRM APIs: a real Prefect server, real SMTP on loopback,
and in-process servers speaking the Odoo, Stripe and HubSpot contracts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client

from apps.mailsink import MailSink
from blocks import (
    HubSpotCrm,
    LedgerDatabase,
    OdooCrm,
    OdooInvoiceSource,
    StripeInvoiceSource,
)
from dunning.crm import count_by_state
from dunning.ledger import InvoiceRecord, Ledger
from flows.sweep import dunning_sweep
from tests.connectors.fake_hubspot import FakeHubSpot
from tests.connectors.fake_odoo import FakeOdoo
from tests.connectors.fake_stripe import FakeStripe, unix
from tests.test_flows import channel_for, task_runs_of

NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")  # Wednesday, after the 8th (holiday)
D = datetime.fromisoformat


@pytest.fixture
def sink(tmp_path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


# -- Odoo invoices, Odoo chatter --------------------------------------------------------------
def odoo_portfolio(odoo: FakeOdoo) -> None:
    odoo.add_partner(
        10,
        name="Talleres Ebro S.L.",
        email="pagos@ebro.example",
        lang="es_ES",
        country_id=[1, "Spain"],
        tz="Europe/Madrid",
    )
    odoo.add_partner(
        11,
        name="Beta Inc",
        email="ap@beta.example",
        lang="en_US",
        country_id=[odoo.country("US"), "United States"],
    )
    odoo.add_move(
        id=1,
        name="INV/2026/0001",
        partner_id_int=10,
        payment_state="partial",
        amount_total=2000.0,
        amount_residual=1234.56,
        invoice_date_due="2026-12-02",
    )
    odoo.add_move(
        id=2,
        name="INV/2026/0002",
        partner_id_int=11,
        currency_id=[2, "USD"],
        amount_total=980.0,
        amount_residual=980.0,
        invoice_date_due="2026-11-24",
    )
    odoo.add_move(
        id=3,
        name="INV/2026/0003",
        partner_id_int=10,
        amount_total=450.0,
        amount_residual=450.0,
        invoice_date_due="2026-11-09",
    )
    odoo.add_move(id=4, name="INV/2026/0004", partner_id_int=10, invoice_date_due=False)


def test_odoo_sweep_emails_customers_and_logs_to_the_invoice_chatter(prefect_api, sink, tmp_path):
    with FakeOdoo() as odoo:
        odoo_portfolio(odoo)
        source = OdooInvoiceSource(
            url=odoo.url,
            database=odoo.database,
            api_key=odoo.api_key,
            requests_per_second=50,
            portal_url_template="{base_url}/my/invoices/{id}?access_token={access_token}",
        )
        crm = OdooCrm(
            url=odoo.url,
            database=odoo.database,
            api_key=odoo.api_key,
            manager_user_id=9,
            requests_per_second=50,
        )
        url = f"sqlite:///{tmp_path}/ledger.db"
        state = dunning_sweep(
            source=source,
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=url),
            now=NOW,
            crm=crm,
            return_state=True,
        )
        counts = state.result()
        assert counts["sent"] == 3 and counts["quarantined_rows"] == 1, counts
        by_to = {m["To"]: m for m in sink.messages()}
        ebro = [m for m in sink.messages() if m["To"] == "pagos@ebro.example"]
        f1 = next(m for m in ebro if "INV/2026/0001" in m["Subject"])
        assert "1.234,56\xa0€" in body(f1)  # the residual of a part-paid invoice
        assert f"{odoo.url}/my/invoices/1?access_token=tok1" in body(f1)
        assert "$980.00" in body(by_to["ap@beta.example"])

        # The chatter of each invoice has a note per email; activities for the humans.
        notes = {
            m["res_id"]: m["body"]
            for m in odoo.models["mail.message"].values()
            if "sent by email" in m["body"]
        }
        assert sorted(notes) == [1, 2, 3] and "pagos@ebro.example" in notes[1]
        assert any(
            "on_hold" in m["body"] and m["res_id"] == 3
            for m in odoo.models["mail.message"].values()
        )
        activities = {a["res_id"]: a for a in odoo.models["mail.activity"].values()}
        assert activities[2]["user_id"] == 2  # overdue_15 call: the invoice's salesperson
        assert activities[3]["user_id"] == 9  # final: the manager
        assert counts["crm"]["delivered"] == 6 and counts["crm"]["pending"] == 0

        # The rate limit the requests went through exists on the Prefect server.
        run_id = state.state_details.flow_run_id
        runs = task_runs_of(
            run_id, until=lambda runs: any(t.name.startswith("deliver-crm-") for t in runs)
        )
        run_tasks = {t.name for t in runs}
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(source.rate_limit_name())
            run = client.read_flow_run(run_id)
        assert limit.slot_decay_per_second == 50 and limit.limit == 50
        assert any(n.startswith("deliver-crm-entries") for n in run_tasks)
        assert odoo.api_key not in str(run.parameters)  # secrets stay secret in the UI

        # Next sweep: Odoo reports F-3 paid; the read of changes tells the ledger.
        odoo.models["account.move"][3].update(
            payment_state="paid",
            amount_residual=0.0,
            write_date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        )
        again = dunning_sweep(
            source=source,
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=url),
            now=NOW,
            crm=crm,
        )
    assert again["sent"] == 0 and again["skipped"].get("already_sent") == 2, again
    assert any(
        ["write_date", ">"] == leaf[:2]
        for r in odoo.hits("/json/2/account.move")
        for leaf in (r.json() or {}).get("domain", [])
    )
    record = Ledger(url).frame(InvoiceRecord, invoice_number="INV/2026/0003").iloc[0]
    assert record.status == "paid"
    # Paid after its final notice: one thank-you (docs/cases.md), and no reminder.
    keys = [m["X-Dunning-Key"] for m in sink.messages()]
    assert len(keys) == 4 and keys.count("INV/2026/0003:thank_you:email") == 1


# -- Stripe invoices, HubSpot -------------------------------------------------------------------
def stripe_portfolio(stripe: FakeStripe) -> None:
    stripe.add_customer(
        "cus_ebro",
        name="Talleres Ebro S.L.",
        email="pagos@ebro.example",
        address={"country": "ES"},
        preferred_locales=["es-ES"],
    )
    stripe.add_customer(
        "cus_sakura",
        name="Sakura KK",
        email="ar@sakura.example",
        address={"country": "JP"},
        preferred_locales=["ja-JP"],
    )
    stripe.add_invoice(
        number="ACME-0001",
        customer="cus_ebro",
        customer_email="pagos@ebro.example",
        customer_name="Talleres Ebro S.L.",
        currency="eur",
        total=200000,
        amount_due=200000,
        amount_paid=76544,
        amount_remaining=123456,
        due_date=unix(D("2026-12-02").date()),
    )
    stripe.add_invoice(
        number="ACME-0002",
        customer="cus_sakura",
        customer_email="ar@sakura.example",
        customer_name="Sakura KK",
        currency="jpy",
        total=150000,
        amount_due=150000,
        amount_remaining=150000,
        due_date=unix(D("2026-12-02").date()),
    )
    stripe.add_invoice(
        number="ACME-0003",
        customer="cus_ebro",
        customer_email="pagos@ebro.example",
        customer_name="Talleres Ebro S.L.",
        currency="eur",
        total=45000,
        amount_due=45000,
        amount_remaining=45000,
        due_date=unix(D("2026-11-09").date()),
    )
    stripe.add_invoice(
        number="ACME-0004",
        customer="cus_ebro",
        status="paid",
        amount_remaining=0,
        due_date=unix(D("2026-12-02").date()),
    )


def hubspot_crm(hubspot: FakeHubSpot, **kw) -> HubSpotCrm:
    return HubSpotCrm(
        access_token=hubspot.token,
        base_url=hubspot.url,
        company_id_property="erp_customer_id",
        owner_ids={"manager": "900"},
        requests_per_second=50,
        **kw,
    )


def test_stripe_sweep_with_hubspot_notes_tasks_and_status(prefect_api, sink, tmp_path):
    with FakeStripe() as stripe, FakeHubSpot() as hubspot:
        stripe_portfolio(stripe)
        contact = hubspot.add("contacts", email="pagos@ebro.example")
        sakura = hubspot.add("contacts", email="ar@sakura.example")
        company = hubspot.add(
            "companies", name="Talleres Ebro", erp_customer_id="cus_ebro", hubspot_owner_id="222"
        )
        counts = dunning_sweep(
            source=StripeInvoiceSource(
                secret_key=stripe.secret_key, base_url=stripe.url, requests_per_second=50
            ),
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
            now=NOW,
            crm=hubspot_crm(hubspot),
        )
        assert counts["sent"] == 3, counts
        mails = {m["X-Dunning-Key"].split(":")[0]: m for m in sink.messages()}
        one = body(mails["ACME-0001"])
        assert "1.234,56\xa0€" in one and "https://invoice.stripe.com/i/acct_1/test_1" in one
        yen = body(mails["ACME-0002"])  # JPY has no minor unit: 150000 is ¥150,000
        assert "150,000" in yen and "1,500" not in yen
        assert "ACME-0004" not in mails

        notes = hubspot.notes()
        assert len(notes) == 3
        attached = sorted(tuple(sorted(n["associations"])) for n in notes)
        assert attached.count((("companies", company), ("contacts", contact))) == 2
        assert (("contacts", sakura),) in attached
        (task,) = hubspot.tasks()
        assert task["properties"]["hubspot_owner_id"] == "900"  # final: the manager
        assert task["properties"]["hs_task_priority"] == "HIGH"
        assert "ACME-0003" in task["properties"]["hs_task_subject"]
        assert hubspot.objects["companies"][company]["properties"]["dunning_status"] == "on_hold"
        assert counts["crm"] == {
            "crm": "HubSpot CRM 'unsaved'",
            "delivered": 5,
            "failed": 0,
            "pending": 0,
            "error": "",
        }


def test_crm_down_keeps_the_log_pending_and_the_next_run_delivers(prefect_api, sink, tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    with FakeStripe() as stripe, FakeHubSpot() as hubspot:
        stripe_portfolio(stripe)
        hubspot.add("contacts", email="pagos@ebro.example")
        hubspot.add("contacts", email="ar@sakura.example")
        hubspot.add("companies", name="Talleres Ebro", erp_customer_id="cus_ebro")
        source = StripeInvoiceSource(
            secret_key=stripe.secret_key, base_url=stripe.url, requests_per_second=50
        )
        crm = hubspot_crm(
            hubspot, retries=1, max_retry_wait_seconds=1, delivery_retries=1, retry_delay_seconds=0
        )
        hubspot.down = True
        state = dunning_sweep(
            source=source,
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=url),
            now=NOW,
            crm=crm,
            return_state=True,
        )
        first = state.result()
        assert first["sent"] == 3 and len(sink.messages()) == 3
        with get_client(sync_client=True) as client:
            summary = next(
                a
                for a in client.read_artifacts()
                if a.key == "dunning-sweep-summary"
                and a.flow_run_id == state.state_details.flow_run_id
            )
        assert "0 delivered, 0 refused, 5 pending (not reachable" in summary.data
        assert first["crm"]["delivered"] == 0 and first["crm"]["pending"] == 5
        assert "503" in first["crm"]["error"] and hubspot.token not in first["crm"]["error"]
        assert hubspot.notes() == []
        assert count_by_state(Ledger(url)) == {"pending": 5}

        hubspot.down = False
        second = dunning_sweep(
            source=source,
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=url),
            now=NOW,
            crm=crm,
        )
    assert second["sent"] == 0 and len(sink.messages()) == 3  # nothing resent
    assert second["crm"]["delivered"] == 5 and second["crm"]["pending"] == 0
    assert len(hubspot.notes()) == 3 and len(hubspot.tasks()) == 1
    assert count_by_state(Ledger(url)) == {"done": 5}


def test_saved_blocks_are_found_by_name_with_their_secrets(prefect_api):
    from blocks import CRM_TYPES, SOURCE_TYPES, resolve_block

    def resolve_source(value):
        return resolve_block(value, SOURCE_TYPES)

    def resolve_crm(value):
        return resolve_block(value, CRM_TYPES)

    OdooInvoiceSource(url="https://acme.odoo.example", api_key="odoo-secret-1").save(
        "erp-e2e", overwrite=True
    )
    HubSpotCrm(access_token="pat-secret-2").save("crm-e2e", overwrite=True)
    by_slug = resolve_source("odoo-invoice-source/erp-e2e")
    by_name = resolve_source("erp-e2e")
    assert isinstance(by_name, OdooInvoiceSource) and by_name.url == by_slug.url
    assert by_name.api_key.get_secret_value() == "odoo-secret-1"
    assert by_name.rate_limit_name() == "dunning-source-odoo-invoice-source-erp-e2e"
    crm = resolve_crm("crm-e2e")
    assert isinstance(crm, HubSpotCrm) and crm.label == "HubSpot CRM 'crm-e2e'"
    with pytest.raises(ValueError, match="odoo-invoice-source/nope"):
        resolve_source("nope")
