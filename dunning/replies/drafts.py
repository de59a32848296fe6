"""Drafted answers a person approves: written from the company's knowledge base for a
message the rules cannot act on, kept in the ledger with its task, saved to the mailbox's
Drafts folder when one is set, and sent once when a person approves it in the desk.

- `write_draft`: the passages most relevant to the customer's words (`dunning.knowledge`),
  quoted in the `answer_draft` template in the customer's language; with none relevant
  enough, the draft says a person will answer (and the task's title says so too).
- `send_draft`: the approved (possibly edited) text goes out in the customer's thread
  (In-Reply-To/References of their message) through the outbox, keyed by the message, so a
  second approval, a double click or a replayed form sends nothing; it is recorded on the
  customer's timeline (the outbox's `sent` event with the text) and queued for the CRM.
- `discard_draft`: nothing is sent; the decision is recorded and queued for the CRM.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from dunning import crm
from dunning.act import EmailIdentity
from dunning.delivery import deliver
from dunning.knowledge import KnowledgeBase, quote
from dunning.ledger import Ledger
from dunning.ledger import drafts as store
from dunning.ledger.models import ReplyDraft
from dunning.mail import Envelope, build_email
from dunning.render import RenderedMessage, render_email
from dunning.replies.quoting import strip_quoted
from dunning.smtp import NotSent, SmtpPool

#: The outbox key (and template name) of a drafted answer: one answer per customer message.
TEMPLATE = "answer_draft"
#: How much of the customer's text is searched (their own words, without quoted history).
QUESTION_CHARS = 2000


class DraftError(ValueError):
    """A draft that cannot be sent or discarded as asked (the message says why)."""


@dataclass(frozen=True)
class DraftMailer:
    """How the desk sends approved drafts: the SMTP pool and the sender identity of the
    email channel the flows use."""

    pool: SmtpPool
    identity: EmailIdentity


def outbox_key(inbound_id: int) -> str:
    """The outbox key of the answer to inbox message `inbound_id` (sent at most once)."""
    return f"reply:{inbound_id}:{TEMPLATE}"


def reply_subject(subject: str) -> str:
    """`Re: <their subject>` (not `Re: Re: ...`)."""
    subject = " ".join((subject or "").split())
    return subject if subject.lower().startswith(("re:", "re :")) else f"Re: {subject}".strip()


def write_draft(
    knowledge: KnowledgeBase | None,
    text: str,
    *,
    lang: str,
    subject: str,
    customer_name: str = "",
    company_name: str = "",
    overlay: str | None = None,
) -> tuple[RenderedMessage, list[str]]:
    """The drafted answer to the customer's `text` in `lang`, and the sources it quotes
    (empty when nothing is relevant enough: the draft then says a person will answer)."""
    question = strip_quoted(text or subject)[:QUESTION_CHARS]
    hits = knowledge.search(question, lang=lang) if knowledge is not None else []
    passages = [{"title": h.passage.title, "quote": quote(h.passage.text)} for h in hits]
    rendered = render_email(
        TEMPLATE,
        lang,
        {
            "customer_name": customer_name,
            "company_name": company_name,
            "passages": passages,
            "reply_subject": reply_subject(subject),
        },
        fallback_language="en",
        overlay=overlay,
    )
    return rendered, [h.passage.cite for h in hits]


def draft_message(
    draft: ReplyDraft, identity: EmailIdentity, text: str | None = None
) -> EmailMessage:
    """The draft (or `text`, the approved version) as an email in the customer's thread;
    the same Message-ID whether it is saved to Drafts or sent."""
    body = (text if text is not None else draft.text).replace("\r\n", "\n").strip() + "\n"
    rendered = RenderedMessage(draft.subject, body, _as_html(body), draft.lang or "en")
    message = build_email(
        rendered,
        from_address=identity.from_address,
        from_name=identity.from_name,
        to=draft.recipient,
        reply_to=identity.reply_to,
        key=outbox_key(draft.inbound_id),
        message_id_domain=identity.message_id_domain,
    )
    if draft.in_reply_to.startswith("<") and "@no-message-id>" not in draft.in_reply_to:
        message["In-Reply-To"] = draft.in_reply_to
        message["References"] = f"{draft.references} {draft.in_reply_to}".strip()
    return message


def send_draft(ledger: Ledger, draft_id: int, text: str, *, mailer: DraftMailer, actor: str) -> str:
    """Send the approved `text` of a draft once, in the customer's thread; returns what
    happened ("sent", "rejected", "in_doubt", or "already sent").

    Raises:
        DraftError: no such draft, not an email, an empty text, already decided, or a
            temporary refusal by the mail server (the draft stays; try again).
    """
    draft = store.get_draft(ledger, draft_id)
    if draft is None:
        raise DraftError(f"draft {draft_id} does not exist")
    if draft.channel != "email":
        raise DraftError(f"the customer wrote on {draft.channel}: answer them there by hand")
    if not text.strip():
        raise DraftError("text: the answer is empty")
    if not store.take_for_sending(ledger, draft_id, text=text, by=actor):
        raise DraftError(f"draft {draft_id} was already {_current(ledger, draft_id)}")
    key = outbox_key(draft.inbound_id)
    claim = ledger.claim(
        key=key,
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        stage=TEMPLATE,
        channel="email",
        recipient=draft.recipient,
    )
    if not claim.claimed:  # the outbox already has it: it never goes twice
        # Another sender holds it (claimed or sending, alive or dead): in doubt, for a
        # person to settle in the desk; sent and rejected are final as they are.
        state = claim.state if claim.state in ("sent", "rejected") else "in_doubt"
        store.finish(ledger, draft_id, state)
        return "already sent" if state == "sent" else f"not sent: the outbox has it {state}"
    identity = mailer.identity
    message = draft_message(draft, identity, text)
    envelope = Envelope(identity.from_address, [draft.recipient], list(identity.bcc))
    try:
        delivery = deliver(
            ledger,
            mailer.pool,
            key,
            message,
            envelope,
            invoice_number=draft.invoice_number,
            customer_id=draft.customer_id,
            stage=TEMPLATE,
            channel="email",
            body=text,
            approved_by=actor,
        )
    except NotSent as exc:  # temporary: recorded as failed, the draft may be approved again
        store.finish(ledger, draft_id, "drafted")
        raise DraftError(f"the mail server did not take it for now ({exc}): try again") from None
    store.finish(ledger, draft_id, delivery.status)
    crm.queue_note(
        ledger,
        key=f"{key}:{delivery.status}",
        text=f"Answer to {draft.recipient} approved by {actor} ({delivery.status}):\n{text[:1000]}",
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        direction="out",
        channel="email",
        email=draft.recipient,
        subject=draft.subject,
    )
    return delivery.status


def discard_draft(ledger: Ledger, draft_id: int, *, actor: str) -> None:
    """Discard a draft: nothing is sent; recorded on the timeline and queued for the CRM.

    Raises:
        DraftError: no such draft, or it was already sent or discarded.
    """
    draft = store.get_draft(ledger, draft_id)
    if draft is None:
        raise DraftError(f"draft {draft_id} does not exist")
    if not store.discard(ledger, draft_id, by=actor):
        raise DraftError(f"draft {draft_id} was already {_current(ledger, draft_id)}")
    ledger.record_event(
        "draft_discarded",
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        action_key=outbox_key(draft.inbound_id),
        actor=actor,
        inbound_id=draft.inbound_id,
    )
    crm.queue_note(
        ledger,
        key=f"{outbox_key(draft.inbound_id)}:discarded",
        text=f"Drafted answer to {draft.recipient} discarded by {actor}: nothing sent",
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        direction="desk",
    )


def _current(ledger: Ledger, draft_id: int) -> str:
    draft = store.get_draft(ledger, draft_id)
    return draft.state if draft else "removed"


def _as_html(text: str) -> str:
    """The plain text as HTML that shows the same (quotes and line breaks kept)."""
    return f'<div style="white-space:pre-wrap;font-family:sans-serif">{html.escape(text)}</div>'


def as_dict(draft: ReplyDraft) -> dict[str, Any]:
    """A draft's fields for a page."""
    return draft.model_dump()
