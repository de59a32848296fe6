"""The reusable tasks `open_human_task` and `log_to_crm`: as `.fn()` (a notebook, a unit test)
and inside an ad-hoc flow on a real Prefect server; what a person and the CRM then see."""

from __future__ import annotations

from datetime import date

from prefect import flow

from blocks import LedgerDatabase
from dunning.ledger.crm_outbox import pending_entries
from dunning.ledger.tasks import list_tasks
from tasks.people import log_to_crm, open_human_task
from tests.test_flows import task_runs_of


def _ledger(tmp_path) -> LedgerDatabase:
    return LedgerDatabase(url=f"sqlite:///{tmp_path / 'ledger.db'}")


def test_open_human_task_opens_once_and_reaches_the_crm_outbox(tmp_path):
    ledger = _ledger(tmp_path)
    args = dict(invoice_number="F-1", customer_id="C1", assignee="ana@acme.example")
    first = open_human_task.fn(
        ledger, "F-1:call", "Call Ebro about F-1", due_on=date(2026, 12, 10), **args
    )
    again = open_human_task.fn(ledger, "F-1:call", "Call Ebro about F-1 (again)", **args)
    assert (first, again) == (True, False)

    tasks = list_tasks(ledger.get_ledger())
    assert [(t["title"], t["assignee"], t["due"], t["state"]) for t in tasks] == [
        ("Call Ebro about F-1", "ana@acme.example", "2026-12-10", "open")
    ]
    [entry] = pending_entries(ledger.get_ledger())
    assert (entry.kind, entry.invoice_number, entry.customer_id) == ("task", "F-1", "C1")
    assert entry.payload["title"] == "Call Ebro about F-1"
    assert entry.payload["assignee"] == "ana@acme.example"


def test_log_to_crm_queues_a_note_and_a_status_once(tmp_path):
    ledger = _ledger(tmp_path)
    assert log_to_crm.fn(ledger, "F-1:called", "Called: pays on Friday", invoice_number="F-1")
    assert not log_to_crm.fn(ledger, "F-1:called", "Called twice", invoice_number="F-1")
    assert log_to_crm.fn(ledger, "C1:hold", "Legal review", status="on_hold", customer_id="C1")

    entries = {e.key: e for e in pending_entries(ledger.get_ledger())}
    assert set(entries) == {"F-1:called", "C1:hold"}
    note, status = entries["F-1:called"], entries["C1:hold"]
    assert (note.kind, note.payload["text"]) == ("note", "Called: pays on Friday")
    assert (status.kind, status.payload["status"], status.payload["reason"]) == (
        "status",
        "on_hold",
        "Legal review",
    )


def test_both_tasks_in_an_ad_hoc_flow(tmp_path, prefect_api):
    ledger = _ledger(tmp_path)

    @flow(name="call-big-debtors")
    def call_big_debtors(numbers: list[str]) -> list[bool]:
        opened = []
        for number in numbers:
            opened.append(
                open_human_task(
                    ledger, f"{number}:call", f"Call about {number}", invoice_number=number
                )
            )
            log_to_crm(ledger, f"{number}:scheduled", "Call scheduled", invoice_number=number)
        return opened

    state = call_big_debtors(["F-1", "F-2"], return_state=True)
    assert state.is_completed()
    assert state.result() == [True, True]
    assert [t["invoice"] for t in list_tasks(ledger.get_ledger())] == ["F-1", "F-2"]
    kinds = sorted((e.kind, e.key) for e in pending_entries(ledger.get_ledger()))
    assert kinds == [
        ("note", "F-1:scheduled"),
        ("note", "F-2:scheduled"),
        ("task", "F-1:call"),
        ("task", "F-2:call"),
    ]
    runs = task_runs_of(state.state_details.flow_run_id, lambda runs: len(runs) >= 4)
    assert sorted(r.name for r in runs) == [
        "crm-F-1:scheduled",
        "crm-F-2:scheduled",
        "task-F-1:call",
        "task-F-2:call",
    ]


def test_tasks_listed_from_postgresql(pg_url):
    ledger = LedgerDatabase(url=pg_url)
    open_human_task.fn(
        ledger, "F-1:call", "Call", invoice_number="F-1", assignee="Ana@acme.example"
    )
    open_human_task.fn(ledger, "F-2:decide", "Decide", invoice_number="F-2", assignee="manager")
    store = ledger.get_ledger()
    assert [t["invoice"] for t in list_tasks(store, assignee="ana@ACME.example")] == ["F-1"]
    assert [t["title"] for t in list_tasks(store, state=None)] == ["Call", "Decide"]
    assert list_tasks(store, state="closed") == []
