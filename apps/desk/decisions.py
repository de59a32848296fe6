"""What a person decides in the desk, written to the ledger (with who and when) and to the
CRM outbox: closing a task with its outcome, pausing and resuming reminders.

Outcomes of a task and what they do to the automation:

- `promise` (called, the customer promised a date): a promise to pay, which pauses the
  invoice's reminders until that date plus the policy's grace days; the sweep settles it.
- `dispute` (with a reason): a dispute pause on the invoice until a person ends it.
- `paid` (the customer says it is paid): reminders pause for the policy's
  `replies.payment_verification_days` (as after an "already paid" reply) while the payment
  reaches the books; the sweep closes the invoice when the source shows it paid.
- `no_answer` (retry on a date): a follow-up task on that date; reminders go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from apps.desk.auth import User
from apps.desk.queries import can_close_task
from dunning import drafts_in_doubt as doubt
from dunning.crm import queue_note
from dunning.ledger import Ledger
from dunning.ledger.cases import end_disputes, open_disputes
from dunning.ledger.desk import close_open_task, end_customer_pauses, human_task
from dunning.ledger.drafts import draft_for_task
from dunning.ledger.models import HumanTask, ReplyDraft, utcnow
from dunning.policy import Policy, default_policy
from dunning.replies.drafts import DraftError, DraftMailer, discard_draft, send_draft

OUTCOMES = ("promise", "dispute", "paid", "no_answer")
#: Pauses a person may end from the desk ("resume reminders").
RESUMABLE = ("hold", "dispute", "verify_payment")
#: What a collector may end: a dispute is a manager's call (it may hide a credit note, a
#: legal claim or an angry customer), so only a manager resolves one.
COLLECTOR_RESUMABLE = tuple(kind for kind in RESUMABLE if kind != "dispute")


class DecisionError(ValueError):
    """A decision the desk cannot take as given (say which field and why)."""


class NotAllowed(PermissionError):
    """The user may not take this decision (a collector on a task that is not theirs)."""


class ManagerOnly(NotAllowed):
    """A decision only a manager takes (resuming reminders a dispute stopped); the message
    says so, for the collector to read."""


@dataclass(frozen=True)
class Closing:
    """A task's outcome as the form gave it."""

    outcome: str
    on: date | None = None
    reason: str = ""
    note: str = ""


def close_task(
    ledger: Ledger,
    user: User,
    task_id: int,
    closing: Closing,
    today: date,
    policy: Policy | None = None,
) -> str:
    """Close an open task with its outcome and act on it; returns the outcome's summary.

    `policy` (default: the built-in one) says how long "paid" pauses the reminders.

    Raises:
        DecisionError: unknown outcome, a missing or past date, a dispute without a reason,
            or a task that is already closed or does not exist.
        NotAllowed: a collector closing a task that is not theirs.
    """
    if closing.outcome not in OUTCOMES:
        raise DecisionError(f"outcome: choose one of {', '.join(OUTCOMES)}")
    if closing.outcome in ("promise", "no_answer"):
        if closing.on is None:
            raise DecisionError("date: give the promised or retry date")
        if closing.on < today:
            raise DecisionError(f"date: {closing.on.isoformat()} is in the past")
    if closing.outcome == "dispute" and not closing.reason.strip():
        raise DecisionError("reason: say what the customer disputes")
    task = human_task(ledger, task_id)
    if task is None:
        raise DecisionError(f"task {task_id} does not exist")
    if not can_close_task(user, task.assignee):
        raise NotAllowed(f"task {task_id} is assigned to {task.assignee}")
    summary = _summary(closing)
    # Two people closing the same task at once close it once.
    closed = close_open_task(
        ledger, task_id, outcome=summary, note=_joined(task.note, closing.note, user.email)
    )
    if not closed:
        raise DecisionError(f"task {task_id} is already closed")
    invoice, customer = task.invoice_number, task.customer_id
    actor = f"desk:{user.email}"
    if closing.outcome == "promise" and invoice:
        ledger.add_promise(
            invoice_number=invoice,
            customer_id=customer,
            promised_on=closing.on,
            source=actor,
            actor=actor,
        )
    elif closing.outcome == "dispute" and invoice:
        # With the customer named, the policy's `dispute_scope: customer` stops all of the
        # customer's invoices (the planner reads the scope).
        ledger.add_pause(
            "dispute",
            invoice_number=invoice,
            customer_id=customer or None,
            reason=closing.reason,
            actor=actor,
        )
    elif closing.outcome == "paid" and invoice:
        ledger.add_pause(
            "verify_payment",
            invoice_number=invoice,
            until=today
            + timedelta(days=(policy or default_policy()).replies.payment_verification_days),
            reason=closing.note or "customer says it is paid",
            actor=actor,
        )
    elif closing.outcome == "no_answer":
        ledger.open_task(
            key=f"{task.key}:retry:{closing.on.isoformat()}",
            title=task.title,
            invoice_number=invoice,
            customer_id=customer,
            assignee=task.assignee,
            due_on=closing.on,
            note=f"retry after no answer ({user.email})",
        )
    ledger.record_event(
        "task_closed",
        invoice_number=invoice,
        customer_id=customer,
        action_key=task.key,
        actor=actor,
        task_id=task_id,
        title=task.title,
        outcome=closing.outcome,
        summary=summary,
        note=closing.note,
    )
    queue_note(
        ledger,
        key=f"desk:task:{task_id}:closed",
        text=f"Task '{task.title}' closed by {user.email}: {summary}",
        invoice_number=invoice,
        customer_id=customer,
        direction="desk",
    )
    return summary


