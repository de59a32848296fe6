"""The `dunning` command line, run as a user runs it (the installed entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.invoices import write_invoices

DUNNING = str(Path(sys.executable).with_name("dunning"))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([DUNNING, *args], capture_output=True, text=True, timeout=120)


def test_plan_json_one_line_per_invoice_and_quarantine_on_stderr(tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="ES-1", due_date="2026-12-02"),
            dict(
                invoice_number="MX-1",
                country="MX",
                timezone="America/Mexico_City",
                currency="MXN",
                due_date="2026-12-02",
            ),
            dict(invoice_number="PAID-1", status="paid", amount_due="0", due_date="2026-12-02"),
            dict(invoice_number="BAD-1", amount_due="-3", due_date="2026-12-02"),
        ],
    )
    proc = run(
        "plan", "--invoices", str(csv), "--now", "2026-12-09T10:00:00+01:00", "--format", "json"
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    by_invoice = {r["invoice"]: r for r in lines}
    assert set(by_invoice) == {"ES-1", "MX-1", "PAID-1"}
    es = by_invoice["ES-1"]
    assert (es["stage"], es["channel"], es["send_at"]) == (
        "overdue_7",
        "email",
        "2026-12-09T10:00:00+01:00",
    )
    # 10:00 in Madrid is 03:00 in Mexico City: the window opens at 09:00 local, later than now.
    assert by_invoice["MX-1"]["send_at"] == "2026-12-09T09:00:00-06:00"
    assert by_invoice["PAID-1"]["skip_reason"] == "paid"
    assert "row 4" in proc.stderr and "BAD-1" in proc.stderr and "amount_due" in proc.stderr


def test_plan_table_and_clear_errors(tmp_path):
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="T-1", due_date="2026-12-02")])
    table = run(
        "plan", "--invoices", str(csv), "--now", "2026-12-09T10:00:00+01:00", "--format", "table"
    )
    assert table.returncode == 0 and "T-1" in table.stdout and "overdue_7" in table.stdout
    missing = run("plan", "--invoices", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    naive = run("plan", "--invoices", str(csv), "--now", "2026-12-09T10:00:00")
    assert naive.returncode != 0 and "offset" in naive.stderr


def test_plan_reads_the_ledger_and_a_policy_file(tmp_path):
    from dunning.ledger import Ledger

    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="L-1", due_date="2026-12-02")])
    url = f"sqlite:///{tmp_path}/l.db"
    ledger = Ledger(url)
    ledger.claim(
        key="L-1:overdue_7:email",
        invoice_number="L-1",
        customer_id="C1",
        stage="overdue_7",
        channel="email",
    )
    ledger.mark_sent("L-1:overdue_7:email")
    proc = run(
        "plan", "--invoices", str(csv), "--ledger", url, "--now", "2026-12-09T10:00:00+01:00"
    )
    assert json.loads(proc.stdout)["skip_reason"] == "already_sent"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "stages:\n  - {name: due, offset_days: 0}\nwindow: {start: '08:00', end: '20:00'}\n"
    )
    proc = run(
        "plan",
        "--invoices",
        str(csv),
        "--policy",
        str(policy),
        "--now",
        "2026-12-09T19:00:00+01:00",
    )
    assert json.loads(proc.stdout)["stage"] == "due"
