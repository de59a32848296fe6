"""The ledger's outbox on SQLite and on the machine's PostgreSQL: exactly-once, states, sync."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from dunning.importers import normalize
from dunning.ledger import Action, Event, HumanTask, InvoiceRecord, Ledger
from dunning.ledger.models import utcnow

KEY = "F-1:overdue_7:email"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path}/l.db")
    return Ledger(request.getfixturevalue("pg_url"))


def claim(ledger: Ledger, key: str = KEY, **kw):
    invoice, stage, channel = key.split(":")
    return ledger.claim(
        key=key,
        invoice_number=invoice,
        customer_id="C1",
        stage=stage,
        channel=channel,
        recipient="ap@acme.es",
        amount_due=1210.0,
        currency="EUR",
        **kw,
    )


def action(ledger: Ledger, key: str = KEY) -> pd.Series:
    rows = ledger.frame(Action, key=key)
    assert len(rows) == 1
    return rows.iloc[0]


def backdate(ledger: Ledger, key: str, by: timedelta) -> None:
    """Make an action look as if it was last touched `by` ago (a crashed worker)."""
    table = Action.__table__
    with ledger.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.key == key).values(updated_at=utcnow() - by))


# -- exactly once ----------------------------------------------------------------------------


@pytest.mark.parametrize("before", ["new", "failed", "stale"])
def test_one_of_eight_concurrent_claims_wins(ledger: Ledger, before: str) -> None:
    if before != "new":  # a retry: the action exists and may be taken again by one caller
        assert claim(ledger).claimed
        if before == "failed":
            ledger.mark_failed(KEY, "451 try again later")
        else:
            backdate(ledger, KEY, timedelta(hours=1))
    threads = 8
    start = threading.Barrier(threads)
    results: list = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            results.append(claim(ledger))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    assert len(results) == threads
    assert sum(r.claimed for r in results) == 1
    assert {r.state for r in results if not r.claimed} == {"claimed"}
    row = action(ledger)
    assert row["state"] == "claimed"
    assert row["attempts"] == (1 if before == "new" else 2)


def test_many_keys_claimed_concurrently_each_once(ledger: Ledger) -> None:
    keys = [f"F-{n}:due:email" for n in range(10)]
    start = threading.Barrier(4)
    won: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        for key in keys:
            if claim(ledger, key).claimed:
                with lock:
                    won.append(key)

    pool = [threading.Thread(target=worker) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert sorted(won) == sorted(keys)
    assert len(ledger.frame(Action)) == len(keys)


def test_failed_action_can_be_claimed_again(ledger: Ledger) -> None:
    assert claim(ledger).claimed
    ledger.mark_sending(KEY, "<id@norte.es>")
    ledger.mark_failed(KEY, "451 try again later")
    assert action(ledger)["state"] == "failed"

    again = claim(ledger)
    assert again.claimed
    row = action(ledger)
    assert (row["state"], row["attempts"]) == ("claimed", 2)
    assert not claim(ledger).claimed  # and only once


def test_sent_action_is_never_claimed_again(ledger: Ledger) -> None:
    assert claim(ledger).claimed
    ledger.mark_sending(KEY, "<id@norte.es>")
    ledger.mark_sent(KEY, "250 OK queued")

    for stale_after in (timedelta(minutes=15), timedelta(0)):
        result = claim(ledger, stale_after=stale_after)
        assert not result.claimed
        assert result.state == "sent"
        assert result.message_id == "<id@norte.es>"
    row = action(ledger)
    assert row["provider_response"] == "250 OK queued"
    assert row["sent_at"] is not None


def test_rejected_action_is_not_claimed_again(ledger: Ledger) -> None:
    assert claim(ledger).claimed
    ledger.mark_failed(KEY, "550 no such user", permanent=True)
    result = claim(ledger)
    assert (result.claimed, result.state) == (False, "rejected")


def test_stale_claim_is_retaken(ledger: Ledger) -> None:
    assert claim(ledger).claimed
    # A fresh claim belongs to whoever holds it.
    assert claim(ledger, stale_after=timedelta(minutes=15)).state == "claimed"
    assert not claim(ledger, stale_after=timedelta(minutes=15)).claimed

    backdate(ledger, KEY, timedelta(minutes=20))  # its worker died before sending
    assert claim(ledger, stale_after=timedelta(minutes=15)).claimed
    assert action(ledger)["attempts"] == 2
    # Retaking refreshes it: nobody else takes it now.
    assert not claim(ledger, stale_after=timedelta(minutes=15)).claimed


def test_sending_is_in_doubt_and_never_retaken(ledger: Ledger) -> None:
    assert claim(ledger).claimed
    ledger.mark_sending(KEY, "<id@norte.es>")
    backdate(ledger, KEY, timedelta(days=2))

    result = claim(ledger, stale_after=timedelta(minutes=1))
    assert not result.claimed
    assert result.state == "sending"
    assert result.message_id == "<id@norte.es>"
    doubt = ledger.in_doubt()
    assert list(doubt["key"]) == [KEY]
    assert action(ledger)["attempts"] == 1


# -- tasks -----------------------------------------------------------------------------------


def test_open_task_is_idempotent_per_key(ledger: Ledger) -> None:
    task = dict(
        key=f"{KEY}:escalation",
        title="Call the customer",
        invoice_number="F-1",
        customer_id="C1",
        assignee="account_owner",
    )
    assert ledger.open_task(**task) is True
    assert ledger.open_task(**task) is False
    assert ledger.open_task(**(task | {"title": "Call them again"})) is False

    tasks = ledger.frame(HumanTask)
    assert list(tasks["title"]) == ["Call the customer"]
    assert len(ledger.frame(Event, kind="task_opened")) == 1
    assert ledger.open_task(**(task | {"key": "F-2:final:email:escalation"})) is True


# -- syncing the source ----------------------------------------------------------------------


def invoices(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """(number, amount_due, status) rows as the importer's frame."""
    raw = pd.DataFrame(
        [
            {
                "invoice_number": n,
                "customer_id": "C1",
                "email": "ap@acme.es",
                "amount_total": "1000.00",
                "amount_due": due,
                "due_date": "2026-12-01",
                "status": status,
            }
            for n, due, status in rows
        ],
        dtype=str,
    )
    result = normalize(raw)
    assert result.quarantine.empty
    return result.invoices