def pause(
    ledger: Ledger,
    user: User,
    *,
    customer_id: str,
    invoice_number: str = "",
    reason: str,
    until: date | None = None,
) -> None:
    """Hold reminders for one invoice (or the whole customer when no invoice), with a reason.

    Raises:
        DecisionError: no reason given.
    """
    if not reason.strip():
        raise DecisionError("reason: say why reminders pause")
    actor = f"desk:{user.email}"
    if invoice_number:
        ledger.add_pause(
            "hold", invoice_number=invoice_number, until=until, reason=reason, actor=actor
        )
    else:
        ledger.add_pause("hold", customer_id=customer_id, until=until, reason=reason, actor=actor)
    _note_reminders(ledger, user, "pause", customer_id, invoice_number, reason)


def resume(
    ledger: Ledger,
    user: User,
    *,
    customer_id: str,
    invoice_number: str = "",
    reason: str,
    policy: Policy | None = None,
) -> int:
    """Resume reminders for one invoice (or the whole customer); returns how many pauses
    ended.

    Ends holds, disputes (resolved: the person says so, with the reason) and payment
    verifications. Only a manager ends a dispute: a collector's resume is refused while one
    stops these reminders (with the policy's `dispute_scope: customer`, the default, any
    dispute of the customer does). A manager resuming the whole customer under that scope
    also ends the disputes about its single invoices: the case is resolved. Promises end
    when paid or broken, and opt-outs only when the customer opts in again: neither is
    ended here.

    Raises:
        DecisionError: no reason given.
        ManagerOnly: a collector, while a dispute stops these reminders.
    """
    if not reason.strip():
        raise DecisionError("reason: say why reminders resume")
    actor = f"desk:{user.email}"
    kinds = RESUMABLE if user.is_manager else COLLECTOR_RESUMABLE
    scope = (policy or default_policy()).dispute_scope
    disputes = [
        d
        for d in open_disputes(ledger, customer_id)
        if scope == "customer" or not d["invoice_number"] or d["invoice_number"] == invoice_number
    ]
    if disputes and not user.is_manager:
        raise ManagerOnly(
            f"a dispute stops the reminders of customer {customer_id} "
            f"({disputes[0]['reason'] or 'no reason given'}): only a manager can resume them"
        )
    if invoice_number:
        # Each records its own `pause_<kind>_ended` event (with the actor and reason).
        ended = sum(
            ledger.end_pauses(kind, invoice_number=invoice_number, actor=actor, reason=reason)
            for kind in kinds
        )
    else:
        # "Resume the customer" ends only the customer-wide pauses, not the invoices' own.
        ended = end_customer_pauses(ledger, customer_id, kinds)
        if scope == "customer" and user.is_manager and disputes:
            resolved = end_disputes(ledger, [d["id"] for d in disputes])
            ledger.record_event(
                "pause_dispute_ended", customer_id=customer_id, actor=actor, reason=reason
            )
            ended += resolved
        if ended:
            ledger.record_event(
                "pause_hold_ended", customer_id=customer_id, actor=actor, reason=reason
            )
    _note_reminders(ledger, user, "resume", customer_id, invoice_number, reason)
    return ended


def _note_reminders(
    ledger: Ledger,
    user: User,
    verb: Literal["pause", "resume"],
    customer_id: str,
    invoice_number: str,
    reason: str,
) -> None:
    """Queue the CRM note that `user` paused or resumed reminders (for one invoice, or all
    of the customer's), with the reason."""
    what = f"invoice {invoice_number}" if invoice_number else "all invoices"
    queue_note(
        ledger,
        key=f"desk:{verb}:{customer_id}:{invoice_number}:{utcnow().isoformat()}",
        text=f"Reminders {verb}d for {what} by {user.email}: {reason}",
        invoice_number=invoice_number,
        customer_id=customer_id,
        direction="desk",
    )


def _summary(closing: Closing) -> str:
    if closing.outcome == "promise":
        return f"promise to pay on {closing.on.isoformat()}"
    if closing.outcome == "dispute":
        return f"dispute opened: {closing.reason.strip()}"
    if closing.outcome == "paid":
        return "customer says it is paid"
    return f"no answer; retry on {closing.on.isoformat()}"


def _joined(old: str, new: str, who: str) -> str:
    new = new.strip()
    if not new:
        return old
    return f"{old}\n{who}: {new}".strip()


# -- drafted answers (dunning.replies.drafts) --------------------------------------------------


