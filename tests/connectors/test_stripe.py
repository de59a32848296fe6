"""Stripe invoices against an in-process server speaking the list/invoice/event contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from dunning.connectors.http import AuthError
from dunning.connectors.stripe import ChangesUnavailable, StripeInvoices, is_rate_limited
from tests.connectors.fake_stripe import FakeStripe
from tests.connectors.portfolio import portfolio

ITEMS = portfolio(3000, seed=11)


@pytest.fixture
def stripe():
    with FakeStripe() as api:
        yield api


def source_of(api: FakeStripe, make_client, key: str | None = None, **kw) -> StripeInvoices:
    http = make_client(
        api.url,
        headers={"Authorization": f"Bearer {key or api.secret_key}"},
        auth_hint="check secret_key (Stripe Dashboard > Developers > API keys)",
        is_rate_limited=is_rate_limited,
        **kw,
    )
    return StripeInvoices(http, source="Stripe 'prod'")


def test_reads_thousands_of_open_invoices_following_the_cursor(stripe, make_client):
    stripe.load(ITEMS)
    result = source_of(stripe, make_client).read()
    owed = [it for it in ITEMS if it.state in ("open", "partial")]
    assert len(result.invoices) == len(owed) and result.quarantine.empty
    calls = stripe.hits("/v1/invoices")
    assert len(calls) == -(-len(owed) // 100)
    cursors = [c.arg("starting_after") for c in calls]
    assert cursors[0] is None and len(set(cursors[1:])) == len(calls) - 1
    assert all(c.arg("limit") == "100" and c.arg("status") == "open" for c in calls)
    frame = result.invoices.set_index("invoice_number")
    eur = next(it for it in owed if it.currency == "EUR" and it.state == "partial")
    row = frame.loc[eur.number]
    assert row.amount_due == pytest.approx(eur.due) and row.amount_total == pytest.approx(eur.total)
    assert row.payment_link.startswith("https://invoice.stripe.com/i/")
    assert (row.email, row.country, row.language, row.customer_id) == (
        eur.email,
        eur.country,
        eur.lang[:2],
        f"cus_{eur.customer:08d}",
    )
    assert row.due_date == pd.Timestamp(eur.due_date)
    yen = next(it for it in owed if it.currency == "JPY")
    assert frame.loc[yen.number].amount_due == yen.due  # JPY has no minor unit: 1500 is ¥1,500
    assert frame.loc[yen.number].currency == "JPY"


def test_bad_secret_key_is_named_without_the_key(stripe, make_client):
    stripe.load(ITEMS[:3])
    with pytest.raises(AuthError) as err:
        source_of(stripe, make_client, key="sk_live_wrongwrongwrong").read()
    assert "Test Source 'prod'" in str(err.value) and "secret_key" in str(err.value)
    assert "sk_live_wrongwrongwrong" not in str(err.value)


def test_rate_limits_are_waited_out(stripe, make_client, waits):
    stripe.load(ITEMS[:250])
    stripe.fail("/v1/invoices", 429, headers={"Retry-After": "2"})
    stripe.fail(
        "/v1/invoices",
        400,
        body={
            "error": {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests",
            }
        },
    )
    result = source_of(stripe, make_client).read()
    assert len(result.invoices) == sum(it.state in ("open", "partial") for it in ITEMS[:250])
    assert waits[0] == 2.0 and len(waits) == 2


def test_500_then_success(stripe, make_client, waits):
    stripe.load(ITEMS[:150])
    stripe.fail("/v1/invoices", 500, times=1)
    assert len(source_of(stripe, make_client).read().invoices) == sum(
        it.state in ("open", "partial") for it in ITEMS[:150]
    )
    assert len(waits) == 1


def test_malformed_invoices_are_quarantined(stripe, make_client):
    stripe.add_invoice(number="OK-1", customer_email="ap@ok.example")
    stripe.add_invoice(number="NODUE-1", customer_email="ap@ok.example", due_date=None)
    stripe.add_invoice(number="CUR-1", customer_email="ap@ok.example", currency="zzz")
    stripe.add_invoice(number="MAIL-1", customer_email="ap at ok")
    result = source_of(stripe, make_client).read()
    assert result.invoices["invoice_number"].tolist() == ["OK-1"]
    fields = result.quarantine.set_index("invoice_number")["field"].to_dict()
    assert fields == {"NODUE-1": "due_date", "CUR-1": "currency", "MAIL-1": "email"}
    assert set(result.quarantine["row"]) == {1, 2, 3}  # newest first: the list's order


def test_changes_since_the_last_sweep_come_from_events(stripe, make_client):
    a = stripe.add_invoice(number="A-1", customer_email="ap@a.example")
    b = stripe.add_invoice(number="B-1", customer_email="ap@b.example")
    stripe.add_invoice(number="C-1", customer_email="ap@c.example")
    now = datetime.now(UTC)
    stripe.pay(a["id"], now - timedelta(days=3))
    stripe.pay(b["id"], now - timedelta(hours=2))
    source = source_of(stripe, make_client)
    changed = source.read_changed_since(now - timedelta(days=1))
    assert changed.invoices[["invoice_number", "status", "amount_due"]].values.tolist() == [
        ["B-1", "paid", 0.0]
    ]
    with pytest.raises(ChangesUnavailable, match="30 days"):
        source.read_changed_since(now - timedelta(days=31))


def test_get_invoice_rechecks_one_invoice(stripe, make_client):
    inv = stripe.add_invoice(number="R-1", customer_email="ap@r.example")
    source = source_of(stripe, make_client)
    assert source.read().invoices["invoice_number"].tolist() == ["R-1"]
    stripe.pay(inv["id"], datetime.now(UTC))
    fresh = source.get_invoice("R-1")
    assert fresh.status == "paid" and fresh.amount_due == 0
    assert source.get_invoice("NOPE-1") is None
