"""Thanks and confirmations: what the customer and the CRM hear when the case moves on.

- **Paid after a reminder.** When the ledger has seen an invoice paid (the source's sync, or
  a payment webhook such as Stripe's `invoice.paid`) and a reminder of the ladder had gone
  out for it, the customer gets one thank-you email (`on_payment: thank_you`, the default;
  `none` per policy or segment sends nothing), the CRM gets the payment as a note, and a
  customer status the ladder set (e.g. `on_hold`) is cleared once the customer has nothing
  overdue left (in the ledger and, queued, in the CRM).
- **A promise to pay** recorded from a reply or the desk gets one confirmation email ("we
  note payment on <date>") unless `confirm_promises: false`. The replies flow confirms at
  once, in the customer's thread; a promise taken in the desk (which sends no email) is
  confirmed by the next sweep. Both use the same outbox key, so it goes once. A promise
  made by one message (or one desk action) for several invoices of a customer, e.g. a
  reply to a statement, is confirmed by ONE email listing them (`confirm_together`): it is
  claimed under the first promise's key, and the other promises' keys are claimed with it
  and marked sent in the same transaction, so a re-run sends nothing more and a crash
  leaves them in doubt, never sent twice.

Every message goes through the ledger's outbox under an `ActionKey`
(`<invoice>:thank_you:email`, `<invoice>:promise_confirmation-<promise id>:email`): the
webhook's one-invoice run and the next sweep may both see the same payment, and the
customer is still thanked once. The sweep runs `act_on_case` after its act step
(`tasks.thanks.thank_and_confirm`); anything that failed for a temporary reason is tried
again by the next run (nothing is marked done until the message is sent or refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from dunning.act import SENT_BODY_CHARS, EmailIdentity
from dunning.action import ActionKey
from dunning.crm import QueuedEntry, note_entry, queue_entry, queue_note, queue_status
from dunning.delivery import deliver
from dunning.ledger import Ledger, closed_in_ledger
from dunning.ledger.batch import ClaimRequest
from dunning.ledger.cases import (
    customer_contact,
    customers_with_status,
    overdue_invoices,
    paid_after_reminder,
    recent_open_promises,
    taken_keys,
)
from dunning.ledger.models import TAKEN_REASONS
from dunning.mail import split_addresses
from dunning.plan import segments_of
from dunning.policy import Policy
from dunning.policy import today as policy_today
from dunning.render import format_day, format_money, invoice_context, locale_for, render_email
from dunning.schema import Invoice
from dunning.smtp import NotSent, SmtpPool
from dunning.statement import amount_totals, invoice_rows

#: The templates (and the outbox stages) of the two messages.
THANK_YOU = "thank_you"
PROMISE_CONFIRMATION = "promise_confirmation"
#: The template of one confirmation for a promise covering several invoices (its outbox
#: stage stays `PROMISE_CONFIRMATION`).
PROMISES_TEMPLATE = "promise_confirmation_statement"
#: The stage of the CRM entries a payment queues (`<invoice>:paid:crm:note`, `...:status`).
PAID = "paid"
#: Payments seen within this long are acted on: switching the feature on for an old ledger
#: does not thank every customer who ever paid.
PAYMENT_LOOKBACK = timedelta(days=14)
#: Promises made within this long are confirmed (a desk promise waits for the next sweep).
PROMISE_LOOKBACK = timedelta(days=7)
#: The status a cleared customer gets (no ladder status: the CRM's field is emptied).
CLEARED = ""

_log = logging.getLogger(__name__)


@dataclass
class CaseOutcome:
    """What was done for one payment or promise: `status` sent, skipped or failed."""

    invoice: str
    customer: str
    message: str
    status: str
    reason: str = ""
    recipient: str = ""
    #: Every invoice the message was about (a confirmation may name several).
    invoices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def thank_you_key(invoice: str) -> ActionKey:
    """The outbox key of an invoice's one thank-you email."""
    return ActionKey(invoice, THANK_YOU, "email")


