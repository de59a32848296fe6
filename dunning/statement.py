"""One email for all of a customer's due invoices: a statement (policy `grouping: statement`).

The plan gives the email rows of a customer in a statement segment one `statement` key, and
`dunning.plan.planned_actions` makes them one `PlannedAction` whose `items` are the
per-invoice actions. `execute_statement` carries it out, exactly once as a whole and for
each invoice in it:

1. re-check each invoice at the source (`dunning.act.recheck`): one paid, gone, disputed or
   paused since the plan drops out; with none left nothing is sent;
2. claim the statement's key, then each invoice's own key (`invoice:stage:email`, as if it
   went alone): an invoice another run holds drops out; with none left, the statement's
   claim is released (`failed`, so a later run may take it);
3. render the `statement` template in the tone of the most advanced stage, every invoice's
   PDF attached;
4. mark each invoice's key `sending` with the statement's Message-ID, hand the statement to
   `dunning.delivery.deliver` (its key `sending`, the send, `sent`), then mark each invoice
   `sent`. A crash in between leaves the keys `sending`: in doubt, never resent;
5. per invoice, as its own message would: a CRM note and its stage's escalation (task,
   customer status).

On WhatsApp the statement is the approved `statement` template (`templates/whatsapp/`) with
the count of invoices and the total per currency, under the same claims; when WhatsApp
cannot take it, the same invoices go as an email statement in the same run.

The statement's key names its customer and all its invoices' keys
(`ActionKey.statement`), so sweeps running at once plan the same key and one of them sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from dunning.act import (
    SENT_BODY_CHARS,
    EmailIdentity,
    WhatsAppSender,
    _claim,
    _crm_contact,
    _crm_refs,
    _escalate,
    _language_of,
    _money,
    recheck,
)
from dunning.action import STATEMENT, ActionKey, Outcome, PlannedAction
from dunning.crm import queue_note
from dunning.delivery import deliver
from dunning.ledger import Ledger
from dunning.ledger.models import TAKEN_REASONS
from dunning.mail import find_attachment, split_addresses
from dunning.policy import Policy, Stage
from dunning.render import format_money, invoice_context, locale_for, render_email
from dunning.schema import Invoice
from dunning.smtp import NotSent, SmtpPool

#: The email template of every statement (`email/<lang>/statement.*`); its words follow the
#: tone of the statement's most advanced stage.
STATEMENT_TEMPLATE = STATEMENT

#: Why a statement is not sent when its invoices dropped out for different reasons.
NOTHING_LEFT = "nothing_left"


@dataclass(frozen=True)
class _Line:
    """One invoice of a statement: its planned action, the invoice now, its stage."""

    item: PlannedAction
    invoice: Invoice
    stage: Stage


def execute_statement(
    action: PlannedAction,
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
) -> Outcome:
    """Send one statement (see the module docstring); `dunning.act.execute_action` hands
    every action with `items` here.

    On WhatsApp (`action.channel`) the statement is the approved `statement` template with
    the count of invoices and the total; when WhatsApp cannot take it (no consent, a number
    Meta does not know, a refused template) the same invoices go as an email statement in
    the same run, and the outcome says it fell back and why.

    Returns the statement's `Outcome`: `sent` with the invoices it carried as `items` (and
    the ones that dropped out in `reason`), or `skipped` when none was left (the reason the
    invoices share, else `nothing_left`), or `failed` (refused, in doubt). Raises `NotSent`
    for a temporary mail-server failure after recording it, like a single reminder.
    """
    on_whatsapp = action.channel == "whatsapp"
    if on_whatsapp and whatsapp is None:
        raise ValueError("a WhatsApp statement needs a WhatsApp channel (client and templates)")
    if not on_whatsapp and (pool is None or identity is None):
        raise ValueError("a statement needs an SMTP pool and a sender identity")
    outcome = Outcome(key=action.key, stage=STATEMENT, status="skipped")
    today = pd.Timestamp(now).tz_convert(action.timezone or policy.timezone).date()
    lines: list[_Line] = []
    dropped: dict[str, str] = {}  # invoice -> why it left the statement
    for item in action.items:
        fresh, reason = recheck(item, ledger=ledger, policy=policy, lookup=lookup, today=today)
        if fresh is None:
            dropped[item.invoice] = reason
        else:
            lines.append(_Line(item, fresh, policy.stage(item.stage, item.segment or None)))
    if not lines:
        return _nothing_left(outcome, dropped)

    first = lines[0].invoice
    recipient = ", ".join(
        dict.fromkeys(a for line in lines for a in split_addresses(line.invoice.email))
    )
    totals = _totals(lines)
    single = next(iter(totals.items())) if len(totals) == 1 else None
    claim = ledger.claim(
        key=str(action.key),
        invoice_number="",  # many: each has its own row under its own key
        customer_id=first.customer_id,
        stage=STATEMENT,
        channel=action.channel,
        recipient="" if on_whatsapp else recipient,
        amount_due=single[1] if single else None,
        currency=single[0] if single else "",
        flow_run_id=flow_run_id,
        stale_after=timedelta(minutes=policy.stale_claim_minutes),
    )
    if not claim.claimed:
        outcome.reason = TAKEN_REASONS.get(claim.state, claim.state)
        outcome.message_id = claim.message_id
        return outcome

    claimed: list[_Line] = []
    for line in lines:
        mine = Outcome(key=line.item.key, stage=line.item.stage, status="skipped")
        if _claim(ledger, mine, line.invoice, policy, flow_run_id):
            claimed.append(line)
        else:
            dropped[line.invoice.invoice_number] = mine.reason
    if not claimed:
        # Another run holds every invoice: let go of the statement's key for a later run.
        ledger.mark_failed(str(action.key), "every invoice was taken by another run")
        return _nothing_left(outcome, dropped)
    if len(claimed) < len(lines):
        recipient = ", ".join(
            dict.fromkeys(a for line in claimed for a in split_addresses(line.invoice.email))
        )
    subject = ""
    if on_whatsapp:
        assert whatsapp is not None
        fallback = _send_whatsapp(
            action,
            claimed,
            outcome,
            ledger=ledger,
            whatsapp=whatsapp,
            today=today,
            identity=identity,
        )
        if fallback is not None:  # the same invoices, by email, in this run
            if pool is None or identity is None or not recipient:
                outcome.status = "failed"
                outcome.reason = f"{outcome.fallback_reason}; no email to fall back to"[:500]
                return outcome
            by_email = execute_statement(
                fallback,
                ledger=ledger,
                policy=policy,
                lookup=lookup,
                pool=pool,
                identity=identity,
                now=now,
                flow_run_id=flow_run_id,
                attachments_root=attachments_root,
            )
            by_email.fallback_from = "whatsapp"
            by_email.fallback_reason = outcome.fallback_reason
            return by_email
    else:
        assert pool is not None and identity is not None
        subject = _send(
            action,
            claimed,
            outcome,
            ledger=ledger,
            policy=policy,
            pool=pool,
            identity=identity,
            today=today,
            recipient=recipient,
            attachments_root=attachments_root,
        )
    if outcome.status == "sent":
        _record_sent(
            claimed,
            outcome,
            subject,
            ledger=ledger,
            policy=policy,
            pool=pool,
            identity=identity,
            today=today,
        )
    if dropped:
        left = "; ".join(f"{n} ({why})" for n, why in dropped.items())
        outcome.reason = "; ".join(filter(None, [outcome.reason, f"dropped: {left}"]))[:500]
    return outcome


def _send(
    action: PlannedAction,
    lines: list[_Line],
    outcome: Outcome,
    *,
    ledger: Ledger,
    policy: Policy,
    pool: SmtpPool,
    identity: EmailIdentity,
    today: date,
    recipient: str,
    attachments_root: str | None,
) -> str:
    """Render, send and record the claimed statement; `outcome` says what happened.
    Returns the subject."""
    key = str(action.key)
    item_keys = [str(line.item.key) for line in lines]
    top = max(lines, key=lambda line: line.stage.offset_days)
    language = _language_of(top.item, top.invoice)
    attachments: list[Path] = []
    refusals = []
    for line in lines:
        inv = line.invoice
        path, refused = find_attachment(inv.pdf_path, attachments_root)
        if path is not None:
            attachments.append(path)
        if refused:  # the statement still goes, without that document; the reason is kept
            refusals.append(f"{inv.invoice_number}: {refused}")
            ledger.record_event(
                "attachment_refused",
                invoice_number=inv.invoice_number,
                customer_id=inv.customer_id,
                action_key=key,
                pdf_path=inv.pdf_path[:500],
                reason=refused,
            )
    if refusals:
        outcome.reason = f"sent without attachments: {'; '.join(refusals)}"[:500]
    try:
        context = statement_context(
            lines,
            today=today,
            language=language,
            country=top.item.country or top.invoice.country,
            tone=top.stage.tone,
            stage=top.stage.name,
            identity=identity,
            attachments=len(attachments),
        )
        rendered = render_email(
            STATEMENT_TEMPLATE,
            language,
            context,
            fallback_language="en",
            overlay=policy.templates_dir,
        )
        message = identity.message(rendered, to=recipient, key=key, attachments=attachments)
    except Exception as exc:
        for k in [key, *item_keys]:
            ledger.mark_failed(k, f"could not build the statement: {exc}")
        raise
    outcome.recipient = recipient
    outcome.message_id = message["Message-ID"]
    outcome.items = [line.invoice.invoice_number for line in lines]
    # Every invoice is `sending` before the server sees the statement: a crash from here on
    # leaves them in doubt, so no later run sends their stage again.
    for k in item_keys:
        ledger.mark_sending(k, outcome.message_id)
    envelope = identity.envelope(recipient)
    totals = _totals(lines)
    single = next(iter(totals.items())) if len(totals) == 1 else None
    try:
        delivery = deliver(
            ledger,
            pool,
            key,
            message,
            envelope,
            customer_id=lines[0].invoice.customer_id,
            stage=top.stage.name,
            channel="email",
            recipient=recipient,
            invoices=outcome.items,
            amount_due=single[1] if single else None,
            currency=single[0] if single else "",
            body=rendered.text[:SENT_BODY_CHARS],
            # Its invoices are sent with it, in the same transaction.
            also_sent=item_keys,
            also_sent_response=f"in statement {key}",
        )
    except NotSent as exc:  # temporary: recorded on the statement, retried as a whole
        for k in item_keys:
            ledger.mark_failed(k, f"statement not sent: {exc}")
        raise
    if delivery.status == "rejected":
        for k in item_keys:
            ledger.mark_failed(k, f"statement refused: {delivery.detail}", permanent=True)
        inv = lines[0].invoice
        ledger.open_task(
            key=f"{key}:bounce",
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            title=f"Email to {recipient} refused: fix the contact of "
            f"{inv.customer_name or inv.customer_id}",
            assignee="account_owner",
            due_on=today,
            note=delivery.detail,
            crm=_crm_contact(inv),
        )
        outcome.status, outcome.reason = "failed", f"rejected: {delivery.detail}"
        return ""
    if delivery.status == "in_doubt":
        outcome.status, outcome.reason = "failed", f"in_doubt: {delivery.detail}"
        return ""
    outcome.status = "sent"
    return str(message["Subject"])


def _send_whatsapp(
    action: PlannedAction,
    lines: list[_Line],
    outcome: Outcome,
    *,
    ledger: Ledger,
    whatsapp: WhatsAppSender,
    today: date,
    identity: EmailIdentity | None,
) -> PlannedAction | None:
    """Send the claimed statement's WhatsApp template; `outcome` says what happened. When
    WhatsApp cannot take it, the invoices' WhatsApp keys are refused and the email statement
    of the same invoices is returned, to be sent instead (`outcome.fallback_reason` says
    why). Temporary failures are recorded on every key and raised."""
    from dunning.whatsapp.send import send_whatsapp_reminder

    key = str(action.key)
    item_keys = [str(line.item.key) for line in lines]
    top = max(lines, key=lambda line: line.stage.offset_days)
    first = lines[0].invoice
    language = _language_of(top.item, top.invoice)
    country = top.item.country or top.invoice.country
    locale = locale_for(language, country)
    totals = [format_money(amount, cur, locale) for cur, amount in _totals(lines).items()]
    outcome.items = [line.invoice.invoice_number for line in lines]
    for k in item_keys:  # in doubt with the statement if a crash comes while it is sent
        ledger.mark_sending(k, "")
    try:
        result = send_whatsapp_reminder(
            ledger=ledger,
            client=whatsapp.client,
            key=key,
            invoice=first,
            stage=STATEMENT,
            language=language,
            country=country,
            today=today,
            templates=whatsapp.templates,
            opted_in=any(bool(line.invoice.whatsapp_opt_in) for line in lines),
            company_name=identity.from_name if identity else "",
            context={"count": str(len(lines)), "total": " + ".join(totals)},
        )
    except Exception as exc:  # temporary (retried as a whole) or a bad token: not sent
        for k in item_keys:
            ledger.mark_failed(k, f"statement not sent: {exc}")
        raise
    outcome.recipient, outcome.message_id = result.recipient, result.message_id
    if result.status == "sent":
        for k in item_keys:
            ledger.mark_sending(k, result.message_id)
            ledger.mark_sent(k, f"in statement {key}")
        outcome.status = "sent"
        return None
    if result.status == "in_doubt":
        outcome.status, outcome.reason = "failed", f"in_doubt: {result.detail}"
        return None
    for k in item_keys:
        ledger.mark_failed(
            k, f"statement refused: {result.reason}: {result.detail}", permanent=True
        )
    outcome.status, outcome.reason = "failed", f"{result.reason}: {result.detail}"[:500]
    if result.fallback != "email":
        return None
    outcome.fallback_reason = f"{result.reason}: {result.detail}"[:500]
    items = [replace(line.item, key=line.item.key.on("email")) for line in lines]
    email_key = ActionKey.statement(action.customer, [i.key for i in items], "email")
    return replace(action, key=email_key, items=tuple(items))


def _record_sent(
    lines: list[_Line],
    outcome: Outcome,
    subject: str,
    *,
    ledger: Ledger,
    policy: Policy,
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    today: date,
) -> None:
    """Per invoice of a sent statement, as its own message would: a CRM note and its
    stage's escalation (task, notification, customer status), once each."""
    others = len(lines) - 1
    channel = outcome.channel
    how = "on WhatsApp" if channel == "whatsapp" else "by email"
    for line in lines:
        inv, item_key = line.invoice, line.item.key
        queue_note(
            ledger,
            key=f"{item_key}:note",
            text=f"Statement ('{line.stage.name}' for this invoice) sent {how} to "
            f"{outcome.recipient}: invoice {inv.invoice_number}, "
            f"{_money(inv.amount_due, inv.currency)} due on {inv.due_date.isoformat()}, "
            f"with {others} other invoice(s)." + (f" Subject: {subject}" if subject else ""),
            stage=line.stage.name,
            channel=channel,
            direction="out",
            subject=subject,
            message_id=outcome.message_id,
            amount_due=inv.amount_due,
            currency=inv.currency,
            **_crm_refs(inv),
        )
        done = _escalate(
            line.stage,
            inv,
            item_key,
            ledger=ledger,
            today=today,
            policy=policy,
            pool=pool,
            identity=identity,
        )
        outcome.escalations += [e for e in done if e not in outcome.escalations]


