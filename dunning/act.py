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
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
from babel.numbers import format_currency

from dunning.action import ActionKey, Outcome, PlannedAction
from dunning.channels import INTERNAL
from dunning.crm import note_entry, queue_note, status_entry
from dunning.delivery import deliver
from dunning.ledger import Ledger
from dunning.ledger.batch import (
    Claim,
    ClaimRequest,
    NewEvent,
    NewTask,
    PresendCheck,
    PresendRequest,
    StatusChange,
    Writes,
)
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
    prepared: Prepared | None = None,
) -> Outcome:
    """Carry out one action of the plan (see module docstring).

    `action` is a `PlannedAction`, or its JSON form (`PlannedAction.to_dict`). Its channel
    is email, task or whatsapp (the latter needs `whatsapp`). `prepared` is the action's
    re-check and claim when a batch did them together (`prepare_batch`); without it they
    are done here. Raises
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

    if channel == "whatsapp" and whatsapp is None:
        raise ValueError("a WhatsApp action needs a WhatsApp channel (client and templates)")
    if (channel == "sms" and sms is None) or (channel == "voice" and voice is None):
        raise ValueError(f"an {channel} action needs the {channel} channel's block")
    today = _local_day(action, policy, now)
    if prepared is None:
        prepared = _recheck(action, ledger=ledger, policy=policy, lookup=lookup, today=today)
    fresh, outcome.reason, promised_on = prepared.fresh, prepared.reason, prepared.promised_on
    if fresh is None:
        return outcome
    # An email is claimed just before the server sees it, straight into `sending`
    # (`_send_email`); another channel's action is claimed here.
    if channel != "email" and not _claim(ledger, outcome, fresh, policy, flow_run_id):
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
        # Fell back: the email key now carries the stage, as if planned on email (an
        # email is claimed once built, below; a human task here).
        key, channel = outcome.key, outcome.channel
        if channel != "email" and not _claim(ledger, outcome, fresh, policy, flow_run_id):
            return outcome
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
        # The escalation is recorded with the sent state: both or neither.
        escalation = _escalation(stage, fresh, key, today=today, policy=policy)
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
            then=escalation.writes,
            claim=_claim_request(key, stage_name, channel, fresh, flow_run_id),
        )
        if outcome.status == "sent":
            outcome.escalations = _notified(
                stage,
                fresh,
                key,
                escalation,
                ledger=ledger,
                today=today,
                policy=policy,
                pool=pool,
                identity=identity,
            )
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
    verdict = _recheck(action, ledger=ledger, policy=policy, lookup=lookup, today=today)
    return verdict.fresh, verdict.reason


def _recheck(
    action: PlannedAction,
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    today: date,
) -> Prepared:
    """`recheck`, plus the promised date of a "promise broken" action: the ledger's side
    (closed by a webhook, paused, the promise) is one read transaction."""
    fresh = lookup(action.invoice)
    check = None
    if fresh is not None:
        check = ledger.presend_checks(
            [_presend_request(action, fresh, policy, today)],
            promise_grace_days=policy.promise_grace_days,
            dispute_scope=policy.dispute_scope,
        )[0]
    verdict = _verdict(action, fresh, check, policy)
    if verdict.skipped is not None:
        ledger.apply(Writes(events=(verdict.skipped,)))
    return verdict


def _presend_request(
    action: PlannedAction, fresh: Invoice, policy: Policy, today: date
) -> PresendRequest:
    return PresendRequest(
        fresh.invoice_number,
        fresh.customer_id,
        action.channel,
        today,
        promise_id=_promise_id(action.key, policy),
    )


def _verdict(
    action: PlannedAction, fresh: Invoice | None, check: PresendCheck | None, policy: Policy
) -> Prepared:
    """What the source (`fresh`, None if gone) and the ledger (`check`) say of the action
    now: gone, paid, disputed, or paused since the plan was made?"""
    if fresh is not None and check is not None and check.closed:
        # A payment webhook may have closed the invoice before the source shows it.
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
        return Prepared(fresh, promised_on=check.promised_on if check else None)
    skipped = NewEvent(
        "skipped",
        invoice_number=action.invoice,
        customer_id=customer,
        action_key=str(action.key),
        detail={"reason": reason},
    )
    return Prepared(None, reason, skipped=skipped)


@dataclass(frozen=True)
class Prepared:
    """An action after its re-check (alone, or with its batch's: `prepare_batch`): the
    invoice to act on (None: nothing goes, for `reason`, recorded as the `skipped` event)
    and the promised date a "promise broken" message names."""

    fresh: Invoice | None
    reason: str = ""
    promised_on: date | None = None
    skipped: NewEvent | None = None


def prepare_batch(
    actions: Sequence[PlannedAction],
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    now: datetime,
    flow_run_id: str = "",
) -> list[Prepared | None]:
    """Re-check a batch's actions together: each invoice looked up at the source, the
    ledger's pre-send check of all of them in one read transaction (a few queries instead
    of ~4 per action), and their `skipped` events in one write.

    Returns, per action, its `Prepared` for `execute_action`, or None where the action goes
    the one-by-one way: a statement (it claims its invoices itself) or an action whose
    look-up at the source raised (it raises again there, failing that action alone).

    The claims are not taken here but per message, an email's straight into `sending`
    just before the server sees it: claimed up front, a batch killed halfway would hold
    its unsent actions for `stale_claim_minutes` (measured: 12 of 20 killed sweeps left
    the next run nothing to send). The re-check is as old as the batch (about a second),
    not as old as the plan.
    """
    fresh: dict[int, Invoice | None] = {}
    for i, action in enumerate(actions):
        if action.items:
            continue
        try:
            fresh[i] = lookup(action.invoice)
        except Exception:  # noqa: BLE001 - this action fails alone, in execute_action
            continue
    days = {i: _local_day(actions[i], policy, now) for i in fresh}
    asked = [i for i, inv in fresh.items() if inv is not None]
    checks = dict(
        zip(
            asked,
            ledger.presend_checks(
                [_presend_request(actions[i], fresh[i], policy, days[i]) for i in asked],
                promise_grace_days=policy.promise_grace_days,
                dispute_scope=policy.dispute_scope,
            ),
            strict=True,
        )
    )
    verdicts = {i: _verdict(actions[i], fresh[i], checks.get(i), policy) for i in fresh}
    ledger.apply(Writes(events=tuple(v.skipped for v in verdicts.values() if v.skipped)))
    return [verdicts.get(i) for i in range(len(actions))]


def _local_day(action: PlannedAction, policy: Policy, now: datetime) -> date:
    """The action's day where the customer is (pauses end and promises fall due by it)."""
    return pd.Timestamp(now).tz_convert(action.timezone or policy.timezone).date()


