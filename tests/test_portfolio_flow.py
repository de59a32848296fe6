"""The weekly portfolio report end to end: a real Prefect server (test harness), a real SMTP
server on loopback, a real SQLite ledger written by the ledger's own sync."""

from __future__ import annotations

import base64
import io
from datetime import UTC, date, datetime
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.schedules import Cron
from sqlmodel import Session

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, LedgerDatabase
from dunning.importers import read_invoice_file
from dunning.ledger import Ledger
from dunning.ledger.models import Action, Promise
from flows.portfolio import portfolio_report
from tests.invoices import write_invoices
from tests.test_flows import channel_for

AS_OF = date(2026, 6, 30)
PNG = b"\x89PNG\r\n\x1a\n"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


@pytest.fixture
def portfolio(tmp_path: Path) -> tuple[Path, str]:
    """A source CSV and a ledger that saw it on 2 May and 10 June (F2 paid by then)."""
    rows = [
        dict(invoice_number="F1", customer_name="Talleres Ebro S.L.", customer_id="EBRO",
             amount_total="1000", amount_due="1000", issue_date="2026-05-16",
             due_date="2026-06-15"),  # 15 days past due on 30 June
        dict(invoice_number="F2", customer_id="EBRO", amount_total="500", amount_due="500",
             issue_date="2026-04-20", due_date="2026-05-20"),  # paid, seen on 10 June
        dict(invoice_number="F3", customer_name="Hermanos Sur S.A.", customer_id="SUR",
             amount_total="300", amount_due="300", issue_date="2026-02-18",
             due_date="2026-03-20"),  # 102 days past due
    ]  # fmt: skip
    csv = write_invoices(tmp_path / "invoices.csv", rows)
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    ledger.sync_invoices(read_invoice_file(csv).invoices, now=at("2026-05-02T08:00"))
    rows[1] |= dict(amount_due="0", status="paid")
    rows.append(
        dict(invoice_number="U1", customer_name="Beta Inc", customer_id="BETA", currency="USD",
             country="US", language="en", timezone="America/New_York", amount_total="200",
             amount_due="200", issue_date="2026-06-10", due_date="2026-07-10")
    )  # fmt: skip
    write_invoices(csv, rows)
    ledger.sync_invoices(read_invoice_file(csv).invoices, now=at("2026-06-10T08:00"))
    with Session(ledger.engine) as session:
        session.add_all(
            [
                Action(key="F2:overdue_1:email", invoice_number="F2", customer_id="EBRO",
                       stage="overdue_1", channel="email", state="sent",
                       sent_at=at("2026-06-05T09:00")),
                Action(key="F1:overdue_1:email", invoice_number="F1", customer_id="EBRO",
                       stage="overdue_1", channel="email", state="sent",
                       sent_at=at("2026-06-16T09:00")),
                Promise(invoice_number="F1", customer_id="EBRO", promised_on=date(2026, 7, 3),
                        made_at=at("2026-06-17T10:00")),
            ]
        )  # fmt: skip
        session.commit()
    return csv, url


