"""Every public task works as `task.fn(...)` outside a flow (Prefect's recommended unit-test
path, and what an analyst does in a notebook) and inside an ad-hoc flow.

Small real inputs: a CSV and a SQLite ledger in tmp_path, the default policy, an aiosmtpd sink
for what is sent, dovecot for the mailbox. Tasks that publish artifacts talk to the session's
Prefect test server (`prefect_api`); the others need no server at all.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from imap_tools import MailBoxUnencrypted
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, LedgerCrm, LedgerDatabase
from blocks.mailbox import ImapMailbox
from docs.examples.adhoc_flow import what_would_go_out
from dunning.ledger import InboundMessage
from dunning.plan import due_now, planned_actions
from dunning.policy import default_policy
from dunning.summary import SweepSummary
from tasks.crm import deliver_crm_entries
from tasks.erp import fetch_one_invoice, fetch_open_invoices
from tasks.ledger import sync_ledger
from tasks.plan import plan_actions
from tasks.portfolio import (
    compute_report,
    draw_charts,
    email_report,
    load_portfolio,
    publish_artifacts,
)
from tasks.replies import fetch_replies, handle_reply_task
from tasks.report import publish_summary
from tests.invoices import write_invoices
from tests.test_flows import channel_for, task_runs_of

# A Wednesday: invoices due on Wednesday 2 December are owed their overdue_7 reminder.
NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")
TODAY = date(2026, 12, 9)


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    """Two good invoices (one part-paid) and one without a due date."""
    return write_invoices(
        tmp_path / "invoices.csv",
        [
            dict(invoice_number="F-1", email="ana@cliente-a.example", due_date="2026-12-02"),
            dict(
                invoice_number="F-2",
                customer_id="C2",
                email="luis@cliente-b.example",
                amount_total="500.00",
                amount_due="200.00",
                due_date="2026-12-02",
            ),
            dict(invoice_number="F-3", due_date=""),
        ],
    )


@pytest.fixture
def source(csv: Path) -> CsvInvoiceSource:
    return CsvInvoiceSource(path=str(csv))


@pytest.fixture
def ledger(tmp_path: Path) -> LedgerDatabase:
    return LedgerDatabase(url=f"sqlite:///{tmp_path}/ledger.db")


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


def synced(source: CsvInvoiceSource, ledger: LedgerDatabase) -> pd.DataFrame:
    """The source's invoices, recorded in the ledger at NOW; returns them."""
    invoices = fetch_open_invoices.fn(source).invoices
    sync_ledger.fn(ledger, invoices, default_policy(), NOW)
    return invoices


def sent(source: CsvInvoiceSource, ledger: LedgerDatabase, sink: MailSink) -> list:
    """Plan at NOW and send every reminder due; returns the outcomes."""
    from tasks.act import send_reminder

    invoices = synced(source, ledger)
    policy = default_policy()
    planned = plan_actions.fn(invoices, policy, ledger, NOW)
    channel = channel_for(sink)
    return [
        send_reminder.fn(action, source, policy, channel, ledger, NOW)
        for action in planned_actions(due_now(planned, NOW))
    ]


# -- one test per public task, called with .fn() outside any flow ------------------------------


def test_fetch_open_invoices(source, caplog):
    with caplog.at_level(logging.INFO, logger="dunning.tasks"):
        result = fetch_open_invoices.fn(source)
    assert sorted(result.invoices["invoice_number"]) == ["F-1", "F-2"]
    assert result.quarantined_rows == 1
    # Outside a run the task logs to the standard logger: the bad row is still told.
    assert any("F-3" in r.getMessage() and "due_date" in r.getMessage() for r in caplog.records)


def test_fetch_one_invoice(source):
    result = fetch_one_invoice.fn(source, "F-2")
    assert result.invoices["invoice_number"].tolist() == ["F-2"]
    assert result.invoices["amount_due"].tolist() == [200.0]


def test_sync_ledger(source, ledger):
    invoices = fetch_open_invoices.fn(source).invoices
    first = sync_ledger.fn(ledger, invoices, default_policy(), NOW)
    again = sync_ledger.fn(ledger, invoices, default_policy(), NOW)
    assert (first.new, again.new, again.unchanged) == (2, 0, 2)


def test_plan_actions(source, ledger):
    invoices = synced(source, ledger)
    planned = plan_actions.fn(invoices, default_policy(), ledger, NOW)
    due = due_now(planned, NOW)
    assert sorted(due["invoice"]) == ["F-1", "F-2"]
    assert set(due["stage"]) == {"overdue_7"}


def test_send_reminder(source, ledger, sink):
    outcomes = sent(source, ledger, sink)
    assert sorted(o.status for o in outcomes) == ["sent", "sent"]
    arrived = {m["To"]: m for m in sink.messages()}
    assert set(arrived) == {"ana@cliente-a.example", "luis@cliente-b.example"}
    assert "F-2" in arrived["luis@cliente-b.example"]["Subject"]


def test_deliver_crm_entries(source, ledger, sink):
    sent(source, ledger, sink)  # each reminder queues a note for the CRM
    report = deliver_crm_entries.fn(LedgerCrm(), ledger)
    assert report["delivered"] >= 2 and report["failed"] == 0 and report["pending"] == 0


