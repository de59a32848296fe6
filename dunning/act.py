"""Carry out one planned action, exactly once: re-check, claim, render, send, record, escalate.

This is the body of the per-action Prefect task, kept free of Prefect so it can be tested and
reused directly. The order of the steps is what makes it safe:

1. re-check the invoice at the source (it may have been paid since the plan was made);
2. claim the action in the ledger's outbox (unique key: only one caller wins);
3. render the message and mark the action `sending` *before* the mail server sees it;
4. send, then mark it `sent` (a crash between the two leaves `sending`: in doubt, never resent);
5. open the stage's human task and set the customer's status, once each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from dunning.ledger import Ledger
from dunning.ledger.models import TAKEN_REASONS
from dunning.mail import Envelope, build_email, split_addresses
from dunning.policy import Policy, Stage
from dunning.render import message_context, render_email
from dunning.schema import Invoice
from dunning.smtp import NotSent, OutcomeUnknown, SmtpPool


@dataclass(frozen=True)
class EmailIdentity:
    """Who reminders come from and where replies and archive copies go."""

    from_address: str
    from_name: str = ""
    reply_to: str = ""
    bcc: tuple[str, ...] = ()
    message_id_domain: str = ""


@dataclass
class Outcome:
    """What happened to one action; `status` is sent, task, skipped or failed."""

    key: str
    invoice: str
    stage: str
    channel: str
    status: str
    reason: str = ""
    recipient: str = ""
    message_id: str = ""
    escalations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def execute_action(
    action: dict[str, Any],
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    now: datetime,
    flow_run_id: str = "",
    attachments_root: str | None = None,
) -> Outcome:
    """Carry out one row of the plan (see module docstring).

    Raises `NotSent` for a temporary mail-server failure, after recording it, so that the
    caller (a Prefect task with retries) tries again; every other failure is an `Outcome`.
    """
    key, invoice, stage_name, channel = (
        action["key"],
        action["invoice"],
        action["stage"],
        action["channel"],
    )
    segment = action.get("segment") or None
    outcome = Outcome(key=key, invoice=invoice, stage=stage_name, channel=channel, status="skipped")

    fresh = lookup(invoice)
    if fresh is None or not fresh.is_payable or fresh.status == "disputed":
        outcome.reason = (
            "gone_at_source"
            if fresh is None
            else "disputed"
            if fresh.status == "disputed"
            else "paid_at_source"
        )
        ledger.record_event(
            "skipped",
            invoice_number=invoice,
            customer_id=action["customer"],
            action_key=key,
            reason=outcome.reason,
        )
        return outcome

    recipient = fresh.email if channel == "email" else ""
    claim = ledger.claim(
        key=key,
        invoice_number=invoice,
        customer_id=fresh.customer_id,
        stage=stage_name,
        channel=channel,
        recipient=recipient,
        amount_due=fresh.amount_due,
        currency=fresh.currency,
        flow_run_id=flow_run_id,
        stale_after=timedelta(minutes=policy.stale_claim_minutes),
    )
    if not claim.claimed:
        outcome.reason = TAKEN_REASONS.get(claim.state, claim.state)
        outcome.message_id = claim.message_id
        return outcome

    stage = policy.stage(stage_name, segment)
    today = pd.Timestamp(now).tz_convert(action.get("timezone") or policy.timezone).date()
    if channel == "task":
        ledger.open_task(
            key=key,
            invoice_number=invoice,
            customer_id=fresh.customer_id,
            title=f"No usable email for {fresh.customer_name or fresh.customer_id}: "
            f"contact them about invoice {invoice} ({stage_name})",
            assignee=(stage.escalation.assignee if stage.escalation else "account_owner"),
            due_on=today,
        )
        ledger.mark_sent(key, "human task opened")
        outcome.status = "task"
    else:
        if pool is None or identity is None:
            raise ValueError("an email action needs an SMTP pool and a sender identity")
        _send_email(
            action,
            fresh,
            stage,
            outcome,
            ledger=ledger,
            pool=pool,
            identity=identity,
            today=today,
            attachments_root=attachments_root,
        )
        if outcome.status != "sent":
            return outcome
    outcome.escalations = _escalate(stage, fresh, key, ledger=ledger, today=today)
    return outcome


def _send_email(
    action: dict[str, Any],
    inv: Invoice,
    stage: Stage,
    outcome: Outcome,
    *,
    ledger: Ledger,
    pool: SmtpPool,
    identity: EmailIdentity,
    today: date,
    attachments_root: str | None,
) -> None:
    key = outcome.key
    attachment = _attachment(inv.pdf_path, attachments_root)
    try:
        context = message_context(
            customer_name=inv.customer_name or inv.customer_id,
            invoice_number=inv.invoice_number,
            amount_due=inv.amount_due,
            amount_total=inv.amount_total,
            currency=inv.currency,
            due_date=inv.due_date,
            issue_date=inv.issue_date,
            today=today,
            language=_language_of(action, inv),
            country=action.get("country") or inv.country,
            payment_link=inv.payment_link if stage.include_payment_link else "",
            company_name=identity.from_name,
            reply_to=identity.reply_to or identity.from_address,
            stage=stage.name,
            tone=stage.tone,
            has_attachment=attachment is not None,
        )
        rendered = render_email(
            stage.template_name, _language_of(action, inv), context, fallback_language="en"
        )
        message = build_email(
            rendered,
            from_address=identity.from_address,
            from_name=identity.from_name,
            to=inv.email,
            reply_to=identity.reply_to,
            key=key,
            attachment=attachment,
            message_id_domain=identity.message_id_domain,
        )
    except Exception as exc:
        ledger.mark_failed(key, f"could not build the message: {exc}")
        raise
    outcome.recipient = inv.email
    outcome.message_id = message["Message-ID"]
    ledger.mark_sending(key, outcome.message_id)
    envelope = Envelope(identity.from_address, split_addresses(inv.email), list(identity.bcc))
    try:
        reply = pool.send(message, envelope)
    except NotSent as exc:
        ledger.mark_failed(key, str(exc), permanent=exc.permanent)
        ledger.record_event(
            "send_failed",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            action_key=key,
            error=str(exc),
            permanent=exc.permanent,
        )
        if not exc.permanent:
            raise
        ledger.open_task(
            key=f"{key}:bounce",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            title=f"Email to {inv.email} refused: fix the contact of "
            f"{inv.customer_name or inv.customer_id}",
            assignee="account_owner",
            due_on=today,
            note=str(exc),
        )
        outcome.status, outcome.reason = "failed", f"rejected: {exc}"
        return
    except OutcomeUnknown as exc:
        ledger.record_event(
            "in_doubt",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            action_key=key,
            error=str(exc),
        )
        outcome.status, outcome.reason = "failed", f"in_doubt: {exc}"
        return
    ledger.mark_sent(key, reply)
    ledger.record_event(
        "sent",
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        action_key=key,
        stage=stage.name,
        channel="email",
        recipient=inv.email,
        message_id=outcome.message_id,
        amount_due=inv.amount_due,
        currency=inv.currency,
        subject=message["Subject"],
    )
    outcome.status = "sent"


def _language_of(action: dict[str, Any], inv: Invoice) -> str:
    """The plan fills in a language from the country when the source has none."""
    return action.get("language") or inv.language or "en"


def _attachment(pdf_path: str, root: str | None) -> str | None:
    if not pdf_path:
        return None
    path = Path(pdf_path)
    if not path.is_absolute() and root:
        path = Path(root) / path
    return str(path) if path.is_file() else None


def _escalate(stage: Stage, inv: Invoice, key: str, *, ledger: Ledger, today: date) -> list[str]:
    done: list[str] = []
    esc = stage.escalation
    if esc is None:
        return done
    if esc.human_task:
        ledger.open_task(
            key=f"{key}:escalation",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            title=f"{esc.human_task}: {inv.customer_name or inv.customer_id}, "
            f"invoice {inv.invoice_number}",
            assignee=esc.assignee,
            due_on=today + timedelta(days=esc.task_due_days),
        )
        done.append(f"task:{esc.assignee}")
    if esc.customer_status:
        ledger.set_customer_status(
            inv.customer_id,
            esc.customer_status,
            reason=f"{stage.name} sent for {inv.invoice_number}",
        )
        done.append(f"status:{esc.customer_status}")
    return done
