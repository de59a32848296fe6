"""The ledger fails or is shared: unavailable when a sweep starts (a clear error, nothing
sent), and two sweeps plus per-invoice runs at once on PostgreSQL (no duplicates)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.mailsink import free_port
from blocks import CsvInvoiceSource, LedgerDatabase
from dunning.ledger import Action, Ledger
from flows.sweep import dunning_sweep
from tests.faults.smtpfaults import FaultSink, duplicates
from tests.invoices import write_invoices
from tests.test_flows import NOW, channel_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("where", ["closed_port", "no_database"])
def test_ledger_unavailable_at_start_fails_clearly_and_sends_nothing(
    prefect_api, fault_sink: FaultSink, tmp_path, where
):
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="L-1", due_date="2026-12-02")])
    url = (
        f"postgresql://postgres@127.0.0.1:{free_port()}/dunning"
        if where == "closed_port"
        else "postgresql://postgres@127.0.0.1:5432/dunning_no_such_db"
    )
    state = dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(fault_sink),
        ledger=LedgerDatabase(url=url, password="hunter2-secret"),
        now=NOW,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(Exception) as failure:
        state.result()
    message = str(failure.value)
    assert "ledger database" in message and "127.0.0.1" in message
    assert ("Connection refused" if where == "closed_port" else "does not exist") in message
    assert "hunter2-secret" not in message
    assert fault_sink.messages() == []


def _run_core(csv: Path, url: str, sink: FaultSink, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.faults.core", "--invoices", str(csv), "--ledger", url]
    cmd += ["--smtp-port", str(sink.port), *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )


def test_two_sweeps_and_per_invoice_runs_at_once_on_postgres_send_each_once(
    pg_url, fault_sink: FaultSink, tmp_path, figures
):
    n = 120
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number=f"P-{i:03d}", email=f"p{i}@p{i}.example", due_date="2026-12-02")
            for i in range(n)
        ],
    )
    Ledger(pg_url)  # the schema, so that the three start on equal terms
    # From the end of the list: the sweeps work from the start, so they meet half-way.
    singles = [a for i in range(n - 1, -1, -6) for a in ("--invoice", f"P-{i:03d}")]
    procs = [
        _run_core(csv, pg_url, fault_sink),
        _run_core(csv, pg_url, fault_sink),
        _run_core(csv, pg_url, fault_sink, *singles),
    ]
    results = [p.communicate(timeout=180) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    counts = [json.loads(out.strip().splitlines()[-1])["counts"] for out, _ in results]
    copies = fault_sink.by_message_id()
    keys = [m["X-Dunning-Key"] for m in fault_sink.messages()]
    assert sum(c.get("sent", 0) for c in counts) == n, counts
    assert len(keys) == n and len(set(keys)) == n and duplicates(copies) == 0
    assert (Ledger(pg_url).frame(Action)["state"] == "sent").all()
    figures(due=n, sent=len(keys), duplicated=duplicates(copies), per_process=counts)
