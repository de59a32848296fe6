"""The sweep benchmark's Prefect event count (issue 15): what the server holds for a real
sweep's flow run, paged through, and the figure its summary artifact published; and the
verdict on the target (< 2,000 events for 10,000 reminders)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from prefect_email import EmailServerCredentials

from apps.mailsink import MailSink
from bench.sweep_bench import _wait_events, verdict
from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
from flows.sweep import dunning_sweep
from tests.desk.conftest import INVOICES, NOW
from tests.invoices import write_invoices


def test_the_bench_counts_every_event_of_the_sweep_as_the_summary_published(
    prefect_api, tmp_path: Path
):
    since = datetime.now(UTC) - timedelta(seconds=5)
    csv = write_invoices(tmp_path / "invoices.csv", INVOICES)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        state = dunning_sweep(
            source=CsvInvoiceSource(path=str(csv)),
            channel=EmailChannel(
                credentials=EmailServerCredentials(
                    smtp_server=sink.host, smtp_port=sink.port, smtp_type="INSECURE"
                ),
                from_address="cobros@acme.example",
                from_name="Acme S.L.",
            ),
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/ledger.db"),
            now=NOW,
            return_state=True,
        )
        assert state.result()["sent"] == 4 == len(sink.messages())
    run_id = str(state.state_details.flow_run_id)
    api = str(prefect_api)

    counted = _wait_events(api, [run_id], since, timeout=120)

    task_runs = httpx.post(
        f"{api}/task_runs/count", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=30
    ).json()
    assert task_runs >= 4  # fetch, sync, plan, the reminders, ...
    assert counted["events"] == counted["events_paged"] == counted["events_published"]
    by_name = counted["events_by_name"]
    for state_name in ("Pending", "Running", "Completed"):
        assert by_name[f"prefect.task-run.{state_name}"] == task_runs
    assert by_name["prefect.flow-run.Completed"] == 1


def _sweep(sent: int, events: int) -> dict:
    return {"scenario": "sweep", "sent": sent, "rate": 100.0, "peak_mb": 300.0, "events": events}


def test_the_event_target_is_judged_only_on_a_sweep_of_ten_thousand():
    raw = {"rate": 500.0}
    assert "< 2,000 Prefect events for 10,000 reminders (1,999 for 10,000): MET" in verdict(
        [_sweep(10_000, 1_999)], raw
    )
    assert "(2,000 for 10,000): NOT MET" in verdict([_sweep(10_000, 2_000)], raw)
    assert "(311 for 400: too few reminders to judge): NOT JUDGED" in verdict(
        [_sweep(400, 311)], raw
    )
