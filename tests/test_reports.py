"""Portfolio report numbers: checked against values computed by hand on a small fixture, and
against an independent computation on the IBM accounts-receivable sample."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from email import message_from_bytes
from email import policy as email_policy

import numpy as np
import pandas as pd
import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from apps.cli import app
from dunning.ledger import Ledger
from dunning.ledger.models import Action, HumanTask, InboundMessage, Pause, Promise
from dunning.reports import (
    aging,
    average_days_late,
    build_portfolio_report,
    cei,
    collections_by_week,
    convert_currency,
    dso_countback,
    dso_simple,
    from_ledger,
    load_ibm_sample,
    message_stats,
    normalize_invoices,
    open_disputes,
    open_task_stats,
    promise_stats,
    read_ledger,
    reminder_conversion,
    top_overdue_customers,
)
from tests.realdata import real_data_path

IBM = "ibm_accounts_receivable.csv"  # a real data set: see tests/realdata.py
AS_OF = date(2026, 6, 30)  # a Tuesday

# Hand-computed fixture. Days past due at 2026-06-30 in the comments.
ROWS = [
    # number, customer, currency, total, due, issue, due_date, closed, status
    ("A1", "C1", "EUR", 1000, 1000, "2026-06-20", "2026-07-20", "", "open"),  # -20: current
    ("A2", "C1", "EUR", 500, 500, "2026-05-20", "2026-06-19", "", "open"),  # 11: 1-30
    ("A3", "C2", "EUR", 300, 200, "2026-04-10", "2026-05-10", "", "open"),  # 51: part paid
    ("A4", "C2", "EUR", 400, 400, "2026-03-01", "2026-03-31", "", "open"),  # 91: 90+
    ("A5", "C3", "EUR", 250, 250, "2026-04-01", "2026-05-01", "", "open"),  # 60: 31-60
    ("A6", "C3", "EUR", 600, 0, "2026-05-05", "2026-06-04", "2026-06-10", "paid"),  # 6 late
    ("A7", "C1", "EUR", 200, 0, "2026-06-01", "2026-07-01", "2026-06-25", "paid"),  # on time
    ("A8", "C2", "EUR", 999, 0, "2026-06-15", "2026-07-15", "2026-06-16", "cancelled"),
    ("A9", "C4", "USD", 700, 700, "2026-06-10", "2026-06-20", "", "open"),  # 10: 1-30 USD
    ("A10", "C1", "EUR", 700, 0, "2026-04-15", "2026-05-15", "2026-05-20", "paid"),  # 5 late
    ("A11", "C3", "EUR", 100, 100, "2026-06-30", "2026-07-30", "", "open"),  # issued today
    ("A12", "C4", "EUR", 50, 50, "2026-06-01", "2026-06-30", "", "open"),  # 0: current
    ("A13", "C2", "EUR", 80, 80, "2026-05-01", "2026-05-31", "", "open"),  # 30: 1-30
    ("A14", "C3", "EUR", 90, 90, "2026-03-02", "2026-04-01", "", "disputed"),  # 90: 61-90
]
COLUMNS = [
    "invoice_number",
    "customer_id",
    "currency",
    "amount_total",
    "amount_due",
    "issue_date",
    "due_date",
    "closed_date",
    "status",
]


@pytest.fixture
def invoices() -> pd.DataFrame:
    raw = pd.DataFrame([[str(v) for v in r] for r in ROWS], columns=COLUMNS)
    raw["customer_name"] = raw["customer_id"].map(lambda c: f"Cliente {c}")
    frame = normalize_invoices(raw)
    assert frame.problems.empty
    return frame.invoices


def row(frame: pd.DataFrame, **match) -> pd.Series:
    mask = np.logical_and.reduce([frame[k] == v for k, v in match.items()])
    (index,) = np.flatnonzero(mask)
    return frame.iloc[index]


# -- receivables -------------------------------------------------------------------------------


def test_aging_buckets_by_amount_and_count(invoices):
    table = aging(invoices, AS_OF)
    eur = table[table["currency"] == "EUR"].set_index("bucket")
    assert eur["count"].to_dict() == {"current": 3, "1-30": 2, "31-60": 2, "61-90": 1, "90+": 1}
    assert eur["amount"].to_dict() == pytest.approx(
        {"current": 1150, "1-30": 580, "31-60": 450, "61-90": 90, "90+": 400}
    )
    assert eur["share"]["current"] == pytest.approx(1150 / 2670)
    usd = table[table["currency"] == "USD"].set_index("bucket")
    assert usd["amount"].to_dict() == pytest.approx(
        {"current": 0, "1-30": 700, "31-60": 0, "61-90": 0, "90+": 0}
    )


def test_dso_countback_walks_back_months(invoices):
    dso = dso_countback(invoices, AS_OF).set_index("currency")
    # EUR receivables 2,670: June sales 1,350 (30 days) and May 1,180 (31 days) used up,
    # 140 left of April's 1,250 -> 30 + 31 + 30 * 140 / 1,250.
    assert dso.loc["EUR", "receivables"] == pytest.approx(2670)
    assert dso.loc["EUR", "dso"] == pytest.approx(30 + 31 + 30 * 140 / 1250)
    assert dso.loc["EUR", "months"] == 3 and not dso.loc["EUR", "exhausted"]
    assert dso.loc["USD", "dso"] == pytest.approx(30.0)  # 700 owed, June sales 700


def test_dso_countback_mid_month_counts_days_so_far(invoices):
    # At 2026-06-15 EUR owes 1,770; June sales up to the 15th are 250 (A7 200 + A12 50) over
    # 15 days, May's 1,180 are used up (31 days), 340 left of April's 1,250 (30 days).
    dso = dso_countback(invoices, date(2026, 6, 15)).set_index("currency")
    owed = 500 + 200 + 400 + 250 + 80 + 90 + 200 + 50  # A2 A3 A4 A5 A13 A14 A7 A12
    assert owed == 1770 and dso.loc["EUR", "receivables"] == pytest.approx(owed)
    assert dso.loc["EUR", "dso"] == pytest.approx(15 + 31 + 30 * 340 / 1250)


def test_dso_simple(invoices):
    dso = dso_simple(invoices, AS_OF, period_days=90).set_index("currency")
    # issued after 1 April up to 30 June, cancelled A8 excluded: 3,530
    assert dso.loc["EUR", "credit_sales"] == pytest.approx(3530)
    assert dso.loc["EUR", "dso"] == pytest.approx(2670 / 3530 * 90)
    assert dso.loc["USD", "dso"] == pytest.approx(90.0)


def test_collection_effectiveness_index(invoices):
    table = cei(invoices, AS_OF, period_days=30).set_index("currency")
    eur = table.loc["EUR"]
    # beginning (31 May): A2 500 A3 200 A4 400 A5 250 A6 600 (paid later) A13 80 A14 90
    assert eur["beginning_receivables"] == pytest.approx(2120)
    assert eur["credit_sales"] == pytest.approx(1350)
    assert eur["ending_receivables"] == pytest.approx(2670)
    assert eur["ending_current"] == pytest.approx(1150)
    assert eur["cei"] == pytest.approx((2120 + 1350 - 2670) / (2120 + 1350 - 1150) * 100)
    assert table.loc["USD", "cei"] == pytest.approx(0.0)


def test_average_days_late(invoices):
    period = average_days_late(invoices, AS_OF, since=date(2026, 5, 31)).set_index("currency")
    assert period.loc["EUR", "paid"] == 2 and period.loc["EUR", "paid_late"] == 1
    assert period.loc["EUR", "avg_days_late"] == pytest.approx(3.0)  # A6 6, A7 0
    assert period.loc["EUR", "avg_days_late_of_late"] == pytest.approx(6.0)
    assert period.loc["EUR", "weighted_days_late"] == pytest.approx(6 * 600 / 800)
    assert period.loc["USD", "paid"] == 0
    ever = average_days_late(invoices, AS_OF).set_index("currency")
    assert ever.loc["EUR", "avg_days_late"] == pytest.approx(11 / 3)  # + A10 5


def test_collections_by_week(invoices):
    weekly = collections_by_week(invoices, AS_OF, weeks=12)
    eur = weekly[weekly["currency"] == "EUR"].set_index("week_start")["amount"]
    assert len(eur) == 12 and eur.index[-1] == pd.Timestamp("2026-06-29")
    assert eur[pd.Timestamp("2026-06-08")] == pytest.approx(600)  # A6 paid Wed 10 June
    assert eur[pd.Timestamp("2026-06-22")] == pytest.approx(200)  # A7
    assert eur[pd.Timestamp("2026-05-18")] == pytest.approx(700)  # A10
    assert eur.sum() == pytest.approx(1500)  # the cancelled A8 is not a collection


def test_top_overdue_customers(invoices):
    top = top_overdue_customers(invoices, AS_OF, n=10)
    eur = top[top["currency"] == "EUR"]
    assert list(eur["customer_id"]) == ["C2", "C1", "C3"]
    c2 = row(eur, customer_id="C2")
    assert (c2["overdue"], c2["invoices"], c2["oldest_days"]) == (680, 3, 91)
    assert row(eur, customer_id="C1")["receivables"] == pytest.approx(1500)  # incl. not due
    assert list(top[top["currency"] == "USD"]["customer_id"]) == ["C4"]
    assert len(top_overdue_customers(invoices, AS_OF, n=1)) == 2  # one per currency


def test_amounts_are_never_mixed_across_currencies_unless_converted(invoices):
    summary = build_portfolio_report(invoices, AS_OF).summary.set_index("currency")
    assert summary.loc["EUR", "receivables"] == pytest.approx(2670)
    assert summary.loc["USD", "receivables"] == pytest.approx(700)
    converted = convert_currency(invoices, {"USD": 0.9}, "EUR")
    one = build_portfolio_report(converted, AS_OF).summary
    assert list(one["currency"]) == ["EUR"]
    assert one["receivables"].iloc[0] == pytest.approx(2670 + 630)
    with pytest.raises(ValueError, match=r"USD \(1 invoices\)"):
        convert_currency(invoices, {"MXN": 0.05}, "EUR")


# -- input -----------------------------------------------------------------------------------


def test_bad_rows_are_reported_and_the_rest_kept():
    raw = pd.DataFrame(
        [
            ["OK1", "C1", "EUR", "100", "", "2026-06-01", "2026-07-01", "", ""],
            ["BAD1", "C1", "EUR", "100", "", "2026-06-01", "01/07/2026", "", ""],
            ["BAD2", "C1", "EUR", "-5", "", "2026-06-01", "2026-07-01", "", ""],
            ["BAD3", "C1", "EUR", "100", "", "2026-06-01", "2026-07-01", "", "lost"],
            ["BAD4", "C1", "", "100", "", "2026-06-01", "2026-07-01", "", ""],
            ["PAID", "C1", "EUR", "100", "0", "2026-06-01", "2026-07-01", "", "paid"],
            ["DONE", "C1", "EUR", "100", "", "2026-05-01", "2026-06-01", "2026-06-03", ""],
        ],
        columns=COLUMNS,
    )
    frame = normalize_invoices(raw)
    assert list(frame.invoices["invoice_number"]) == ["OK1", "PAID", "DONE"]
    done = row(frame.invoices, invoice_number="DONE")
    assert done["status"] == "paid" and done["amount_due"] == 0  # a closing day means paid
    assert row(frame.invoices, invoice_number="OK1")["amount_due"] == 100
    by_number = frame.problems.set_index("invoice_number")
    assert by_number.loc["BAD1", "field"] == "due_date" and by_number.loc["BAD1", "row"] == 2
    assert "YYYY-MM-DD" in by_number.loc["BAD1", "reason"]
    assert by_number.loc["BAD2", "field"] == "amount_total"
    assert by_number.loc["BAD3", "field"] == "status"
    assert by_number.loc["BAD4", "field"] == "currency"
    assert "closed_date" in by_number.loc["PAID", "field"]  # kept, but said how it counts
    with pytest.raises(ValueError, match="no column currency"):
        normalize_invoices(raw.drop(columns=["currency"]))


def test_from_ledger_uses_first_seen_or_the_source_issue_dates(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    src = pd.DataFrame(
        {
            "invoice_number": ["L1", "L2"],
            "customer_id": ["C1", "C1"],
            "customer_name": ["Uno", "Uno"],
            "email": ["a@b.example"] * 2,
            "currency": ["EUR", "EUR"],
            "amount_total": [100.0, 50.0],
            "amount_due": [100.0, 50.0],
            "issue_date": pd.to_datetime(["2026-05-01", "2026-05-10"]),
            "due_date": pd.to_datetime(["2026-06-01", "2026-06-10"]),
            "status": ["open", "open"],
        }
    )
    ledger.sync_invoices(src, now=at("2026-06-02T09:00"))
    paid = src.assign(amount_due=[100.0, 0.0], status=["open", "paid"])
    ledger.sync_invoices(paid, now=at("2026-06-20T09:00"))
    frames = read_ledger(ledger.url)
    proxy = from_ledger(frames.invoices).set_index("invoice_number")
    assert proxy.loc["L1", "issue_date"] == pd.Timestamp("2026-06-02")  # first seen
    assert proxy.loc["L2", "closed_date"] == pd.Timestamp("2026-06-20")
    assert proxy.loc["L2", "status"] == "paid" and pd.isna(proxy.loc["L1", "closed_date"])
    real = from_ledger(frames.invoices, src.iloc[:1]).set_index("invoice_number")
    assert real.loc["L1", "issue_date"] == pd.Timestamp("2026-05-01")
    assert real.loc["L2", "issue_date"] == pd.Timestamp("2026-06-02")  # not in the source


# -- ledger activity ----------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request, tmp_path) -> str:
    """A real ledger: a SQLite file, and a fresh database on the machine's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def ledger_frames(ledger_url):
    """The ledger with hand-made history for June 2026 (UTC), read back as frames."""
    ledger = Ledger(ledger_url)

    def sent(invoice, stage, when, channel="email", state="sent", **extra):
        key = f"{invoice}:{stage}:{channel}"
        return Action(
            key=key,
            invoice_number=invoice,
            stage=stage,
            channel=channel,
            state=state,
            sent_at=at(when) if state == "sent" else None,
            updated_at=at(when),
            **extra,
        )

    rows = [
        sent("A2", "overdue_1", "2026-06-20T10:00"),  # K1: replied, not paid
        sent("A6", "overdue_1", "2026-06-05T09:00"),  # K2: paid 10 June -> converted
        sent("A6", "due", "2026-06-04T09:00"),  # K3: superseded by K2
        sent("A7", "pre_due", "2026-06-24T09:00"),  # K4: paid next day
        sent("A1", "pre_due", "2026-06-27T09:00"),  # K5: window still open
        sent(
            "A4",
            "overdue_7",
            "2026-06-10T09:00",
            channel="whatsapp",
            delivery_status="read",
            delivered_at=at("2026-06-10T09:01"),
            read_at=at("2026-06-10T12:00"),
        ),  # K6
        sent("A5", "overdue_7", "2026-06-15T09:00", state="failed"),  # K7
        sent("A13", "overdue_15", "2026-06-14T09:00", channel="task"),  # K8: a task
        sent("A10", "overdue_1", "2026-05-16T09:00"),  # K9: before the period
        sent(
            "A9",
            "overdue_7",
            "2026-06-27T09:00",
            channel="whatsapp",
            delivery_status="delivered",
            delivered_at=at("2026-06-27T09:01"),
        ),  # K10: awaiting
        InboundMessage(
            provider_id="r1", action_key="A2:overdue_1:email", received_at=at("2026-06-21T08:00")
        ),
        InboundMessage(
            provider_id="r2", invoice_numbers=["A4"], received_at=at("2026-06-12T08:00")
        ),
        InboundMessage(
            provider_id="r3", invoice_numbers=["A5"], received_at=at("2026-06-20T08:00")
        ),
        InboundMessage(
            provider_id="r4", invoice_numbers=["A1"], received_at=at("2026-06-20T08:00")
        ),
        Promise(
            invoice_number="A2",
            promised_on=date(2026, 6, 5),
            state="broken",
            made_at=at("2026-05-28T10:00"),
            resolved_at=at("2026-06-08T10:00"),
        ),
        Promise(
            invoice_number="A6",
            promised_on=date(2026, 6, 9),
            state="kept",
            made_at=at("2026-06-06T10:00"),
            resolved_at=at("2026-06-11T10:00"),
        ),
        Promise(
            invoice_number="A4",
            promised_on=date(2026, 7, 5),
            state="open",
            made_at=at("2026-06-15T10:00"),
        ),
        Promise(
            invoice_number="A3",
            promised_on=date(2026, 6, 10),
            state="cancelled",
            made_at=at("2026-06-02T10:00"),
            resolved_at=at("2026-06-03T10:00"),
        ),
        Promise(
            invoice_number="A5",
            promised_on=date(2026, 6, 25),
            state="broken",
            made_at=at("2026-06-20T10:00"),
            resolved_at=at("2026-07-02T10:00"),  # after the report day: open on 30 June
        ),
        Pause(kind="dispute", invoice_number="A4", created_at=at("2026-06-10T10:00")),
        Pause(kind="dispute", customer_id="C3", created_at=at("2026-05-31T10:00")),
        Pause(
            kind="dispute",
            invoice_number="A2",
            active=False,
            created_at=at("2026-06-01T10:00"),
            ended_at=at("2026-06-15T10:00"),
        ),
        Pause(kind="promise", invoice_number="A3", created_at=at("2026-06-02T10:00")),
        HumanTask(key="t1", title="call", created_at=at("2026-06-01T10:00")),
        HumanTask(
            key="t2",
            title="call",
            status="done",
            created_at=at("2026-06-01T10:00"),
            closed_at=at("2026-06-05T10:00"),
        ),
    ]
    with Session(ledger.engine) as session:
        session.add_all(rows)
        session.commit()
    return read_ledger(ledger.url)


