"""The ERP fails: 500s, timeouts, a connection dropped mid-page, a truncated JSON page, a page
that leaves invoices out. A fetch either completes or fails the sweep before anything is
sent; a missing invoice is never taken for paid."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from blocks import OdooInvoiceSource, RestInvoiceSource
from dunning.connectors.http import ConnectorError, Unavailable
from dunning.ledger import Action, Event, InvoiceRecord, Ledger
from dunning.smtp import SmtpPool, SmtpSettings
from tests.connectors.portfolio import portfolio
from tests.connectors.test_rest import MAPPING, STATUS
from tests.faults import core
from tests.faults.erpfaults import BreakingOdoo, FaultyRest
from tests.faults.smtpfaults import FaultSink, duplicates

N = 30  # three pages of 10


def source_for(api: FaultyRest) -> RestInvoiceSource:
    """The REST source block as a user saves it, with short timeouts so a test is quick."""
    return RestInvoiceSource(
        url=f"{api.url}/api/invoices",
        auth_header="X-Api-Key",
        auth_value=api.api_key,
        records_path="data",
        pagination="page",
        page_size=10,
        field_mapping=MAPPING,
        status_mapping=STATUS,
        amounts_in_minor_units=True,
        item_url=f"{api.url}/api/invoices/{{invoice_number}}",
        item_path="invoice",
        timeout_seconds=0.5,
        retries=2,
        max_retry_wait_seconds=0.1,
        requests_per_second=0,
    )


@pytest.fixture
def api():
    with FaultyRest() as fake:
        for _ in range(N):
            fake.add()
        yield fake


def _sweep(src: RestInvoiceSource, ledger: Ledger, sink: FaultSink, **kw) -> dict[str, int]:
    pool = SmtpPool(SmtpSettings(sink.host, sink.port, timeout=10), size=4)
    try:
        return core.counts(core.sweep(src.read, src.get_invoice, ledger, pool, workers=4, **kw))
    finally:
        pool.close()


def test_500s_timeouts_and_dropped_pages_are_retried_and_each_reminder_sent_once(
    api: FaultyRest, fault_sink: FaultSink, tmp_path: Path, figures
):
    api.fail("/api/invoices", 500, times=1)
    api.inject("slow", "/api/invoices", query={"page": "2"}, seconds=1.0)
    api.inject("cut", "/api/invoices", query={"page": "3"})
    api.inject("slow", "/api/invoices/R-00005", seconds=1.0)  # the re-check before sending
    api.fail("/api/invoices/R-00009", 503, times=1)
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    counts = _sweep(source_for(api), ledger, fault_sink)
    copies = fault_sink.by_message_id()
    assert counts == {"sent": N}, counts
    assert len(copies) == N and duplicates(copies) == 0
    assert len(api.hits("/api/invoices", "GET")) > 4 + N  # the retries did happen
    figures(due=N, sent=len(copies), duplicated=duplicates(copies), lost=0, faults_injected=5)


@pytest.mark.parametrize(
    ("kind", "error", "says"),
    [
        ("500", Unavailable, "still failing after 3 attempts"),
        ("slow", Unavailable, "ReadTimeout"),
        ("cut", Unavailable, "still failing after 3 attempts"),
        ("cut_json", ConnectorError, "did not answer JSON"),
    ],
)
def test_a_page_that_keeps_failing_fails_the_sweep_and_marks_nothing_paid(
    api: FaultyRest, fault_sink: FaultSink, tmp_path: Path, kind, error, says
):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    src = source_for(api)
    assert _sweep(src, ledger, fault_sink) == {"sent": N}  # yesterday: every invoice known
    if kind == "500":
        api.fail("/api/invoices", 500, times=100)
    else:
        api.inject(kind, "/api/invoices", query={"page": "2"}, times=None, seconds=1.0)
    later = core.NOW + timedelta(days=8)  # overdue_15 is due for every invoice
    with pytest.raises(error, match=says) as failure:
        _sweep(source_for(api), ledger, fault_sink, now=later)
    assert "REST Invoice Source" in str(failure.value) or "/api/invoices" in str(failure.value)
    assert api.api_key not in str(failure.value)
    records = ledger.frame(InvoiceRecord)
    assert len(records) == N and (records["status"] == "open").all()
    assert records["closed_at"].isna().all()
    assert ledger.frame(Event, kind="invoice_paid").empty
    assert len(fault_sink.messages()) == N  # nothing sent by the failed sweep
    assert set(ledger.frame(Action)["stage"]) == {"overdue_7"}


def test_invoices_left_out_of_a_page_or_gone_at_send_time_are_not_taken_for_paid(
    api: FaultyRest, fault_sink: FaultSink, tmp_path: Path
):
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    assert _sweep(source_for(api), ledger, fault_sink) == {"sent": N}
    left_out = ("R-00003", "R-00004", "R-00015")
    api.inject("omit", "/api/invoices", query={"page": "1"}, numbers=left_out[:2])
    api.inject("omit", "/api/invoices", query={"page": "2"}, numbers=left_out[2:])
    api.fail("/api/invoices/R-00028", 404, times=1)  # not found when re-checked
    counts = _sweep(source_for(api), ledger, fault_sink, now=core.NOW + timedelta(days=8))
    assert counts == {"sent": N - 4, "skipped:gone_at_source": 1}, counts
    records = ledger.frame(InvoiceRecord).set_index("invoice_number")
    assert (records["status"] == "open").all() and records["closed_at"].isna().all()
    assert ledger.frame(Event, kind="invoice_paid").empty
    skipped = ledger.frame(Event, kind="skipped")
    assert skipped["invoice_number"].tolist() == ["R-00028"]
    # The next sweep, with a complete list, reminds the ones left out: nothing was lost.
    again = _sweep(source_for(api), ledger, fault_sink, now=core.NOW + timedelta(days=8))
    assert again == {"sent": 4}, again
    assert duplicates(fault_sink.by_message_id()) == 0


def test_odoo_server_error_on_a_later_page_fails_the_sweep_and_marks_nothing_paid(
    fault_sink: FaultSink, tmp_path: Path
):
    with BreakingOdoo() as odoo:
        odoo.load(portfolio(40, seed=11))

        def source() -> OdooInvoiceSource:
            return OdooInvoiceSource(
                url=odoo.url,
                protocol="jsonrpc",
                database=odoo.database,
                login=odoo.login,
                api_key=odoo.api_key,
                page_size=10,
                requests_per_second=0,
                timeout_seconds=2,
            )

        ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
        first = _sweep(source(), ledger, fault_sink)
        records = ledger.frame(InvoiceRecord)
        open_before = set(records.loc[records["status"] == "open", "invoice_number"])
        assert first.get("sent", 0) > 0 and len(open_before) > 10, first
        odoo.broken_pages = 1
        with pytest.raises(ConnectorError, match="Odoo .* failed: out of memory"):
            _sweep(source(), ledger, fault_sink, now=core.NOW + timedelta(days=8))
        assert odoo.broken_pages == 0  # the error came from page 2, after page 1 was read
    records = ledger.frame(InvoiceRecord)
    assert set(records.loc[records["status"] == "open", "invoice_number"]) == open_before
    assert ledger.frame(Event, kind="invoice_paid").empty
    assert len(fault_sink.messages()) == first["sent"]
