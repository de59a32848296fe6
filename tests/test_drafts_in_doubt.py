"""Settling a drafted answer left in doubt (`dunning.drafts_in_doubt`) on SQLite and
PostgreSQL: the age rule, one winner when two people settle it at once, and "send again"
reaching the customer once (real SMTP sink). The desk's pages: tests/desk/."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from apps.mailsink import MailSink
from dunning import drafts_in_doubt as doubt
from dunning.act import EmailIdentity
from dunning.ledger import InboundMessage, Ledger
from dunning.ledger import drafts as store
from dunning.ledger.models import ReplyDraft
from dunning.replies.drafts import DraftError, DraftMailer, outbox_key, send_draft
from dunning.smtp import SmtpPool, SmtpSettings

IDENTITY = EmailIdentity(from_address="cobros@acme.example", from_name="Acme SpA")
CUSTOMER = "ana@cliente.example"


class ProcessDied(BaseException):
    """The sender's process ending mid-send (nothing catches it, as nothing survives a kill)."""


class DyingPool:
    def send(self, message, envelope):  # noqa: ANN001, ANN201
        raise ProcessDied


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request, tmp_path: Path) -> Ledger:
    if request.param == "sqlite":
        return Ledger(f"sqlite:///{tmp_path}/ledger.db")
    return Ledger(request.getfixturevalue("pg_url"))


def drafted(ledger: Ledger, question_id: str, question: str) -> ReplyDraft:
    """A customer's question and the answer drafted for it, waiting for a person."""
    (inbound_id,) = ledger.store_inbound(
        [InboundMessage(provider_id=question_id, sender=CUSTOMER, subject="Consulta",
                        text=question, received_at=datetime(2026, 11, 10, tzinfo=UTC))]
    )  # fmt: skip
    draft, _ = store.save_draft(
        ledger,
        ReplyDraft(task_key=f"reply:{inbound_id}:draft", inbound_id=inbound_id,
                   invoice_number="F-1", customer_id="C1", recipient=CUSTOMER,
                   in_reply_to=question_id, lang="es", subject="Re: Consulta",
                   text="Borrador"),
    )  # fmt: skip
    return draft


def stuck_draft(ledger: Ledger) -> int:
    """A draft approved by `desk:otra` whose sender died while the server had it."""
    draft = drafted(ledger, "<q1@cliente.example>", "¿Valparaíso?")
    dying = DraftMailer(pool=DyingPool(), identity=IDENTITY)  # type: ignore[arg-type]
    with pytest.raises(ProcessDied):
        send_draft(ledger, int(draft.id), "Sí, llegamos.", mailer=dying, actor="desk:otra")
    return int(draft.id)


def age(ledger: Ledger, draft_id: int, minutes: int) -> None:
    table = ReplyDraft.__table__
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.id == draft_id)
            .values(decided_at=datetime.now(UTC) - timedelta(minutes=minutes))
        )


def test_only_a_draft_sending_for_minutes_is_in_doubt_and_one_person_settles_it(ledger):
    draft_id = stuck_draft(ledger)
    assert not store.in_doubt(store.get_draft(ledger, draft_id))
    with pytest.raises(DraftError, match="not in doubt"):
        doubt.mark_sent(ledger, draft_id, actor="desk:jefa")
    age(ledger, draft_id, minutes=6)
    assert store.in_doubt(store.get_draft(ledger, draft_id))
    assert "nothing sent again" in doubt.mark_sent(ledger, draft_id, actor="desk:jefa")
    with pytest.raises(DraftError):  # the colleague a moment later
        doubt.mark_sent(ledger, draft_id, actor="desk:otro")
    assert store.get_draft(ledger, draft_id).state == "sent"
    key = outbox_key(store.get_draft(ledger, draft_id).inbound_id)
    assert store.outbox_state(ledger, key) == "sent"  # nothing can send this answer again


def test_send_again_reaches_the_customer_once(ledger, tmp_path):
    draft_id = stuck_draft(ledger)
    age(ledger, draft_id, minutes=6)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        mailer = DraftMailer(pool=pool, identity=IDENTITY)
        try:
            with pytest.raises(DraftError, match="twice"):
                doubt.send_again(
                    ledger, draft_id, mailer=mailer, actor="desk:jefa", confirmed=False
                )
            doubt.send_again(ledger, draft_id, mailer=mailer, actor="desk:jefa", confirmed=True)
            with pytest.raises(DraftError):
                doubt.send_again(ledger, draft_id, mailer=mailer, actor="desk:jefa", confirmed=True)
        finally:
            pool.close()
        (message,) = [m for m in sink.messages() if CUSTOMER in m["To"]]
    assert "Sí, llegamos." in message.get_body(("plain",)).get_content()
    assert store.get_draft(ledger, draft_id).state == "sent"


def test_approving_while_another_sender_holds_the_outbox_claim_leaves_it_in_doubt(
    ledger, tmp_path
):
    """The outbox row is `claimed` by a sender that has not reached the server (alive or
    dead): approving sends nothing and leaves the draft in doubt, not stuck in sending."""
    draft = drafted(ledger, "<q2@cliente.example>", "¿Y el RUT?")
    assert ledger.claim(
        key=outbox_key(draft.inbound_id), invoice_number="F-1", customer_id="C1",
        stage="reply_draft", channel="email", recipient=CUSTOMER,
    ).claimed  # fmt: skip
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port, security="INSECURE"))
        try:
            said = send_draft(
                ledger, int(draft.id), "Adjunto.", mailer=DraftMailer(pool, IDENTITY), actor="a"
            )
        finally:
            pool.close()
        assert sink.messages() == []
    assert "in_doubt" in said
    assert store.get_draft(ledger, int(draft.id)).state == "in_doubt"