def test_messages_sent_delivered_read_replied_by_channel(ledger_frames):
    stats = message_stats(ledger_frames.actions, ledger_frames.inbound, AS_OF.replace(day=1), AS_OF)
    email = row(stats, channel="email")
    assert (email["sent"], email["replied"], email["failed"]) == (5, 1, 1)
    assert pd.isna(email["delivered"])  # SMTP reports no delivery: unknown, not 0
    assert email["reply_rate"] == pytest.approx(0.2)
    wa = row(stats, channel="whatsapp")
    assert (wa["sent"], wa["delivered"], wa["read"], wa["replied"]) == (2, 2, 1, 1)
    assert "task" not in set(stats["channel"])


def test_reminder_to_payment_conversion_by_stage(ledger_frames, invoices):
    conv = reminder_conversion(ledger_frames.actions, invoices, AS_OF.replace(day=1), AS_OF)
    assert list(conv["stage"]) == ["pre_due", "due", "overdue_1", "overdue_7"]
    got = conv.set_index("stage")[["sent", "paid_within", "awaiting"]].to_dict("index")
    assert got == {
        "pre_due": {"sent": 2, "paid_within": 1, "awaiting": 1},
        "due": {"sent": 1, "paid_within": 0, "awaiting": 0},  # the next reminder got it
        "overdue_1": {"sent": 2, "paid_within": 1, "awaiting": 0},
        "overdue_7": {"sent": 2, "paid_within": 0, "awaiting": 1},
    }
    rates = conv.set_index("stage")["rate"]
    assert rates.to_dict() == {"pre_due": 1.0, "due": 0.0, "overdue_1": 0.5, "overdue_7": 0.0}


