"""Who may get an SMS or an automated call, and the opt-outs that stop them.

- Opt-out: an `opt_out` pause on the channel (`sms` or `voice`), or on every channel, always
  wins. A customer's STOP (and BAJA, PARAR, ... `OPT_OUT_WORDS`) by SMS, or Twilio's 21610
  ("unsubscribed recipient") on a send, records one (`record_opt_out`); START/YES/UNSTOP
  (and ALTA, ...) ends the SMS opt-out (`clear_opt_out`) - Twilio unblocks the number then too.
- Opt-in: SMS needs a recorded opt-in only in the countries the `SmsChannel` block lists
  (`opt_in_countries`, e.g. US and CA, where A2P rules require it); elsewhere a payment
  reminder to the customer's own number is a service message. An opt-in is an event of the
  ledger (`record_opt_in`).
- Contacts: a number Twilio said cannot get SMS (21211 invalid, 21614 landline) is marked for
  that channel and not tried again; a landline may still get a call.
"""

from __future__ import annotations

from dataclasses import dataclass

from dunning.ledger import Ledger
from dunning.ledger.consent import end_opt_out, has_opt_out
from dunning.ledger.events import customers_with_event, event_details, has_event
from dunning.whatsapp.phones import InvalidPhone, to_e164

CHANNELS = ("sms", "voice")
#: Single-word replies that stop SMS (Twilio's defaults, plus Spanish and Portuguese, which
#: Twilio does not handle by default: the contract's §6).
OPT_OUT_WORDS = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "REVOKE", "OPTOUT",
        "BAJA", "ALTO", "PARAR", "PARE", "SAIR", "CANCELAR",
    }
)  # fmt: skip
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP", "ALTA", "SI", "SIM"})


def opt_in_event(channel: str) -> str:
    return f"{channel}_opt_in"


def contact_invalid_event(channel: str) -> str:
    return f"{channel}_contact_invalid"


def keyword(text: str) -> str:
    """The opt-out/opt-in keyword a message is, upper case, or "" (only a single word counts,
    as at Twilio: "STOP please" is a reply to read, not an opt-out)."""
    words = text.strip().strip(".!¡").split()
    if len(words) != 1:
        return ""
    word = words[0].upper().replace("Í", "I")
    return word if word in OPT_OUT_WORDS | OPT_IN_WORDS else ""


@dataclass(frozen=True)
class Readiness:
    """Whether a customer can get an SMS or a call now; if not, `reason` says why
    (opted_out, no_consent, invalid_phone, contact_invalid). `phone` is E.164 when read."""

    ok: bool
    reason: str = ""
    detail: str = ""
    phone: str = ""


def record_opt_in(
    ledger: Ledger, customer_id: str, channel: str = "sms", *, phone: str = "", source: str = ""
) -> None:
    """Record that the customer agreed to get messages on `channel` (`source`: how/where)."""
    ledger.record_event(opt_in_event(channel), customer_id=customer_id, phone=phone, source=source)


def record_opt_out(
    ledger: Ledger,
    customer_id: str,
    channel: str,
    *,
    reason: str,
    phone: str = "",
    message_sid: str = "",
    invoice_number: str = "",
) -> bool:
    """Stop `channel` for the customer (a pause shown on the timeline); False if already
    stopped. The event records the number, the keyword or error and Twilio's SID."""
    if has_opt_out(ledger, channel, customer_id):
        return False
    ledger.add_pause(
        "opt_out", customer_id=customer_id, channel=channel, reason=reason[:300], actor="customer"
    )
    ledger.record_event(
        f"{channel}_opt_out",
        invoice_number=invoice_number,
        customer_id=customer_id,
        actor="twilio",
        phone=phone,
        reason=reason[:300],
        message_sid=message_sid,
    )
    return True


def clear_opt_out(ledger: Ledger, customer_id: str, channel: str, *, reason: str) -> int:
    """End the customer's opt-out of `channel` (after START); returns how many ended."""
    return end_opt_out(ledger, customer_id, channel, reason=reason)


def opted_in(ledger: Ledger, customer_id: str, channel: str = "sms") -> bool:
    return has_event(ledger, opt_in_event(channel), customer_id=customer_id)


def mark_contact_invalid(
    ledger: Ledger,
    *,
    channel: str,
    customer_id: str,
    phone: str,
    reason: str,
    invoice_number: str = "",
    customer_name: str = "",
) -> None:
    """Remember that `phone` cannot be used on `channel` and ask a person to fix it (once)."""
    ledger.record_event(
        contact_invalid_event(channel),
        invoice_number=invoice_number,
        customer_id=customer_id,
        phone=phone,
        reason=reason[:500],
    )
    what = "SMS" if channel == "sms" else "calls"
    ledger.open_task(
        key=f"{channel}-contact:{customer_id}:{phone}",
        invoice_number=invoice_number,
        customer_id=customer_id,
        title=f"Phone {phone or '(none)'} of {customer_name or customer_id} cannot get "
        f"{what}: fix the number at the source (another channel is used meanwhile)",
        assignee="account_owner",
        note=reason[:1000],
    )


def contact_marked_invalid(ledger: Ledger, customer_id: str, phone: str, channel: str) -> bool:
    details = event_details(ledger, contact_invalid_event(channel), customer_id=customer_id)
    return any(detail.get("phone") == phone for _, detail in details)


def readiness(
    ledger: Ledger,
    *,
    channel: str,
    customer_id: str,
    phone: str,
    country: str,
    opt_in_countries: frozenset[str] = frozenset(),
    invoice_number: str = "",
) -> Readiness:
    """Can this customer get an SMS (or a call) now? Checked in order: opt-out, consent
    where the country requires it, a readable number, a number not marked invalid.

    Example:
        >>> readiness(ledger, channel="sms", customer_id="C1", phone="600 123 456",
        ...           country="ES")
        Readiness(ok=True, reason='', detail='', phone='+34600123456')
    """
    if has_opt_out(ledger, channel, customer_id, invoice_number):
        return Readiness(False, "opted_out", f"the customer opted out of {channel}")
    if country.upper() in opt_in_countries and not opted_in(ledger, customer_id, channel):
        return Readiness(
            False, "no_consent", f"{country.upper()} requires an {channel} opt-in; none recorded"
        )
    try:
        e164 = to_e164(phone, country)
    except InvalidPhone as exc:
        return Readiness(False, "invalid_phone", str(exc))
    if contact_marked_invalid(ledger, customer_id, e164, channel):
        return Readiness(
            False, "contact_invalid", f"{e164} was reported unusable for {channel}", phone=e164
        )
    return Readiness(True, phone=e164)


def opted_in_customers(ledger: Ledger, channel: str) -> set[str]:
    """Every customer with an opt-in of `channel` recorded (for planning a whole frame)."""
    return customers_with_event(ledger, opt_in_event(channel))


def invalid_contacts(ledger: Ledger, channel: str) -> set[tuple[str, str]]:
    """Every (customer id, E.164 number) marked unusable for `channel`."""
    details = event_details(ledger, contact_invalid_event(channel))
    return {(customer, detail.get("phone", "")) for customer, detail in details}