def test_load_portfolio_and_compute_report(source, ledger):
    synced(source, ledger)
    data = load_portfolio.fn(ledger, source)
    assert sorted(data.invoices["invoice_number"]) == ["F-1", "F-2"]
    assert len(data.problems) == 1  # the source's quarantined row is reported, not dropped
    report = compute_report.fn(data, TODAY)
    eur = report.summary.set_index("currency").loc["EUR"]
    assert eur["receivables"] == pytest.approx(300.0)  # 100 + the 200 still owed on F-2


def test_draw_charts(source, ledger):
    synced(source, ledger)
    report = compute_report.fn(load_portfolio.fn(ledger), TODAY)
    charts = draw_charts.fn(report, "en_US")
    assert "aging" in charts
    assert all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in charts.values())


def test_email_report(source, ledger, sink):
    synced(source, ledger)
    report = compute_report.fn(load_portfolio.fn(ledger), TODAY)
    charts = draw_charts.fn(report, "es_ES")
    result = email_report.fn(report, charts, channel_for(sink), "ceo@acme.example", "es_ES")
    (message,) = sink.messages()
    assert message["To"] == "ceo@acme.example" and result["recipients"] == ["ceo@acme.example"]
    assert message["Message-ID"].strip() == result["message_id"].strip()


def artifact_keys(*keys: str) -> set[str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=list(keys)))
        )
    return {a.key for a in found}


def test_publish_artifacts(prefect_api, source, ledger):
    synced(source, ledger)
    report = compute_report.fn(load_portfolio.fn(ledger), TODAY)
    keys = publish_artifacts.fn(report, draw_charts.fn(report, "en_US"))
    assert {"portfolio-report", "portfolio-aging", "portfolio-chart-aging"} <= set(keys)
    assert artifact_keys(*keys) == set(keys)


def test_publish_summary(prefect_api):
    summary = SweepSummary(
        now=NOW.isoformat(),
        invoices=2,
        quarantined_rows=0,
        sent=1,
        actions=[
            {
                "invoice": "F-1",
                "stage": "overdue_7",
                "channel": "email",
                "status": "sent",
                "reason": "",
                "recipient": "ana@cliente-a.example",
            }
        ],
    )
    publish_summary.fn(summary)
    assert artifact_keys("dunning-sweep-summary", "dunning-sweep-actions") == {
        "dunning-sweep-summary",
        "dunning-sweep-actions",
    }


def test_fetch_replies(imap_server, ledger, tmp_path):
    login = f"{tmp_path.name}@empresa.example"  # a fresh mailbox per test
    imap_server.add_user(login, "imap-secret")
    msg = EmailMessage()
    msg["From"] = "ana@cliente-a.example"
    msg["To"] = login
    msg["Subject"] = "Factura F-1"
    msg["Message-ID"] = f"<{tmp_path.name}@cliente-a.example>"
    msg.set_content("Les pagamos el viernes.")
    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(login, "imap-secret") as box:
        box.append(msg.as_bytes(), "INBOX")
    mailbox = ImapMailbox(
        host="127.0.0.1",
        port=imap_server.port,
        security="none",
        username=login,
        password="imap-secret",
    )
    (new_id,) = fetch_replies.fn(mailbox, ledger)
    assert ledger.get_ledger().inbound_message(new_id).sender == "ana@cliente-a.example"
    assert fetch_replies.fn(mailbox, ledger) == []  # moved to the processed folder


def test_handle_reply_task(source, ledger, sink):
    sent(source, ledger, sink)
    (message_id,) = ledger.get_ledger().store_inbound(
        [
            InboundMessage(
                provider_id="<reply-1@cliente-a.example>",
                sender="ana@cliente-a.example",
                received_at=NOW,  # "el 20 de diciembre" is read from the day it arrived
                subject="Factura F-1",
                text="Hola, les haremos la transferencia el 20 de diciembre. Un saludo, Ana",
            )
        ]
    )
    outcome = handle_reply_task.fn(message_id, ledger, default_policy(), source, channel_for(sink))
    assert outcome["intent"] == "promise_to_pay"
    assert outcome["promise_date"] == "2026-12-20"


# -- the same tasks inside an analyst's ad-hoc flow (docs/examples/adhoc_flow.py) --------------


def test_the_documented_adhoc_flow_runs_on_the_prefect_server(prefect_api, csv, tmp_path):
    state = what_would_go_out(
        str(csv), f"sqlite:///{tmp_path}/whatif.db", now=NOW, return_state=True
    )
    assert state.is_completed(), state
    result = state.result()
    assert result["quarantined_rows"] == 1
    assert sorted((a["invoice"], a["stage"]) for a in result["would_send"]) == [
        ("F-1", "overdue_7"),
        ("F-2", "overdue_7"),
    ]
    assert result["portfolio"]["currencies"]["EUR"]["receivables"] == pytest.approx(300.0)
    wanted = {"fetch-invoices", "sync-ledger", "plan-actions", "load-portfolio"}
    runs = task_runs_of(
        state.state_details.flow_run_id,
        until=lambda runs: wanted <= {r.name.rsplit("-", 1)[0] for r in runs},
    )
    assert wanted <= {r.name.rsplit("-", 1)[0] for r in runs}  # each a task run of the flow