def test_promises_made_kept_broken(ledger_frames):
    stats = promise_stats(ledger_frames.promises, AS_OF.replace(day=1), AS_OF)
    assert stats == {
        "made": 4,
        "kept": 1,
        "broken": 1,
        "cancelled": 1,
        "open": 2,
        "kept_rate": 0.5,
    }


def test_open_disputes_and_their_age(ledger_frames, invoices):
    disputes = open_disputes(ledger_frames.pauses, invoices, AS_OF)
    assert list(disputes["invoice_number"]) == ["", "A4", "A14"]
    assert list(disputes["age_days"].iloc[:2]) == [30, 20]
    assert pd.isna(disputes["age_days"].iloc[2])  # disputed at the source: age unknown
    assert row(disputes, invoice_number="A4")["amount"] == 400
    assert disputes["customer_id"].iloc[0] == "C3"
    assert open_task_stats(ledger_frames.human_tasks, AS_OF) == {"open": 1, "oldest_days": 29}


def test_portfolio_report_with_ledger(ledger_frames, invoices):
    report = build_portfolio_report(invoices, AS_OF, ledger=ledger_frames, period_days=30)
    eur = report.summary.set_index("currency").loc["EUR"]
    assert eur["overdue"] == pytest.approx(1520) and eur["overdue_invoices"] == 6
    assert eur["collected"] == pytest.approx(800)  # A6 + A7 in June
    assert eur["disputed"] == pytest.approx(490)  # A4 + A14
    assert report.period_start == date(2026, 6, 1)
    assert set(report.open_items["invoice_number"]) == {
        "A1",
        "A2",
        "A3",
        "A4",
        "A5",
        "A9",
        "A11",
        "A12",
        "A13",
        "A14",
    }


