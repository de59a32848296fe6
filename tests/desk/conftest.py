"""Fixtures for the collections-desk tests: a ledger filled by a real sweep (real Prefect
server, SMTP sink), the desk under a real uvicorn on a free port, and Debian's headless
Chromium driven by Playwright.

Screenshots go to `tests/desk/screenshots/` (or `$DESK_SCREENSHOTS`); not committed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from prefect_email import EmailServerCredentials

from apps.desk.app import DeskConfig
from apps.desk.auth import add_user
from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
from dunning.ledger import Ledger
from flows.sweep import dunning_sweep
from tests.desk.helpers import COLLECTOR, MANAGER, serve
from tests.invoices import write_invoices

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("DESK_SCREENSHOTS", Path(__file__).parent / "screenshots"))
NOW = datetime.fromisoformat("2026-12-09T10:00:00+01:00")  # a Wednesday
XSS_NAME = "<script>alert(1)</script>"

# C1 and C2 are 19 days late (overdue_15: a call task for the account owner; C2 has a hostile
# name), C3 is one day late, C4 34 days (final notice: a task for the manager).
INVOICES = [
    dict(
        invoice_number="F-1",
        customer_id="C1",
        customer_name="Talleres Ebro S.L.",
        email="pagos@ebro.example",
        phone="+34600111222",
        amount_total="1500.00",
        amount_due="1500.00",
        due_date="2026-11-20",
    ),
    dict(
        invoice_number="F-2",
        customer_id="C2",
        customer_name=XSS_NAME,
        email="ap@hostile.example",
        amount_total="300.00",
        amount_due="300.00",
        due_date="2026-11-20",
    ),
    dict(
        invoice_number="F-3",
        customer_id="C3",
        customer_name="Pausa Distribuciones S.A.",
        email="cuentas@pausa.example",
        amount_total="800.00",
        amount_due="800.00",
        due_date="2026-12-08",
    ),
    dict(
        invoice_number="F-4",
        customer_id="C4",
        customer_name="Final Notice S.L.",
        email="ap@final.example",
        amount_total="5000.00",
        amount_due="5000.00",
        due_date="2026-11-05",
    ),
]


@dataclass
class Desk:
    """A running desk over a swept ledger."""

    url: str
    ledger_url: str
    ledger: Ledger
    csv: Path
    sink: MailSink

    def sweep(self, now: datetime) -> dict:
        """Run the real daily sweep against the same ledger and mail sink."""
        return dunning_sweep(
            source=CsvInvoiceSource(path=str(self.csv)),
            channel=EmailChannel(
                credentials=EmailServerCredentials(
                    smtp_server=self.sink.host, smtp_port=self.sink.port, smtp_type="INSECURE"
                ),
                from_address="cobros@acme.example",
                from_name="Acme S.L.",
            ),
            ledger=LedgerDatabase(url=self.ledger_url),
            now=now,
        )


@pytest.fixture
def desk(prefect_api, tmp_path: Path) -> Iterator[Desk]:
    """A ledger filled by one sweep at NOW, two users, and the desk served by uvicorn."""
    csv = write_invoices(tmp_path / "invoices.csv", INVOICES)
    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    with MailSink(tmp_path / "outbox", port=0) as sink:
        d = Desk("", ledger_url, Ledger(ledger_url), csv, sink)
        first = d.sweep(NOW)
        assert first["sent"] == 4, first
        add_user(d.ledger, *MANAGER, role="manager")
        add_user(d.ledger, *COLLECTOR, role="collector")
        with serve(DeskConfig(ledger_url=ledger_url)) as url:
            d.url = url
            yield d


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless; Playwright gives each launch a fresh temporary profile."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (make chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page."""
    context = browser.new_context(locale="es-ES", viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15000)
    yield p
    context.close()


def login(page, desk: Desk, who: tuple[str, str]) -> None:
    """Log in through the form, as a person would."""
    page.goto(f"{desk.url}/tasks")
    assert "/login" in page.url
    page.fill("#email", who[0])
    page.fill("#password", who[1])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{desk.url}/tasks")


def shot(page, name: str) -> Path:
    """Save a full-page screenshot for reviewers; prints where it went."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