def test_second_sync_reports_what_changed(ledger: Ledger) -> None:
    first = ledger.sync_invoices(
        invoices(
            ("F-1", "1000.00", "open"),
            ("F-2", "1000.00", "open"),
            ("F-3", "1000.00", "open"),
            ("F-4", "1000.00", "open"),
        )
    )
    assert (first.new, first.paid, first.part_paid, first.cancelled) == (4, 0, 0, 0)

    second = ledger.sync_invoices(
        invoices(
            ("F-1", "0", "paid"),
            ("F-2", "400.00", "open"),
            ("F-3", "1000.00", "cancelled"),
            ("F-4", "1000.00", "open"),
            ("F-5", "250.00", "open"),
        )
    )
    assert second.new == 1
    assert second.paid == 1
    assert second.part_paid == 1
    assert second.cancelled == 1
    assert second.unchanged == 1

    records = ledger.frame(InvoiceRecord).set_index("invoice_number")
    assert records.loc["F-1", "status"] == "paid"
    assert records.loc["F-2", "amount_due"] == pytest.approx(400.0)
    assert records.loc["F-3", "status"] == "cancelled"
    assert not pd.isna(records.loc["F-1", "closed_at"])
    assert pd.isna(records.loc["F-4", "closed_at"])
    events = ledger.frame(Event)
    by_invoice = dict(zip(events["invoice_number"], events["kind"], strict=True))
    assert by_invoice == {
        "F-1": "invoice_paid",
        "F-2": "invoice_part_paid",
        "F-3": "invoice_cancelled",
    }

    third = ledger.sync_invoices(
        invoices(
            ("F-1", "0", "paid"),
            ("F-2", "400.00", "open"),
            ("F-3", "1000.00", "cancelled"),
            ("F-4", "1000.00", "open"),
            ("F-5", "250.00", "open"),
        )
    )
    assert (third.new, third.paid, third.part_paid, third.cancelled) == (0, 0, 0, 0)
    assert third.unchanged == 5


def test_pauses_reach_the_planner(ledger: Ledger) -> None:
    from datetime import date

    ledger.add_pause("promise", invoice_number="F-1", until=date(2026, 12, 15))
    ledger.add_pause("opt_out", customer_id="C2")
    pauses = ledger.planning_state().pauses
    assert sorted(pauses["kind"]) == ["opt_out", "promise"]
    promise = pauses[pauses["kind"] == "promise"].iloc[0]
    assert pd.Timestamp(promise["until"]) == pd.Timestamp("2026-12-15")
    with pytest.raises(ValueError):
        ledger.add_pause("hold")


def test_customer_status_set_from_parallel_escalations_never_collides(ledger: Ledger) -> None:
    """Several invoices of one customer escalate in the same sweep, on 4 threads."""
    from dunning.ledger import CustomerStatus

    errors: list[Exception] = []

    def escalate(worker: int) -> None:
        try:
            for c in range(20):
                ledger.set_customer_status(f"C{c}", "on_hold", f"final notice ({worker})")
        except Exception as exc:  # noqa: BLE001 - the test counts them
            errors.append(exc)

    threads = [threading.Thread(target=escalate, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    statuses = ledger.frame(CustomerStatus)
    assert len(statuses) == 20 and set(statuses["status"]) == {"on_hold"}
