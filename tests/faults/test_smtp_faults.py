"""The SMTP server fails: it stops mid-sweep and comes back, it crashes, it refuses some
recipients for now (4xx) or for good (5xx). Every reminder goes out once or is reported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from blocks import CsvInvoiceSource, LedgerDatabase
from dunning.ledger import Action, HumanTask, Ledger
from dunning.smtp import SmtpPool, SmtpSettings
from flows.sweep import dunning_sweep
from tests.faults import core
from tests.faults.smtpfaults import FaultSink, duplicates
from tests.invoices import write_invoices
from tests.test_flows import NOW, channel_for


def _invoices(path: Path, n: int, prefix: str = "S") -> Path:
    return write_invoices(
        path,
        [
            dict(
                invoice_number=f"{prefix}-{i:04d}",
                email=f"ap{i}@c{i}.example",
                due_date="2026-12-02",
            )
            for i in range(n)
        ],
    )


def _states(url: str) -> pd.Series:
    return Ledger(url).frame(Action).set_index("key")["state"]


def test_smtp_down_for_seconds_mid_sweep_every_reminder_once_after_retries(
    prefect_api, fault_sink: FaultSink, tmp_path, figures
):
    """The peer's case: 300 due, the server stops after the 50th for 3 s. The send tasks'
    retries (2 s, 10 s, 30 s) carry the other 250 once the server is back."""
    csv = _invoices(tmp_path / "inv.csv", 300)
    url = f"sqlite:///{tmp_path}/l.db"
    fault_sink.outage(after=50, seconds=3, graceful=True)
    counts = dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(fault_sink),
        ledger=LedgerDatabase(url=url),
        now=NOW,
    )
    fault_sink.wait_idle()
    copies = fault_sink.by_message_id()
    assert fault_sink.outages, "the server never went down"
    assert counts["sent"] == 300 and counts["failed"] == 0, counts
    assert len(copies) == 300 and duplicates(copies) == 0
    actions = Ledger(url).frame(Action)
    assert (actions["state"] == "sent").all()
    retried = int((actions["attempts"] > 1).sum())
    assert retried > 0  # the outage did refuse messages, and their retries got through
    figures(due=300, sent=len(copies), lost=0, duplicated=duplicates(copies), retried=retried)


def test_smtp_crash_mid_sweep_next_run_sends_the_rest_once(
    fault_sink: FaultSink, tmp_path, figures
):
    """The server drops every connection after the 50th message and stays down for the rest
    of the run; the next run sends what was refused. A message in flight at the crash is in
    doubt: reported, never sent a second time."""
    csv = _invoices(tmp_path / "inv.csv", 300, prefix="X")
    url = f"sqlite:///{tmp_path}/l.db"
    ledger = Ledger(url)
    read, lookup = core.csv_source(str(csv))
    pool = SmtpPool(SmtpSettings(fault_sink.host, fault_sink.port, timeout=10), size=8)
    fault_sink.outage(after=50, seconds=None, graceful=False)
    first = core.counts(core.sweep(read, lookup, ledger, pool))
    fault_sink.wait_idle()
    assert first.get("failed", 0) >= 200, (
        first
    )  # refused while down: nothing lost, retried next run
    fault_sink.start()
    second = core.counts(core.sweep(read, lookup, ledger, pool))
    pool.close()
    states = _states(url)
    copies = fault_sink.by_message_id()
    in_doubt = ledger.in_doubt()
    assert len(states) == 300 and set(states) <= {"sent", "sending"}, states.value_counts()
    assert duplicates(copies) == 0
    sent_ids = set(ledger.frame(Action).query("state == 'sent'")["message_id"])
    assert sent_ids <= set(copies)  # every message recorded as sent arrived
    assert len(in_doubt) == (states == "sending").sum()
    # The next run plans nothing for them (in doubt) and sends every refused one.
    assert first.get("sent", 0) + second.get("sent", 0) + len(in_doubt) == 300
    figures(
        due=300,
        sent=int((states == "sent").sum()),
        in_doubt=len(in_doubt),
        in_doubt_arrived=len(set(in_doubt["message_id"]) & set(copies)),
        lost=300 - len(states),
        duplicated=duplicates(copies),
        failed_first_run=first.get("failed", 0),
    )


def test_temporary_refusal_is_retried_permanent_is_recorded_and_the_sweep_goes_on(
    fault_sink: FaultSink, tmp_path, figures
):
    csv = _invoices(tmp_path / "inv.csv", 20, prefix="R")
    url = f"sqlite:///{tmp_path}/l.db"
    ledger = Ledger(url)
    fault_sink.refuse("ap1@c1.example", "450 4.2.1 Mailbox busy, try later", times=1)
    fault_sink.refuse("ap2@c2.example", "550 5.1.1 No such user here")
    fault_sink.refuse("ap3@c3.example", "452 4.3.1 Insufficient system storage")
    read, lookup = core.csv_source(str(csv))
    pool = SmtpPool(SmtpSettings(fault_sink.host, fault_sink.port, timeout=10), size=4)
    outcomes = {o["key"]: o for o in core.sweep(read, lookup, ledger, pool, retry_delays=[0.1])}
    actions = ledger.frame(Action).set_index("invoice_number")
    arrived = [m["To"] for m in fault_sink.messages()]

    assert actions.loc["R-0001", "state"] == "sent" and actions.loc["R-0001", "attempts"] == 2
    assert actions.loc["R-0002", "state"] == "rejected"
    assert "550 5.1.1 No such user" in actions.loc["R-0002", "error"]
    assert "550" in outcomes["R-0002:overdue_7:email"]["reason"]
    bounce = ledger.frame(HumanTask).query("invoice_number == 'R-0002'")
    assert bounce["title"].str.contains("ap2@c2.example refused").all() and len(bounce) == 1
    assert actions.loc["R-0003", "state"] == "failed"  # temporary: retaken by the next run
    assert "452 4.3.1" in actions.loc["R-0003", "error"]
    assert sorted(arrived) == sorted(f"ap{i}@c{i}.example" for i in range(20) if i not in (2, 3))

    fault_sink.handler.refusals.pop("ap3@c3.example")  # the mailbox has room again
    again = core.counts(core.sweep(read, lookup, ledger, pool))
    pool.close()
    assert again == {"sent": 1}, again  # the plan skips the sent ones and the rejected one
    copies = fault_sink.by_message_id()
    assert len(copies) == 19 and duplicates(copies) == 0
    figures(due=20, sent=19, rejected=1, retried_4xx=2, duplicated=duplicates(copies), lost=0)
