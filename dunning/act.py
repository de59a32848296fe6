"""Carry out one planned action, exactly once: re-check, claim, render, send, record, escalate.

This is the body of the per-action Prefect task, kept free of Prefect so it can be tested and
reused directly. The order of the steps is what makes it safe:

1. re-check the invoice at the source (it may have been paid since the plan was made);
2. claim the action in the ledger's outbox (unique key: only one caller wins);
3. render the message and mark the action `sending` *before* the mail server sees it;
4. send, then mark it `sent` (a crash between the two leaves `sending`: in doubt, never resent);
5. open the stage's human task and set the customer's status, once each.

A WhatsApp action (`channel` whatsapp) claims its own key and sends the stage's approved
template (`dunning.whatsapp.send_whatsapp_reminder`); when WhatsApp cannot take it (no
consent any more, a number Meta does not know, a refused template) the same stage is claimed
and sent by email under the email key, so the customer still hears from us once, and the
outcome says it fell back and why. SMS and automated calls (`channel` sms, voice; Twilio,
`dunning.twilio`) go the same way: claimed under their own key, and when the number cannot
take them (STOP, 21610, an invalid or landline number, no consent) the stage goes by email,
or becomes a human task, in the same run. A placed call's outcome arrives later by webhook.

Every message sent, human task opened and status set is also queued for the CRM
(`dunning.crm`, one entry per key); the sweep delivers the queue to the configured CRM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from babel.numbers import format_currency

from dunning.action import ActionKey, Outcome, PlannedAction
from dunning.channels import INTERNAL
from dunning.crm import note_entry, queue_note, queue_status
from dunning.delivery import deliver
from dunning.ledger import Ledger
from dunning.ledger.models import TAKEN_REASONS
from dunning.mail import Envelope, build_email, find_attachment, split_addresses
from dunning.people import notify, people_for
from dunning.policy import Policy, Stage, resolve_assignee
from dunning.render import format_day, invoice_context, locale_for, render_email
from dunning.schema import Invoice
from dunning.smtp import SmtpPool

if TYPE_CHECKING:
    from email.message import EmailMessage
    from pathlib import Path

    from dunning.render import RenderedMessage
    from dunning.twilio.client import TwilioClient
    from dunning.twilio.sms import SmsSettings, TwilioResult
    from dunning.twilio.voice import VoiceSettings
    from dunning.whatsapp.client import WhatsAppClient
    from dunning.whatsapp.templates import TemplateBook


#: How much of each sent message's text the ledger keeps (the desk shows it).
SENT_BODY_CHARS = 4000


@dataclass(frozen=True)
class EmailIdentity:
    """Who reminders come from and where replies and archive copies go."""

    from_address: str
    from_name: str = ""
    reply_to: str = ""
    bcc: tuple[str, ...] = ()
    message_id_domain: str = ""

    def message(
        self,
        rendered: RenderedMessage,
        *,
        to: str,
        key: str,
        attachments: Sequence[str | Path] = (),
        reply_to: bool = True,
    ) -> EmailMessage:
        """`rendered` as an email from this identity to `to`, its Message-ID made from `key`;
        `reply_to=False` for internal mail, whose replies should reach the sender."""
        return build_email(
            rendered,
            from_address=self.from_address,
            from_name=self.from_name,
            to=to,
            reply_to=self.reply_to if reply_to else "",
            key=key,
            attachments=attachments,
            message_id_domain=self.message_id_domain,
        )

    def envelope(self, to: str) -> Envelope:
        """The SMTP envelope to the addresses in `to`, with the archive copies (BCC)."""
        return Envelope(self.from_address, split_addresses(to), list(self.bcc))


@dataclass(frozen=True)
class WhatsAppSender:
    """The WhatsApp side of the act step: the Cloud API client and the template mapping
    (from a `WhatsAppCloudChannel` block: `WhatsAppSender(block.client(), block.templates())`).
    """

    client: WhatsAppClient
    templates: TemplateBook


@dataclass(frozen=True)
class SmsSender:
    """The SMS side of the act step (from an `SmsChannel` block:
    `SmsSender(block.client(), block.settings())`)."""

    client: TwilioClient
    settings: SmsSettings


@dataclass(frozen=True)
class VoiceSender:
    """The calling side of the act step (from a `VoiceChannel` block)."""

    client: TwilioClient
    settings: VoiceSettings


def execute_action(
    action: PlannedAction | Mapping[str, Any],
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    now: datetime,
    flow_run_id: str = "",
    attachments_root: str | None = None,
    whatsapp: WhatsAppSender | None = None,
    sms: SmsSender | None = None,
    voice: VoiceSender | None = None,
) -> Outcome:
    """Carry out one action of the plan (see module docstring).

    `action` is a `PlannedAction`, or its JSON form (`PlannedAction.to_dict`). Its channel
    is email, task or whatsapp (the latter needs `whatsapp`). Raises
    `NotSent` for a temporary mail-server or Cloud API failure (a rate limit after backoff),
    after recording it, so that the caller (a Prefect task with retries) tries again; an
    invalid WhatsApp token raises `AuthError` naming the block (permanent: not retried);
    every other failure is an `Outcome`.
    """
    if not isinstance(action, PlannedAction):
        action = PlannedAction.from_dict(action)
    key, invoice, stage_name, channel = action.key, action.invoice, action.stage, action.channel
    if action.items:  # a statement: one message for several invoices
        from dunning.statement import execute_statement  # it builds on this module

        return execute_statement(
            action,
            ledger=ledger,
            policy=policy,
            lookup=lookup,
            pool=pool,
            identity=identity,
            now=now,
            flow_run_id=flow_run_id,
            attachments_root=attachments_root,
            whatsapp=whatsapp,
        )
    outcome = Outcome(key=key, stage=stage_name, status="skipped")

    today = pd.Timestamp(now).tz_convert(action.timezone or policy.timezone).date()
    fresh, outcome.reason, promised_on = _recheck(
        action, ledger=ledger, policy=policy, lookup=lookup, today=today
    )
    if fresh is None:
        return outcome

    if channel == "whatsapp" and whatsapp is None:
        raise ValueError("a WhatsApp action needs a WhatsApp channel (client and templates)")
    if (channel == "sms" and sms is None) or (channel == "voice" and voice is None):
        raise ValueError(f"an {channel} action needs the {channel} channel's block")
    if not _claim(ledger, outcome, fresh, policy, flow_run_id):
        return outcome

    stage = policy.stage(stage_name, action.segment or None)
    if channel in ("whatsapp", "sms", "voice"):
        if channel == "whatsapp":
            assert whatsapp is not None
            sent = _send_whatsapp(
                action,
                fresh,
                stage,
                outcome,
                ledger=ledger,
                whatsapp=whatsapp,
                today=today,
                identity=identity,
            )
        else:
            sent = _send_twilio(
                action,
                fresh,
                stage,
                outcome,
                ledger=ledger,
                sender=sms if channel == "sms" else voice,
                today=today,
                identity=identity,
            )
        if not sent:
            return outcome
        if outcome.channel == channel:
            # Keyed as the email action's: a stage on both channels opens one task. A call
            # stands in for the stage's task: a person is asked only if it is not answered.
            email_key = key.on("email")
            outcome.escalations = _escalate(
                stage,
                fresh,
                email_key,
                ledger=ledger,
                today=today,
                task=channel != "voice",
                policy=policy,
                pool=pool,
                identity=identity,
            )
            return outcome
        # Fell back: the email key now carries the stage, as if planned on email.
        if not _claim(ledger, outcome, fresh, policy, flow_run_id):
            return outcome
        key, channel = outcome.key, outcome.channel
    if channel == INTERNAL:
        # An internal stage (`channel: none`): the claimed key stands for "done once"; the
        # customer gets nothing, the people get the escalation.
        ledger.mark_sent(str(key), "internal stage: nothing sent to the customer")
        outcome.status = "task"
    elif channel == "task":
        title = (
            f"No usable email for {fresh.customer_name or fresh.customer_id}: "
            f"contact them about invoice {invoice} ({stage_name})"
        )
        assignee = resolve_assignee(
            stage.escalation.assignee if stage.escalation else "account_owner",
            policy,
            owner_email=fresh.owner_email,
            manager_email=fresh.manager_email,
        )
        ledger.open_task(
            key=str(key),
            invoice_number=invoice,
            customer_id=fresh.customer_id,
            title=title,
            assignee=assignee,
            due_on=today,
            crm_key=f"{key}:task",
            crm={"task_type": "CALL", **_crm_contact(fresh)},
        )
        ledger.mark_sent(str(key), "human task opened")
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
            promised_on=promised_on,
            templates_overlay=policy.templates_dir,
            policy=policy,
        )
        if outcome.status != "sent":
            return outcome
    outcome.escalations = _escalate(
        stage, fresh, key, ledger=ledger, today=today, policy=policy, pool=pool, identity=identity
    )
    return outcome


def recheck(
    action: PlannedAction,
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    today: date,
) -> tuple[Invoice | None, str]:
    """The invoice as the source has it now, or None and why it gets nothing after all
    (recorded as a `skipped` event): gone, paid, disputed, or paused since the plan."""
    fresh, reason, _ = _recheck(action, ledger=ledger, policy=policy, lookup=lookup, today=today)
    return fresh, reason


def _recheck(
    action: PlannedAction,
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    today: date,
) -> tuple[Invoice | None, str, date | None]:
    """`recheck`, plus the promised date of a "promise broken" action: the ledger's side
    (closed by a webhook, paused, the promise) is one read transaction."""
    invoice, key, channel = action.invoice, str(action.key), action.channel
    fresh = lookup(invoice)
    check = None
    if fresh is not None:
        check = ledger.presend_check(
            invoice,
            fresh.customer_id,
            channel,
            today,
            promise_grace_days=policy.promise_grace_days,
            dispute_scope=policy.dispute_scope,
            promise_id=_promise_id(action.key, policy),
        )
        # A payment webhook may have closed the invoice before the source shows it.
        if check.closed:
            fresh = fresh.model_copy(update={"status": check.closed})
    reason, customer = "", action.customer
    if fresh is None or not fresh.is_payable or fresh.status == "disputed":
        reason = (
            "gone_at_source"
            if fresh is None
            else "disputed"
            if fresh.status == "disputed"
            else "paid_at_source"
        )
    elif check is not None and check.pause:
        # Paused since the plan was made (a dispute or promise read from a reply meanwhile)?
        if action.stage != policy.replies.broken_promise.name:
            reason, customer = check.pause, fresh.customer_id
    if not reason:
        return fresh, "", check.promised_on if check else None
    ledger.record_event(
        "skipped", invoice_number=invoice, customer_id=customer, action_key=key, reason=reason
    )
    return None, reason, None


def _claim(
    ledger: Ledger, outcome: Outcome, inv: Invoice, policy: Policy, flow_run_id: str
) -> bool:
    """Reserve `outcome.key` in the outbox; False (and the reason) if someone has it."""
    claim = ledger.claim(
        key=str(outcome.key),
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        stage=outcome.stage,
        channel=outcome.channel,
        recipient=inv.email if outcome.channel == "email" else "",
        amount_due=inv.amount_due,
        currency=inv.currency,
        flow_run_id=flow_run_id,
        stale_after=timedelta(minutes=policy.stale_claim_minutes),
    )
    if not claim.claimed:
        outcome.status = "skipped"
        outcome.reason = TAKEN_REASONS.get(claim.state, claim.state)
        outcome.message_id = claim.message_id
    return claim.claimed


def _send_whatsapp(
    action: PlannedAction,
    inv: Invoice,
    stage: Stage,
    outcome: Outcome,
    *,
    ledger: Ledger,
    whatsapp: WhatsAppSender,
    today: date,
    identity: EmailIdentity | None,
) -> bool:
    """Send the claimed WhatsApp action. True when it was sent, or when it must go by email
    instead (then `outcome` names the email key and channel, and why); False when the
    outcome is final (in doubt). Temporary failures and an invalid token are raised."""
    from dunning.whatsapp.send import send_whatsapp_reminder

    result = send_whatsapp_reminder(
        ledger=ledger,
        client=whatsapp.client,
        key=str(outcome.key),
        invoice=inv,
        stage=stage.name,
        language=_language_of(action, inv),
        country=action.country or inv.country,
        today=today,
        templates=whatsapp.templates,
        opted_in=bool(inv.whatsapp_opt_in),
        company_name=identity.from_name if identity else "",
    )
    outcome.recipient, outcome.message_id = result.recipient, result.message_id
    if result.status == "sent":
        outcome.status = "sent"
        queue_note(
            ledger,
            key=f"{outcome.key}:note",
            text=f"Reminder '{stage.name}' sent on WhatsApp to {result.recipient}: invoice "
            f"{inv.invoice_number}, {_money(inv.amount_due, inv.currency)} due on "
            f"{inv.due_date.isoformat()}.",
            stage=stage.name,
            channel="whatsapp",
            direction="out",
            message_id=result.message_id,
            amount_due=inv.amount_due,
            currency=inv.currency,
            **_crm_refs(inv),
        )
        return True
    if result.fallback != "email":
        outcome.status, outcome.reason = "failed", f"{result.reason}: {result.detail}"
        return False
    email_channel = "email" if inv.email else "task"
    outcome.fallback_from = "whatsapp"
    outcome.fallback_reason = f"{result.reason}: {result.detail}"[:500]
    outcome.key = outcome.key.on(email_channel)
    outcome.recipient = outcome.message_id = ""
    return True


def _send_twilio(
    action: PlannedAction,
    inv: Invoice,
    stage: Stage,
    outcome: Outcome,
    *,
    ledger: Ledger,
    sender: SmsSender | VoiceSender | None,
    today: date,
    identity: EmailIdentity | None,
) -> bool:
    """Send the claimed SMS, or place the claimed call. True when it went, or when it must
    go by email (or a task) instead (then `outcome` names that key, and why); False when
    the outcome is final (in doubt). Temporary failures and bad credentials are raised."""
    from dunning.twilio.sms import send_sms_reminder
    from dunning.twilio.voice import place_call

    assert sender is not None
    channel = outcome.channel
    common = dict(
        ledger=ledger,
        client=sender.client,
        key=str(outcome.key),
        invoice=inv,
        stage=stage.name,
        language=_language_of(action, inv),
        country=action.country or inv.country,
        today=today,
        company_name=identity.from_name if identity else "",
    )
    result: TwilioResult
    if isinstance(sender, SmsSender):
        result = send_sms_reminder(
            settings=sender.settings, include_payment_link=stage.include_payment_link, **common
        )
        what = "SMS"
    else:
        result = place_call(settings=sender.settings, **common)
        what = "Automated call"
    outcome.recipient, outcome.message_id = result.recipient, result.message_id
    if result.status == "sent":
        outcome.status = "sent"
        queue_note(
            ledger,
            key=f"{outcome.key}:note",
            text=f"{what} '{stage.name}' to {result.recipient}: invoice {inv.invoice_number}, "
            f"{_money(inv.amount_due, inv.currency)} due on {inv.due_date.isoformat()}. "
            f"{result.text}"[:SENT_BODY_CHARS],
            stage=stage.name,
            channel=channel,
            direction="out",
            message_id=result.message_id,
            amount_due=inv.amount_due,
            currency=inv.currency,
            **_crm_refs(inv),
        )
        return True
    if not result.fallback:
        outcome.status, outcome.reason = "failed", f"{result.reason}: {result.detail}"
        return False
    outcome.fallback_from = channel
    outcome.fallback_reason = f"{result.reason}: {result.detail}"[:500]
    outcome.key = outcome.key.on("email" if inv.email else "task")
    outcome.recipient = outcome.message_id = ""
    return True


def _send_email(
    action: PlannedAction,
    inv: Invoice,
    stage: Stage,
    outcome: Outcome,
    *,
    ledger: Ledger,
    pool: SmtpPool,
    identity: EmailIdentity,
    today: date,
    attachments_root: str | None,
    promised_on: date | None = None,
    templates_overlay: str | None = None,
    policy: Policy | None = None,
) -> None:
    key = str(outcome.key)
    attachment, refused = find_attachment(inv.pdf_path, attachments_root)
    if refused:  # the reminder still goes, without the document; the reason is kept
        outcome.reason = f"sent without attachment {inv.pdf_path!r}: {refused}"[:500]
        ledger.record_event(
            "attachment_refused",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            action_key=key,
            pdf_path=inv.pdf_path[:500],
            reason=refused,
        )
    try:
        context = invoice_context(
            inv,
            today=today,
            language=_language_of(action, inv),
            country=action.country or inv.country,
            payment_link=None if stage.include_payment_link else "",
            company_name=identity.from_name,
            reply_to=identity.reply_to or identity.from_address,
            stage=stage.name,
            tone=stage.tone,
            has_attachment=attachment is not None,
        )
        if promised_on is not None:
            locale = locale_for(_language_of(action, inv), action.country or inv.country)
            context["promised_on"] = format_day(promised_on, locale)
        rendered = render_email(
            stage.template_name,
            _language_of(action, inv),
            context,
            fallback_language="en",
            overlay=templates_overlay,
        )
        message = identity.message(
            rendered, to=inv.email, key=key, attachments=[attachment] if attachment else []
        )
    except Exception as exc:
        ledger.mark_failed(key, f"could not build the message: {exc}")
        raise
    outcome.recipient = inv.email
    outcome.message_id = message["Message-ID"]
    envelope = identity.envelope(inv.email)
    note = note_entry(
        key=f"{key}:note",
        text=f"Reminder '{stage.name}' sent by email to {inv.email}: invoice "
        f"{inv.invoice_number}, {_money(inv.amount_due, inv.currency)} due on "
        f"{inv.due_date.isoformat()}. Subject: {message['Subject']}",
        stage=stage.name,
        channel="email",
        direction="out",
        subject=str(message["Subject"]),
        message_id=outcome.message_id,
        amount_due=inv.amount_due,
        currency=inv.currency,
        **_crm_refs(inv),
    )
    delivery = deliver(
        ledger,
        pool,
        key,
        message,
        envelope,
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        note=note,
        stage=stage.name,
        channel="email",
        recipient=inv.email,
        amount_due=inv.amount_due,
        currency=inv.currency,
        # What the customer read, for the collections desk's timeline.
        body=rendered.text[:SENT_BODY_CHARS],
    )
    if delivery.status == "rejected":
        title = (
            f"Email to {inv.email} refused: fix the contact of "
            f"{inv.customer_name or inv.customer_id}"
        )
        owner = "account_owner"
        if policy is not None:  # the invoice's owner fixes the contact
            owner = resolve_assignee(owner, policy, owner_email=inv.owner_email)
        task = dict(title=title, assignee=owner, due_on=today, note=delivery.detail)
        ledger.open_task(
            key=f"{key}:bounce",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            crm=_crm_contact(inv),
            **task,
        )
        outcome.status, outcome.reason = "failed", f"rejected: {delivery.detail}"
        return
    if delivery.status == "in_doubt":
        outcome.status, outcome.reason = "failed", f"in_doubt: {delivery.detail}"
        return
    outcome.status = "sent"  # its CRM note went in with the sent state (`deliver`)


def _promise_id(key: ActionKey, policy: Policy) -> int | None:
    """The promise a "promise broken" action names (its key: `F-1:promise_broken-7:email`),
    None for every other action."""
    prefix = f"{policy.replies.broken_promise.name}-"
    if not key.stage.startswith(prefix):
        return None
    number = key.stage[len(prefix) :]
    return int(number) if number.isdigit() else None


def _language_of(action: PlannedAction, inv: Invoice) -> str:
    """The plan fills in a language from the country when the source has none."""
    return action.language or inv.language or "en"


def _escalate(
    stage: Stage,
    inv: Invoice,
    key: ActionKey,
    *,
    ledger: Ledger,
    today: date,
    policy: Policy,
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    task: bool = True,
) -> list[str]:
    """The stage's escalation for this invoice: the task (for the resolved assignee), the
    customer status and the internal notification (`dunning.people.notify`), once each."""
    done: list[str] = []
    esc = stage.escalation
    if esc is None:
        return done
    assignee = people_for(esc, inv, policy).assignee
    title = due_on = None
    if esc.human_task and task:
        title = (
            f"{esc.human_task}: {inv.customer_name or inv.customer_id}, "
            f"invoice {inv.invoice_number}"
        )
        due_on = today + timedelta(days=esc.task_due_days)
        ledger.open_task(
            key=f"{key}:escalation",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            title=title,
            assignee=assignee,
            due_on=due_on,
            crm={
                "priority": "HIGH" if stage.tone == "final" else "MEDIUM",
                "task_type": "CALL" if "call" in esc.human_task.lower() else "TODO",
                "note": f"{_money(inv.amount_due, inv.currency)} due since "
                f"{inv.due_date.isoformat()}.",
                # The policy's role beside the resolved address: a CRM maps either to a user.
                "role": esc.assignee,
                **_crm_contact(inv),
            },
        )
        done.append(f"task:{assignee}")
    if esc.customer_status:
        reason = f"{stage.name} sent for {inv.invoice_number}"
        ledger.set_customer_status(inv.customer_id, esc.customer_status, reason=reason)
        queue_status(
            ledger,
            key=f"{key}:status",
            status=esc.customer_status,
            reason=reason,
            **_crm_refs(inv),
        )
        done.append(f"status:{esc.customer_status}")
    notified = notify(
        stage,
        inv,
        str(key),
        ledger=ledger,
        policy=policy,
        pool=pool,
        identity=identity,
        today=today,
        task_title=title or esc.human_task or "",
        task_due=due_on,
    )
    if notified:
        done.append(notified)
    return done


def _crm_contact(inv: Invoice) -> dict[str, Any]:
    """Who a CRM task is about, beside its invoice and customer ids: name and email."""
    return {"customer_name": inv.customer_name, "email": inv.email}


def _crm_refs(inv: Invoice) -> dict[str, Any]:
    """What a CRM needs to find the invoice's record: numbers, names, the email."""
    return {
        "invoice_number": inv.invoice_number,
        "customer_id": inv.customer_id,
        "customer_name": inv.customer_name,
        "email": inv.email,
    }


def _money(amount: float, currency: str) -> str:
    try:
        return format_currency(amount, currency, locale="en")
    except Exception:  # an odd currency code must not stop the log line
        return f"{amount:.2f} {currency}"