def confirmation_key(invoice: str, promise_id: int) -> ActionKey:
    """The outbox key of one promise's confirmation email (one per promise: a new date is
    confirmed again)."""
    return ActionKey(invoice, f"{PROMISE_CONFIRMATION}-{int(promise_id)}", "email")


def _payment_key(invoice: str) -> ActionKey:
    return ActionKey(invoice, PAID, "crm")


def payment_note_key(invoice: str) -> str:
    """The CRM key of the payment's note: queued last, it marks the payment as handled."""
    return f"{_payment_key(invoice)}:note"


def reminder_stages(policy: Policy) -> list[str]:
    """The outbox stages that count as a reminder: every ladder's stages and the broken
    promise's message (answers, alerts and confirmations are not reminders)."""
    ladders = [policy.stages, *(s.stages for s in policy.segments)]
    names = {stage.name for ladder in ladders for stage in ladder}
    return sorted(names | {policy.replies.broken_promise.name})


def act_on_case(
    ledger: Ledger,
    policy: Policy,
    *,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    now: datetime,
    invoices: Iterable[str] | None = None,
) -> list[CaseOutcome]:
    """Thank the customers whose chased invoices were paid, then confirm new promises.

    `lookup` re-reads an invoice at the source (language, country, segment); the ledger's
    row stands in when the source no longer lists it. `invoices` limits the run to these
    (the one-invoice run after a payment webhook); None: every recent payment and promise.
    `identity` is who messages come from; without a pool or identity nothing is emailed
    and payments wait for a run that has them (statuses are still cleared).
    """
    wanted = list(invoices) if invoices is not None else None
    paid = act_on_payments(
        ledger, policy, lookup=lookup, pool=pool, identity=identity, now=now, invoices=wanted
    )
    clear_statuses(ledger, policy, now=now)
    return paid + confirm_promises(
        ledger, policy, lookup=lookup, pool=pool, identity=identity, now=now, invoices=wanted
    )


def act_on_payments(
    ledger: Ledger,
    policy: Policy,
    *,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    now: datetime,
    invoices: Iterable[str] | None = None,
) -> list[CaseOutcome]:
    """For each invoice paid since `PAYMENT_LOOKBACK` after a reminder, and not handled
    yet: the thank-you (once), the CRM's payment note, and the ladder's status cleared when
    nothing is overdue any more."""
    today = policy_today(policy, now)
    rows = paid_after_reminder(
        ledger,
        since=now - PAYMENT_LOOKBACK,
        reminder_stages=reminder_stages(policy),
        done_note_suffix=payment_note_key(""),
        invoices=invoices,
    )
    outcomes = []
    for row in rows:
        number = str(row["invoice_number"])
        if closed_in_ledger(ledger, number, now=now) != "paid":
            continue  # reopened since (a reversed payment): not a payment any more
        inv = _invoice(row, lookup, paid=True)
        paid_amount = float(row.get("reminded_amount") or inv.amount_total or 0.0)
        outcome = CaseOutcome(number, inv.customer_id, THANK_YOU, "skipped")
        segment = _segment(inv.model_copy(update={"amount_due": paid_amount}), policy)
        if policy.on_payment_of(segment) == "none":
            outcome.reason = "on_payment: none"
        elif not split_addresses(inv.email):
            outcome.reason = "no email address"
        elif pool is None or identity is None:
            continue  # left for a run that has an email channel (nothing noted yet)
        elif not _Mailer(ledger, policy, pool, identity, today).send(
            inv,
            thank_you_key(number),
            outcome,
            amount=paid_amount,
            extra={"part_paid": False, "days_overdue": 0},
            payment_link="",
        ):
            outcomes.append(outcome)  # temporary: the next run tries again (nothing noted)
            continue
        _note_payment(ledger, inv, paid_amount, outcome)
        outcomes.append(outcome)
    return outcomes