# -- the IBM sample against an independent computation ------------------------------------------


def ibm_raw() -> pd.DataFrame:
    raw = pd.read_csv(real_data_path(IBM), dtype={"invoiceNumber": str})
    for column in ("InvoiceDate", "DueDate", "SettledDate"):
        raw[column] = pd.to_datetime(raw[column], format="%m/%d/%Y")
    return raw


def independent_countback(raw: pd.DataFrame, day: pd.Timestamp, owed: float) -> float:
    """Month by month, the textbook way, one month at a time."""
    remaining, dso = owed, 0.0
    month_end, month_start = day, day.replace(day=1)
    while remaining > 1e-9:
        in_month = (raw["InvoiceDate"] >= month_start) & (raw["InvoiceDate"] <= month_end)
        sales = raw.loc[in_month, "InvoiceAmount"].sum()
        days = (month_end - month_start).days + 1
        if sales >= remaining:
            return dso + days * remaining / sales
        remaining -= sales
        dso += days
        month_end = month_start - pd.Timedelta(days=1)
        month_start = month_end.replace(day=1)
    return dso


@pytest.mark.parametrize("day", ["2013-06-30", "2013-03-15", "2012-12-31", "2012-09-01"])
def test_ibm_sample_dso_and_aging_match_an_independent_computation(day):
    d = pd.Timestamp(day)
    raw = ibm_raw()
    ibm = load_ibm_sample(real_data_path(IBM)).invoices
    assert len(ibm) == len(raw) == 2466

    open_then = raw[(raw["InvoiceDate"] <= d) & (raw["SettledDate"] > d)]
    owed = open_then["InvoiceAmount"].sum()
    late = (d - open_then["DueDate"]).dt.days
    expected_bucket = np.select(
        [late <= 0, late <= 30, late <= 60, late <= 90],
        ["current", "1-30", "31-60", "61-90"],
        "90+",
    )
    expected = open_then.groupby(expected_bucket)["InvoiceAmount"].agg(["count", "sum"])
    table = aging(ibm, d.date()).set_index("bucket")
    for bucket in table.index:
        want = (
            expected.loc[bucket] if bucket in expected.index else pd.Series({"count": 0, "sum": 0})
        )
        assert table.loc[bucket, "count"] == want["count"], bucket
        assert table.loc[bucket, "amount"] == pytest.approx(want["sum"]), bucket

    countback = dso_countback(ibm, d.date()).iloc[0]
    assert countback["receivables"] == pytest.approx(owed)
    assert countback["dso"] == pytest.approx(independent_countback(raw, d, owed))

    sold = raw[(raw["InvoiceDate"] > d - pd.Timedelta(days=90)) & (raw["InvoiceDate"] <= d)]
    simple = dso_simple(ibm, d.date(), 90).iloc[0]
    assert simple["dso"] == pytest.approx(owed / sold["InvoiceAmount"].sum() * 90)