def _claim_request(
    key: ActionKey, stage: str, channel: str, inv: Invoice, flow_run_id: str
) -> ClaimRequest:
    return ClaimRequest(
        key=str(key),
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        stage=stage,
        channel=channel,
        recipient=inv.email if channel == "email" else "",
        amount_due=inv.amount_due,
        currency=inv.currency,
        flow_run_id=flow_run_id,
    )


def _claim(
    ledger: Ledger, outcome: Outcome, inv: Invoice, policy: Policy, flow_run_id: str
) -> bool:
    """Reserve `outcome.key` in the outbox; False (and the reason) if someone has it."""
    request = _claim_request(outcome.key, outcome.stage, outcome.channel, inv, flow_run_id)
    stale_after = timedelta(minutes=policy.stale_claim_minutes)
    return _claimed(outcome, ledger.claim_many([request], stale_after=stale_after)[0])


def _claimed(outcome: Outcome, claim: Claim) -> bool:
    """True if `claim` is ours; else the outcome says who has the key (skipped)."""
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
    then: Writes | None = None,
    claim: ClaimRequest | None = None,
) -> None:
    """Render, send and record one email; `then` is recorded with its sent state.

    The action is claimed already, or, with `claim`, claimed here once the message is
    built, straight into `sending` (one statement instead of a claim and a mark)."""
    key = str(outcome.key)
    then = then or Writes()
    attachment, refused = find_attachment(inv.pdf_path, attachments_root)
    if refused:  # the reminder still goes, without the document; the reason is kept
        outcome.reason = f"sent without attachment {inv.pdf_path!r}: {refused}"[:500]
        refusal = NewEvent(
            "attachment_refused",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            action_key=key,
            detail={"pdf_path": inv.pdf_path[:500], "reason": refused},
        )
        then = Writes(events=(refusal,)) + then
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
    if claim is not None:
        claim = replace(claim, message_id=str(message["Message-ID"]))
        stale_after = timedelta(minutes=policy.stale_claim_minutes if policy else 15)
        if not _claimed(outcome, ledger.claim_many([claim], stale_after=stale_after)[0]):
            return
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
        then=then,
        sending=claim is not None,
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


