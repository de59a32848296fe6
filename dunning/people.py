"""The people on our side of an invoice: who a stage's task goes to and who is told about it.

An invoice carries its account owner (`owner_email`, the salesperson) and their manager
(`manager_email`) from the source; the policy's `owners` fill in for invoices that name
nobody. `dunning.policy.resolve_assignee` is the one rule turning a role of an escalation
(`account_owner`, `manager`) into an address; this module applies it to a stage's escalation
and sends its internal notification email (`escalation.notify`), once per (invoice, stage):
the email has its own outbox key, `<action key>:notify`, so a second sweep, a retry or a
concurrent worker never sends it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from urllib.parse import quote

from dunning.delivery import deliver
from dunning.mail import Envelope
from dunning.policy import Escalation, Policy, Stage, resolve_assignee, resolve_recipients
from dunning.render import format_day, invoice_context, locale_for, render_email
from dunning.schema import Invoice

if TYPE_CHECKING:
    from dunning.act import EmailIdentity
    from dunning.ledger import Ledger
    from dunning.smtp import SmtpPool

#: The template of the internal email (`email/<lang>/internal_notification.*`).
NOTIFICATION_TEMPLATE = "internal_notification"


@dataclass(frozen=True)
class People:
    """Who an escalation means for one invoice: the task's `assignee` (an email, or the role
    when nobody fills it) and the notification's `recipients` (emails only)."""

    assignee: str
    recipients: list[str]


def people_for(escalation: Escalation, invoice: Invoice, policy: Policy) -> People:
    """The escalation's assignee and notification recipients for this invoice."""
    who = {"owner_email": invoice.owner_email, "manager_email": invoice.manager_email}
    return People(
        assignee=resolve_assignee(escalation.assignee, policy, **who),
        recipients=resolve_recipients(escalation.notify, policy, **who),
    )


def desk_link(customer_id: str, desk_url: str | None = None) -> str:
    """The customer's page (timeline) in the collections desk (`DUNNING_DESK_URL`)."""
    if desk_url is None:
        from dunning.settings import settings

        desk_url = settings().desk_url
    return f"{desk_url.rstrip('/')}/customer?id={quote(customer_id, safe='')}"


def notify(
    stage: Stage,
    invoice: Invoice,
    key: str,
    *,
    ledger: Ledger,
    policy: Policy,
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    today: date,
    task_title: str = "",
    task_due: date | None = None,
) -> str:
    """Send the stage's internal notification for this invoice, once; what happened, for the
    outcome's `escalations` ("" when the stage notifies nobody).

    `key` is the stage's action key; the email is claimed as `<key>:notify` in the outbox.
    Without an SMTP pool (a run with no mail server) nothing is sent and an event says so.
    """
    esc = stage.escalation
    if esc is None or not esc.notify:
        return ""
    people = people_for(esc, invoice, policy)
    if not people.recipients:
        ledger.record_event(
            "notification_skipped",
            invoice_number=invoice.invoice_number,
            customer_id=invoice.customer_id,
            action_key=key,
            reason="nobody to notify: no owner_email/manager_email and no policy owners",
        )
        return "notify:nobody"
    if pool is None or identity is None:
        ledger.record_event(
            "notification_skipped",
            invoice_number=invoice.invoice_number,
            customer_id=invoice.customer_id,
            action_key=key,
            reason="no mail server for internal notifications",
        )
        return "notify:no_mail_server"
    notify_key = f"{key}:notify"
    recipients = ", ".join(people.recipients)
    # Its outbox row is named after the template, not the stage: it is no reminder to the
    # customer (nothing that counts as "reminded" may read it as one).
    claim = ledger.claim(
        key=notify_key,
        invoice_number=invoice.invoice_number,
        customer_id=invoice.customer_id,
        stage=NOTIFICATION_TEMPLATE,
        channel="email",
        recipient=recipients,
        amount_due=invoice.amount_due,
        currency=invoice.currency,
    )
    if not claim.claimed:
        return "notify:already_sent"
    # Staff read the policy's language; amounts and dates in the invoice's country format.
    language = policy.language
    locale = locale_for(language, invoice.country or policy.country)
    context = invoice_context(
        invoice,
        today=today,
        language=language,
        country=invoice.country or policy.country,
        company_name=identity.from_name,
        stage=stage.name,
        tone=stage.tone,
    ) | {
        "task_title": task_title,
        "assignee": people.assignee if esc.human_task else "",
        "task_due": format_day(task_due, locale) if task_due else "",
        "customer_status": esc.customer_status or "",
        "customer_messaged": stage.messages_customer,
        "desk_link": desk_link(invoice.customer_id),
    }
    try:
        rendered = render_email(
            NOTIFICATION_TEMPLATE,
            language,
            context,
            fallback_language="en",
            overlay=policy.templates_dir,
        )
        message = identity.message(rendered, to=recipients, key=notify_key, reply_to=False)
    except Exception as exc:
        ledger.mark_failed(notify_key, f"could not build the notification: {exc}")
        raise
    delivery = deliver(
        ledger,
        pool,
        notify_key,
        message,
        Envelope(identity.from_address, list(people.recipients)),
        invoice_number=invoice.invoice_number,
        customer_id=invoice.customer_id,
        stage=NOTIFICATION_TEMPLATE,
        channel="email",
        recipient=recipients,
        for_stage=stage.name,
    )
    return f"notify:{recipients}" if delivery.status == "sent" else f"notify:{delivery.status}"
