"""A drafted answer left in doubt, settled by a person: sent or not, nobody recorded it.

`send_draft` (`dunning.replies.drafts`) moves an approved draft to `sending` and its outbox
row to `sending` before the mail server sees the message. If the process dies there (or
the server never answers) the draft stays `sending` (or `in_doubt`), and nothing resends
it by itself: the customer may already have it. After `IN_DOUBT_AFTER` the desk shows it
"in doubt: check the Sent folder", and a person settles it:

- `mark_sent`: they found it sent. The draft and its outbox row become `sent` (so nothing
  can ever send that answer again); nothing goes out.
- `send_again`: they did not find it and accept that the customer may get it twice (the
  `confirmed` flag: the desk asks first). The outbox row is released and the approved
  text is sent through `send_draft`, once, as an approval is; if the outbox meanwhile
  shows it `sent`, nothing is sent and the draft is marked sent.

Both are conditional on the draft still being in doubt (two people settling it at once:
one wins, the other is told) and recorded as events with the person.
"""

from __future__ import annotations

from dunning.ledger import ActionState, Ledger
from dunning.ledger import drafts as store
from dunning.ledger.models import ReplyDraft
from dunning.replies.drafts import TEMPLATE, DraftError, DraftMailer, outbox_key, send_draft

#: What the person must accept before an answer in doubt is sent again.
DUPLICATE_RISK = (
    "the customer may already have this answer: sending it again may make them receive it twice"
)


def mark_sent(ledger: Ledger, draft_id: int, *, actor: str) -> str:
    """A person found the answer in the Sent folder: record it sent, send nothing; returns
    the summary.

    Raises:
        DraftError: no such draft, or it is not in doubt (any more).
    """
    draft = _doubtful(ledger, draft_id)
    if not store.settle_in_doubt(ledger, draft_id, "sent", by=actor):
        raise DraftError(f"draft {draft_id} was already {_current(ledger, draft_id)}")
    key = outbox_key(draft.inbound_id)
    before = store.outbox_state(ledger, key)
    if before is None:  # the sender died before claiming: claim it so it never goes
        ledger.claim(
            key=key,
            invoice_number=draft.invoice_number,
            customer_id=draft.customer_id,
            stage=TEMPLATE,
            channel="email",
            recipient=draft.recipient,
        )
    if before != ActionState.sent:
        ledger.mark_sent(key, f"marked sent in the desk by {actor}")
    ledger.record_event(
        "draft_marked_sent",
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        action_key=key,
        actor=actor,
        inbound_id=draft.inbound_id,
        outbox_state=before or "none",
        recipient=draft.recipient,
    )
    return f"answer in doubt marked sent to {draft.recipient}: nothing sent again"


def send_again(
    ledger: Ledger, draft_id: int, *, mailer: DraftMailer, actor: str, confirmed: bool
) -> str:
    """A person did not find the answer and, having accepted `DUPLICATE_RISK`
    (`confirmed`), sends its approved text again, once; returns the summary.

    Raises:
        DraftError: not confirmed, no such draft, not in doubt (any more), or what
            `send_draft` refuses (a temporary refusal leaves the draft to approve again).
    """
    if not confirmed:
        raise DraftError(f"confirm first: {DUPLICATE_RISK}")
    draft = _doubtful(ledger, draft_id)
    key = outbox_key(draft.inbound_id)
    before = store.outbox_state(ledger, key)
    if before == ActionState.sent:  # the sender recorded it and died just after: it went
        return mark_sent(ledger, draft_id, actor=actor)
    if before == ActionState.rejected:
        raise DraftError(f"the mail server refused the answer to {draft.recipient} for good")
    if not store.settle_in_doubt(ledger, draft_id, "drafted", by=actor):
        raise DraftError(f"draft {draft_id} was already {_current(ledger, draft_id)}")
    ledger.record_event(
        "draft_resend_confirmed",
        invoice_number=draft.invoice_number,
        customer_id=draft.customer_id,
        action_key=key,
        actor=actor,
        inbound_id=draft.inbound_id,
        outbox_state=before or "none",
        risk=DUPLICATE_RISK,
    )
    if before in (ActionState.claimed, ActionState.sending):
        # Released only by the person who won the draft above: the claim in send_draft
        # then takes it again, and only once.
        ledger.mark_failed(key, f"in doubt; sent again from the desk by {actor}")
    status = send_draft(ledger, draft_id, draft.text, mailer=mailer, actor=actor)
    return f"answer in doubt sent again ({status.replace('_', ' ')}) to {draft.recipient}"


def _doubtful(ledger: Ledger, draft_id: int) -> ReplyDraft:
    draft = store.get_draft(ledger, draft_id)
    if draft is None:
        raise DraftError(f"draft {draft_id} does not exist")
    if not store.in_doubt(draft):
        raise DraftError(f"draft {draft_id} is {draft.state}, not in doubt: nothing to settle")
    return draft


def _current(ledger: Ledger, draft_id: int) -> str:
    draft = store.get_draft(ledger, draft_id)
    return draft.state if draft else "removed"
