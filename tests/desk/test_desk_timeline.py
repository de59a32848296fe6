"""A customer's timeline links each entry a sweep made to that sweep's flow run in the
Prefect UI (issue 15): a real sweep on a real Prefect server, the desk over its ledger."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from prefect_email import EmailServerCredentials
from starlette.testclient import TestClient

from apps.desk.app import DeskConfig, create_app
from apps.desk.auth import add_user
from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
from dunning.ledger import Ledger
from flows.sweep import dunning_sweep
from tests.desk.conftest import INVOICES, NOW
from tests.desk.helpers import MANAGER, csrf, logged_in
from tests.invoices import write_invoices

LINK = re.compile(r'<a class="flow-run" href="([^"]*)" target="_blank" rel="noopener">')


@pytest.fixture
def swept(prefect_api, tmp_path: Path) -> tuple[str, str]:
    """A ledger one sweep filled (a reminder to each of C1..C4) and a manager; the ledger's
    URL and the sweep's flow run id, as Prefect reports it."""
    csv = write_invoices(tmp_path / "invoices.csv", INVOICES)
    url = f"sqlite:///{tmp_path}/ledger.db"
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
            ledger=LedgerDatabase(url=url),
            now=NOW,
            return_state=True,
        )
        assert state.result()["sent"] == 4
        assert len(sink.messages()) == 4
    add_user(Ledger(url), *MANAGER, role="manager")
    return url, str(state.state_details.flow_run_id)


def _customer_page(config: DeskConfig, customer: str = "C1") -> str:
    client = TestClient(create_app(config), base_url="http://desk.test", follow_redirects=False)
    with client:
        page = logged_in(client, MANAGER).get(f"/customer?id={customer}")
        assert page.status_code == 200, page.text
        return page.text


def test_a_sweeps_reminder_links_to_its_flow_run_and_a_desk_decision_does_not(swept, monkeypatch):
    url, run_id = swept
    monkeypatch.setenv("DUNNING_PREFECT_UI_URL", "https://prefect.acme.example/ui/")
    config = DeskConfig(ledger_url=url)
    client = TestClient(create_app(config), base_url="http://desk.test", follow_redirects=False)
    with client:
        logged_in(client, MANAGER)
        token = csrf(client.get("/customer?id=C1").text)
        paused = client.post(
            "/customer/pause",
            data={"csrf_token": token, "customer_id": "C1", "reason": "llamada pendiente"},
        )
        assert paused.status_code == 303, paused.text
        page = client.get("/customer?id=C1").text

    rows = re.findall(r'<tr class="ev-(\w+)">(.*?)</tr>', page, flags=re.S)
    kinds = [kind for kind, _ in rows]
    assert "sent" in kinds and "pause_hold" in kinds, kinds
    for kind, row in rows:
        links = LINK.findall(row)
        if kind == "sent":  # the reminder the sweep sent: its flow run, as Prefect knows it
            assert links == [f"https://prefect.acme.example/ui/runs/flow-run/{run_id}"], row
        elif kind == "pause_hold":  # the desk's own decision: no flow run to show
            assert links == [], row
    # The link opens the flow run the sweep ran as: the Prefect API knows it by that id.
    api = httpx.get(f"{_api_url()}/flow_runs/{run_id}", timeout=30)
    assert api.status_code == 200 and api.json()["id"] == run_id


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def test_without_our_setting_the_link_goes_to_prefects_own_ui(swept, monkeypatch):
    url, run_id = swept
    monkeypatch.delenv("DUNNING_PREFECT_UI_URL", raising=False)
    ui = _api_url().removesuffix("/api")  # what Prefect's PREFECT_UI_URL defaults to
    page = _customer_page(DeskConfig(ledger_url=url))
    assert LINK.findall(page) == [f"{ui}/runs/flow-run/{run_id}"]


def test_the_ui_address_is_escaped_and_no_ui_means_no_link(swept):
    url, run_id = swept
    hostile = 'https://prefect.example/"><b onmouseover="x'
    page = _customer_page(DeskConfig(ledger_url=url, prefect_ui_url=hostile))
    assert '"><b onmouseover' not in page
    escaped = "https://prefect.example/&#34;&gt;&lt;b onmouseover=&#34;x"
    assert f'href="{escaped}/runs/flow-run/{run_id}"' in page

    page = _customer_page(DeskConfig(ledger_url=url, prefect_ui_url=None))
    assert "flow-run" not in page
    assert "Talleres Ebro" in page  # the page itself still shows
