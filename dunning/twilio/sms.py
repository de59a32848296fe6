"""SMS over Twilio: send one claimed reminder, apply status callbacks, read inbound SMS.

Sending follows the WhatsApp channel's order (the caller has claimed the outbox key
`<invoice>:<stage>:sms`, so only one caller gets here): consent, opt-out and the number are
checked again; the text is rendered (GSM-7 where possible, at most 2 segments); the action is
marked `sending` before Twilio sees it; the Message SID becomes the action's `message_id`, so
status callbacks find it. A refusal another channel can make up for comes back with
`fallback=True`: 21610 (the customer sent STOP) records an SMS opt-out, 21211/21614 (invalid
or landline number) mark the number for SMS; the act step then sends the stage by email or
opens a task in the same run. Rate limits (20429) are retried with backoff by the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from dunning.ledger import InboundMessage, Ledger
from dunning.ledger.consent import has_opt_out
from dunning.ledger.delivery import (
    customers_with_recipient,
    record_delivery_status,
    update_action,
)
from dunning.render import invoice_context
from dunning.schema import Invoice
from dunning.twilio.client import (
    UNDELIVERABLE_CODES,
    UNSUBSCRIBED_CODES,
    AuthError,
    InvalidNumber,
    TwilioClient,
    TwilioError,
    TwilioOutcomeUnknown,
    Unsubscribed,
)
from dunning.twilio.consent import (
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    clear_opt_out,
    keyword,
    mark_contact_invalid,
    readiness,
    record_opt_out,
)
from dunning.twilio.text import SmsTemplateError, render_sms

CHANNEL = "sms"


@dataclass(frozen=True)
class SmsSettings:
    """The sending side of an `SmsChannel` block: who sends, where statuses go, which
    countries need an opt-in."""

    sender: dict[str, str]
    status_callback_url: str = ""
    opt_in_countries: frozenset[str] = field(default_factory=frozenset)


@dataclass
class TwilioResult:
    """What happened to one SMS or call action.

    `status` is sent, rejected (not sent on this channel, not to be retried there) or
    in_doubt; `reason` a short code (no_consent, opted_out, invalid_phone, contact_invalid,
    no_template, unsubscribed, invalid_number, refused) and `detail` the text; `fallback`
    True when another channel should carry the stage.
    """

    status: str
    reason: str = ""
    detail: str = ""
    recipient: str = ""
    message_id: str = ""
    text: str = ""
    fallback: bool = False
    code: int | None = None
    segments: int = 0
    encoding: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def send_sms_reminder(
    *,
    ledger: Ledger,
    client: TwilioClient,
    settings: SmsSettings,
    key: str,
    invoice: Invoice,
    stage: str,
    language: str,
    country: str,
    today: date,
    company_name: str = "",
    include_payment_link: bool = True,
) -> TwilioResult:
    """Send the stage's SMS to the invoice's customer (key already claimed).

    Example:
        >>> if ledger.claim(key="F-1:overdue_7:sms", ...).claimed:
        ...     result = send_sms_reminder(ledger=ledger, client=block.client(), ...)
        ...     if result.fallback: ...  # claim F-1:overdue_7:email and send it
    """
    where = {"invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id}
    ready = readiness(
        ledger,
        channel=CHANNEL,
        customer_id=invoice.customer_id,
        phone=invoice.phone,
        country=country,
        opt_in_countries=settings.opt_in_countries,
        invoice_number=invoice.invoice_number,
    )
    if not ready.ok:
        return refuse(ledger, key, where, CHANNEL, ready.reason, ready.detail, ready.phone)
    try:
        context = invoice_context(
            invoice,
            today=today,
            language=language,
            country=country,
            payment_link=None if include_payment_link else "",
            company_name=company_name,
            stage=stage,
        )
        sms = render_sms(stage, language, context)
    except SmsTemplateError as exc:
        return refuse(ledger, key, where, CHANNEL, "no_template", str(exc), ready.phone)

    def on_retry(exc: TwilioError, attempt: int, delay: float) -> None:
        ledger.record_event(
            "send_retry", **where, action_key=key, channel=CHANNEL, code=exc.code,
            attempt=attempt, delay=delay,
        )  # fmt: skip

    update_action(ledger, key, recipient=ready.phone)
    ledger.mark_sending(key, "")
    try:
        created = client.send_sms(
            to=ready.phone,
            body=sms.text,
            sender=settings.sender,
            status_callback=settings.status_callback_url,
            on_retry=on_retry,
        )
    except TwilioOutcomeUnknown as exc:
        ledger.record_event("in_doubt", **where, action_key=key, channel=CHANNEL, error=str(exc))
        return TwilioResult("in_doubt", "in_doubt", str(exc), recipient=ready.phone)
    except TwilioError as exc:
        result = failed(ledger, key, where, CHANNEL, exc, ready.phone)
        if isinstance(exc, Unsubscribed):
            record_opt_out(
                ledger, invoice.customer_id, CHANNEL, reason=f"Twilio {exc.code}: {exc}",
                phone=ready.phone, invoice_number=invoice.invoice_number,
            )  # fmt: skip
        elif isinstance(exc, InvalidNumber):
            mark_contact_invalid(
                ledger, channel=CHANNEL, **where, phone=ready.phone, reason=str(exc),
                customer_name=invoice.customer_name,
            )  # fmt: skip
        return result
    update_action(ledger, key, message_id=created.sid, delivery_status="")
    ledger.mark_sent(key, sms.text)
    ledger.record_event(
        "sent", **where, action_key=key, channel=CHANNEL, recipient=ready.phone,
        message_id=created.sid, text=sms.text, stage=stage, segments=sms.segments,
        encoding=sms.encoding, language=sms.language,
    )  # fmt: skip
    return TwilioResult(
        "sent",
        recipient=ready.phone,
        message_id=created.sid,
        text=sms.text,
        segments=sms.segments,
        encoding=sms.encoding,
    )


def refuse(
    ledger: Ledger,
    key: str,
    where: dict[str, str],
    channel: str,
    reason: str,
    detail: str,
    recipient: str = "",
) -> TwilioResult:
    """Not sent on `channel` for a reason another channel can make up for: recorded."""
    if recipient:
        update_action(ledger, key, recipient=recipient)
    ledger.mark_failed(key, f"{reason}: {detail}", permanent=True)
    ledger.record_event(
        "skipped", **where, action_key=key, channel=channel, reason=reason, detail=detail
    )
    return TwilioResult("rejected", reason, detail, recipient=recipient, fallback=True)


def failed(
    ledger: Ledger, key: str, where: dict[str, str], channel: str, exc: TwilioError, to: str
) -> TwilioResult:
    """Record a refusal by Twilio; raise it again when it is temporary or the credentials'
    fault (the action may be taken again), else return it as `rejected` with a fallback."""
    permanent = exc.permanent and not isinstance(exc, AuthError)
    ledger.mark_failed(key, str(exc), permanent=permanent)
    ledger.record_event(
        "send_failed", **where, action_key=key, channel=channel, code=exc.code, error=str(exc),
        permanent=exc.permanent,
    )  # fmt: skip
    if not permanent:
        raise exc
    reason = {Unsubscribed: "unsubscribed", InvalidNumber: "invalid_number"}.get(
        type(exc), "refused"
    )
    return TwilioResult("rejected", reason, str(exc), recipient=to, fallback=True, code=exc.code)


# -- status callbacks and inbound SMS --------------------------------------------------------

#: Twilio's message statuses -> the outbox's delivery statuses (others are not recorded).
_DELIVERY = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}


def apply_sms_status(
    ledger: Ledger,
    *,
    message_sid: str,
    status: str,
    at: datetime,
    error_code: int | None = None,
    to: str = "",
) -> str | None:
    """Record a status callback on the action that sent the message; returns its key
    (None for a message not sent by us). 21610 records an SMS opt-out; 30005/30006 (unknown
    handset, landline) mark the number for SMS."""
    mapped = _DELIVERY.get(status)
    row = None
    if mapped:
        error = f"Twilio {status} (error {error_code})" if error_code else ""
        row = record_delivery_status(ledger, message_sid, mapped, at, error=error)
    if row is None:
        return None
    ledger.record_event(
        f"sms_{status}", invoice_number=row.invoice_number, customer_id=row.customer_id,
        action_key=row.key, actor="twilio", message_id=message_sid, code=error_code,
    )  # fmt: skip
    phone = to or row.recipient
    if error_code in UNSUBSCRIBED_CODES:
        record_opt_out(
            ledger, row.customer_id, CHANNEL, reason=f"Twilio {error_code}", phone=phone,
            message_sid=message_sid, invoice_number=row.invoice_number,
        )  # fmt: skip
    elif error_code in UNDELIVERABLE_CODES:
        mark_contact_invalid(
            ledger, channel=CHANNEL, customer_id=row.customer_id, phone=phone,
            reason=f"Twilio {status}, error {error_code}", invoice_number=row.invoice_number,
        )  # fmt: skip
    return row.key


def store_inbound_sms(ledger: Ledger, params: dict[str, str], *, at: datetime) -> dict[str, Any]:
    """Put a customer's SMS in the inbox (`new`, for the replies flow, which reads it like an
    email or a WhatsApp message). An opt-out keyword from a number we sent SMS to is acted on
    here, at once, and stored already processed: STOP must work even if the replies flow is
    down. An opt-in keyword (START, SÍ) is one only from a customer who opted out."""
    sender, sid = params.get("From", ""), params.get("MessageSid") or params.get("SmsSid", "")
    text = params.get("Body", "")
    word = keyword(text)
    customers = customers_with_recipient(ledger, CHANNEL, sender) if word else []
    if word in OPT_IN_WORDS and not any(has_opt_out(ledger, CHANNEL, c) for c in customers):
        # "Sí" / "YES" from someone who never opted out is a reply for a person, not a keyword.
        word, customers = "", []
    inbound = InboundMessage(
        provider_id=sid,
        channel=CHANNEL,
        received_at=at,
        sender=sender,
        text=text,
        headers={"to": params.get("To", ""), "from_country": params.get("FromCountry", "")},
    )
    done: dict[str, Any] = {"sender": sender, "keyword": word}
    if word and customers:
        customer = customers[0]
        inbound.customer_id, inbound.state = customer, "processed"
        if word in OPT_OUT_WORDS:
            inbound.intent = "opt_out"
            record_opt_out(
                ledger, customer, CHANNEL, reason=f"SMS {word} from {sender}", phone=sender,
                message_sid=sid,
            )  # fmt: skip
        elif word in OPT_IN_WORDS:
            inbound.intent = "opt_in"
            clear_opt_out(ledger, customer, CHANNEL, reason=f"SMS {word} from {sender}")
        done["customer_id"] = customer
    ids = ledger.store_inbound([inbound])
    done["inbound_id"] = ids[0] if ids else None
    return done