def task_draft(ledger: Ledger, task_key: str) -> ReplyDraft | None:
    """The drafted answer kept with the task of key `task_key`, if it has one."""
    return draft_for_task(ledger, task_key)


def decide_draft(
    ledger: Ledger,
    user: User,
    task_id: int,
    decision: str,
    text: str,
    mailer: DraftMailer | None,
) -> str:
    """Approve (send `text`, possibly edited, once, in the customer's thread) or discard
    the drafted answer of a task, then close the task; returns the summary.

    A second approval (a double click, a replayed form, a colleague at the same moment)
    finds the draft already taken and sends nothing. An answer left in doubt (the server
    may or may not have it) keeps the task open until a person settles it (`settle_draft`).

    Raises:
        DecisionError: unknown decision, no draft, no mail channel, an empty text, a draft
            already decided, or a temporary refusal by the mail server.
        NotAllowed: a collector deciding on a task that is not theirs.
    """
    if decision not in ("approve", "discard"):
        raise DecisionError("decision: approve or discard")
    task, draft = _task_and_draft(ledger, user, task_id)
    if task.status != "open":
        raise DecisionError(f"task {task_id} is already closed ({task.outcome})")
    actor = f"desk:{user.email}"
    status = ""
    try:
        if decision == "discard":
            discard_draft(ledger, int(draft.id), actor=actor)
            summary = "drafted answer discarded: nothing sent"
        else:
            if mailer is None:
                raise DecisionError("this desk has no email channel to send drafts with")
            status = send_draft(ledger, int(draft.id), text, mailer=mailer, actor=actor)
            summary = f"drafted answer approved and {status.replace('_', ' ')} to {draft.recipient}"
    except DraftError as exc:
        raise DecisionError(str(exc)) from None
    if status == "in_doubt":
        # The server may or may not have it: the task stays open, its page showing the
        # draft in doubt with its way out (settle_draft), which closes it.
        return summary
    _close_draft_task(ledger, user, task, f"draft_{decision}", summary)
    return summary


#: What a person may do with a drafted answer left in doubt (`dunning.drafts_in_doubt`).
DOUBT_DECISIONS = ("mark_sent", "send_again")


def settle_draft(
    ledger: Ledger,
    user: User,
    task_id: int,
    decision: str,
    *,
    confirmed: bool,
    mailer: DraftMailer | None,
) -> str:
    """Settle a task's drafted answer left in doubt (`sending` too long, or `in_doubt`):
    `mark_sent` (found in the Sent folder: nothing is sent) or `send_again` (only when
    `confirmed`, the person having accepted that the customer may get it twice); the task
    closes if it is still open; returns the summary.

    Raises:
        DecisionError: unknown decision, no draft, not in doubt, not confirmed, no mail
            channel, or what sending refuses.
        NotAllowed: a collector deciding on a task that is not theirs.
    """
    if decision not in DOUBT_DECISIONS:
        raise DecisionError(f"decision: {' or '.join(DOUBT_DECISIONS)}")
    task, draft = _task_and_draft(ledger, user, task_id)
    actor = f"desk:{user.email}"
    try:
        if decision == "mark_sent":
            summary = doubt.mark_sent(ledger, int(draft.id), actor=actor)
        else:
            if mailer is None:
                raise DecisionError("this desk has no email channel to send drafts with")
            summary = doubt.send_again(
                ledger, int(draft.id), mailer=mailer, actor=actor, confirmed=confirmed
            )
    except DraftError as exc:
        raise DecisionError(str(exc)) from None
    _close_draft_task(ledger, user, task, f"draft_{decision}", summary)
    return summary


def _close_draft_task(
    ledger: Ledger, user: User, task: HumanTask, outcome: str, summary: str
) -> None:
    """Close the draft's task (if still open) with `summary`, on the timeline and for the CRM."""
    task_id = int(task.id)
    actor = f"desk:{user.email}"
    if close_open_task(ledger, task_id, outcome=summary, note=task.note):
        ledger.record_event(
            "task_closed",
            invoice_number=task.invoice_number,
            customer_id=task.customer_id,
            action_key=task.key,
            actor=actor,
            task_id=task_id,
            title=task.title,
            outcome=outcome,
            summary=summary,
        )
        queue_note(
            ledger,
            key=f"desk:task:{task_id}:closed",
            text=f"Task '{task.title}' closed by {user.email}: {summary}",
            invoice_number=task.invoice_number,
            customer_id=task.customer_id,
            direction="desk",
        )


def _task_and_draft(ledger: Ledger, user: User, task_id: int) -> tuple[HumanTask, ReplyDraft]:
    """The task and the answer drafted for it, if this user may decide on them."""
    task = human_task(ledger, task_id)
    if task is None:
        raise DecisionError(f"task {task_id} does not exist")
    if not can_close_task(user, task.assignee):
        raise NotAllowed(f"task {task_id} is assigned to {task.assignee}")
    draft = draft_for_task(ledger, task.key)
    if draft is None:
        raise DecisionError(f"task {task_id} has no drafted answer")
    return task, draft
