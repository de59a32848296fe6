"""The daily loop end to end: real Prefect server (test harness), real SMTP on loopback, real
SQLite files and the machine's PostgreSQL."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import textwrap
from datetime import datetime
from email import policy as email_policy
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect_email import EmailServerCredentials

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
from dunning.ledger import Action, HumanTask, Ledger
from dunning.mail import message_id
from flows.sweep import dunning_invoice, dunning_sweep
from tests.invoices import write_invoices

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")  # a Wednesday, after the 8th (holiday)


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


def channel_for(sink: MailSink, **extra) -> EmailChannel:
    return EmailChannel(
        credentials=EmailServerCredentials(
            smtp_server=sink.host, smtp_port=sink.port, smtp_type="INSECURE"
        ),
        from_address="cobros@acme.example",
        from_name="Acme S.L.",
        reply_to="maria@acme.example",
        **extra,
    )


def task_runs_of(flow_run_id, until, timeout: float = 30.0) -> list:
    """The flow run's task runs as the API shows them, once `until(runs)` holds: the
    server records task runs from their events, in batches, up to a second later."""
    import time

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            if until(runs) or time.monotonic() > deadline:
                return runs
            time.sleep(0.2)


def run_sweep(csv: Path, sink: MailSink, ledger_url: str, now: datetime = NOW, **kw) -> dict:
    return dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(sink, **kw),
        ledger=LedgerDatabase(url=ledger_url),
        now=now,
    )


def test_reminder_arrives_with_locale_amount_link_attachment_and_ids(prefect_api, sink, tmp_path):
    pdf = tmp_path / "F-100.pdf"
    pdf.write_bytes(b"%PDF-1.4 test invoice")
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(
                invoice_number="F-100",
                customer_name="Talleres Ebro S.L.",
                email="pagos@ebro.example",
                amount_total="2000.00",
                amount_due="1234.56",
                due_date="2026-12-02",
                payment_link="https://pay.example/F-100",
                pdf_path=str(pdf),
            ),
            dict(
                invoice_number="US-7",
                customer_name="Beta Inc",
                email="ap@beta.example",
                country="US",
                language="en",
                timezone="America/New_York",
                currency="USD",
                amount_total="1234.56",
                amount_due="1234.56",
                due_date="2026-12-02",
            ),
        ],
    )
    counts = run_sweep(
        csv,
        sink,
        f"sqlite:///{tmp_path}/ledger.db",
        now=datetime.fromisoformat("2026-12-09T16:00:00+01:00"),
        bcc_archive="archive@acme.example",
    )
    assert counts["sent"] == 2, counts
    by_to = {m["To"]: m for m in sink.messages()}
    es = by_to["pagos@ebro.example"]
    assert "F-100" in es["Subject"]
    assert es["Reply-To"] == "maria@acme.example"
    assert es["Message-ID"] == message_id("F-100:overdue_7:email", "acme.example")
    assert "Bcc" not in es and "archive@acme.example" in es["X-Envelope-To"]
    body = es.get_body(("plain",)).get_content()
    assert "1.234,56\xa0€" in body  # remaining amount of a part-paid invoice, es_ES format
    assert "https://pay.example/F-100" in body
    assert [a.get_filename() for a in es.iter_attachments()] == ["F-100.pdf"]
    us_body = by_to["ap@beta.example"].get_body(("plain",)).get_content()
    assert "$1,234.56" in us_body


def test_second_sweep_sends_nothing(prefect_api, sink, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [dict(invoice_number=f"F-{i}", due_date="2026-12-02") for i in range(5)],
    )
    url = f"sqlite:///{tmp_path}/ledger.db"
    assert run_sweep(csv, sink, url)["sent"] == 5
    again = run_sweep(csv, sink, url)
    assert again["sent"] == 0 and again["skipped"] == {"already_sent": 5}
    assert len(sink.messages()) == 5


def test_run_shows_task_per_action_and_summary_artifact(prefect_api, sink, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="F-1", due_date="2026-12-02"),
            dict(invoice_number="F-2", due_date="2026-12-02", status="paid", amount_due="0"),
            dict(invoice_number="F-3", due_date="not a date"),
        ],
    )
    state = dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(sink),
        ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
        now=NOW,
        return_state=True,
    )
    run_id = state.state_details.flow_run_id
    runs = task_runs_of(run_id, until=lambda runs: any(t.name == "F-1-overdue_7" for t in runs))
    names = {t.name for t in runs}
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    assert "F-1-overdue_7" in names
    assert not any(n.startswith("F-2-") for n in names)
    summary = next(
        a for a in artifacts if a.key == "dunning-sweep-summary" and a.flow_run_id == run_id
    )
    assert "| paid | 1 |" in summary.data
    assert "quarantined row 3" in summary.data and "due_date" in summary.data


def test_temporary_smtp_failure_is_retried_and_sends_once(prefect_api, tmp_path):
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="R-1", due_date="2026-12-02")])
    with MailSink(tmp_path / "outbox", port=0, fail_first=1) as sink:
        state = dunning_sweep(
            source=CsvInvoiceSource(path=str(csv)),
            channel=channel_for(sink),
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
            now=NOW,
            return_state=True,
        )
        assert state.result()["sent"] == 1
        assert len(sink.messages()) == 1
    runs = task_runs_of(
        state.state_details.flow_run_id,
        until=lambda runs: any(t.name == "R-1-overdue_7" and t.run_count == 2 for t in runs),
    )
    send = next(t for t in runs if t.name == "R-1-overdue_7")
    assert send.run_count == 2  # the retry is visible in the UI
    action = Ledger(f"sqlite:///{tmp_path}/l.db").frame(Action).iloc[0]
    assert action.state == "sent" and action.attempts == 2


def test_paid_between_plan_and_send_gets_nothing(prefect_api, sink, tmp_path):
    from prefect import flow

    from dunning.importers import read_invoice_file
    from dunning.plan import due_now, plan, planned_actions
    from dunning.policy import default_policy
    from tasks.act import send_reminder

    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="P-1", due_date="2026-12-02")])
    planned = due_now(plan(read_invoice_file(csv).invoices, default_policy(), NOW), NOW)
    write_invoices(
        csv, [dict(invoice_number="P-1", due_date="2026-12-02", status="paid", amount_due="0")]
    )  # the customer pays meanwhile

    @flow
    def act() -> dict:
        (action,) = planned_actions(planned)
        return send_reminder(
            action,
            CsvInvoiceSource(path=str(csv)),
            default_policy(),
            channel_for(sink),
            LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
            NOW,
        ).to_dict()

    outcome = act()
    assert outcome["status"] == "skipped" and outcome["reason"] == "paid_at_source"
    assert sink.messages() == []


def test_no_email_opens_a_human_task_and_final_escalates(prefect_api, sink, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="N-1", email="", due_date="2026-12-02"),
            dict(invoice_number="Z-9", customer_id="C-Z", due_date="2026-11-04"),
        ],
    )
    url = f"sqlite:///{tmp_path}/l.db"
    counts = run_sweep(csv, sink, url)
    assert counts["tasks"] == 1 and counts["sent"] == 1
    ledger = Ledger(url)
    tasks = ledger.frame(HumanTask)
    assert any("No usable email" in t for t in tasks["title"])
    assert any(
        t.startswith("Final notice") and a == "manager"
        for t, a in zip(tasks["title"], tasks["assignee"], strict=True)
    )
    from dunning.ledger import CustomerStatus

    assert ledger.frame(CustomerStatus, customer_id="C-Z")["status"].tolist() == ["on_hold"]


def test_missing_file_fails_the_run_with_what_to_fix(prefect_api, sink, tmp_path):
    state = dunning_sweep(
        source=CsvInvoiceSource(path=str(tmp_path / "nope.csv")),
        channel=channel_for(sink),
        ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
        now=NOW,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(Exception, match="does not exist; check the source's path"):
        state.result()


def test_dunning_invoice_runs_one_invoice(prefect_api, sink, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="A-1", due_date="2026-12-02"),
            dict(invoice_number="A-2", due_date="2026-12-02"),
        ],
    )
    counts = dunning_invoice(
        invoice="A-2",
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(sink),
        ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
        now=NOW,
    )
    assert counts["sent"] == 1
    assert [m["X-Dunning-Key"] for m in sink.messages()] == ["A-2:overdue_7:email"]


def sweep_cmd(csv: Path, sink: MailSink, ledger_url: str, *extra: str) -> list[str]:
    """`dunning sweep` of `csv` into `sink` at NOW, as a subprocess command line."""
    return [
        sys.executable,
        "-m",
        "apps.cli",
        "sweep",
        "--invoices",
        str(csv),
        "--ledger",
        ledger_url,
        "--now",
        NOW.isoformat(),
        "--smtp-host",
        sink.host,
        "--smtp-port",
        str(sink.port),
        "--from",
        "cobros@acme.example",
        *extra,
    ]


def _concurrent_sweeps(prefect_api: str, csv: Path, sink: MailSink, ledger_url: str) -> None:
    cmd = sweep_cmd(csv, sink, ledger_url)
    env = os.environ | {"PREFECT_API_URL": prefect_api}
    procs = [
        subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    sent = sum(json.loads(out.strip().splitlines()[-1])["sent"] for out, _ in results)
    assert sent == 30
    keys = [m["X-Dunning-Key"] for m in sink.messages()]
    assert len(keys) == 30 and len(set(keys)) == 30


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_three_concurrent_sweeps_send_each_message_once(
    prefect_api, sink, tmp_path, backend, request
):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [dict(invoice_number=f"C-{i:03d}", due_date="2026-12-02") for i in range(30)],
    )
    url = f"sqlite:///{tmp_path}/l.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    _concurrent_sweeps(prefect_api, csv, sink, url)


def test_crash_after_smtp_accepted_is_reported_and_never_resent(prefect_api, sink, tmp_path):
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="K-1", due_date="2026-12-02")])
    url = f"sqlite:///{tmp_path}/l.db"
    # A process that gets the message accepted by the server and dies before recording it.
    script = textwrap.dedent(f"""
        import os
        from email.message import EmailMessage
        from dunning.ledger import Ledger
        from dunning.mail import Envelope
        from dunning.smtp import SmtpPool, SmtpSettings
        ledger = Ledger({url!r})
        assert ledger.claim(key="K-1:overdue_7:email", invoice_number="K-1", customer_id="C1",
                            stage="overdue_7", channel="email").claimed
        ledger.mark_sending("K-1:overdue_7:email", "<crash@acme.example>")
        msg = EmailMessage(); msg["Subject"] = "K-1"; msg.set_content("x")
        SmtpPool(SmtpSettings({sink.host!r}, {sink.port})).send(
            msg, Envelope("cobros@acme.example", ["c@example.com"]))
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert len(sink.messages()) == 1
    counts = run_sweep(csv, sink, url)
    assert counts["sent"] == 0 and counts["skipped"] == {"in_doubt": 1}
    assert len(sink.messages()) == 1
    report = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ledger", "in-doubt", "--ledger", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "K-1:overdue_7:email" in report.stdout


def test_deployments_exist_with_schedule(prefect_api):
    from deployments.serve import deployments

    for d in deployments(timezone="America/Mexico_City"):
        d.apply()
    with get_client(sync_client=True) as client:
        sweep = client.read_deployment_by_name("dunning-sweep/dunning-sweep")
        one = client.read_deployment_by_name("dunning-invoice/dunning-invoice")
    cron = sweep.schedules[0].schedule
    assert cron.cron == "0 9 * * 1-5" and cron.timezone == "America/Mexico_City"
    assert one.schedules == []
    assert "invoice" in one.parameter_openapi_schema["required"]


def test_parsed_email_is_valid_rfc5322(prefect_api, sink, tmp_path):
    csv = write_invoices(tmp_path / "inv.csv", [dict(invoice_number="M-1", due_date="2026-12-02")])
    run_sweep(csv, sink, f"sqlite:///{tmp_path}/l.db")
    raw = next((tmp_path / "outbox").glob("*.eml")).read_bytes()
    msg = email.message_from_bytes(raw, policy=email_policy.strict)
    assert msg.get_content_type() == "multipart/alternative"
    assert {p.get_content_type() for p in msg.iter_parts()} == {"text/plain", "text/html"}
