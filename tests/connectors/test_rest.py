"""The generic REST source against an in-house API in each pagination style."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from dunning.connectors.http import AuthError, ConnectorError
from dunning.connectors.rest import RestInvoices, RestSettings
from dunning.importers import SourceError
from tests.connectors.fake_rest import FakeRest
from tests.connectors.portfolio import portfolio

ITEMS = portfolio(3000, seed=3)
MAPPING = {
    "invoice_number": "number",
    "customer_id": "customer.id",
    "customer_name": "customer.name",
    "email": "customer.email",
    "country": "customer.address.country",
    "currency": "balance.currency",
    "amount_due": "balance.amount",
    "amount_total": "total.amount",
    "issue_date": "dates.issued",
    "due_date": "dates.due",
    "status": "state",
    "payment_link": "pay_url",
}
STATUS = {"unpaid": "open", "part_settled": "open", "settled": "paid", "void": "cancelled"}
STYLES = {
    "page": dict(pagination="page", records_path="data"),
    "offset": dict(pagination="offset", records_path="data"),
    "cursor": dict(
        pagination="cursor",
        records_path="result.items",
        cursor_param="cursor",
        next_cursor_path="result.next",
    ),
    "link": dict(pagination="link", records_path="", page_size_param="per_page"),
}


def source_of(
    api: FakeRest, make_client, style: str, key: str | None = None, **settings
) -> RestInvoices:
    http = make_client(
        api.url, headers={"X-Api-Key": key or api.api_key}, auth_hint="check auth_value"
    )
    config = RestSettings(
        **(
            {
                "url": f"{api.url}/api/invoices",
                "field_mapping": MAPPING,
                "status_mapping": STATUS,
                "amounts_in_minor_units": True,
            }
            | STYLES[style]
            | settings
        )
    )
    return RestInvoices(http, config, source="REST 'erp'")


@pytest.mark.parametrize("style", list(STYLES))
def test_every_pagination_style_reads_the_whole_portfolio(style, make_client):
    with FakeRest(style=style, max_page=50) as api:  # the server caps pages below our 100
        api.load(ITEMS)
        result = source_of(api, make_client, style).read()
        calls = len(api.hits("/api/invoices"))
    assert result.quarantine.empty and len(result.invoices) == len(ITEMS)
    assert calls >= len(ITEMS) // 50
    frame = result.invoices.set_index("invoice_number")
    part = next(it for it in ITEMS if it.state == "partial" and it.currency == "USD")
    row = frame.loc[part.number]
    assert row.amount_due == pytest.approx(part.due) and row.status == "open"
    assert (row.email, row.country, str(row.issue_date.date())) == (
        part.email,
        part.country,
        str(part.issue_date),
    )
    yen = next(it for it in ITEMS if it.currency == "JPY" and it.state == "open")
    assert frame.loc[yen.number].amount_due == yen.due
    paid = next(it for it in ITEMS if it.state == "paid")
    assert frame.loc[paid.number].status == "paid"


def test_forbidden_key(make_client):
    with FakeRest() as api, pytest.raises(AuthError, match="403 API key not valid") as err:
        source_of(api, make_client, "page", key="bad-key-77").read()
    assert "bad-key-77" not in str(err.value)


def test_retry_after_as_an_http_date(make_client, waits):
    with FakeRest() as api:
        api.load(ITEMS[:30])
        when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=6), usegmt=True)
        api.fail("/api/invoices", 429, headers={"Retry-After": when})
        assert len(source_of(api, make_client, "page").read().invoices) == 30
    assert 3 < waits[0] <= 6


def test_bad_records_are_quarantined_with_row_and_field(make_client):
    with FakeRest() as api:
        api.add(number="GOOD")
        api.add(number="")
        api.add(number="BADDATE", dates={"issued": "2026-11-01", "due": "31/12/2026"})
        api.add(number="BADSTATE", state="limbo")
        result = source_of(api, make_client, "page").read()
    assert result.invoices["invoice_number"].tolist() == ["GOOD"]
    got = set(zip(result.quarantine["row"], result.quarantine["field"], strict=True))
    assert got == {(2, "invoice_number"), (3, "due_date"), (4, "status")}


def test_a_mapping_that_matches_nothing_says_what_the_records_have(make_client):
    with FakeRest() as api:
        api.add()
        with pytest.raises(SourceError, match=r"no record has 'dates.due_on' .*'dates.due'"):
            source_of(
                api, make_client, "page", field_mapping=MAPPING | {"due_date": "dates.due_on"}
            ).read()


def test_incremental_and_single_invoice(make_client):
    with FakeRest() as api:
        api.add(number="OLD")
        api.add(number="NEW", state="settled", updated_at="2026-12-08T12:00:00Z")
        source = source_of(
            api,
            make_client,
            "page",
            changed_since_param="updated_since",
            item_url=f"{api.url}/api/invoices/{{invoice_number}}",
            item_path="invoice",
        )
        assert source.supports_changes
        changed = source.read_changed_since(datetime(2026, 12, 8, 9, tzinfo=UTC))
        assert changed.invoices[["invoice_number", "status"]].values.tolist() == [["NEW", "paid"]]
        assert source.get_invoice("OLD").amount_due == 123.45
        assert source.get_invoice("MISSING") is None
        assert api.hits("/api/invoices/OLD")


def test_channel_preference_and_whatsapp_consent_come_through_the_mapping(make_client):
    with FakeRest() as api:
        api.add(number="WA", contact={"channel": "whatsapp", "wa_ok": "yes"})
        api.add(number="MAIL", contact={"channel": "email", "wa_ok": "no"})
        api.add(number="BAD", contact={"channel": "pigeon", "wa_ok": "yes"})
        mapping = MAPPING | {
            "preferred_channel": "contact.channel",
            "whatsapp_opt_in": "contact.wa_ok",
        }
        result = source_of(api, make_client, "page", field_mapping=mapping).read()
    got = result.invoices.set_index("invoice_number")
    assert got.loc["WA", ["preferred_channel", "whatsapp_opt_in"]].tolist() == ["whatsapp", "true"]
    assert got.loc["MAIL", "whatsapp_opt_in"] == "false"
    assert result.quarantine["field"].tolist() == ["preferred_channel"]


def test_the_account_owner_and_manager_come_through_the_mapping(make_client):
    with FakeRest() as api:
        api.add(number="OWNED", seller={"email": "Ana@Acme.example", "boss": "jefe@acme.example"})
        api.add(number="NOBODY", seller={"email": "", "boss": ""})
        api.add(number="NAME", seller={"email": "Ana López", "boss": ""})
        mapping = MAPPING | {"owner_email": "seller.email", "manager_email": "seller.boss"}
        result = source_of(api, make_client, "page", field_mapping=mapping).read()
    got = result.invoices.set_index("invoice_number")[["owner_email", "manager_email"]]
    assert got.loc["OWNED"].tolist() == ["ana@acme.example", "jefe@acme.example"]
    assert got.loc["NOBODY"].tolist() == ["", ""]
    assert result.quarantine[["invoice_number", "field"]].values.tolist() == [
        ["NAME", "owner_email"]
    ]


def test_a_next_link_to_another_host_is_refused_not_followed(make_client):
    with FakeRest(style="link") as api:
        api.load(ITEMS[:300])
        api.link_base = "http://collector.evil.example"
        with pytest.raises(ConnectorError, match="another host"):
            source_of(api, make_client, "link").read()
