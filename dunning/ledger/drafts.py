"""Drafted answers waiting for a person (`reply_drafts`): stored once per task, taken for
sending by one person only, discarded, marked as saved to the mailbox's Drafts folder,
and settled by a person when sending was left in doubt (`in_doubt`, `settle_in_doubt`).

What a draft says and how it is sent is `dunning.replies.drafts`' business; this module is
the SQL behind it. Every change of state is one conditional UPDATE, so two people (or a
double click) approving the same draft at once send it once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from dunning.ledger.models import Action, ReplyDraft, utcnow

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

T_DRAFT = ReplyDraft.__table__

#: States a draft can be in (see `ReplyDraft`).
STATES = ("drafted", "sending", "sent", "rejected", "in_doubt", "discarded")
#: A draft still `sending` this long after it was approved was not finished by whoever
#: sent it (the process died, or the mail server never answered): SMTP gives up well
#: within a minute, so after this no live sender can still be at work on it.
IN_DOUBT_AFTER = timedelta(minutes=5)


def save_draft(ledger: Ledger, draft: ReplyDraft) -> tuple[ReplyDraft, bool]:
    """Store `draft` unless its task already has one; returns the stored draft and whether
    it is new."""
    try:
        with Session(ledger.engine, expire_on_commit=False) as session:
            session.add(draft)
            session.commit()
            session.refresh(draft)
            return draft, True
    except IntegrityError:
        existing = draft_for_task(ledger, draft.task_key)
        if existing is None:  # pragma: no cover - the row that conflicted is gone
            raise
        return existing, False


def draft_for_task(ledger: Ledger, task_key: str) -> ReplyDraft | None:
    """The draft of the task with key `task_key`, if it has one."""
    with Session(ledger.engine, expire_on_commit=False) as session:
        return session.exec(select(ReplyDraft).where(ReplyDraft.task_key == task_key)).first()


def get_draft(ledger: Ledger, draft_id: int) -> ReplyDraft | None:
    """One draft by id."""
    with Session(ledger.engine, expire_on_commit=False) as session:
        return session.get(ReplyDraft, draft_id)


def take_for_sending(ledger: Ledger, draft_id: int, *, text: str, by: str) -> bool:
    """Move a `drafted` draft to `sending` with the text to send; False when it is not
    `drafted` any more (someone else approved or discarded it first)."""
    return _move(ledger, draft_id, "drafted", "sending", text=text, decided_by=by)


def finish(ledger: Ledger, draft_id: int, state: str) -> None:
    """Record how sending ended: sent, rejected, in_doubt, or back to drafted (a temporary
    refusal: the person may try again)."""
    if state not in STATES:
        raise ValueError(f"draft state {state!r}: use one of {', '.join(STATES)}")
    _move(ledger, draft_id, "sending", state)


def discard(ledger: Ledger, draft_id: int, *, by: str) -> bool:
    """Move a `drafted` draft to `discarded`; False when it was not `drafted` any more."""
    return _move(ledger, draft_id, "drafted", "discarded", decided_by=by)


def mark_appended(ledger: Ledger, draft_id: int) -> None:
    """The draft was saved to the mailbox's Drafts folder."""
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(T_DRAFT).where(T_DRAFT.c.id == draft_id).values(imap_appended_at=utcnow())
        )


def _move(ledger: Ledger, draft_id: int, old: str, new: str, **values: str) -> bool:
    with ledger.engine.begin() as conn:
        moved = conn.execute(
            sa.update(T_DRAFT)
            .where(T_DRAFT.c.id == draft_id, T_DRAFT.c.state == old)
            .values(state=new, decided_at=utcnow(), **values)
        )
    return moved.rowcount == 1


def in_doubt(draft: ReplyDraft, now: datetime | None = None) -> bool:
    """Whether the draft may or may not have reached the customer and a person must say
    which: recorded `in_doubt`, or `sending` for longer than `IN_DOUBT_AFTER`."""
    if draft.state == "in_doubt":
        return True
    if draft.state != "sending" or draft.decided_at is None:
        return False
    decided = draft.decided_at
    if decided.tzinfo is None:  # SQLite gives back naive UTC times
        decided = decided.replace(tzinfo=(now or utcnow()).tzinfo)
    return decided <= (now or utcnow()) - IN_DOUBT_AFTER


def settle_in_doubt(ledger: Ledger, draft_id: int, state: str, *, by: str) -> bool:
    """Move a draft in doubt (see `in_doubt`) to `state` (`sent`: a person found it sent;
    `drafted`: a person chose to send it again) in one conditional UPDATE; False when it
    is not in doubt any more (a colleague settled it first, or it is too fresh)."""
    if state not in ("sent", "drafted"):
        raise ValueError(f"a draft in doubt is settled as sent or drafted, not {state!r}")
    cutoff = utcnow() - IN_DOUBT_AFTER
    doubtful = sa.or_(
        T_DRAFT.c.state == "in_doubt",
        sa.and_(T_DRAFT.c.state == "sending", T_DRAFT.c.decided_at <= cutoff),
    )
    with ledger.engine.begin() as conn:
        moved = conn.execute(
            sa.update(T_DRAFT)
            .where(T_DRAFT.c.id == draft_id, doubtful)
            .values(state=state, decided_at=utcnow(), decided_by=by)
        )
    return moved.rowcount == 1


def outbox_state(ledger: Ledger, key: str) -> str | None:
    """The state of the outbox row `key` (claimed, sending, sent, failed, rejected), or
    None when the outbox never had it (the sender died before claiming it)."""
    table = Action.__table__
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(table.c.state).where(table.c.key == key)).scalar()
