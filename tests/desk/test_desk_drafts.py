"""A drafted answer in the desk, through Debian's Chromium: the task shows the draft quoting
the knowledge base and its sources; a manager edits it and approves it, and the customer
gets the edited text once, in their thread (real SMTP sink); a replayed form or a double
click sends nothing more; discarding sends nothing."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.desk.app import DeskConfig
from apps.desk.auth import add_user
from apps.mailsink import MailSink
from dunning.act import EmailIdentity
from dunning.importers import read_invoice_file
from dunning.knowledge import load_knowledge
from dunning.ledger import HumanTask, InboundMessage, Ledger
from dunning.ledger.models import ReplyDraft
from dunning.policy import default_policy
from dunning.replies.act import handle_reply
from dunning.replies.drafts import DraftMailer
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from tests.desk.conftest import login, shot
from tests.desk.helpers import MANAGER, serve
from tests.invoices import write_invoices

KNOWLEDGE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "knowledge"
IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme SpA")
CUSTOMER = "ana@cliente.example"
QUESTION = "Hola, ¿Tienen servicio en Valparaíso? Saludos, Ana"


class DraftDesk:
    def __init__(self, url: str, ledger: Ledger, sink: MailSink) -> None:
        self.url, self.ledger, self.sink = url, ledger, sink

    def draft_task(self, n: int) -> int:
        """The id of the task drafted for the customer's question number `n`."""
        drafts = self.ledger.frame(ReplyDraft)
        key = drafts[drafts["in_reply_to"] == message_id(n)].iloc[0]["task_key"]
        tasks = self.ledger.frame(HumanTask)
        return int(tasks[tasks["key"] == key].iloc[0]["id"])


def message_id(n: int) -> str:
    return f"<question{n}@cliente.example>"


@pytest.fixture
def draft_desk(tmp_path: Path):
    """Three questions from the customer, each with a drafted answer, and the desk (with an
    email channel to the SMTP sink) served by uvicorn."""
    csv = write_invoices(
        tmp_path / "invoices.csv",
        [
            dict(
                invoice_number="F-1",
                customer_id="C1",
                customer_name="Cliente Uno SpA",
                email=CUSTOMER,
                due_date="2026-11-02",
            )
        ],
    )
    invoices = read_invoice_file(csv).invoices
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    ledger.sync_invoices(invoices)
    lookup = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}.get
    kb = load_knowledge(KNOWLEDGE)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        for n in (1, 2, 3):
            (inbound_id,) = ledger.store_inbound(
                [
                    InboundMessage(
                        provider_id=message_id(n),
                        sender=CUSTOMER,
                        sender_name="Ana Pérez",
                        subject=f"Consulta {n}",
                        text=QUESTION,
                        received_at=datetime(2026, 11, 10, 14, n, tzinfo=UTC),
                    )
                ]
            )
            handle_reply(
                ledger.inbound_message(inbound_id),
                ledger=ledger,
                policy=default_policy(),
                lookup=lookup,
                pool=pool,
                identity=IDENTITY,
                knowledge=kb,
            )
        assert not sink.messages()
        add_user(ledger, *MANAGER, role="manager")
        config = DeskConfig(ledger_url=url, mailer=DraftMailer(pool=pool, identity=IDENTITY))
        try:
            with serve(config) as desk_url:
                yield DraftDesk(desk_url, ledger, sink)
        finally:
            pool.close()


def to_customer(d: DraftDesk) -> list:
    return [m for m in d.sink.messages() if CUSTOMER in m["To"]]


def test_a_manager_edits_and_approves_a_draft_and_it_is_sent_once_in_the_thread(page, draft_desk):
    d = draft_desk
    login(page, d, MANAGER)
    task_id = d.draft_task(1)
    page.goto(f"{d.url}/tasks/{task_id}")
    assert "es/servicio.md" in page.inner_text("#draft-sources")
    text = page.input_value("#draft-text")
    assert "> Damos servicio en Santiago, Valparaíso" in text
    edited = text.replace("Gracias por su mensaje.", "Sí, Ana: llegamos a Valparaíso en 48 horas.")
    page.fill("#draft-text", edited)
    token = page.input_value("#draft-form input[name=csrf_token]")
    shot(page, "draft-before-approve")
    page.click("#draft-approve")
    page.wait_for_url(re.compile(r"/tasks\?done="))
    assert "approved and sent" in page.inner_text("body")

    (sent,) = to_customer(d)
    assert sent["In-Reply-To"] == message_id(1) and message_id(1) in sent["References"]
    assert sent["Subject"] == "Re: Consulta 1"
    body = sent.get_body(("plain",)).get_content()
    assert "Sí, Ana: llegamos a Valparaíso en 48 horas." in body
    assert "Gracias por su mensaje." not in body

    # The same form posted again (a replay, the back button): refused, nothing more sent.
    replay = page.request.post(
        f"{d.url}/tasks/{task_id}/draft",
        form={"csrf_token": token, "decision": "approve", "text": edited},
    )
    assert replay.status == 400
    assert len(to_customer(d)) == 1
    # The customer's timeline shows the answer with its text.
    page.goto(f"{d.url}/customer?id=C1")
    assert "answer_draft" in page.inner_text("#timeline")


def test_a_double_click_on_approve_sends_once(page, draft_desk):
    d = draft_desk
    login(page, d, MANAGER)
    page.goto(f"{d.url}/tasks/{d.draft_task(2)}")
    page.dblclick("#draft-approve")
    page.wait_for_url(re.compile(r"/tasks"))
    deadline = time.monotonic() + 5  # let a second submission, if any, reach the server
    while time.monotonic() < deadline and len(to_customer(d)) < 2:
        time.sleep(0.2)
    (sent,) = to_customer(d)
    assert sent["In-Reply-To"] == message_id(2)


def test_discarding_a_draft_sends_nothing(page, draft_desk):
    d = draft_desk
    login(page, d, MANAGER)
    task_id = d.draft_task(3)
    page.goto(f"{d.url}/tasks/{task_id}")
    page.click("#draft-discard")
    page.wait_for_url(re.compile(r"/tasks\?done="))
    assert "discarded" in page.inner_text("body")
    assert to_customer(d) == []
    page.goto(f"{d.url}/tasks/{task_id}")
    assert "discarded" in page.inner_text("#draft-state")
