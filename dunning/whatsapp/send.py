"""Send one claimed WhatsApp action and record what happened, once: the WhatsApp `deliver`.

The caller has claimed the action's key in the ledger outbox (`Ledger.claim`, channel
`whatsapp`), exactly as for email, so only one caller gets here. Then:

1. consent, opt-out and the number are checked again (opt-outs are honoured on every path);
2. the message is built (a template for reminders; free text for answers, inside the 24-hour
   window only) and the action is marked `sending` before Meta sees it;
3. the answer is recorded: the `wamid` becomes the action's `message_id`, so delivery
   statuses from the webhook find it; every attempt and retry is an event.

A refusal that email can make up for comes back with `fallback="email"`: the caller then
claims and sends the same stage by email (its own outbox key). Temporary failures (rate
limits after backoff, Meta down) and an invalid token are raised after being recorded, with
`permanent` telling a retrying task whether to try again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from dunning.ledger import Ledger
from dunning.ledger.delivery import update_action
from dunning.render import invoice_context
from dunning.schema import Invoice
from dunning.whatsapp.client import (
    AuthError,
    InvalidRecipient,
    MarketingOptOut,
    OutsideWindow,
    SentMessage,
    TemplateRejected,
    WhatsAppClient,
    WhatsAppError,
    WhatsAppOutcomeUnknown,
)
from dunning.whatsapp.consent import (
    CHANNEL,
    in_service_window,
    mark_contact_invalid,
    readiness,
)
from dunning.whatsapp.templates import TemplateBook, TemplateError, TemplateMessage

#: The template stage used for an answer when the 24-hour window has closed.
ANSWER_STAGE = "answer"


@dataclass
class WhatsAppResult:
    """What happened to one WhatsApp action.

    `status` is sent, rejected (not sent and not to be retried on WhatsApp) or in_doubt;
    `reason` a short code (no_consent, opted_out, invalid_phone, contact_invalid, no_template,
    undeliverable, template_rejected, marketing_opt_out, refused) and `detail` the text;
    `fallback` is "email" when the same stage should go by email instead.
    """

    status: str
    reason: str = ""
    detail: str = ""
    recipient: str = ""
    message_id: str = ""
    text: str = ""
    fallback: str = ""
    code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def send_whatsapp_reminder(
    *,
    ledger: Ledger,
    client: WhatsAppClient,
    key: str,
    invoice: Invoice,
    stage: str,
    language: str,
    country: str,
    today: date,
    templates: TemplateBook,
    opted_in: bool = False,
    company_name: str = "",
    context: Mapping[str, Any] | None = None,
) -> WhatsAppResult:
    """Send the stage's approved template to the invoice's customer (key already claimed).

    Args:
        key: the claimed outbox key (`<invoice>:<stage>:whatsapp`).
        invoice: the invoice as just re-read at the source.
        stage: the ladder stage, which names the template mapping (`promise_broken`, ...).
        language, country: the customer's (the plan fills them in); the country reads
            national phone numbers and formats amounts and dates.
        opted_in: the source's opt-in field for this customer (the ledger's opt-ins count too).
        context: more template parameters beside the invoice's (a statement's `count` and
            `total`, `dunning.statement`).

    Example:
        >>> claim = ledger.claim(key="F-1:overdue_7:whatsapp", invoice_number="F-1", ...)
        >>> if claim.claimed:
        ...     result = send_whatsapp_reminder(ledger=ledger, client=channel.client(), ...)
        ...     if result.fallback == "email": ...  # claim F-1:overdue_7:email and send it
    """
    where = {"invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id}
    ready = readiness(
        ledger,
        customer_id=invoice.customer_id,
        phone=invoice.phone,
        country=country,
        opted_in_at_source=opted_in,
        invoice_number=invoice.invoice_number,
    )
    if not ready.ok:
        if ready.reason == "invalid_phone":
            mark_contact_invalid(
                ledger,
                **where,
                phone=invoice.phone,
                reason=ready.detail,
                customer_name=invoice.customer_name,
            )
        return _refuse(ledger, key, where, ready.reason, ready.detail, recipient=ready.phone)
    try:
        values = invoice_context(
            invoice,
            today=today,
            language=language,
            country=country,
            company_name=company_name,
            stage=stage,
        )
        message = templates.message(stage, language, values | dict(context or {}))
    except TemplateError as exc:
        return _refuse(ledger, key, where, "no_template", str(exc), recipient=ready.phone)
    result = deliver_whatsapp(
        ledger,
        client,
        key,
        to=ready.phone,
        send=lambda on_retry: client.send_template(ready.phone, message.payload, on_retry=on_retry),
        text=message.text,
        **where,
        stage=stage,
        template=message.spec.name,
        language=message.spec.code,
    )
    return _after_refusal(ledger, result, invoice, ready.phone, template=message.spec.name)


def send_whatsapp_answer(
    *,
    ledger: Ledger,
    client: WhatsAppClient,
    key: str,
    invoice: Invoice,
    phone: str,
    text: str,
    language: str,
    now: datetime,
    templates: TemplateBook,
    reply_to: str | None = None,
) -> WhatsAppResult:
    """Answer a customer who wrote on WhatsApp (key already claimed), as free text if they
    wrote within 24 hours, else with the `answer` template (which carries `text`).

    If Meta still says the window has closed (131047), the template is sent in the same
    attempt; both are events in the ledger. `phone` is the sender's E.164 number.
    """
    where = {"invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id}
    fallback: TemplateMessage | None = None
    problem = ""
    try:
        fallback = _answer_template(templates, invoice, language, text)
    except TemplateError as exc:
        problem = str(exc)

    def send(on_retry: Callable[..., None]) -> tuple[SentMessage, str]:
        if in_service_window(ledger, phone, now):
            try:
                return client.send_text(phone, text, reply_to=reply_to, on_retry=on_retry), text
            except OutsideWindow as exc:
                ledger.record_event(
                    "whatsapp_outside_window", **where, action_key=key, error=str(exc)
                )
        if fallback is None:
            raise TemplateRejected(f"outside the 24-hour window and {problem}")
        return client.send_template(phone, fallback.payload, on_retry=on_retry), fallback.text

    result = deliver_whatsapp(
        ledger, client, key, to=phone, send=send, text="", **where, stage=ANSWER_STAGE
    )
    return _after_refusal(ledger, result, invoice, phone, template=ANSWER_STAGE)


def deliver_whatsapp(
    ledger: Ledger,
    client: WhatsAppClient,
    key: str,
    *,
    to: str,
    send: Callable[[Callable[..., None]], SentMessage | tuple[SentMessage, str]],
    text: str,
    invoice_number: str = "",
    customer_id: str = "",
    **event: Any,
) -> WhatsAppResult:
    """Hand a claimed action's message to the Cloud API and record the outcome.

    `send(on_retry)` makes the API call(s) and returns the `SentMessage` (or it and the text
    actually sent). Temporary failures and an invalid token are recorded and raised;
    permanent refusals are recorded and returned as `rejected` with the error's class name
    as `reason`.
    """
    where = {"invoice_number": invoice_number, "customer_id": customer_id, "action_key": key}

    def on_retry(exc: WhatsAppError, attempt: int, delay: float) -> None:
        ledger.record_event(
            "send_retry", **where, channel=CHANNEL, code=exc.code, attempt=attempt, delay=delay
        )

    update_action(ledger, key, recipient=to)
    ledger.mark_sending(key, "")
    try:
        answer = send(on_retry)
    except WhatsAppOutcomeUnknown as exc:
        ledger.record_event("in_doubt", **where, channel=CHANNEL, error=str(exc))
        return WhatsAppResult("in_doubt", "in_doubt", str(exc), recipient=to)
    except WhatsAppError as exc:
        # An invalid token is not the message's fault: the action may be taken again later.
        permanent = exc.permanent and not isinstance(exc, AuthError)
        ledger.mark_failed(key, str(exc), permanent=permanent)
        ledger.record_event(
            "send_failed",
            **where,
            channel=CHANNEL,
            code=exc.code,
            error=str(exc),
            permanent=exc.permanent,
        )
        if not permanent:
            raise
        reason = _REASONS.get(type(exc), "refused")
        return WhatsAppResult("rejected", reason, str(exc), recipient=to, code=exc.code)
    sent, sent_text = answer if isinstance(answer, tuple) else (answer, text)
    update_action(ledger, key, message_id=sent.message_id)
    ledger.mark_sent(key, sent_text)
    ledger.record_event(
        "sent",
        **where,
        channel=CHANNEL,
        recipient=to,
        message_id=sent.message_id,
        text=sent_text,
        **event,
    )
    return WhatsAppResult("sent", recipient=to, message_id=sent.message_id, text=sent_text)


_REASONS: dict[type, str] = {
    InvalidRecipient: "undeliverable",
    TemplateRejected: "template_rejected",
    MarketingOptOut: "marketing_opt_out",
    OutsideWindow: "outside_window",
}


def _answer_template(
    templates: TemplateBook, invoice: Invoice, language: str, text: str
) -> TemplateMessage:
    context = {
        "customer_name": invoice.customer_name or invoice.customer_id,
        "invoice_number": invoice.invoice_number,
        "text": text,
    }
    return templates.message(ANSWER_STAGE, language, context)


def _refuse(
    ledger: Ledger, key: str, where: dict[str, str], reason: str, detail: str, recipient: str = ""
) -> WhatsAppResult:
    """Not sent on WhatsApp for a reason email can make up for: recorded, fall back."""
    if recipient:
        update_action(ledger, key, recipient=recipient)
    ledger.mark_failed(key, f"{reason}: {detail}", permanent=True)
    ledger.record_event(
        "skipped", **where, action_key=key, channel=CHANNEL, reason=reason, detail=detail
    )
    return WhatsAppResult("rejected", reason, detail, recipient=recipient, fallback="email")


def _after_refusal(
    ledger: Ledger, result: WhatsAppResult, invoice: Invoice, phone: str, template: str = ""
) -> WhatsAppResult:
    """Mark the contact or the opt-out Meta told us about; every refusal falls back to email."""
    if result.status != "rejected":
        return result
    if result.reason == "undeliverable":
        mark_contact_invalid(
            ledger,
            invoice_number=invoice.invoice_number,
            customer_id=invoice.customer_id,
            phone=phone,
            reason=result.detail,
            customer_name=invoice.customer_name,
        )
    elif result.reason == "marketing_opt_out":
        ledger.add_pause(
            "opt_out",
            customer_id=invoice.customer_id,
            channel=CHANNEL,
            reason=result.detail[:300],
            actor="whatsapp",
        )
    elif result.reason == "template_rejected":
        ledger.open_task(
            key=f"whatsapp-template:{template}:{result.code}",
            invoice_number=invoice.invoice_number,
            customer_id=invoice.customer_id,
            title=f"WhatsApp refused template {template!r} (code {result.code}): check "
            "templates/whatsapp/ against WhatsApp Manager (name, language, parameters, approval)",
            assignee="admin",
            note=result.detail[:1000],
        )
    result.fallback = "email"
    return result
