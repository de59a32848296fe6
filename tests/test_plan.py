"""The default ladder, evaluated at explicit moments: stages, calendars, window, pauses."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

import pandas as pd
import pytest

from dunning.importers import normalize
from dunning.ledger import Ledger, LedgerState
from dunning.plan import deferred, due_now, plan, plan_records
from dunning.policy import Policy, default_policy

POLICY = default_policy()


def invoice(number: str = "F-1", **fields: str) -> dict[str, str]:
    return {
        "invoice_number": number,
        "customer_id": "C1",
        "customer_name": "Acme SL",
        "email": "ap@acme.es",
        "country": "ES",
        "language": "es",
        "timezone": "Europe/Madrid",
        "currency": "EUR",
        "amount_total": "1210.00",
        "amount_due": "1210.00",
        "due_date": "2026-11-02",  # a Monday: every default stage lands on a weekday
        "status": "open",
        "payment_link": "",
    } | fields


def frame(*rows: dict[str, str]) -> pd.DataFrame:
    """The invoice frame the importer would produce for these rows."""
    return _normalized(tuple(tuple(r.items()) for r in rows)).copy()


@cache
def _normalized(rows: tuple[tuple[tuple[str, str], ...], ...]) -> pd.DataFrame:
    result = normalize(pd.DataFrame([dict(r) for r in rows], dtype=str))
    assert result.quarantine.empty, result.quarantine.to_string()
    return result.invoices


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def sent(*keys: str, state: str = "sent") -> LedgerState:
    """A ledger state where these action keys are already taken."""
    return LedgerState(
        actions=pd.DataFrame(
            {"key": list(keys), "state": state, "updated_at": pd.Timestamp("2026-01-01", tz="UTC")}
        )
    )


def plan_one(
    now: str, state: LedgerState | None = None, policy: Policy = POLICY, **fields: str
) -> pd.Series:
    planned = plan(frame(invoice(**fields)), policy, at(now), state)
    assert len(planned) == 1
    return planned.iloc[0]


def missing(value: object) -> bool:
    """None or NaN: pandas 3 stores a missing string as NaN."""
    return value is None or bool(pd.isna(value))


def local(ts: pd.Timestamp, tz: str = "Europe/Madrid") -> str:
    return ts.tz_convert(tz).isoformat()


# -- the ladder ------------------------------------------------------------------------------

# Invoice due Monday 2026-11-02; (stage, its day, the stage before it).
LADDER_DAYS = [
    ("pre_due", "2026-10-30", None),  # Friday, -3
    ("due", "2026-11-02", "pre_due"),
    ("overdue_1", "2026-11-03", "due"),
    ("overdue_7", "2026-11-09", "overdue_1"),
    ("overdue_15", "2026-11-17", "overdue_7"),
    ("final", "2026-12-02", "overdue_15"),
]


@pytest.mark.parametrize(("stage", "day", "previous"), LADDER_DAYS)
def test_each_stage_is_sent_on_its_day(stage: str, day: str, previous: str | None) -> None:
    now = f"{day}T10:00:00+01:00"
    state = sent(f"F-1:{previous}:email") if previous else None
    row = plan_one(now, state)

    assert missing(row["skip_reason"])
    assert row["stage"] == stage
    assert row["channel"] == "email"
    assert row["key"] == f"F-1:{stage}:email"
    assert row["send_at"] == pd.Timestamp(now)  # inside the window: now


@pytest.mark.parametrize(("stage", "day", "previous"), LADDER_DAYS)
def test_the_day_before_a_stage_it_is_not_sent_yet(
    stage: str, day: str, previous: str | None
) -> None:
    the_day_before = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    # The stages already due have all gone out: the next one is still ahead.
    state = sent(*(f"F-1:{s}:email" for s, _, _ in LADDER_DAYS))
    row = plan_one(f"{the_day_before}T10:00:00+01:00", state)

    assert missing(row["stage"])
    assert row["skip_reason"] == ("already_sent" if previous else "not_due_yet")
    assert row["next_stage"] == stage
    assert row["next_date"] == pd.Timestamp(day)


def test_ladder_offsets_are_the_documented_ones() -> None:
    assert [(s.name, s.offset_days) for s in POLICY.ladder()] == [
        ("pre_due", -3),
        ("due", 0),
        ("overdue_1", 1),
        ("overdue_7", 7),
        ("overdue_15", 15),
        ("final", 30),
    ]


# -- weekends and holidays -------------------------------------------------------------------


def test_a_stage_on_a_saturday_moves_to_monday() -> None:
    # Due Friday 2026-11-06: overdue_1 (+1) is Saturday 7 November.
    done = sent("F-1:due:email")
    saturday = plan_one("2026-11-07T10:00:00+01:00", done, due_date="2026-11-06")
    assert missing(saturday["stage"])
    assert saturday["next_stage"] == "overdue_1"
    assert saturday["next_date"] == pd.Timestamp("2026-11-09")

    sunday = plan_one("2026-11-08T12:00:00+01:00", done, due_date="2026-11-06")
    assert missing(sunday["stage"])

    monday = plan_one("2026-11-09T10:00:00+01:00", done, due_date="2026-11-06")
    assert monday["stage"] == "overdue_1"
    assert monday["send_at"] == pd.Timestamp("2026-11-09T10:00:00+01:00")


def test_a_stage_on_a_sunday_moves_to_monday() -> None:
    # Due Friday 2026-11-06: final (+30) is Sunday 6 December; Monday 7 is a workday.
    done = sent("F-1:overdue_15:email")
    sunday = plan_one("2026-12-06T10:00:00+01:00", done, due_date="2026-11-06")
    assert missing(sunday["stage"])
    assert sunday["next_stage"] == "final"
    assert sunday["next_date"] == pd.Timestamp("2026-12-07")
    monday = plan_one("2026-12-07T09:30:00+01:00", done, due_date="2026-11-06")
    assert monday["stage"] == "final"


def test_weekend_sweep_defers_an_unsent_stage_to_monday_morning() -> None:
    # Nothing sent yet and the sweep runs on Saturday: the due reminder waits for Monday 09:00.
    row = plan_one("2026-11-07T11:00:00+01:00", due_date="2026-11-06")
    assert row["stage"] == "due"
    assert local(row["send_at"]) == "2026-11-09T09:00:00+01:00"


@pytest.mark.parametrize(
    ("due", "previous", "stage", "holiday", "next_business_day"),
    [
        ("2026-12-01", "overdue_1", "overdue_7", "2026-12-08", "2026-12-09"),  # Inmaculada
        ("2026-12-30", "overdue_1", "overdue_7", "2027-01-06", "2027-01-07"),  # Reyes
        ("2026-12-17", "overdue_7", "overdue_15", "2027-01-01", "2027-01-04"),  # Año Nuevo
    ],
)
def test_a_spanish_holiday_moves_the_stage_to_the_next_business_day(
    due: str, previous: str, stage: str, holiday: str, next_business_day: str
) -> None:
    done = sent(f"F-1:{previous}:email")
    on_holiday = plan_one(f"{holiday}T10:00:00+01:00", done, due_date=due)
    assert missing(on_holiday["stage"])
    assert on_holiday["skip_reason"] == "already_sent"
    assert on_holiday["next_stage"] == stage
    assert on_holiday["next_date"] == pd.Timestamp(next_business_day)

    after = plan_one(f"{next_business_day}T10:00:00+01:00", done, due_date=due)
    assert after["stage"] == stage
    assert after["send_at"] == pd.Timestamp(f"{next_business_day}T10:00:00+01:00")


def test_holidays_are_those_of_the_customers_country() -> None:
    # 8 December is a holiday in Spain, not in the United States.
    done = sent("ES-1:overdue_1:email", "US-1:overdue_1:email")
    invoices = frame(
        invoice("ES-1", due_date="2026-12-01"),
        invoice(
            "US-1",
            customer_id="C2",
            country="US",
            language="en",
            timezone="America/New_York",
            currency="USD",
            due_date="2026-12-01",
        ),
    )
    now = at("2026-12-08T10:00:00-05:00")  # 16:00 in Madrid
    planned = plan(invoices, POLICY, now, done).set_index("invoice")

    assert missing(planned.loc["ES-1", "stage"])
    assert planned.loc["ES-1", "next_date"] == pd.Timestamp("2026-12-09")
    assert planned.loc["US-1", "stage"] == "overdue_7"
    assert planned.loc["US-1", "send_at"] == pd.Timestamp(now)


def test_customer_without_country_gets_the_policy_country_holidays() -> None:
    done = sent("F-1:overdue_1:email")
    row = plan_one("2026-12-08T10:00:00+01:00", done, due_date="2026-12-01", country="")
    assert row["country"] == "ES"
    assert missing(row["stage"])
    assert row["next_date"] == pd.Timestamp("2026-12-09")


# -- the sending window ----------------------------------------------------------------------


def test_before_nine_the_message_waits_for_nine_local() -> None:
    now = "2026-11-09T07:30:00+01:00"
    planned = plan(frame(invoice()), POLICY, at(now), sent("F-1:overdue_1:email"))
    row = planned.iloc[0]

    assert row["stage"] == "overdue_7"
    assert local(row["send_at"]) == "2026-11-09T09:00:00+01:00"
    assert row["send_at"] > pd.Timestamp(now)
    assert due_now(planned, at(now)).empty
    assert list(deferred(planned, at(now))["invoice"]) == ["F-1"]
    # At nine it is due.
    assert list(due_now(planned, at("2026-11-09T09:00:00+01:00"))["invoice"]) == ["F-1"]


def test_after_six_the_message_waits_for_the_next_business_day() -> None:
    done = sent("F-1:overdue_1:email")
    monday = plan_one("2026-11-09T18:30:00+01:00", done)
    assert monday["stage"] == "overdue_7"
    assert local(monday["send_at"]) == "2026-11-10T09:00:00+01:00"

    # After six on a Friday: Monday.
    friday = plan_one("2026-11-13T18:00:00+01:00", done)
    assert friday["stage"] == "overdue_7"
    assert local(friday["send_at"]) == "2026-11-16T09:00:00+01:00"


def test_the_window_is_in_each_customers_timezone() -> None:
    invoices = frame(
        invoice("MAD-1"),
        invoice(
            "MEX-1", customer_id="C2", country="MX", timezone="America/Mexico_City", currency="MXN"
        ),
    )
    done = sent("MAD-1:overdue_1:email", "MEX-1:overdue_1:email")

    # 10:00 in Madrid is 03:00 in Mexico City.
    morning = at("2026-11-09T10:00:00+01:00")
    planned = plan(invoices, POLICY, morning, done).set_index("invoice")
    assert planned.loc["MAD-1", "send_at"] == pd.Timestamp(morning)
    assert local(planned.loc["MEX-1", "send_at"], "America/Mexico_City") == (
        "2026-11-09T09:00:00-06:00"
    )

    # 19:00 in Madrid (closed until tomorrow) is 12:00 in Mexico City (open).
    evening = at("2026-11-09T19:00:00+01:00")
    planned = plan(invoices, POLICY, evening, done).set_index("invoice")
    assert local(planned.loc["MAD-1", "send_at"]) == "2026-11-10T09:00:00+01:00"
    assert planned.loc["MEX-1", "send_at"] == pd.Timestamp(evening)


def test_the_customers_local_date_decides_the_stage() -> None:
    # 2026-11-10 01:00 in Madrid is still 9 November in Mexico City.
    invoices = frame(
        invoice("MAD-1"),
        invoice("MEX-1", customer_id="C2", country="MX", timezone="America/Mexico_City"),
    )
    done = sent("MAD-1:overdue_7:email", "MEX-1:overdue_1:email")
    planned = plan(invoices, POLICY, at("2026-11-10T01:00:00+01:00"), done).set_index("invoice")
    assert planned.loc["MEX-1", "stage"] == "overdue_7"
    assert planned.loc["MEX-1", "days_overdue"] == 7
    assert planned.loc["MAD-1", "days_overdue"] == 8


# -- catch-up --------------------------------------------------------------------------------


def test_catch_up_sends_only_the_latest_due_stage() -> None:
    planned = plan(frame(invoice(due_date="2026-10-31")), POLICY, at("2026-12-10T10:00:00+01:00"))
    assert len(planned) == 1
    row = planned.iloc[0]
    assert row["days_overdue"] == 40
    assert row["stage"] == "final"
    assert row["key"] == "F-1:final:email"


def test_catch_up_after_an_outage_skips_to_the_current_stage() -> None:
    # overdue_7 went out; the sweeps were down until day 16: overdue_15, not a burst.
    row = plan_one("2026-11-18T10:00:00+01:00", sent("F-1:overdue_7:email"))
    assert row["days_overdue"] == 16
    assert row["stage"] == "overdue_15"


# -- amounts ---------------------------------------------------------------------------------


def test_part_paid_invoice_is_reminded_for_the_remaining_amount() -> None:
    planned = plan(
        frame(invoice(amount_total="1210.00", amount_due="400.50")),
        POLICY,
        at("2026-11-09T10:00:00+01:00"),
    )
    row = planned.iloc[0]
    assert row["stage"] == "overdue_7"
    assert row["amount_due"] == pytest.approx(400.50)
    assert row["amount_total"] == pytest.approx(1210.00)
    (record,) = plan_records(planned)
    assert record["amount_due"] == 400.5


# -- why an invoice gets nothing -------------------------------------------------------------

NOW = "2026-11-09T10:00:00+01:00"  # overdue_7 day of the default invoice


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": "paid", "amount_due": "0"}, "paid"),
        ({"status": "paid", "amount_due": "1210.00"}, "paid"),
        ({"status": "cancelled"}, "cancelled"),
        ({"amount_due": "0"}, "nothing_due"),
        ({"amount_due": "0.00", "amount_total": "0.00"}, "nothing_due"),
        ({"status": "disputed"}, "disputed"),
        ({"due_date": "2026-12-31"}, "not_due_yet"),
    ],
)
def test_skip_reasons_from_the_invoice(fields: dict[str, str], reason: str) -> None:
    row = plan_one(NOW, **fields)
    assert missing(row["stage"])
    assert missing(row["channel"])
    assert pd.isna(row["send_at"])
    assert row["skip_reason"] == reason


@pytest.mark.parametrize(
    ("kind", "by", "reason"),
    [
        ("dispute", "invoice", "disputed"),
        ("opt_out", "customer", "opted_out"),
        ("hold", "customer", "on_hold"),
        ("hold", "invoice", "on_hold"),
        ("promise", "invoice", "promise_to_pay"),
    ],
)
def test_skip_reasons_from_pauses_in_the_ledger(
    tmp_path: Path, kind: str, by: str, reason: str
) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    target = {"invoice_number": "F-1"} if by == "invoice" else {"customer_id": "C1"}
    until = date(2026, 11, 20) if kind == "promise" else None
    ledger.add_pause(kind, until=until, **target)
    invoices = frame(invoice("F-1"), invoice("F-2"), invoice("G-1", customer_id="C2"))

    planned = plan(invoices, POLICY, at(NOW), ledger.planning_state()).set_index("invoice")

    assert planned.loc["F-1", "skip_reason"] == reason
    assert missing(planned.loc["F-1", "stage"])
    # The pause covers its invoice, or all of its customer's, and nothing else; a dispute
    # about one invoice stops all the customer's (the default `dispute_scope: customer`).
    if by == "customer" or kind == "dispute":
        assert planned.loc["F-2", "skip_reason"] == reason
    else:
        assert planned.loc["F-2", "stage"] == "overdue_7"
    assert missing(planned.loc["G-1", "skip_reason"])


def test_with_dispute_scope_invoice_a_dispute_stops_only_its_invoice(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.add_pause("dispute", invoice_number="F-1", customer_id="C1")
    invoices = frame(invoice("F-1"), invoice("F-2"), invoice("G-1", customer_id="C2"))
    policy = POLICY.model_copy(update={"dispute_scope": "invoice"})

    planned = plan(invoices, policy, at(NOW), ledger.planning_state()).set_index("invoice")

    assert planned.loc["F-1", "skip_reason"] == "disputed"
    assert planned.loc["F-2", "stage"] == "overdue_7"
    assert missing(planned.loc["G-1", "skip_reason"])
    assert planned.loc["G-1", "stage"] == "overdue_7"


def test_a_promise_to_pay_pauses_until_the_promised_date_plus_grace(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.add_pause("promise", invoice_number="F-1", until=date(2026, 11, 16))
    state = ledger.planning_state()
    assert POLICY.promise_grace_days == 2

    for day in ("2026-11-10", "2026-11-16", "2026-11-18"):
        row = plan_one(f"{day}T10:00:00+01:00", state)
        assert row["skip_reason"] == "promise_to_pay", day

    chased = plan_one("2026-11-19T10:00:00+01:00", state)
    assert missing(chased["skip_reason"])
    assert chased["stage"] == "overdue_15"


def test_an_ended_pause_no_longer_applies(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    ledger.add_pause("hold", invoice_number="F-1", until=date(2026, 11, 5))
    row = plan_one(NOW, ledger.planning_state())
    assert row["stage"] == "overdue_7"


def test_already_sent_stage_is_skipped() -> None:
    row = plan_one(NOW, sent("F-1:overdue_7:email"))
    assert row["skip_reason"] == "already_sent"
    assert missing(row["stage"])


def test_a_stage_sent_through_a_real_ledger_is_not_planned_again(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    first = plan_one(NOW, ledger.planning_state())
    assert first["stage"] == "overdue_7"
    claim = ledger.claim(
        key=first["key"], invoice_number="F-1", customer_id="C1", stage="overdue_7", channel="email"
    )
    assert claim.claimed
    assert plan_one(NOW, ledger.planning_state())["skip_reason"] == "in_progress"
    ledger.mark_sending(first["key"], "<id@acme.es>")
    assert plan_one(NOW, ledger.planning_state())["skip_reason"] == "in_doubt"
    ledger.mark_sent(first["key"], "250 OK")
    assert plan_one(NOW, ledger.planning_state())["skip_reason"] == "already_sent"


def test_the_first_reason_that_applies_is_reported() -> None:
    # Paid wins over everything else, and a dispute over the stage being already sent.
    assert plan_one(NOW, sent("F-1:overdue_7:email"), status="paid")["skip_reason"] == "paid"
    assert plan_one(NOW, sent("F-1:overdue_7:email"), status="disputed")["skip_reason"] == (
        "disputed"
    )


# -- channel ---------------------------------------------------------------------------------


def test_customer_without_email_gets_a_human_task() -> None:
    planned = plan(frame(invoice(email="")), POLICY, at(NOW))
    row = planned.iloc[0]
    assert row["stage"] == "overdue_7"
    assert row["channel"] == "task"
    assert row["key"] == "F-1:overdue_7:task"
    assert "no usable email" in row["note"]
    (record,) = plan_records(planned)
    assert record["channel"] == "task"
    assert "note" in record


# -- JSON records ----------------------------------------------------------------------------


def test_plan_records_shape() -> None:
    invoices = frame(
        invoice("F-1", due_date="2026-12-01"),
        invoice("F-2", due_date="2027-01-15"),
        invoice("F-3", status="paid", amount_due="0"),
        invoice(
            "F-4",
            customer_id="C4",
            country="MX",
            timezone="America/Mexico_City",
            currency="MXN",
            due_date="2026-12-01",
        ),
    )
    planned = plan(invoices, POLICY, at("2026-12-09T10:00:00+01:00"))
    records = [json.loads(json.dumps(r)) for r in plan_records(planned)]
    by_invoice = {r["invoice"]: r for r in records}

    assert by_invoice["F-1"] == {
        "invoice": "F-1",
        "customer": "C1",
        "stage": "overdue_7",
        "channel": "email",
        "send_at": "2026-12-09T10:00:00+01:00",
        "segment": "default",
        "amount_due": 1210.0,
        "currency": "EUR",
        "due_date": "2026-12-01",
        "days_overdue": 8,
    }
    assert by_invoice["F-2"]["skip_reason"] == "not_due_yet"
    assert by_invoice["F-2"]["stage"] is None
    assert by_invoice["F-2"]["send_at"] is None
    assert by_invoice["F-2"]["next_stage"] == "pre_due"
    assert by_invoice["F-2"]["next_date"] == "2027-01-12"
    assert by_invoice["F-3"]["skip_reason"] == "paid"
    # 10:00 in Madrid is 03:00 in Mexico City: later today at 09:00, in its own offset.
    assert by_invoice["F-4"]["send_at"] == "2026-12-09T09:00:00-06:00"
    assert by_invoice["F-4"]["currency"] == "MXN"


def test_plan_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone"):
        plan(frame(invoice()), POLICY, datetime(2026, 11, 9, 10, 0))