def confirm_promises(
    ledger: Ledger,
    policy: Policy,
    *,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    now: datetime,
    invoices: Iterable[str] | None = None,
) -> list[CaseOutcome]:
    """Confirm the open promises made within `PROMISE_LOOKBACK` that have no confirmation
    yet (a reply's promise was confirmed at once; a desk promise is confirmed here): one
    email per customer, source (the message or desk action) and promised date, listing
    every invoice it covers. `invoices` limits it to the groups holding one of these (a
    group is confirmed whole, never split between a one-invoice run and the sweep)."""
    if not policy.confirm_promises or pool is None or identity is None:
        return []
    today = policy_today(policy, now)
    rows = recent_open_promises(ledger, since=now - PROMISE_LOOKBACK)
    keys = {
        int(r["promise_id"]): confirmation_key(r["invoice_number"], r["promise_id"]) for r in rows
    }
    taken = taken_keys(ledger, [str(k) for k in keys.values()])
    groups: dict[tuple[str, str, date], list[dict[str, Any]]] = {}
    for row in rows:
        if str(keys[int(row["promise_id"])]) in taken or row["promised_on"] < today:
            continue
        # A promise without a source (an old row) is not known to share a message: alone.
        source = str(row.get("source") or "") or f"promise:{row['promise_id']}"
        group = (str(row["customer_id"]), source, row["promised_on"])
        groups.setdefault(group, []).append(row)
    if invoices is not None:
        wanted = set(invoices)
        groups = {
            g: rs for g, rs in groups.items() if any(r["invoice_number"] in wanted for r in rs)
        }
    outcomes = []
    for (_, _, promised_on), group_rows in groups.items():
        promises = []
        for row in group_rows:
            inv = _invoice(row, lookup, paid=False)
            if inv.is_payable and split_addresses(inv.email):  # not paid meanwhile; someone
                promises.append(PromiseToConfirm(inv, int(row["promise_id"])))
        if promises:
            outcomes.append(
                confirm_together(
                    ledger,
                    policy,
                    pool,
                    identity,
                    today=today,
                    promised_on=promised_on,
                    promises=promises,
                )
            )
    return outcomes


@dataclass(frozen=True)
class PromiseToConfirm:
    """One promise to confirm: the invoice as the source has it now, and the promise's id
    (its confirmation key, `confirmation_key`)."""

    invoice: Invoice
    promise_id: int

    @property
    def key(self) -> str:
        return str(confirmation_key(self.invoice.invoice_number, self.promise_id))