@dataclass(frozen=True)
class Escalation:
    """A stage's escalation for one invoice, before it is recorded: the ledger writes (the
    task for the resolved assignee, the customer status, their CRM entries), what the
    outcome lists (`task:<who>`, `status:<status>`) and what the internal notification
    names."""

    writes: Writes
    done: tuple[str, ...] = ()
    task_title: str = ""
    task_due: date | None = None


def _escalation(
    stage: Stage, inv: Invoice, key: ActionKey, *, today: date, policy: Policy, task: bool = True
) -> Escalation:
    """What `stage`'s escalation records for this invoice (nothing if it has none)."""
    esc = stage.escalation
    if esc is None:
        return Escalation(Writes())
    assignee = people_for(esc, inv, policy).assignee
    tasks: tuple[NewTask, ...] = ()
    statuses: tuple[StatusChange, ...] = ()
    done: list[str] = []
    title, due_on = "", None
    if esc.human_task and task:
        title = (
            f"{esc.human_task}: {inv.customer_name or inv.customer_id}, "
            f"invoice {inv.invoice_number}"
        )
        due_on = today + timedelta(days=esc.task_due_days)
        crm = {
            "priority": "HIGH" if stage.tone == "final" else "MEDIUM",
            "task_type": "CALL" if "call" in esc.human_task.lower() else "TODO",
            "note": f"{_money(inv.amount_due, inv.currency)} due since {inv.due_date.isoformat()}.",
            # The policy's role beside the resolved address: a CRM maps either to a user.
            "role": esc.assignee,
            **_crm_contact(inv),
        }
        tasks = (
            NewTask(
                key=f"{key}:escalation",
                title=title,
                invoice_number=inv.invoice_number,
                customer_id=inv.customer_id,
                assignee=assignee,
                due_on=due_on,
                crm=crm,
            ),
        )
        done.append(f"task:{assignee}")
    if esc.customer_status:
        reason = f"{stage.name} sent for {inv.invoice_number}"
        entry = status_entry(
            key=f"{key}:status", status=esc.customer_status, reason=reason, **_crm_refs(inv)
        )
        statuses = (StatusChange(inv.customer_id, esc.customer_status, reason, crm=entry),)
        done.append(f"status:{esc.customer_status}")
    return Escalation(Writes(tasks=tasks, statuses=statuses), tuple(done), title, due_on)


def _notified(
    stage: Stage,
    inv: Invoice,
    key: ActionKey,
    escalation: Escalation,
    *,
    ledger: Ledger,
    today: date,
    policy: Policy,
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
) -> list[str]:
    """The escalation's outcome labels, after its internal notification (once per key)."""
    if stage.escalation is None:
        return []
    notified = notify(
        stage,
        inv,
        str(key),
        ledger=ledger,
        policy=policy,
        pool=pool,
        identity=identity,
        today=today,
        task_title=escalation.task_title or stage.escalation.human_task or "",
        task_due=escalation.task_due,
    )
    return [*escalation.done, notified] if notified else list(escalation.done)


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
    """The stage's escalation for this invoice, recorded in one transaction: the task (for
    the resolved assignee), the customer status, then the internal notification
    (`dunning.people.notify`), once each."""
    escalation = _escalation(stage, inv, key, today=today, policy=policy, task=task)
    ledger.apply(escalation.writes)
    return _notified(
        stage,
        inv,
        key,
        escalation,
        ledger=ledger,
        today=today,
        policy=policy,
        pool=pool,
        identity=identity,
    )


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
