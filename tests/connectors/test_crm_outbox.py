"""The CRM outbox in the ledger (SQLite and PostgreSQL): once per key, claimed once, kept
pending while the CRM is down."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from dunning.crm import (
    CrmRejected,
    CrmUnavailable,
    LedgerSink,
    count_by_state,
    deliver_pending,
    pending_entries,
    queue_entry,
    queue_note,
    queue_task,
)
from dunning.ledger import CrmEntry, Ledger


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request, tmp_path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path}/l.db")
    return Ledger(request.getfixturevalue("pg_url"))


class Recorder:
    """A CRM that records what it got; it can be down or refuse some invoices."""

    crm_name = "recorder"

    def __init__(self, *, down: bool = False, refuse: str = "") -> None:
        self.down, self.refuse = down, refuse
        self.got: list[str] = []
        self._lock = threading.Lock()

    def deliver(self, entry: CrmEntry) -> str:
        if self.down:
            raise CrmUnavailable("recorder is down")
        if self.refuse and entry.invoice_number == self.refuse:
            raise CrmRejected(f"no record for {entry.invoice_number}")
        time.sleep(0.002)  # a CRM takes a while: other deliveries list the entry meanwhile
        with self._lock:
            self.got.append(entry.key)
        return f"r-{entry.id}"


def test_an_entry_is_queued_once_per_key(ledger):
    assert queue_note(ledger, key="F-1:due:email:note", invoice_number="F-1", text="sent")
    assert not queue_note(ledger, key="F-1:due:email:note", invoice_number="F-1", text="again")
    (entry,) = pending_entries(ledger)
    assert entry.kind == "note" and entry.payload["text"] == "sent"
    with pytest.raises(ValueError, match="unknown CRM entry kind 'memo'"):
        queue_entry(ledger, key="x", kind="memo", payload={})


def test_refused_entries_fail_with_the_reason_and_the_rest_go_on(ledger):
    for n in range(4):
        queue_task(
            ledger,
            key=f"t{n}",
            invoice_number=f"F-{n}",
            title="Call",
            assignee="account_owner",
            due_on=date(2026, 12, 10),
        )
    crm = Recorder(refuse="F-2")
    report = deliver_pending(ledger, crm)
    assert (report.delivered, report.failed, report.pending) == (3, 1, 0)
    failed = ledger.frame(CrmEntry, key="t2").iloc[0]
    assert failed.state == "failed" and failed.error == "no record for F-2"
    assert ledger.frame(CrmEntry, key="t0").iloc[0].external_id.startswith("r-")


def test_a_crm_that_is_down_leaves_everything_pending(ledger):
    for n in range(3):
        queue_note(ledger, key=f"n{n}", text=f"note {n}")
    report = deliver_pending(ledger, Recorder(down=True))
    assert (report.delivered, report.pending, report.error) == (0, 3, "recorder is down")
    entry = ledger.frame(CrmEntry, key="n0").iloc[0]
    assert entry.state == "pending" and entry.attempts == 1 and entry.error == "recorder is down"
    assert deliver_pending(ledger, Recorder()).delivered == 3


def test_concurrent_deliveries_deliver_each_entry_once(ledger):
    for n in range(60):
        queue_note(ledger, key=f"n{n}", text=f"note {n}")
    crm = Recorder()
    threads = [threading.Thread(target=deliver_pending, args=(ledger, crm)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(crm.got) == sorted(f"n{n}" for n in range(60))
    assert count_by_state(ledger) == {"done": 60}


def test_the_ledger_crm_marks_entries_done_a_batch_at_a_time(ledger):
    for n in range(3):
        queue_note(ledger, key=f"n{n}", text="x")
    report = deliver_pending(ledger, LedgerSink(), limit=2)
    assert (report.delivered, report.pending, report.crm) == (2, 1, "ledger")
    entries = ledger.frame(CrmEntry).sort_values("id")
    assert list(entries.state) == ["done", "done", "pending"]  # oldest first
    first = entries.iloc[0]
    assert first.external_id == f"ledger:note:{first.id}" and first.attempts == 1
    assert deliver_pending(ledger, LedgerSink()).delivered == 1
    assert count_by_state(ledger) == {"done": 3}


def test_an_unexpected_crm_answer_fails_that_entry_not_the_queue(ledger):
    class Surprising(Recorder):
        def deliver(self, entry: CrmEntry) -> str:
            if entry.invoice_number == "F-2":
                return {}["id"]  # a 2xx without the id we expected
            return super().deliver(entry)

    for n in (1, 2, 3):
        queue_note(ledger, key=f"F-{n}:note", invoice_number=f"F-{n}", text="sent")
    sink = Surprising()
    report = deliver_pending(ledger, sink)
    assert (report.delivered, report.failed) == (2, 1)
    assert sink.got == ["F-1:note", "F-3:note"]
    failed = ledger.frame(CrmEntry, state="failed")
    assert failed["key"].tolist() == ["F-2:note"] and "KeyError" in failed["error"].iloc[0]
