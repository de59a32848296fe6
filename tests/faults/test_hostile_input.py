"""Hostile input: a very large CSV, a file of 10,000 bad rows, template and header injection in
customer data, oversized fields. Bad rows are quarantined with row, field and reason and the
rest goes on; customer data is shown literally and never becomes a template, a header or a
recipient."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dunning.importers import describe_quarantine, read_invoice_file
from dunning.ledger import Action, Ledger
from dunning.plan import plan
from dunning.policy import default_policy
from dunning.schema import INVOICE_COLUMNS
from dunning.settings import settings
from dunning.smtp import SmtpPool, SmtpSettings
from tests.faults import core
from tests.faults.smtpfaults import FaultSink
from tests.invoices import DEFAULTS, write_invoices

#: Rows of the large file: 100k in CI, DUNNING_FAULTS_ROWS=1000000 for the 1M figures.
ROWS = settings().faults_rows
BAD = 10_000
#: One kind of damage per field, 2,000 rows each.
DAMAGE = {
    "due_date": "31/02/2026",
    "amount_due": "-5.00",
    "email": "not an address",
    "currency": "XXQ",
    "invoice_number": "",
}


def _frame(n: int) -> pd.DataFrame:
    i = np.arange(n)
    frame = pd.DataFrame({c: pd.Series("", index=i, dtype=object) for c in INVOICE_COLUMNS})
    for column, value in DEFAULTS.items():
        frame[column] = value
    number = pd.Series(i).astype(str)
    frame["invoice_number"] = "F-" + number
    frame["customer_id"] = "C" + (pd.Series(i) % 5000).astype(str)
    frame["email"] = "ap" + number + "@c.example"
    frame["due_date"] = (pd.Timestamp("2026-10-01") + pd.to_timedelta(i % 90, "D")).strftime(
        "%Y-%m-%d"
    )
    return frame


def _damage(frame: pd.DataFrame, rows: np.ndarray) -> dict[int, str]:
    """Break `rows` (row numbers from 1), one field each in turn; {row: field}."""
    broken = {}
    for k, (field, value) in enumerate(DAMAGE.items()):
        chunk = rows[k :: len(DAMAGE)]
        frame.loc[chunk - 1, field] = value
        broken.update({int(r): field for r in chunk})
    return broken


def test_large_csv_with_10000_bad_rows_keeps_the_rest_and_reports_each(tmp_path, figures):
    rng = np.random.default_rng(7)
    frame = _frame(ROWS)
    broken = _damage(frame, rng.choice(np.arange(1, ROWS + 1), size=BAD, replace=False))
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)

    started = time.perf_counter()
    result = read_invoice_file(path)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    planned = plan(result.invoices, default_policy(), core.NOW)
    plan_s = time.perf_counter() - started

    q = result.quarantine
    assert len(result.invoices) == ROWS - BAD and result.quarantined_rows == BAD
    assert dict(zip(q["row"], q["field"], strict=True)) == broken  # each row, its field
    assert q["reason"].str.len().gt(10).all() and q["line"].eq(q["row"] + 1).all()
    assert (
        not result.invoices["invoice_number"]
        .isin(frame.loc[np.array(sorted(broken)) - 1, "invoice_number"])
        .any()
    )
    assert len(planned) == ROWS - BAD
    figures(
        rows=ROWS,
        bad_rows=BAD,
        quarantined=result.quarantined_rows,
        kept=len(result.invoices),
        file_mb=round(path.stat().st_size / 1e6, 1),
        read_s=round(read_s, 2),
        plan_s=round(plan_s, 2),
    )


def test_a_file_of_10000_bad_rows_yields_no_invoice_and_10000_reported_rows(tmp_path, figures):
    frame = _frame(BAD)
    broken = _damage(frame, np.arange(1, BAD + 1))
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = read_invoice_file(path)
    lines = describe_quarantine(result.quarantine)
    assert result.invoices.empty and result.quarantined_rows == BAD == len(broken)
    assert len(lines) == BAD and lines[0].startswith("quarantined row 1 (line 2)")
    assert "cannot read the date" in lines[0]
    figures(rows=BAD, quarantined=result.quarantined_rows, reported_lines=len(lines))


HOSTILE = [
    dict(invoice_number="T-1", customer_name="{{ 7*7 }} {% for x in range(3) %}X{% endfor %}"),
    dict(invoice_number="T-2", customer_name="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    dict(invoice_number="T-3", customer_name="<script>alert(1)</script><img src=x onerror=y>"),
    dict(invoice_number="T-4", customer_name="Evil S.L.\r\nBcc: spy@evil.example"),
    dict(invoice_number="T-5", email="t5@t.example\r\nBcc: spy@evil.example"),
    dict(invoice_number="T-6\r\nBcc: spy@evil.example"),
    dict(invoice_number="T-7", customer_id="C7\nX-Evil: 1"),
    dict(invoice_number="T-8", payment_link="javascript:alert(1)"),
    dict(invoice_number="T-9", payment_link='https://pay.example/9"><script>x</script>'),
    dict(invoice_number="T-10", customer_name="N" * 1_000_000),
    dict(invoice_number="T-11" + "9" * 5000),
    dict(invoice_number="T-12", email="a" * 100_000 + "@t.example"),
]


@pytest.fixture
def hostile_run(fault_sink: FaultSink, tmp_path: Path):
    rows = [
        {"email": f"t{i}@t.example", "due_date": "2026-12-02", **row}
        for i, row in enumerate(HOSTILE, start=1)
    ]
    csv = write_invoices(tmp_path / "hostile.csv", rows)
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    read, lookup = core.csv_source(str(csv))
    pool = SmtpPool(SmtpSettings(fault_sink.host, fault_sink.port, timeout=30), size=2)
    outcomes = {o["key"].split(":")[0]: o for o in core.sweep(read, lookup, ledger, pool)}
    pool.close()
    by_number = {m["X-Dunning-Key"].split(":")[0]: m for m in fault_sink.messages()}
    return read(), outcomes, by_number, ledger


def _bodies(msg) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_template_injection_in_customer_data_is_shown_literally(hostile_run):
    _, _, sent, _ = hostile_run
    text, html = _bodies(sent["T-1"])
    assert "{{ 7*7 }} {% for x in range(3) %}X{% endfor %}" in text
    assert "XXX" not in text and "49" not in text
    text, _ = _bodies(sent["T-2"])
    assert "__subclasses__()" in text and "<class" not in text
    _, html = _bodies(sent["T-3"])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html
    assert "<img" not in html
    _, html = _bodies(sent["T-8"])
    assert "javascript:" not in html  # only http(s) payment links are shown
    _, html = _bodies(sent["T-9"])
    assert "<script>" not in html and '"><' not in html


def test_header_injection_in_names_emails_and_numbers_adds_no_header_or_recipient(
    hostile_run, fault_sink: FaultSink
):
    loaded, outcomes, sent, _ = hostile_run
    q = loaded.quarantine.set_index("invoice_number")
    assert q.loc["T-5", "field"] == "email"
    assert "line break" in q.loc[q.index.str.startswith("T-6"), "reason"].iloc[0]
    assert q.loc["T-7", "field"] == "customer_id"
    assert not {"T-5", "T-7"} & set(outcomes) and not any(k.startswith("T-6") for k in outcomes)
    for msg in fault_sink.messages():
        assert "spy@evil.example" not in msg["X-Envelope-To"]
        assert msg["Bcc"] is None and msg["X-Evil"] is None
        assert msg["X-Envelope-To"] == msg["To"]  # the customer, and no one else
    assert sent["T-4"]["To"] == "t4@t.example"
    assert "Evil S.L." in _bodies(sent["T-4"])[0]


def test_oversized_fields_are_sent_whole_or_refused_with_the_reason(hostile_run):
    _, outcomes, sent, ledger = hostile_run
    assert outcomes["T-10"]["status"] == "sent" and "N" * 1_000_000 in _bodies(sent["T-10"])[0]
    long_number = "T-11" + "9" * 5000
    assert outcomes[long_number]["status"] == "sent"
    assert long_number in sent[long_number]["Subject"].replace(" ", "")
    refused = outcomes["T-12"]
    assert refused["status"] == "failed" and "refused" in refused["reason"]
    state = ledger.frame(Action).set_index("invoice_number").loc["T-12", "state"]
    assert state == "rejected"  # a bad address is not retried; the rest went on
    assert sum(o["status"] == "sent" for o in outcomes.values()) == 8


def test_pdf_path_cannot_attach_a_file_outside_the_attachments_folder(
    fault_sink: FaultSink, tmp_path: Path
):
    secret = tmp_path / "secret.txt"
    secret.write_text("PREFECT_API_KEY=pnu_not_for_customers")
    (tmp_path / "exports").mkdir()
    csv = write_invoices(
        tmp_path / "exports" / "inv.csv",
        [
            dict(invoice_number="A-1", due_date="2026-12-02", pdf_path=str(secret)),
            dict(invoice_number="A-2", due_date="2026-12-02", pdf_path="../secret.txt"),
        ],
    )
    read, lookup = core.csv_source(str(csv))
    pool = SmtpPool(SmtpSettings(fault_sink.host, fault_sink.port), size=1)
    root = str(csv.parent)  # as CsvInvoiceSource.attachments_root: the file's folder
    ledger = Ledger(f"sqlite:///{tmp_path}/l.db")
    core.sweep(read, lookup, ledger, pool, workers=1, attachments_root=root)
    pool.close()
    attached = [a.get_filename() for m in fault_sink.messages() for a in m.iter_attachments()]
    assert attached == []
