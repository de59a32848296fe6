"""A drafted answer whose sending was left in doubt, settled in the desk over HTTP.

The desk approved the answer, then the process died while the mail server had it (a pool
whose `send` ends the sender, as a killed process would): the draft stays `sending` and so
does its outbox row. Minutes later the task page says "in doubt: check the Sent folder"
and offers "mark as sent" (nothing goes out, ever) and "send again" (only once the person
ticked that the customer may get it twice; then exactly one more copy, in the thread).
Both decisions are on the customer's timeline with the person.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa

from apps.desk.app import DeskConfig
from apps.desk.auth import add_user
from apps.mailsink import MailSink
from dunning.act import EmailIdentity
from dunning.importers import read_invoice_file
from dunning.knowledge import load_knowledge
from dunning.ledger import Action, Event, HumanTask, InboundMessage, Ledger
from dunning.ledger import drafts as store
from dunning.ledger.models import ReplyDraft
from dunning.policy import default_policy
from dunning.replies.act import handle_reply
from dunning.replies.drafts import DraftMailer, outbox_key, send_draft
from dunning.schema import Invoice
from dunning.smtp import OutcomeUnknown, SmtpPool, SmtpSettings
from tests.desk.helpers import MANAGER, csrf, logged_in, serve
from tests.invoices import write_invoices

KNOWLEDGE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "knowledge"
IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme SpA")
CUSTOMER = "ana@cliente.example"
QUESTION = "Hola, ¿Tienen servicio en Valparaíso? Saludos, Ana"
APPROVED = "Sí, Ana: llegamos a Valparaíso en 48 horas."


class ProcessDied(BaseException):
    """The sender's process ending while the mail server has the message (not an
    Exception: nothing in the sending code catches it, as nothing survives a kill)."""


class DyingPool:
    """A mail pool whose process dies in the middle of sending."""

    def send(self, message, envelope):  # noqa: ANN001, ANN201
        raise ProcessDied


class CutOffPool:
    """A mail pool whose connection breaks while the server holds the message."""

    def send(self, message, envelope):  # noqa: ANN001, ANN201
        raise OutcomeUnknown("connection reset after DATA")


@dataclass
class Doubt:
    url: str
    ledger: Ledger
    sink: MailSink
    task_id: int
    draft_id: int

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An HTTP client logged in as the manager, closed on leaving."""
        english = {"Accept-Language": "en"}
        with httpx.Client(
            base_url=self.url, follow_redirects=False, timeout=30, headers=english
        ) as client:
            yield logged_in(client, MANAGER)

    def to_customer(self) -> list:
        return [m for m in self.sink.messages() if CUSTOMER in m["To"]]

    def draft(self) -> ReplyDraft:
        found = store.get_draft(self.ledger, self.draft_id)
        assert found is not None
        return found

    def age(self, minutes: int) -> None:
        """Make the approval `minutes` old (what waiting would do)."""
        with self.ledger.engine.begin() as conn:
            conn.execute(
                sa.update(ReplyDraft.__table__)
                .where(ReplyDraft.__table__.c.id == self.draft_id)
                .values(decided_at=datetime.now(UTC) - timedelta(minutes=minutes))
            )

    def events(self, kind: str) -> list[dict]:
        frame = self.ledger.frame(Event)
        return frame[frame["kind"] == kind].to_dict("records")

    def post(self, client: httpx.Client, **form: str) -> httpx.Response:
        token = csrf(client.get(f"/tasks/{self.task_id}").text)
        return client.post(f"/tasks/{self.task_id}/draft/doubt", data={"csrf_token": token, **form})


@pytest.fixture
def doubt(tmp_path: Path) -> Iterator[Doubt]:
    """A customer's question with a drafted answer, approved and cut off mid-send; the
    desk (with an email channel to the SMTP sink) served by uvicorn."""
    with drafted_desk(tmp_path, died=True) as desk:
        yield desk


