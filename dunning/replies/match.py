"""Match a customer's message to the invoice(s) and customer it is about.

In order of trust:
1. our own Message-ID in `In-Reply-To`/`References` (the reply to a reminder we sent);
2. invoice numbers the ledger knows, written in the subject or the text;
3. the sender's address (or phone) among the customers' contacts: all that customer's
   open invoices.
A message that matches nothing is handed to a person; it is never dropped.

A match is `trusted` when the sender is one of that customer's contacts (the address or
phone the source gives, or an address at the same company domain). Only a trusted sender's
message may trigger an answer with documents, a promise, an opt-out or a hold; an untrusted
one goes to a person (a dispute still stops reminders: the safe direction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dunning.ledger import InboundMessage, Ledger
from dunning.ledger.contacts import (
    action_by_message_ids,
    contacts_with_email,
    contacts_with_phone,
    customer_emails,
    invoice_customers,
)

_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")
# Invoice-number-like tokens: letters, digits and separators, with at least one digit.
_TOKENS = re.compile(r"(?<![\w-])[A-Za-z0-9][\w./-]*\d[\w/-]*")


@dataclass
class Match:
    """What a message is about. `how` is message_id, invoice_number, sender or none."""

    how: str
    customer_id: str = ""
    invoice_numbers: list[str] = field(default_factory=list)
    action_key: str = ""
    trusted: bool = False

    @property
    def found(self) -> bool:
        return self.how != "none"


#: Mail providers anyone can sign up to: a shared domain says nothing about who wrote.
FREE_MAIL = frozenset(
    "gmail.com googlemail.com hotmail.com hotmail.es outlook.com outlook.es live.com "
    "yahoo.com yahoo.es icloud.com me.com aol.com gmx.com gmx.es protonmail.com proton.me "
    "terra.com.br uol.com.br bol.com.br".split()
)


def match_message(message: InboundMessage, ledger: Ledger) -> Match:
    """Find the invoice(s) and customer a message is about (see module docstring)."""
    by_sender = _by_sender(message, ledger)
    match = (
        _by_message_id(message, ledger)
        or _by_invoice_number(message, ledger, by_sender)
        or by_sender
        or Match("none")
    )
    if match.found:
        match.trusted = by_sender is not None and by_sender.customer_id == match.customer_id
        match.trusted = match.trusted or _same_company(message.sender, match, ledger)
    return match


def _by_message_id(message: InboundMessage, ledger: Ledger) -> Match | None:
    ids = _MESSAGE_IDS.findall(f"{message.in_reply_to} {message.references}")
    if message.channel != "email" and message.in_reply_to:
        ids.append(message.in_reply_to.strip())  # WhatsApp quotes the bare wamid
    if not ids:
        return None
    row = action_by_message_ids(ledger, ids)
    if row is None:
        return None
    return Match("message_id", row.customer_id, [row.invoice_number], row.key)


def _by_invoice_number(
    message: InboundMessage, ledger: Ledger, by_sender: Match | None
) -> Match | None:
    tokens = {t.strip("./-") for t in _TOKENS.findall(f"{message.subject}\n{message.text}")}
    tokens = {t for t in tokens if len(t) >= 3}
    if not tokens:
        return None
    known = invoice_customers(ledger, sorted(tokens))  # invoice number -> customer id
    # A bare number ("1500", "2026") is as likely an amount or a year as an invoice: it only
    # counts when it is an invoice of the sender's own customer.
    sender_customer = by_sender.customer_id if by_sender else None
    known = {n: c for n, c in known.items() if not n.isdigit() or c == sender_customer}
    if not known:
        return None
    # Several customers' invoices in one message: trust the sender's own, if it is one.
    customers = set(known.values())
    if len(customers) > 1:
        if sender_customer in customers:
            customers = {sender_customer}
        else:
            return None
    customer = customers.pop()
    numbers = sorted(n for n, c in known.items() if c == customer)
    return Match("invoice_number", customer, numbers)


def _by_sender(message: InboundMessage, ledger: Ledger) -> Match | None:
    sender = (message.sender or "").strip().lower()
    if not sender:
        return None
    if "@" in sender:
        contacts = contacts_with_email(ledger, sender)
        emails = contacts["email"].fillna("").str.lower().str.replace(";", ",").str.split(",")
        hit = emails.apply(lambda addrs: sender in [a.strip() for a in addrs]).astype(bool)
    else:
        contacts = contacts_with_phone(ledger)
        digits = re.sub(r"\D", "", sender)
        phones = contacts["phone"].fillna("").str.replace(r"\D", "", regex=True)
        # Numbers are stored as the source wrote them: compare the national significant part.
        hit = (phones.str.len() >= 7) & phones.map(lambda p: digits.endswith(p[-9:])).astype(bool)
    found = contacts[hit]
    customers = found["customer_id"].unique()
    if len(customers) != 1:
        return None  # unknown sender, or an address shared by several customers: a person
    open_ = found[found["status"].isin(["open", "disputed"])]
    return Match("sender", customers[0], sorted(open_["invoice_number"]))


def _same_company(sender: str, match: Match, ledger: Ledger) -> bool:
    """The sender writes from the same (non-free-mail) domain as one of the customer's
    contacts: a colleague, not a stranger."""
    domain = sender.rsplit("@", 1)[-1].lower() if "@" in sender else ""
    if not domain or domain in FREE_MAIL:
        return False
    return any(
        a.strip().lower().endswith("@" + domain)
        for value in customer_emails(ledger, match.customer_id)
        for a in value.replace(";", ",").split(",")
    )