def confirm_together(
    ledger: Ledger,
    policy: Policy,
    pool: SmtpPool,
    identity: EmailIdentity,
    *,
    today: date,
    promised_on: date,
    promises: Sequence[PromiseToConfirm],
    to: str = "",
    in_reply_to: str = "",
    references: str = "",
    language: str = "",
) -> CaseOutcome:
    """Confirm promises made together (one message or desk action, one customer, one date)
    by ONE email listing their invoices, sent once ever.

    Every promise's key is claimed in one transaction (a key another run holds drops its
    invoice out); the email goes under the first claimed key, the others are marked
    `sending` with its Message-ID before the server sees it and `sent` in the transaction
    that records it (`deliver(also_sent=...)`). `to` is who gets it (the replying sender;
    default: the invoices' addresses); `in_reply_to`/`references` thread it under the
    customer's message; `language` replaces the first invoice's (else the policy's). One
    invoice gets the single confirmation (`promise_confirmation`), several the listing
    (`promise_confirmation_statement`). A temporary mail failure marks every key `failed`
    (the next run tries again) and is reported as `failed`.
    """
    if not promises:
        raise ValueError("confirm_together needs at least one promise")
    first = promises[0].invoice
    recipient = to or ", ".join(
        dict.fromkeys(a for p in promises for a in split_addresses(p.invoice.email))
    )
    outcome = CaseOutcome(first.invoice_number, first.customer_id, PROMISE_CONFIRMATION, "skipped")
    # Every key in ONE transaction: a run confirming the same promises at the same moment
    # (the replies flow and a sweep) waits for this one and finds them all taken, so the
    # customer never gets two partial lists.
    requests = [
        ClaimRequest(
            key=p.key,
            invoice_number=p.invoice.invoice_number,
            customer_id=p.invoice.customer_id,
            stage=PROMISE_CONFIRMATION,
            channel="email",
            recipient=recipient,
            amount_due=p.invoice.amount_due,
            currency=p.invoice.currency,
        )
        for p in promises
    ]
    claims = ledger.claim_many(requests, stale_after=timedelta(minutes=policy.stale_claim_minutes))
    claimed = [p for p, claim in zip(promises, claims, strict=True) if claim.claimed]
    if not claimed:  # every one is confirmed (or being confirmed) already
        outcome.reason = TAKEN_REASONS.get(claims[0].state, claims[0].state)
        return outcome
    key, others = claimed[0].key, [p.key for p in claimed[1:]]
    invs = [p.invoice for p in claimed]
    numbers = [inv.invoice_number for inv in invs]
    outcome.invoice, outcome.invoices, outcome.reason = numbers[0], numbers, ""
    try:
        rendered = _render_confirmation(policy, identity, today, invs, promised_on, language)
        message = identity.message(rendered, to=recipient, key=key)
        if in_reply_to:
            message["In-Reply-To"] = in_reply_to
            message["References"] = references or in_reply_to
    except Exception as exc:  # a broken template: let go of every claim, say why
        for k in [key, *others]:
            ledger.mark_failed(k, f"could not build the confirmation: {exc}")
        raise
    # The other invoices' keys are in doubt with this one from here: never confirmed twice.
    for k in others:
        ledger.mark_sending(k, str(message["Message-ID"]))
    listed = ", ".join(numbers)

    def note(status: str) -> QueuedEntry:
        return note_entry(
            key=f"{key}:note",
            text=f"'{PROMISE_CONFIRMATION}' {status} by email to {recipient}: invoice"
            f"{'s' if len(numbers) > 1 else ''} {listed}, payment promised on "
            f"{promised_on.isoformat()}. Subject: {message['Subject']}",
            invoice_number=numbers[0],
            customer_id=first.customer_id,
            invoices=numbers,
            stage=PROMISE_CONFIRMATION,
            channel="email",
            direction="out",
            subject=str(message["Subject"]),
            customer_name=first.customer_name,
            email=recipient,
        )

    try:
        delivery = deliver(
            ledger,
            pool,
            key,
            message,
            identity.envelope(recipient),
            invoice_number=numbers[0],
            customer_id=first.customer_id,
            note=note("sent"),
            also_sent=others,
            also_sent_response=f"in confirmation {key}",
            stage=PROMISE_CONFIRMATION,
            channel="email",
            recipient=recipient,
            invoices=numbers,
            body=rendered.text[:SENT_BODY_CHARS],
        )
    except NotSent as exc:  # temporary: every key is free again for the next run
        for k in others:
            ledger.mark_failed(k, f"confirmation not sent: {exc}")
        outcome.status, outcome.reason = "failed", str(exc)[:300]
        return outcome
    outcome.recipient = recipient
    if delivery.status == "sent":
        outcome.status = "sent"
        return outcome
    if delivery.status == "rejected":
        for k in others:
            ledger.mark_failed(k, f"confirmation refused: {delivery.detail}", permanent=True)
    outcome.status, outcome.reason = "failed", f"{delivery.status}: {delivery.detail}"
    queue_entry(ledger, **vars(note(delivery.status)))  # the CRM hears of it too
    return outcome