@contextmanager
def drafted_desk(tmp_path: Path, *, died: bool, desk_pool: object = None) -> Iterator[Doubt]:
    """A drafted answer to the customer's question (`died`: approved, and the sender's
    process died mid-send); the desk sends with `desk_pool` (default: to the sink)."""
    csv = write_invoices(
        tmp_path / "invoices.csv",
        [dict(invoice_number="F-1", customer_id="C1", customer_name="Cliente Uno SpA",
              email=CUSTOMER, due_date="2026-11-02")],
    )  # fmt: skip
    invoices = read_invoice_file(csv).invoices
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = Ledger(url)
    ledger.sync_invoices(invoices)
    lookup = {r["invoice_number"]: Invoice(**r) for r in invoices.to_dict("records")}.get
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        (inbound_id,) = ledger.store_inbound(
            [
                InboundMessage(
                    provider_id="<question1@cliente.example>",
                    sender=CUSTOMER,
                    sender_name="Ana Pérez",
                    subject="Consulta",
                    text=QUESTION,
                    received_at=datetime(2026, 11, 10, 14, 1, tzinfo=UTC),
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
            knowledge=load_knowledge(KNOWLEDGE),
        )
        (draft_row,) = ledger.frame(ReplyDraft).to_dict("records")
        tasks = ledger.frame(HumanTask)
        task_id = int(tasks[tasks["key"] == draft_row["task_key"]].iloc[0]["id"])
        if died:
            dying = DraftMailer(pool=DyingPool(), identity=IDENTITY)  # type: ignore[arg-type]
            with pytest.raises(ProcessDied):
                send_draft(ledger, int(draft_row["id"]), APPROVED, mailer=dying, actor="desk:otra")
        add_user(ledger, *MANAGER, role="manager")
        mailer = DraftMailer(pool=desk_pool or pool, identity=IDENTITY)  # type: ignore[arg-type]
        config = DeskConfig(ledger_url=url, mailer=mailer)
        try:
            with serve(config) as desk_url:
                yield Doubt(desk_url, ledger, sink, task_id, int(draft_row["id"]))
        finally:
            pool.close()


def summary(answer: httpx.Response) -> str:
    """What the desk tells the person after a decision (the task list's banner)."""
    return unquote(answer.headers["location"])


def outbox(d: Doubt) -> str:
    frame = d.ledger.frame(Action)
    key = outbox_key(int(d.draft().inbound_id))
    return str(frame[frame["key"] == key].iloc[0]["state"])


def test_a_fresh_send_is_not_offered_a_way_out(doubt):
    d = doubt
    assert d.draft().state == "sending" and outbox(d) == "sending"
    with d.client() as client:
        page = client.get(f"/tasks/{d.task_id}").text
        assert 'id="draft-sending"' in page and "draft-in-doubt" not in page
        refused = d.post(client, decision="send_again", confirm_duplicate="yes")
    assert refused.status_code == 400 and "not in doubt" in refused.text
    assert d.to_customer() == [] and d.draft().state == "sending"


def test_marking_an_answer_in_doubt_sent_sends_nothing_now_or_later(doubt):
    d = doubt
    d.age(minutes=10)
    with d.client() as client:
        page = client.get(f"/tasks/{d.task_id}").text
        assert "In doubt" in page and "Sent folder" in page and APPROVED in page
        done = d.post(client, decision="mark_sent")
        assert done.status_code == 303 and "marked sent" in summary(done)
        # A colleague's "send again" a moment later finds nothing in doubt.
        late = d.post(client, decision="send_again", confirm_duplicate="yes")
        assert late.status_code == 400
        timeline = client.get("/customer", params={"id": "C1"}).text
    assert d.to_customer() == []
    assert d.draft().state == "sent" and d.draft().decided_by == f"desk:{MANAGER[0]}"
    assert outbox(d) == "sent"  # the outbox will never send this answer
    (event,) = d.events("draft_marked_sent")
    assert event["actor"] == f"desk:{MANAGER[0]}" and event["detail"]["outbox_state"] == "sending"
    assert "draft_marked_sent" in timeline
    task = d.ledger.frame(HumanTask, id=d.task_id).iloc[0]
    assert task["status"] != "open" and "marked sent" in task["outcome"]


def test_send_again_asks_for_the_duplicate_risk_then_sends_once_in_the_thread(doubt):
    d = doubt
    d.age(minutes=10)
    with d.client() as client:
        page = client.get(f"/tasks/{d.task_id}").text
        assert "may receive this answer twice" in page
        unconfirmed = d.post(client, decision="send_again")
        assert unconfirmed.status_code == 400 and "twice" in unconfirmed.text
        assert d.to_customer() == [] and d.events("draft_resend_confirmed") == []

        sent = d.post(client, decision="send_again", confirm_duplicate="yes")
        assert sent.status_code == 303 and "sent again" in summary(sent)
        # The same form again (a double click, the back button): nothing more goes out.
        replay = d.post(client, decision="send_again", confirm_duplicate="yes")
        assert replay.status_code == 400
    (message,) = d.to_customer()
    assert message["In-Reply-To"] == "<question1@cliente.example>"
    assert APPROVED in message.get_body(("plain",)).get_content()
    assert d.draft().state == "sent" and outbox(d) == "sent"
    (confirmed,) = d.events("draft_resend_confirmed")
    assert confirmed["actor"] == f"desk:{MANAGER[0]}" and "twice" in confirmed["detail"]["risk"]
    (sent_event,) = d.events("sent")  # one `sent` on the timeline, with who approved it
    assert sent_event["detail"]["approved_by"] == f"desk:{MANAGER[0]}"


def test_send_again_after_the_outbox_recorded_it_sent_sends_nothing(doubt):
    """The sender died after the server took it and the outbox recorded it, before the
    draft was updated: the message went, so "send again" only marks it sent."""
    d = doubt
    d.ledger.mark_sent(outbox_key(int(d.draft().inbound_id)), "250 ok")
    d.age(minutes=10)
    with d.client() as client:
        done = d.post(client, decision="send_again", confirm_duplicate="yes")
    assert done.status_code == 303 and "nothing sent again" in summary(done)
    assert d.to_customer() == [] and d.draft().state == "sent"


def test_an_approval_left_in_doubt_keeps_the_task_open_until_a_person_settles_it(tmp_path):
    """The connection broke while the server held the message: the desk says so at once,
    the task stays open showing the way out, and marking it sent closes it."""
    with drafted_desk(tmp_path, died=False, desk_pool=CutOffPool()) as d, d.client() as client:
        page = client.get(f"/tasks/{d.task_id}").text
        approved = client.post(
            f"/tasks/{d.task_id}/draft",
            data={"csrf_token": csrf(page), "decision": "approve", "text": APPROVED},
        )
        assert approved.status_code == 303 and "in doubt" in summary(approved)
        assert d.ledger.frame(HumanTask, id=d.task_id).iloc[0]["status"] == "open"
        page = client.get(f"/tasks/{d.task_id}").text
        assert 'id="draft-in-doubt"' in page and 'id="draft-send-again"' in page
        assert d.post(client, decision="mark_sent").status_code == 303
        assert d.ledger.frame(HumanTask, id=d.task_id).iloc[0]["status"] != "open"
        assert d.to_customer() == []
