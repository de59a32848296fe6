"""Promises to pay: they pause reminders, then are kept or broken; opt-outs per channel."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from dunning.importers import to_invoice
from dunning.ledger import Action, Ledger, Promise
from dunning.plan import plan
from tests.test_plan import POLICY, at, frame, invoice

# Invoice due Monday 2026-11-02; overdue_7 falls on Monday 2026-11-09.
PROMISED = date(2026, 11, 10)  # Tuesday; grace 2 days -> chased again from Friday 13th


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path) -> Ledger:  # noqa: ANN001
    url = (
        f"sqlite:///{tmp_path / 'ledger.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    ledger = Ledger(url)
    ledger.sync_invoices(frame(invoice("F-1")))
    return ledger


def row(ledger: Ledger, moment: str) -> pd.Series:
    """The plan of invoice F-1 at this moment, given what the ledger holds."""
    return plan(frame(invoice("F-1")), POLICY, at(moment), ledger.planning_state()).iloc[0]


def test_promise_pauses_until_the_promised_date_plus_grace(ledger: Ledger) -> None:
    ledger.add_promise(
        invoice_number="F-1", customer_id="C1", promised_on=PROMISED, source="reply:1"
    )
    assert row(ledger, "2026-11-09T10:00:00+01:00").skip_reason == "promise_to_pay"
    assert row(ledger, "2026-11-12T10:00:00+01:00").skip_reason == "promise_to_pay"
    assert ledger.resolve_promises(date(2026, 11, 12), POLICY.promise_grace_days) == (0, 0)


def test_broken_promise_gets_one_message_then_the_ladder_resumes(ledger: Ledger) -> None:
    pid = ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    assert ledger.resolve_promises(date(2026, 11, 13), POLICY.promise_grace_days) == (0, 1)
    first = row(ledger, "2026-11-13T10:00:00+01:00")
    assert (first.stage, first.skip_reason, first.tone) == ("promise_broken", None, "firm")
    assert first.key == f"F-1:promise_broken-{pid}:email"

    ledger.claim(
        key=first.key,
        invoice_number="F-1",
        customer_id="C1",
        stage="promise_broken",
        channel="email",
    )
    ledger.mark_sending(first.key, "<m@x>")
    ledger.mark_sent(first.key)
    after = row(ledger, "2026-11-13T10:00:00+01:00")
    assert (after.stage, after.key) == ("overdue_7", "F-1:overdue_7:email")
    states = ledger.frame(Promise)["state"].tolist()
    assert states == ["broken"]


def test_promise_kept_when_paid_in_time(ledger: Ledger) -> None:
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    ledger.sync_invoices(
        frame(invoice("F-1", status="paid", amount_due="0")), now=at("2026-11-11T09:00:00+00:00")
    )
    assert ledger.resolve_promises(date(2026, 11, 11), POLICY.promise_grace_days) == (1, 0)
    assert ledger.frame(Promise)["state"].tolist() == ["kept"]


def test_promise_broken_when_paid_after_the_grace(ledger: Ledger) -> None:
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    ledger.sync_invoices(
        frame(invoice("F-1", status="paid", amount_due="0")), now=at("2026-11-20T09:00:00+00:00")
    )
    assert ledger.resolve_promises(date(2026, 11, 20), POLICY.promise_grace_days) == (0, 1)


def test_a_new_promise_replaces_the_open_one(ledger: Ledger) -> None:
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=date(2026, 11, 20))
    assert ledger.frame(Promise)["state"].tolist() == ["cancelled", "open"]
    # The older, earlier date no longer decides: still paused on the 17th.
    assert row(ledger, "2026-11-17T10:00:00+01:00").skip_reason == "promise_to_pay"


def test_opt_out_of_another_channel_does_not_stop_email(ledger: Ledger) -> None:
    ledger.add_pause("opt_out", customer_id="C1", channel="whatsapp", reason="STOP")
    assert row(ledger, "2026-11-09T10:00:00+01:00").stage == "overdue_7"
    ledger.add_pause("opt_out", customer_id="C1", channel="email", reason="unsubscribe")
    assert row(ledger, "2026-11-09T10:00:00+01:00").skip_reason == "opted_out"


def test_payment_being_verified_pauses_until_the_window_ends(ledger: Ledger) -> None:
    ledger.add_pause("verify_payment", invoice_number="F-1", until=date(2026, 11, 12))
    assert row(ledger, "2026-11-09T10:00:00+01:00").skip_reason == "on_hold"
    assert row(ledger, "2026-11-13T10:00:00+01:00").stage == "overdue_7"


def test_a_promise_on_one_invoice_does_not_pause_the_customers_others(ledger: Ledger) -> None:
    ledger.sync_invoices(frame(invoice("F-1"), invoice("F-2")))
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    planned = plan(
        frame(invoice("F-1"), invoice("F-2")),
        POLICY,
        at("2026-11-09T10:00:00+01:00"),
        ledger.planning_state(),
    ).set_index("invoice")
    assert planned.loc["F-1", "skip_reason"] == "promise_to_pay"
    assert planned.loc["F-2", "stage"] == "overdue_7"


def test_paid_by_a_weekend_deadline_and_seen_on_monday_is_kept(ledger: Ledger) -> None:
    # Promised Friday 13th, grace 2 days: deadline Sunday; the Monday sweep sees it paid.
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=date(2026, 11, 13))
    ledger.sync_invoices(
        frame(invoice("F-1", status="paid", amount_due="0")), now=at("2026-11-16T08:00:00+00:00")
    )
    assert ledger.resolve_promises(date(2026, 11, 16), POLICY.promise_grace_days) == (1, 0)


def test_only_the_latest_broken_promise_gets_a_message(ledger: Ledger) -> None:
    ledger.add_promise(invoice_number="F-1", customer_id="C1", promised_on=PROMISED)
    ledger.resolve_promises(date(2026, 11, 13), POLICY.promise_grace_days)
    second = ledger.add_promise(
        invoice_number="F-1", customer_id="C1", promised_on=date(2026, 11, 16)
    )
    ledger.resolve_promises(date(2026, 11, 19), POLICY.promise_grace_days)
    first = row(ledger, "2026-11-19T10:00:00+01:00")
    assert first.key == f"F-1:promise_broken-{second}:email"
    ledger.claim(
        key=first.key,
        invoice_number="F-1",
        customer_id="C1",
        stage="promise_broken",
        channel="email",
    )
    ledger.mark_sending(first.key, "<m@x>")
    ledger.mark_sent(first.key)
    assert "promise_broken" not in row(ledger, "2026-11-20T10:00:00+01:00").key


@pytest.mark.parametrize(
    ("pause", "reason"),
    [
        (dict(kind="dispute", invoice_number="F-1"), "disputed"),
        (dict(kind="promise", invoice_number="F-1", until=date(2026, 11, 20)), "promise_to_pay"),
        (dict(kind="opt_out", customer_id="C1", channel="email"), "opted_out"),
        (dict(kind="hold", customer_id="C1"), "on_hold"),
    ],
)
def test_a_pause_recorded_after_the_plan_stops_the_send(ledger: Ledger, pause, reason) -> None:
    """The sweep planned at 09:00; a reply read at 09:05 paused it; the 10:30 send skips."""
    from dunning.act import execute_action
    from dunning.plan import action_dicts, due_now

    moment = at("2026-11-09T10:30:00+01:00")
    planned = plan(frame(invoice("F-1")), POLICY, moment, ledger.planning_state())
    (action,) = action_dicts(due_now(planned, moment))
    ledger.add_pause(**pause)
    fresh = to_invoice(frame(invoice("F-1")).iloc[0].to_dict())
    outcome = execute_action(
        action,
        ledger=ledger,
        policy=POLICY,
        lookup=lambda _: fresh,
        pool=None,
        identity=None,
        now=moment,
    )
    assert (outcome.status, outcome.reason) == ("skipped", reason)
    assert ledger.frame(Action).empty  # nothing claimed, nothing sent


def test_a_pause_on_another_invoice_or_channel_does_not_stop_the_send(ledger: Ledger) -> None:
    ledger.add_pause("dispute", invoice_number="F-9", customer_id="C1")
    ledger.add_pause("opt_out", customer_id="C1", channel="whatsapp")
    day = date(2026, 11, 9)
    assert ledger.pause_reason("F-1", "C1", "email", day, dispute_scope="invoice") == ""
    assert ledger.pause_reason("F-9", "C1", "email", day, dispute_scope="invoice") == "disputed"
    # The default `dispute_scope: customer`: a dispute about F-9 stops all of C1's invoices.
    assert ledger.pause_reason("F-1", "C1", "email", day) == "disputed"
    assert ledger.pause_reason("G-1", "C2", "email", day) == ""


def test_a_desk_dispute_naming_only_the_invoice_stops_its_customer_at_send_time(
    ledger: Ledger,
) -> None:
    ledger.sync_invoices(frame(invoice("F-1"), invoice("F-2")))
    ledger.add_pause("dispute", invoice_number="F-2")  # no customer on the pause
    assert ledger.pause_reason("F-1", "C1", "email", date(2026, 11, 9)) == "disputed"