def statement_context(
    lines: list[_Line],
    *,
    today: date,
    language: str,
    country: str,
    tone: str,
    stage: str,
    identity: EmailIdentity,
    attachments: int,
) -> dict[str, Any]:
    """What the `statement` template may use: the customer, `invoices` (each with its
    number, amounts, dates, days overdue and payment link, formatted for the customer's
    locale), `totals` (one formatted amount per currency), `count`, `tone` and `stage` of
    the most advanced stage, and the layout's usual sender fields."""
    invoices = invoice_rows(
        [(line.invoice, line.stage.include_payment_link) for line in lines],
        today=today,
        language=language,
        country=country,
    )
    locale = locale_for(language, country)
    first = lines[0].invoice
    return {
        "customer_name": first.customer_name or first.customer_id,
        "invoices": invoices,
        "count": len(invoices),
        "totals": [format_money(amount, cur, locale) for cur, amount in _totals(lines).items()],
        "tone": tone,
        "stage": stage,
        "company_name": identity.from_name,
        "reply_to": identity.reply_to or identity.from_address,
        "has_attachment": attachments > 0,
        "attachments": attachments,
    }


def invoice_rows(
    invoices: Iterable[tuple[Invoice, bool]], *, today: date, language: str, country: str
) -> list[dict[str, Any]]:
    """The rows of the invoice table (`email/_invoice_table.*`): per (invoice, with its
    payment link?) its number, amounts, dates, days overdue and payment link, formatted for
    the customer's locale."""
    rows = []
    for inv, with_link in invoices:
        ctx = invoice_context(
            inv, today=today, language=language, country=country,
            payment_link=None if with_link else "",
        )  # fmt: skip
        keep = ("invoice_number", "amount_due", "amount_total", "part_paid", "due_date")
        rows.append(
            {k: ctx[k] for k in keep}
            | {
                "issue_date": ctx["issue_date"],
                "days_overdue": ctx["days_overdue"],
                "days_to_due": ctx["days_to_due"],
                "payment_link": ctx["payment_link"],
            }
        )
    return rows


def amount_totals(invoices: Iterable[Invoice]) -> dict[str, float]:
    """The amount due per currency, in the order the currencies first appear."""
    totals: dict[str, float] = {}
    for inv in invoices:
        totals[inv.currency] = round(totals.get(inv.currency, 0.0) + inv.amount_due, 2)
    return totals


def _totals(lines: list[_Line]) -> dict[str, float]:
    return amount_totals(line.invoice for line in lines)


def _nothing_left(outcome: Outcome, dropped: dict[str, str]) -> Outcome:
    """A statement whose invoices all dropped out: skipped, nothing sent."""
    reasons = set(dropped.values())
    outcome.reason = reasons.pop() if len(reasons) == 1 else NOTHING_LEFT
    return outcome