def _render_confirmation(
    policy: Policy,
    identity: EmailIdentity,
    today: date,
    invoices: list[Invoice],
    promised_on: date,
    language: str = "",
) -> Any:  # a RenderedMessage
    """The confirmation's text: one invoice's own, or the table of several."""
    first = invoices[0]
    language = language or _language(first, policy)
    country = first.country or policy.country
    locale = locale_for(language, country)
    day = format_day(promised_on, locale)
    if len(invoices) == 1:
        template = PROMISE_CONFIRMATION
        context = invoice_context(
            first,
            today=today,
            language=language,
            country=country,
            company_name=identity.from_name,
            reply_to=identity.reply_to or identity.from_address,
            stage=PROMISE_CONFIRMATION,
        )
    else:
        template = PROMISES_TEMPLATE
        context = {
            "customer_name": first.customer_name or first.customer_id,
            "invoices": invoice_rows(
                [(inv, False) for inv in invoices],
                today=today,
                language=language,
                country=country,
            ),
            "count": len(invoices),
            "totals": [
                format_money(amount, cur, locale) for cur, amount in amount_totals(invoices).items()
            ],
            "company_name": identity.from_name,
            "reply_to": identity.reply_to or identity.from_address,
            "stage": PROMISE_CONFIRMATION,
        }
    return render_email(
        template,
        language,
        context | {"promised_on": day},
        fallback_language="en",
        overlay=policy.templates_dir,
    )


# -- the parts ---------------------------------------------------------------------------------


def _invoice(
    row: dict[str, Any], lookup: Callable[[str], Invoice | None], *, paid: bool
) -> Invoice:
    """The invoice as the source has it now (language, country, link), else as the ledger
    last saw it; a paid one owes nothing."""
    number = str(row["invoice_number"])
    try:
        fresh = lookup(number)
    except Exception as exc:  # the source is unreachable: the ledger's copy will do
        _log.warning("invoice %s not re-read at the source (%s): using the ledger's", number, exc)
        fresh = None
    if fresh is None:
        fresh = Invoice(
            invoice_number=number,
            customer_id=str(row.get("customer_id") or ""),
            customer_name=str(row.get("customer_name") or ""),
            email=str(row.get("email") or ""),
            currency=str(row.get("currency") or "EUR"),
            amount_total=float(row.get("amount_total") or 0.0),
            amount_due=float(row.get("amount_due") or 0.0),
            due_date=row.get("due_date") or date.today(),
            status=str(row.get("status") or "open"),
        )
    if paid:
        fresh = fresh.model_copy(update={"status": "paid", "amount_due": 0.0})
    return fresh


def _segment(inv: Invoice, policy: Policy) -> str | None:
    if not policy.segments:
        return None
    return str(segments_of(pd.DataFrame([inv.model_dump()]), policy)[0]) or None


def _language(inv: Invoice, policy: Policy) -> str:
    return inv.language or policy.language