def test_ibm_sample_days_late_match_the_sample_column():
    raw = ibm_raw()
    ibm = load_ibm_sample(real_data_path(IBM)).invoices
    d = pd.Timestamp("2013-12-31")
    settled = raw[raw["SettledDate"] <= d]
    got = average_days_late(ibm, d.date()).iloc[0]
    assert got["paid"] == len(settled)
    assert got["avg_days_late"] == pytest.approx(settled["DaysLate"].mean())
    assert got["share_late"] == pytest.approx((settled["DaysLate"] > 0).mean())


# -- the command line --------------------------------------------------------------------------


def test_cli_report_writes_the_files(tmp_path, ledger_url, ledger_frames):
    out = tmp_path / "report"
    csv = tmp_path / "ar.csv"
    raw = pd.DataFrame([[str(v) for v in r] for r in ROWS], columns=COLUMNS)
    bad = pd.DataFrame(
        [["Z9", "C9", "EUR", "x", "", "2026-06-01", "2026-07-01", "", ""]], columns=COLUMNS
    )
    pd.concat([raw, bad]).to_csv(csv, index=False)
    result = CliRunner().invoke(
        app,
        [
            "report",
            "--invoices",
            str(csv),
            "--as-of",
            "2026-06-30",
            "--out",
            str(out),
            "--locale",
            "en_US",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "quarantined row 15" in result.output and "amount_total" in result.output
    names = set(json.loads(result.stdout.strip().splitlines()[-1])["files"])
    assert {"aging.png", "dso_trend.png", "collections.png", "summary.md", "report.html"} <= names
    assert (out / "aging.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["currencies"]["EUR"]["receivables"] == pytest.approx(2670)
    assert numbers["currencies"]["USD"]["receivables"] == pytest.approx(700)
    items = pd.read_excel(out / "open-items-2026-06-30.xlsx", sheet_name="Open items")
    assert len(items) == 10 and items["Invoice"].iloc[0] == "A4"  # most overdue first
    html = (out / "report.html").read_text()
    assert 'src="aging.png"' in html and "€2,670.00" in html
    assert "Z9" in (out / "problems.txt").read_text()
    aged = pd.read_csv(out / "aging.csv")
    assert aged.loc[aged["currency"] == "EUR", "amount"].sum() == pytest.approx(2670)

    with_ledger = CliRunner().invoke(
        app,
        ["report", "--ledger", ledger_url, "--as-of", "2026-06-30", "--out", str(tmp_path / "l")],
    )
    assert with_ledger.exit_code == 0, with_ledger.output
    messages = pd.read_csv(tmp_path / "l" / "messages.csv")
    assert messages.set_index("channel")["sent"].to_dict() == {"email": 5, "whatsapp": 2}

    neither = CliRunner().invoke(app, ["report", "--out", str(out)])
    assert neither.exit_code == 2 and "--ledger" in neither.output
    typo = tmp_path / "ledgr.db"
    missing = CliRunner().invoke(app, ["report", "--ledger", str(typo), "--out", str(out)])
    assert missing.exit_code == 2 and "no ledger at" in missing.output
    assert not typo.exists()  # a report never creates an empty ledger


def test_report_email_structure(invoices, ledger_frames):
    from dunning.charts import portfolio_charts
    from dunning.report_mail import build_report_email

    report = build_portfolio_report(invoices, AS_OF, ledger=ledger_frames)
    charts = portfolio_charts(report, locale="es_ES")
    msg = build_report_email(
        report, charts, from_address="cobros@acme.example", to="a@acme.example; b@acme.example"
    )
    parsed = message_from_bytes(msg.as_bytes(), policy=email_policy.default)
    assert parsed["To"] == "a@acme.example, b@acme.example"
    html = parsed.get_body(("html",)).get_content()
    assert "2670,00\xa0€" in html.replace(".", "")  # es_ES money (thousands dot removed)
    inline = [p for p in parsed.walk() if p.get_content_type() == "image/png"]
    assert len(inline) == 3
    for part in inline:
        assert f"cid:{part['Content-ID'].strip('<>')}" in html
    (xlsx,) = [p for p in parsed.iter_attachments() if p.get_filename().endswith(".xlsx")]
    sheet = pd.read_excel(io.BytesIO(xlsx.get_content()), sheet_name="Partidas abiertas")
    assert len(sheet) == 10 and sheet["Pendiente"].sum() == pytest.approx(2670 + 700)
    with pytest.raises(ValueError, match="no recipient"):
        build_report_email(report, charts, from_address="cobros@acme.example", to=" ")
