"""Desk decisions on a real ledger (SQLite file and the machine's PostgreSQL), and the
`dunning desk adduser` command."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa

from apps.desk import decisions, queries
from apps.desk.auth import User, add_user, authenticate
from dunning.ledger import Ledger
from dunning.ledger.models import CrmEntry, DeskUser, Event, HumanTask, Pause
from dunning.policy import default_policy

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 12, 9)
MANAGER = User("jefa@acme.example", "manager")
COLLECTOR = User("cobrador@acme.example", "collector")


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path) -> Ledger:
    if request.param == "sqlite":
        led = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    else:
        led = Ledger(request.getfixturevalue("pg_url"))
    frame = {
        "invoice_number": ["F-1", "F-2"],
        "customer_id": ["C1", "C2"],
        "customer_name": ["Ebro", "Beta"],
        "email": ["a@ebro.example", "b@beta.example"],
        "amount_due": [100.0, 200.0],
        "amount_total": [100.0, 200.0],
        "due_date": [date(2026, 11, 1), date(2026, 11, 1)],
        "status": ["open", "open"],
        "currency": ["EUR", "EUR"],
        "phone": ["+34600111222", ""],
    }
    led.sync_invoices(pd.DataFrame(frame))
    led.open_task(key="F-1:call", title="Call", invoice_number="F-1", customer_id="C1",
                  assignee="account_owner", due_on=TODAY)  # fmt: skip
    led.open_task(key="F-2:final", title="Decide", invoice_number="F-2", customer_id="C2",
                  assignee="manager", due_on=TODAY)  # fmt: skip
    return led


def _task_id(ledger: Ledger, key: str) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(HumanTask.id).where(HumanTask.key == key)).scalar_one()


def _pauses(ledger: Ledger):
    return ledger.frame(Pause, active=True)


def test_dispute_pauses_the_invoice_and_is_logged_with_who(ledger):
    tid = _task_id(ledger, "F-1:call")
    closing = decisions.Closing("dispute", reason="Importe incorrecto")
    decisions.close_task(ledger, COLLECTOR, tid, closing, TODAY)
    pauses = _pauses(ledger)
    assert list(pauses["kind"]) == ["dispute"] and list(pauses["invoice_number"]) == ["F-1"]
    with ledger.engine.connect() as conn:
        closed = conn.execute(
            sa.select(Event.actor, Event.detail).where(Event.kind == "task_closed")
        ).one()
        crm = conn.execute(sa.select(CrmEntry.payload).where(CrmEntry.kind == "note")).all()
    assert closed.actor == f"desk:{COLLECTOR.email}"
    assert closed.detail["outcome"] == "dispute"
    assert any("Importe incorrecto" in p.payload["text"] for p in crm)
    with pytest.raises(decisions.DecisionError, match="already closed"):
        decisions.close_task(ledger, COLLECTOR, tid, closing, TODAY)


def test_no_answer_opens_a_retry_task_and_paid_waits_for_the_payment(ledger):
    tid = _task_id(ledger, "F-1:call")
    decisions.close_task(
        ledger, COLLECTOR, tid, decisions.Closing("no_answer", on=date(2026, 12, 11)), TODAY
    )
    page = queries.open_tasks(ledger, COLLECTOR)
    assert [(r["invoice_number"], r["due_on"]) for r in page.rows] == [("F-1", date(2026, 12, 11))]
    assert _pauses(ledger).empty  # reminders go on
    retry = page.rows[0]["id"]
    # The desk waits the policy's payment_verification_days, like an "already paid" reply.
    week = default_policy().model_copy(deep=True)
    week.replies.payment_verification_days = 7
    decisions.close_task(ledger, COLLECTOR, retry, decisions.Closing("paid"), TODAY, week)
    pauses = _pauses(ledger)
    assert list(pauses["kind"]) == ["verify_payment"]
    assert pd_date(pauses["until"].iloc[0]) == date(2026, 12, 16)


def pd_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def test_bad_closings_say_which_field(ledger):
    tid = _task_id(ledger, "F-1:call")
    for closing, field in [
        (decisions.Closing("promise"), "date"),
        (decisions.Closing("promise", on=date(2026, 12, 1)), "date"),
        (decisions.Closing("dispute"), "reason"),
        (decisions.Closing("shrug"), "outcome"),
    ]:
        with pytest.raises(decisions.DecisionError, match=f"^{field}:"):
            decisions.close_task(ledger, COLLECTOR, tid, closing, TODAY)
    with pytest.raises(decisions.NotAllowed):
        decisions.close_task(
            ledger, COLLECTOR, _task_id(ledger, "F-2:final"), decisions.Closing("paid"), TODAY
        )


def test_collectors_see_their_tasks_and_customers_managers_everything(ledger):
    mine = queries.open_tasks(ledger, COLLECTOR)
    every = queries.open_tasks(ledger, MANAGER)
    assert [r["invoice_number"] for r in mine.rows] == ["F-1"]
    # Same due day: the larger amount at stake first.
    assert [r["invoice_number"] for r in every.rows] == ["F-2", "F-1"]
    assert queries.can_see_customer(ledger, COLLECTOR, "C1")
    assert not queries.can_see_customer(ledger, COLLECTOR, "C2")
    assert [r["customer_id"] for r in queries.search(ledger, COLLECTOR, "F-")] == ["C1"]
    assert {r["customer_id"] for r in queries.search(ledger, MANAGER, "beta")} == {"C2"}
    assert [r["customer_id"] for r in queries.search(ledger, MANAGER, "a@ebro")] == ["C1"]
    for phone in ("+34600111222", "34 600 111 222"):
        assert [r["customer_id"] for r in queries.search(ledger, MANAGER, phone)] == ["C1"]
    assert queries.search(ledger, MANAGER, "zzz") == []


def test_pause_and_resume_one_invoice_or_the_customer(ledger):
    decisions.pause(ledger, MANAGER, customer_id="C1", invoice_number="F-1", reason="a")
    decisions.pause(ledger, MANAGER, customer_id="C1", reason="b")
    assert sorted(_pauses(ledger)["reason"]) == ["a", "b"]
    assert decisions.resume(ledger, MANAGER, customer_id="C1", reason="ok") == 1
    assert list(_pauses(ledger)["reason"]) == ["a"]
    assert decisions.resume(ledger, MANAGER, customer_id="C1", invoice_number="F-1", reason="ok")
    assert _pauses(ledger).empty
    with pytest.raises(decisions.DecisionError, match="^reason:"):
        decisions.pause(ledger, MANAGER, customer_id="C1", reason=" ")


def test_resuming_an_invoice_ends_a_dispute_but_never_an_opt_out(ledger):
    ledger.add_pause("dispute", invoice_number="F-1", customer_id="C1", reason="angry reply")
    ledger.add_pause("opt_out", customer_id="C1", channel="email", reason="unsubscribe")
    ended = decisions.resume(
        ledger, MANAGER, customer_id="C1", invoice_number="F-1", reason="credit note agreed"
    )
    assert ended == 1
    active = ledger.frame(Pause, active=True)
    assert active["kind"].tolist() == ["opt_out"]


def test_adduser_reads_the_password_from_stdin_and_stores_only_a_hash(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    cmd = [sys.executable, "-m", "apps.cli", "desk", "adduser", "Maria@Acme.example",
           "--role", "manager", "--ledger", url]  # fmt: skip
    done = subprocess.run(cmd, input="s3cret-pass\n", capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "added maria@acme.example (manager)" in done.stdout
    ledger = Ledger(url)
    with ledger.engine.connect() as conn:
        digest = conn.execute(sa.select(DeskUser.password_hash)).scalar_one()
    assert digest.startswith("$argon2id$") and "s3cret-pass" not in digest
    assert authenticate(ledger, "maria@acme.example", "s3cret-pass") == User(
        "maria@acme.example", "manager"
    )
    assert authenticate(ledger, "maria@acme.example", "wrong-pass") is None
    short = subprocess.run(cmd, input="short\n", capture_output=True, text=True, cwd=ROOT)
    assert short.returncode == 2 and "at least 8" in short.stderr
    with pytest.raises(ValueError, match="role"):
        add_user(ledger, "x@acme.example", "long-enough", "boss")


def test_task_list_pages_and_filters(ledger):
    for i in range(120):
        ledger.open_task(
            key=f"bulk:{i}",
            title=f"Call {i}",
            invoice_number="F-1",
            customer_id="C1",
            assignee="account_owner",
            due_on=date(2026, 12, 20),
        )
    first = queries.open_tasks(ledger, MANAGER, per_page=50)
    third = queries.open_tasks(ledger, MANAGER, page=3, per_page=50)
    assert len(first.rows) == 50 and first.has_next
    assert len(third.rows) == 22 and not third.has_next  # 120 + the two of the fixture
    assert first.assignees == ["account_owner", "manager"]
    only = queries.open_tasks(ledger, MANAGER, assignee="manager")
    assert [r["invoice_number"] for r in only.rows] == ["F-2"]
    # A collector asking for the manager's tasks still gets only their own.
    assert queries.open_tasks(ledger, COLLECTOR, assignee="manager").rows == []


def test_desk_serve_command_answers_and_guards_pages(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"sqlite:///{tmp_path}/ledger.db"
    cmd = [sys.executable, "-m", "apps.cli", "desk", "serve", "--port", str(port),
           "--ledger", url, "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "desk did not start"
                time.sleep(0.2)
        assert health.text == "ok"
        tasks = httpx.get(f"http://127.0.0.1:{port}/tasks", follow_redirects=False)
        assert tasks.status_code == 303 and tasks.headers["location"] == "/login?next=%2Ftasks"
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
    finally:
        server.terminate()
        server.wait(10)


def test_search_never_adds_amounts_across_currencies(ledger):
    ledger.sync_invoices(
        pd.DataFrame(
            {
                "invoice_number": ["M-1", "M-2", "M-3"],
                "customer_id": ["MIX", "MIX", "ONE"],
                "customer_name": ["Mixta SA", "Mixta SA", "Una SL"],
                "email": "x@m.example",
                "currency": ["EUR", "USD", "EUR"],
                "amount_total": 100.0,
                "amount_due": 100.0,
                "due_date": pd.Timestamp("2026-11-02"),
                "status": "open",
            }
        )
    )
    rows = {r["customer_id"]: r for r in queries.search(ledger, MANAGER, "x@m.example")}
    assert rows["MIX"]["currencies"] == 2
    assert (rows["ONE"]["currencies"], rows["ONE"]["currency"]) == (1, "EUR")