@dataclass(frozen=True)
class _Mailer:
    """The one way a thank-you is sent: claimed under its outbox key, rendered, delivered
    and noted for the CRM, once ever (confirmations: `confirm_together`)."""

    ledger: Ledger
    policy: Policy
    pool: SmtpPool
    identity: EmailIdentity
    today: date

    def send(
        self,
        inv: Invoice,
        key: ActionKey,
        outcome: CaseOutcome,
        *,
        amount: float,
        extra: dict[str, Any],
        payment_link: str | None = None,
    ) -> bool:
        """Claim `key`, render `outcome.message` (the template) for the invoice and send
        it; `outcome` says what happened. False when the mail server failed for a temporary
        reason (`failed`: nothing is marked done, the next run tries again)."""
        ledger, policy, identity = self.ledger, self.policy, self.identity
        template = outcome.message  # THANK_YOU
        claim = ledger.claim(
            key=str(key),
            invoice_number=inv.invoice_number,
            customer_id=inv.customer_id,
            stage=template,
            channel="email",
            recipient=inv.email,
            amount_due=amount,
            currency=inv.currency,
            stale_after=timedelta(minutes=policy.stale_claim_minutes),
        )
        if not claim.claimed:
            outcome.reason = TAKEN_REASONS.get(claim.state, claim.state)
            return True
        language = _language(inv, policy)
        context = invoice_context(
            inv,
            today=self.today,
            language=language,
            country=inv.country or policy.country,
            payment_link=payment_link,
            company_name=identity.from_name,
            reply_to=identity.reply_to or identity.from_address,
            stage=template,
        )
        rendered = render_email(
            template,
            language,
            context | extra,
            fallback_language="en",
            overlay=policy.templates_dir,
        )
        message = identity.message(rendered, to=inv.email, key=str(key))
        envelope = identity.envelope(inv.email)

        def note(status: str) -> QueuedEntry:
            return note_entry(
                key=f"{key}:note",
                text=f"'{template}' {status} by email to {inv.email}: invoice "
                f"{inv.invoice_number}. Subject: {message['Subject']}",
                invoice_number=inv.invoice_number,
                customer_id=inv.customer_id,
                stage=template,
                channel="email",
                direction="out",
                subject=str(message["Subject"]),
                customer_name=inv.customer_name,
                email=inv.email,
            )

        try:
            delivery = deliver(
                ledger,
                self.pool,
                str(key),
                message,
                envelope,
                invoice_number=inv.invoice_number,
                customer_id=inv.customer_id,
                note=note("sent"),  # recorded with the sent state, in one transaction
                stage=template,
                channel="email",
                recipient=inv.email,
                body=rendered.text[:SENT_BODY_CHARS],
            )
        except NotSent as exc:
            outcome.status, outcome.reason = "failed", str(exc)[:300]
            return False
        outcome.status = "sent" if delivery.status == "sent" else "failed"
        outcome.reason = (
            "" if delivery.status == "sent" else f"{delivery.status}: {delivery.detail}"
        )
        outcome.recipient = inv.email
        if delivery.status != "sent":  # the CRM hears of a refused or in-doubt one too
            queue_entry(ledger, **vars(note(delivery.status)))
        return True


def _note_payment(ledger: Ledger, inv: Invoice, amount: float, outcome: CaseOutcome) -> None:
    """The CRM hears of the payment (and whether the customer was thanked), once."""
    thanked = (
        f"thank-you sent to {outcome.recipient}"
        if outcome.status == "sent"
        else f"no thank-you ({outcome.reason or outcome.status})"
    )
    queue_note(
        ledger,
        key=payment_note_key(inv.invoice_number),
        text=f"Invoice {inv.invoice_number} paid ({_money(amount, inv.currency)}) after "
        f"reminders; {thanked}.",
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        direction="in",
        channel="payment",
        amount=amount,
        currency=inv.currency,
        customer_name=inv.customer_name,
        email=inv.email,
    )


def clear_statuses(ledger: Ledger, policy: Policy, *, now: datetime) -> list[str]:
    """Clear the collection status the ladder set (e.g. on_hold) of every customer who has
    nothing overdue left: in the ledger and, queued, in the CRM. An invoice a payment
    webhook closed counts as paid even while the source still shows it open. Returns the
    customers cleared."""
    today = policy_today(policy, now)
    cleared = []
    for row in customers_with_status(ledger):
        customer = str(row["customer_id"])
        owed = overdue_invoices(ledger, customer, today)
        if any(closed_in_ledger(ledger, number, now=now) is None for number in owed):
            continue
        reason = f"nothing overdue any more (was {row['status']})"
        ledger.set_customer_status(customer, CLEARED, reason=reason)
        queue_status(
            ledger,
            # One entry per status cleared: the status set at this moment, now cleared.
            key=f"status:{customer}:{_stamp(row['updated_at'])}:cleared",
            status=CLEARED,
            reason=reason,
            customer_id=customer,
            **customer_contact(ledger, customer),
        )
        cleared.append(customer)
    return cleared


def _stamp(moment: Any) -> str:
    return moment.isoformat() if hasattr(moment, "isoformat") else str(moment)


def _money(amount: float, currency: str) -> str:
    try:
        return format_money(amount, currency, locale_for("en", ""))
    except Exception:  # an odd currency code must not stop the note
        return f"{amount:.2f} {currency}"
