"""Holded invoices against an in-process server with its real payload quirks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from dunning.connectors.holded import HoldedInvoices
from dunning.connectors.http import AuthError, ConnectorError
from tests.connectors.fake_holded import FakeHolded, madrid_midnight
from tests.connectors.portfolio import portfolio

ITEMS = portfolio(3000, seed=5)
NOW = datetime(2026, 12, 15, tzinfo=UTC)


@pytest.fixture
def holded():
    with FakeHolded() as api:
        yield api


def source_of(api: FakeHolded, make_client, key: str | None = None, **kw) -> HoldedInvoices:
    http = make_client(
        api.url,
        headers={"key": key or api.api_key},
        auth_hint="check api_key (Holded: Settings > Developers)",
        **kw,
    )
    return HoldedInvoices(http, source="Holded 'prod'", now=NOW)


def test_reads_thousands_of_invoices_page_by_page(holded, make_client):
    holded.load(ITEMS)
    result = source_of(holded, make_client).read()
    listed = [it for it in ITEMS if it.state != "cancelled"]
    assert len(result.invoices) == len(listed) and result.quarantine.empty
    assert (
        len(holded.hits("/api/invoicing/v1/documents/invoice")) == -(-len(listed) // 100) + 1
    )  # the empty page ends it
    frame = result.invoices.set_index("invoice_number")
    paid = next(it for it in listed if it.state == "paid")
    assert frame.loc[paid.number].status == "paid"  # 4.5e-13 pending is nothing pending
    assert frame.loc[paid.number].amount_due == 0
    part = next(it for it in listed if it.state == "partial" and it.currency == "EUR")
    row = frame.loc[part.number]
    assert row.status == "open" and row.amount_due == pytest.approx(part.due)
    # Midnight in Madrid is 23:00 UTC the day before: the date must be Madrid's.
    assert row.due_date == pd.Timestamp(part.due_date)
    assert (row.email, row.phone, row.country) == (part.email, part.phone, part.country)
    assert (frame["status"] == "open").sum() == sum(
        it.state in ("open", "partial") for it in listed
    )


def test_null_due_date_falls_back_to_the_instalments_then_the_invoice_date(holded, make_client):
    holded.add_contact("c1", email="ap@c1.example")
    day = madrid_midnight
    holded.add_document(
        docNumber="L",
        contact="c1",
        dueDate=None,
        multipledueDate=[
            {"date": day(date(2027, 1, 20)), "amount": 50},
            {"date": day(date(2027, 1, 10)), "amount": 50},
        ],
    )
    holded.add_document(
        docNumber="O",
        contact="c1",
        dueDate=None,
        multipledueDate={"date": day(date(2027, 2, 1)), "amount": 279.55},
    )
    holded.add_document(docNumber="N", contact="c1", dueDate=None, date=day(date(2026, 11, 3)))
    result = source_of(holded, make_client).read()
    assert result.quarantine.empty
    due = result.invoices.set_index("invoice_number")["due_date"].dt.date.to_dict()
    assert due == {"L": date(2027, 1, 10), "O": date(2027, 2, 1), "N": date(2026, 11, 3)}


def test_bad_key(holded, make_client):
    with pytest.raises(AuthError, match="Holded: Settings > Developers") as err:
        source_of(holded, make_client, key="nope-nope").read()
    assert "nope-nope" not in str(err.value) and "401" in str(err.value)


def test_429_and_500_are_retried(holded, make_client, waits):
    holded.load(ITEMS[:400])
    holded.fail("/api/invoicing/v1/documents", 429, headers={"Retry-After": "4"})
    holded.fail("/api/invoicing/v1/contacts", 500, times=2)
    result = source_of(holded, make_client).read()
    assert len(result.invoices) == sum(it.state != "cancelled" for it in ITEMS[:400])
    assert waits[0] == 4.0 and len(waits) == 3


def test_malformed_documents_are_quarantined_the_rest_read(holded, make_client):
    holded.add_contact("c1", email="ap@c1.example")
    holded.add_contact("c2", email="ap@@c2")
    holded.add_document(docNumber="GOOD", contact="c1")
    holded.add_document(docNumber="BADMAIL", contact="c2")
    holded.add_document(docNumber="NODATE", contact="c1", date=None, dueDate=None)
    holded.add_document(docNumber="NEG", contact="c1", total=-50.0, paymentsPending=-50.0)
    result = source_of(holded, make_client).read()
    assert result.invoices["invoice_number"].tolist() == ["GOOD"]
    q = result.quarantine
    assert set(zip(q["invoice_number"], q["field"], strict=True)) >= {
        ("BADMAIL", "email"),
        ("NODATE", "due_date"),
        ("NEG", "amount_due"),
    }
    assert q.set_index("invoice_number").loc["NODATE", "row"] == 3


def test_get_invoice_and_no_incremental_mode(holded, make_client):
    holded.add_contact("c1", email="ap@c1.example")
    doc = holded.add_document(docNumber="G-1", contact="c1")
    source = source_of(holded, make_client)
    assert source.get_invoice("G-1").status == "open"
    doc.update(paymentsPending=0, paymentsTotal=100.0, status=1)
    assert source.get_invoice("G-1").status == "paid"
    assert source.get_invoice("G-404") is None
    assert source.supports_changes is False
    with pytest.raises(ConnectorError, match="modification time"):
        source.read_changed_since(NOW)