def test_weekly_report_publishes_artifacts_and_emails_management(
    prefect_api, sink, portfolio, tmp_path
):
    csv, url = portfolio
    state = portfolio_report(
        ledger=LedgerDatabase(url=url),
        channel=channel_for(sink),
        recipients="ceo@acme.example, cfo@acme.example",
        source=CsvInvoiceSource(path=str(csv)),
        as_of=AS_OF,
        locale="es_ES",
        return_state=True,
    )
    result = state.result()
    assert result["currencies"]["EUR"]["receivables"] == pytest.approx(1300)  # F1 + F3
    assert result["currencies"]["USD"]["receivables"] == pytest.approx(200)
    assert result["email"]["recipients"] == ["ceo@acme.example", "cfo@acme.example"]

    # -- the artifacts, read back from the server's API ---------------------------------------
    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_key = {a.key: a for a in artifacts}
    summary = by_key["portfolio-report"]
    assert summary.type == "markdown"
    assert "| EUR | €1,300.00 | €1,300.00 | 100% |" in summary.data
    assert summary.data.count("](data:image/png;base64,") == 3  # charts shown inline
    images = [by_key[f"portfolio-chart-{n}"] for n in ("aging", "dso-trend", "collections")]
    for image in images:
        assert image.type == "image"
        assert image.data.startswith("data:image/png;base64,")
        assert base64.b64decode(image.data.split(",", 1)[1])[:8] == PNG
    aging = by_key["portfolio-aging"]
    assert aging.type == "table"
    rows = pd.read_json(io.StringIO(aging.data))
    eur = rows[rows["currency"] == "EUR"].set_index("bucket")["amount"]
    assert eur["1-30"] == pytest.approx(1000) and eur["90+"] == pytest.approx(300)
    conversion = pd.read_json(io.StringIO(by_key["portfolio-conversion"].data))
    assert conversion.set_index("stage").loc["overdue_1", "paid_within"] == 1  # F2, 5 days

    # -- the email that arrived at the SMTP server ---------------------------------------------
    (eml,) = sorted((tmp_path / "outbox").glob("*.eml"))
    msg = message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert msg["To"] == "ceo@acme.example, cfo@acme.example"
    assert "ceo@acme.example" in msg["X-Envelope-To"] and "cfo@acme.example" in msg["X-Envelope-To"]
    assert msg["Subject"] == "Informe de cobros a 30 de junio de 2026 · Acme S.L."
    html = msg.get_body(("html",)).get_content()
    assert "1.300,00\xa0€" in html and "200,00\xa0US$" in html  # es_ES money, per currency
    inline = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert len(inline) == 3
    related = next(p for p in msg.walk() if p.get_content_type() == "multipart/related")
    assert {p.get_content_type() for p in related.iter_parts()} == {"text/html", "image/png"}
    for part in inline:
        assert part.get_content()[:8] == PNG
        assert f'src="cid:{part["Content-ID"].strip("<>")}"' in html
    (xlsx,) = [p for p in msg.iter_attachments() if p.get_filename().endswith(".xlsx")]
    assert xlsx.get_filename() == "partidas-abiertas-2026-06-30.xlsx"
    items = pd.read_excel(io.BytesIO(xlsx.get_content()), sheet_name="Partidas abiertas")
    assert list(items["Factura"]) == ["F3", "F1", "U1"]  # open items, most overdue first
    assert list(items["Pendiente"]) == [300, 1000, 200]
    assert list(items["Días vencida"]) == [102, 15, -10]
    # the source's issue dates, not the day the ledger first saw the invoice
    assert items.set_index("Factura").loc["F1", "Fecha de emisión"] == pd.Timestamp("2026-05-16")


def test_without_recipients_only_artifacts(prefect_api, sink, portfolio):
    _, url = portfolio
    result = portfolio_report(
        ledger=LedgerDatabase(url=url), channel=None, as_of=AS_OF, locale="en_US"
    )
    assert result["email"] is None and "portfolio-report" in result["artifacts"]
    assert sink.messages() == []
    assert result["currencies"]["EUR"]["receivables"] == pytest.approx(1300)
    with pytest.raises(ValueError, match="not email addresses"):
        portfolio_report(
            ledger=LedgerDatabase(url=url), channel=channel_for(sink), recipients="ceo, cfo"
        )
    assert sink.messages() == []


def test_weekly_schedule_snippet_is_accepted_by_the_server(prefect_api):
    deployment = portfolio_report.to_deployment(
        name="portfolio-report",
        schedule=Cron("0 8 * * 1", timezone="Europe/Madrid"),
        parameters={"recipients": "direccion@acme.example", "locale": "es_ES"},
    )
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    (schedule,) = stored.schedules
    assert schedule.schedule.cron == "0 8 * * 1"
    assert schedule.schedule.timezone == "Europe/Madrid"
    assert stored.parameters["recipients"] == "direccion@acme.example"
