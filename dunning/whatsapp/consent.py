"""Who may be written to on WhatsApp, and when free text is allowed.

- Consent: WhatsApp only for a customer with a recorded opt-in, from the source (a field the
  caller passes) or recorded by us (`record_opt_in`, an event in the ledger). An opt-out
  (a `opt_out` pause on the `whatsapp` channel, or on every channel) always wins.
- Contacts: a number Meta said is not on WhatsApp (131026) is marked, and not tried again.
- The 24-hour customer-service window: free text only within 24 hours of the customer's last
  message to us, as the ledger's inbox saw it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dunning.ledger import Ledger
from dunning.ledger.consent import has_opt_out
from dunning.ledger.consent import last_inbound_at as _last_inbound_at
from dunning.ledger.events import customers_with_event, event_details, has_event
from dunning.whatsapp.phones import InvalidPhone, to_e164

CHANNEL = "whatsapp"
OPT_IN_EVENT = "whatsapp_opt_in"
CONTACT_INVALID_EVENT = "whatsapp_contact_invalid"
SERVICE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Readiness:
    """Whether a customer can get a WhatsApp message now; if not, `reason` says why.

    `reason` is one of opted_out, no_consent, invalid_phone, contact_invalid (empty when ok);
    `phone` is the E.164 number when it could be read.
    """

    ok: bool
    reason: str = ""
    detail: str = ""
    phone: str = ""


def record_opt_in(
    ledger: Ledger, customer_id: str, *, phone: str = "", source: str = "", actor: str = "dunning"
) -> None:
    """Record that the customer agreed to get messages on WhatsApp (`source`: how/where)."""
    ledger.record_event(
        OPT_IN_EVENT, customer_id=customer_id, actor=actor, phone=phone, source=source
    )


def opted_in(ledger: Ledger, customer_id: str) -> bool:
    """True if the ledger holds an opt-in of this customer."""
    return has_event(ledger, OPT_IN_EVENT, customer_id=customer_id)


def opted_out(ledger: Ledger, customer_id: str, invoice_number: str = "") -> bool:
    """True while an opt-out covers WhatsApp for this customer (or this invoice)."""
    return has_opt_out(ledger, CHANNEL, customer_id, invoice_number)


def mark_contact_invalid(
    ledger: Ledger,
    *,
    customer_id: str,
    phone: str,
    reason: str,
    invoice_number: str = "",
    customer_name: str = "",
) -> None:
    """Remember that `phone` cannot get WhatsApp messages and ask a person to fix it (once)."""
    ledger.record_event(
        CONTACT_INVALID_EVENT,
        invoice_number=invoice_number,
        customer_id=customer_id,
        phone=phone,
        reason=reason[:500],
    )
    ledger.open_task(
        key=f"whatsapp-contact:{customer_id}:{phone}",
        invoice_number=invoice_number,
        customer_id=customer_id,
        title=f"WhatsApp number {phone or '(none)'} of {customer_name or customer_id} does not "
        "work: fix the phone at the source (email is used meanwhile)",
        assignee="account_owner",
        note=reason[:1000],
    )


def contact_marked_invalid(ledger: Ledger, customer_id: str, phone: str) -> bool:
    """True if `phone` was marked as not reachable on WhatsApp for this customer."""
    details = event_details(ledger, CONTACT_INVALID_EVENT, customer_id=customer_id)
    return any(detail.get("phone") == phone for _, detail in details)


def readiness(
    ledger: Ledger,
    *,
    customer_id: str,
    phone: str,
    country: str,
    opted_in_at_source: bool = False,
    invoice_number: str = "",
) -> Readiness:
    """Can this customer get a WhatsApp message now? Checked in order: opt-out, consent,
    a readable number, a number not marked invalid.

    Example:
        >>> readiness(ledger, customer_id="C1", phone="600 123 456", country="ES",
        ...           opted_in_at_source=True)
        Readiness(ok=True, reason='', detail='', phone='+34600123456')
    """
    if opted_out(ledger, customer_id, invoice_number):
        return Readiness(False, "opted_out", "the customer opted out of WhatsApp")
    if not (opted_in_at_source or opted_in(ledger, customer_id)):
        return Readiness(False, "no_consent", "no WhatsApp opt-in recorded for the customer")
    try:
        e164 = to_e164(phone, country)
    except InvalidPhone as exc:
        return Readiness(False, "invalid_phone", str(exc))
    if contact_marked_invalid(ledger, customer_id, e164):
        return Readiness(
            False, "contact_invalid", f"{e164} was reported as not on WhatsApp", phone=e164
        )
    return Readiness(True, phone=e164)


def last_inbound_at(ledger: Ledger, phone: str) -> datetime | None:
    """When the customer with this E.164 number last wrote to us on WhatsApp (UTC)."""
    return _last_inbound_at(ledger, CHANNEL, phone)


def in_service_window(ledger: Ledger, phone: str, now: datetime) -> bool:
    """True if free text may be sent: the customer wrote within the last 24 hours."""
    last = last_inbound_at(ledger, phone)
    return last is not None and now - last < SERVICE_WINDOW


def opted_in_customers(ledger: Ledger) -> set[str]:
    """Every customer with an opt-in recorded in the ledger (for planning a whole frame)."""
    return customers_with_event(ledger, OPT_IN_EVENT)


def invalid_contacts(ledger: Ledger) -> set[tuple[str, str]]:
    """Every (customer id, E.164 number) marked as not reachable on WhatsApp."""
    details = event_details(ledger, CONTACT_INVALID_EVENT)
    return {(customer, detail.get("phone", "")) for customer, detail in details}
