"""Act on one customer message: match it, understand it, and do what a collector would.

- dispute, or any angry complaint: reminders for the invoice(s) stop at once (a dispute
  pause); the managers get an email alert and a task.
- promise_to_pay with a date: the promise is recorded and reminders pause until that date
  plus the policy's grace; if it passes unpaid, the sweep sends a "promise broken" message
  and opens a task. Without a date, or too far away: a task to agree one.
- already_paid: reminders pause for the verification window; a task "verify payment".
- invoice_copy_request: answered with the invoice PDF attached (or its link).
- bank_details_request: answered with the policy's bank account(s) in the invoice's
  currency, the customer's country first (and the bank certificate); none: a task.
- document_request: answered with the document library's file of that kind (the tax or
  bank certificate, or a kind of the company's own) attached; a kind the library lacks, or
  no library: a task.
- payment_plan_request: reminders on hold while a person reviews the proposal (a task).
- opt_out: no more messages on that channel; confirmed once.
- wrong_contact: a task to fix the contact, with the address found in the text.
- out_of_office and automatic replies: nothing is sent; the next reminder keeps its date.
- other, or low confidence: a drafted answer quoting the company's knowledge base (or
  saying a person will answer), kept with a task for a person to edit and approve or
  discard in the desk, and saved to the mailbox's Drafts folder when one is set
  (`dunning.replies.drafts`).
- no invoice or customer found: a task for a person; never dropped.
- a sender who is not a known contact of the matched customer: a task, nothing sent or
  changed (except a dispute, which still stops the reminders). A colleague at the
  customer's own domain may promise, say paid or ask for a plan, but documents, bank
  details and opt-outs need a known contact (`Match.known`).
- a message our mail server marks `spf=fail` or `dmarc=fail` (Authentication-Results): a
  task, nothing sent or changed, not even for a dispute (the From may be forged).

Every step is written to the ledger (events, pauses, promises, tasks); answers go through
the outbox, keyed by the message, so processing a message twice never answers twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from dunning import crm
from dunning.act import EmailIdentity
from dunning.bank_accounts import BankAccount, accounts_for
from dunning.delivery import deliver
from dunning.documents import Library
from dunning.knowledge import KnowledgeBase
from dunning.ledger import InboundMessage, Ledger
from dunning.ledger import drafts as draft_store
from dunning.ledger.models import ReplyDraft
from dunning.ledger.tasks import invoice_people
from dunning.mail import Envelope, build_email, resolve_attachment
from dunning.policy import Policy, resolve_assignee
from dunning.policy import today as policy_today
from dunning.render import format_day, invoice_context, locale_for, render_email
from dunning.replies import drafts
from dunning.replies.authentication import authentication_failures
from dunning.replies.imap import ImapSettings, append_draft, is_auto_reply
from dunning.replies.match import Match, match_message
from dunning.replies.quoting import strip_quoted
from dunning.schema import Invoice
from dunning.smtp import SmtpPool
from dunning.thanks import PROMISE_CONFIRMATION, PromiseToConfirm, confirm_together

#: A promised date further away than this is a payment plan in disguise: a person decides.
MAX_PROMISE_DAYS = 90
#: Intents whose answer hands out something (a document, our bank details) or silences us:
#: only a known contact of the customer may trigger them, not a colleague.
NEEDS_KNOWN_CONTACT = frozenset(
    {"invoice_copy_request", "bank_details_request", "document_request", "opt_out"}
)
#: How much of a customer's text goes into tasks and alerts.
EXCERPT_CHARS = 1000


@dataclass
class ReplyOutcome:
    """What was understood and done for one inbox message (one row of the run report)."""

    message: int
    sender: str
    matched_by: str
    invoices: list[str]
    intent: str
    confidence: float
    lang: str
    promise_date: str | None
    angry: bool
    state: str = "processed"
    done: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Reply:
    """Everything a handler needs about the message being acted on."""

    message: InboundMessage
    match: Match
    intent: str
    result: Any  # dunning.replies.Classification
    today: date
    ledger: Ledger
    policy: Policy
    lookup: Callable[[str], Invoice | None]
    pool: SmtpPool | None
    identity: EmailIdentity | None
    attachments_root: str | None
    outcome: ReplyOutcome
    documents: Library | None = None  # the company's document library, if it has one
    knowledge: KnowledgeBase | None = None  # drafts quote it (dunning.replies.drafts)
    drafts_mailbox: ImapSettings | None = None  # drafts are saved to its drafts_folder

    @property
    def invoices(self) -> list[str]:
        return self.match.invoice_numbers

    @property
    def excerpt(self) -> str:
        return (self.message.text or "")[:EXCERPT_CHARS]

    def did(self, what: str) -> None:
        self.outcome.done.append(what)

    def pause_invoices(self, kind: str, reason: str, *, until: date | None = None) -> None:
        """Pause reminders for each invoice the message is about, saying which message."""
        for number in self.invoices:
            self.ledger.add_pause(
                kind,
                invoice_number=number,
                customer_id=self.match.customer_id,
                until=until,
                reason=f"{reason} (message {self.message.id})",
                actor="customer",
            )

    def task(
        self,
        suffix: str,
        title: str,
        *,
        invoice: str = "",
        note: str = "",
        assignee: str = "account_owner",
        due_days: int = 1,
    ) -> None:
        """Open a task for a person, in the ledger and (queued) in the CRM, once."""
        key = f"reply:{self.message.id}:{suffix}"
        where = {
            "invoice_number": invoice or (self.invoices[0] if self.invoices else ""),
            "customer_id": self.match.customer_id,
        }
        due_on = self.today + timedelta(days=due_days)
        note = note or self.excerpt
        # The account owner's tasks go to the invoice's owner (as the ledger knows them), else
        # the policy's owners.default, else stay with the role (the desk's shared queue).
        # Tasks for the manager role stay with the role: every manager sees them, and only a
        # manager may act on a dispute (docs/cases.md).
        person = assignee
        if assignee == "account_owner":
            owner, _ = invoice_people(self.ledger, where["invoice_number"])
            person = resolve_assignee(assignee, self.policy, owner_email=owner)
        opened = self.ledger.open_task(
            key=key,
            title=title,
            assignee=person,
            due_on=due_on,
            note=note,
            crm={
                "priority": "HIGH" if assignee == "manager" else "MEDIUM",
                "email": self.message.sender,
                "role": assignee,
            },
            **where,
        )
        if opened:
            self.did(f"task: {title}")


def handle_reply(
    message: InboundMessage,
    *,
    ledger: Ledger,
    policy: Policy,
    lookup: Callable[[str], Invoice | None],
    pool: SmtpPool | None,
    identity: EmailIdentity | None,
    classify: Callable[..., Any] | None = None,
    attachments_root: str | None = None,
    documents: Library | None = None,
    knowledge: KnowledgeBase | None = None,
    mailbox: ImapSettings | None = None,
) -> ReplyOutcome:
    """Match, classify and act on one stored inbox message (see the module docstring).

    `knowledge` is the company's knowledge base the drafted answers quote; with `mailbox`
    and its `drafts_folder` set, each draft is also saved there as a reply in the thread.
    """
    if classify is None:
        from dunning.replies import classify
    today = policy_today(policy, message.received_at)  # the day it arrived, for dates
    match = match_message(message, ledger)
    result = classify(message.text or message.subject, received_on=today)
    low = result.confidence < policy.replies.min_confidence
    intent = "dispute" if result.angry else "other" if low else result.intent
    outcome = ReplyOutcome(
        message=int(message.id),
        sender=message.sender,
        matched_by=match.how,
        invoices=match.invoice_numbers,
        intent=result.intent,
        confidence=round(float(result.confidence), 3),
        lang=result.lang,
        promise_date=result.promise_date.isoformat() if result.promise_date else None,
        angry=bool(result.angry),
    )
    ledger.update_inbound(
        int(message.id),
        action_key=match.action_key,
        invoice_numbers=match.invoice_numbers,
        customer_id=match.customer_id,
        intent=result.intent,
        confidence=float(result.confidence),
        lang=result.lang,
        promise_date=result.promise_date,
    )
    ledger.record_event(
        "reply_received",
        invoice_number=match.invoice_numbers[0] if match.invoice_numbers else "",
        customer_id=match.customer_id,
        action_key=match.action_key,
        actor="customer",
        inbound_id=int(message.id),
        invoices=match.invoice_numbers,  # all of them (a reply to a statement: several)
        channel=message.channel,
        intent=result.intent,
        confidence=float(result.confidence),
        angry=bool(result.angry),
        matched_by=match.how,
    )
    reply = _Reply(
        message,
        match,
        intent,
        result,
        today,
        ledger,
        policy,
        lookup,
        pool,
        identity,
        attachments_root,
        outcome,
        documents,
        knowledge=knowledge,
        drafts_mailbox=mailbox,
    )
    try:
        if is_auto_reply(message.headers or {}, message.subject):
            _on_auto_reply(reply)
        elif not match.found:
            _on_unmatched(reply)
        elif failures := authentication_failures(message.headers):
            _on_unauthenticated(reply, failures)
        elif not match.trusted and intent != "dispute":
            _on_untrusted(reply)
        elif intent in NEEDS_KNOWN_CONTACT and not match.known:
            _on_untrusted(reply)
        else:
            HANDLERS.get(intent, _on_other)(reply)
    finally:  # the CRM hears of the reply even if acting on it failed
        _log_reply(ledger, message, match, result, outcome)
    ledger.update_inbound(
        int(message.id),
        state=outcome.state,
        outcome="; ".join(outcome.done) or "nothing to do",
        processed_at=datetime.now().astimezone(),
    )
    return outcome


def _log_reply(
    ledger: Ledger, message: InboundMessage, match: Match, result: Any, outcome: ReplyOutcome
) -> None:
    """One CRM note per message: who wrote, what it meant, what was done."""
    numbers = match.invoice_numbers
    about = (
        f" about invoice{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}" if numbers else ""
    )
    crm.queue_note(
        ledger,
        key=f"reply:{message.id}:note",
        text=f"Reply from {message.sender}{about} ({result.intent}): "
        f"{(message.text or '')[:300]}\nDone: {'; '.join(outcome.done) or 'nothing'}",
        invoice_number=numbers[0] if numbers else "",
        invoices=numbers,
        customer_id=match.customer_id,
        direction="in",
        channel=message.channel,
        email=message.sender,
        subject=message.subject,
    )


# -- one handler per intent --------------------------------------------------------------------


def _on_dispute(r: _Reply) -> None:
    reason = "angry reply" if r.result.angry and r.result.intent != "dispute" else "dispute"
    r.pause_invoices("dispute", reason)
    if not r.invoices:  # known customer, no open invoice named: stop them all
        r.ledger.add_pause(
            "dispute", customer_id=r.match.customer_id, reason=reason, actor="customer"
        )
    whole = r.policy.dispute_scope == "customer" or not r.invoices
    # `dispute_scope: customer` (the default): the planner stops all the customer's open
    # invoices for a dispute about one; resuming them is a manager's decision (the desk).
    stopped = f"all invoices of customer {r.match.customer_id}" if whole else ""
    r.did(f"stopped: {stopped or ', '.join(r.invoices)}")
    title = f"{reason.capitalize()} from {r.message.sender}: review and answer in person"
    r.task("dispute", title, assignee="manager")
    _alert_managers(r, reason, title)
    r.outcome.state = "needs_human"


def _on_promise(r: _Reply) -> None:
    promised = r.result.promise_date
    if promised is None or promised < r.today:
        r.task("promise", "Customer promised to pay without a clear date: agree one")
        r.outcome.state = "needs_human"
        return
    if promised > r.today + timedelta(days=MAX_PROMISE_DAYS):
        r.task(
            "promise",
            f"Customer promised to pay on {promised}: more than "
            f"{MAX_PROMISE_DAYS} days away, review as a payment plan",
        )
        r.outcome.state = "needs_human"
        return
    promises = {
        number: r.ledger.add_promise(
            invoice_number=number,
            customer_id=r.match.customer_id,
            promised_on=promised,
            source=f"reply:{r.message.id}",
            actor="customer",
        )
        for number in r.invoices
    }
    r.did(f"promise to pay on {promised} recorded; reminders paused")
    if not r.policy.confirm_promises or r.message.channel != "email":
        return  # another channel's promise is confirmed by email by the next sweep
    to_confirm = []
    for number, promise_id in promises.items():
        fresh = r.lookup(number)
        if fresh is not None and fresh.is_payable:
            to_confirm.append(PromiseToConfirm(fresh, promise_id))
    if not to_confirm:
        return
    if r.pool is None or r.identity is None:
        raise ValueError("answering a reply needs an SMTP pool and a sender identity")
    # ONE email for every invoice the message promised (a reply to a statement), under the
    # same keys as the sweep's `dunning.thanks.confirm_promises`: confirmed once.
    in_reply_to, references = _thread_headers(r.message)
    confirmed = confirm_together(
        r.ledger,
        r.policy,
        r.pool,
        r.identity,
        today=r.today,
        promised_on=promised,
        promises=to_confirm,
        to=r.message.sender,
        in_reply_to=in_reply_to,
        references=references,
        language=_answer_language(r, to_confirm[0].invoice),
    )
    if confirmed.status == "skipped":
        r.did(f"{PROMISE_CONFIRMATION}: already answered")
    else:
        detail = f" ({confirmed.reason})" if confirmed.reason else ""
        r.did(
            f"{PROMISE_CONFIRMATION} {confirmed.status} to {r.message.sender} for "
            f"{', '.join(confirmed.invoices)}{detail}"
        )


def _on_already_paid(r: _Reply) -> None:
    until = r.today + timedelta(days=r.policy.replies.payment_verification_days)
    r.pause_invoices("verify_payment", "customer says paid", until=until)
    for number in r.invoices:
        r.task(f"verify:{number}", f"Verify payment of invoice {number}", invoice=number)
    r.did(f"reminders paused until {until} while the payment is verified")
    r.outcome.state = "needs_human"


def _on_copy_request(r: _Reply) -> None:
    for number in r.invoices[:5]:
        fresh = r.lookup(number)
        attachment = resolve_attachment(fresh.pdf_path if fresh else "", r.attachments_root)
        if fresh is None or not (attachment or _link(fresh.payment_link)):
            r.task(f"copy:{number}", f"Send a copy of invoice {number}", invoice=number)
            r.outcome.state = "needs_human"
            continue
        _answer(r, "answer_copy", fresh, key_suffix=number, attachment=attachment)


def _on_bank_details(r: _Reply) -> None:
    accounts = r.policy.replies.accounts()
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    if not accounts or fresh is None:
        r.task("bank", "Send our bank details to the customer")
        r.outcome.state = "needs_human"
        return
    matching = accounts_for(accounts, fresh.currency, fresh.country or r.policy.country)
    if not matching:
        r.task(
            "bank",
            f"Send our bank details for invoice {fresh.invoice_number}: no account in the "
            f"policy takes {fresh.currency}",
        )
        r.outcome.state = "needs_human"
        return
    attachment = _bank_certificate(r, matching, fresh)
    # `bank` (the first account) keeps templates written for the single IBAN working.
    _answer(r, "answer_bank", fresh, attachment=attachment, accounts=matching, bank=matching[0])


def _bank_certificate(r: _Reply, accounts: list[BankAccount], fresh: Invoice) -> Path | None:
    """The account's own certificate file, else the document library's bank certificate."""
    for account in accounts:
        found = resolve_attachment(account.certificate_path, r.attachments_root)
        if found is not None:
            return found
    if r.documents is None:
        return None
    return r.documents.find("bank_certificate", _answer_language(r, fresh))[0]


def _on_document_request(r: _Reply) -> None:
    """Send the document asked for from the library; anything unclear goes to a person."""
    named = getattr(r.result, "document", None)
    library = r.documents
    text = strip_quoted(r.message.text or "") or r.message.subject
    kind = library.kind_for(named, text) if library is not None else None
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    what = (kind or named or "a document").replace("_", " ")
    if library is None or kind is None or fresh is None:
        why = (
            "no document library is configured"
            if library is None
            else "not a kind in the document library"
            if kind is None
            else "no open invoice to answer on"
        )
        r.task("document", f"Send the customer {what} ({why})")
        r.outcome.state = "needs_human"
        return
    language = _answer_language(r, fresh)
    path, why = library.find(kind, language)
    if path is None:
        r.task(f"document:{kind}", f"Send the customer our {what}: {why}")
        r.outcome.state = "needs_human"
        return
    title = library.title(kind, language)
    _answer(r, "answer_document", fresh, key_suffix=kind, attachment=path, document_title=title)


def _on_payment_plan(r: _Reply) -> None:
    until = r.today + timedelta(days=r.policy.replies.payment_verification_days)
    r.pause_invoices("hold", "payment plan requested", until=until)
    r.task("plan", "Review the customer's payment plan request", due_days=2)
    r.did(f"reminders on hold until {until} while the plan is reviewed")
    r.outcome.state = "needs_human"


def _on_opt_out(r: _Reply) -> None:
    channel = r.message.channel
    r.ledger.add_pause(
        "opt_out",
        customer_id=r.match.customer_id,
        channel=channel,
        reason=f"opt-out (message {r.message.id})",
        actor="customer",
    )
    r.did(f"opted out of {channel}")
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    if channel == "email" and fresh is not None:
        # Keyed per customer and channel: confirmed once, however often they ask.
        _answer(r, "optout_confirm", fresh, key=f"optout:{r.match.customer_id}:{channel}")


def _on_wrong_contact(r: _Reply) -> None:
    proposal = getattr(r.result, "new_contact", "") or ""
    note = f"Proposed new contact: {proposal}\n\n{r.excerpt}" if proposal else r.excerpt
    r.task("contact", f"Fix the contact of customer {r.match.customer_id}", note=note)
    r.outcome.state = "needs_human"


def _on_out_of_office(r: _Reply) -> None:
    r.did("out of office: nothing sent, next reminder unchanged")


def _on_other(r: _Reply) -> None:
    """A drafted answer quoting the knowledge base (or saying a person will answer), kept
    with its task for a person to edit and approve or discard in the desk."""
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    lang = (fresh.language if fresh and fresh.language else r.result.lang) or r.policy.language
    rendered, sources = drafts.write_draft(
        r.knowledge,
        r.message.text or "",
        lang=lang,
        subject=r.message.subject,
        customer_name=r.message.sender_name
        or (fresh.customer_name if fresh else "")
        or r.message.sender,
        company_name=r.identity.from_name if r.identity else "",
        overlay=r.policy.templates_dir,
    )
    draft, new = draft_store.save_draft(
        r.ledger,
        ReplyDraft(
            task_key=f"reply:{r.message.id}:draft",  # the key r.task("draft", ...) opens
            inbound_id=int(r.message.id),
            invoice_number=r.invoices[0] if r.invoices else "",
            customer_id=r.match.customer_id,
            channel=r.message.channel,
            recipient=r.message.sender,
            in_reply_to=r.message.provider_id,
            references=r.message.references or "",
            lang=rendered.language,
            subject=rendered.subject,
            text=rendered.text,
            sources=sources,
            answered=bool(sources),
        ),
    )
    if sources:
        title = "Answer the customer's question (draft from the knowledge base ready)"
        listed = "\n".join(f"- {s}" for s in sources)
        head = (
            "Drafted answer (approve, edit or discard in the desk):\n\n"
            f"{draft.text}\nSources:\n{listed}"
        )
    else:
        title = "Answer the customer's message: the knowledge base has no answer, a person answers"
        head = (
            "Drafted answer (approve, edit or discard in the desk); the knowledge base has "
            f"nothing relevant, so it says a person will answer:\n\n{draft.text}"
        )
    r.task("draft", title, note=f"{head}\n---\n{r.excerpt}")
    r.did("answer drafted" + (f" from {', '.join(sources)}" if sources else " (no answer known)"))
    mailbox = r.drafts_mailbox
    if new and mailbox is not None and mailbox.drafts_folder and r.identity is not None:
        try:
            append_draft(mailbox, drafts.draft_message(draft, r.identity))
            draft_store.mark_appended(r.ledger, int(draft.id))
            r.did(f"draft saved to {mailbox.drafts_folder}")
        except Exception as exc:  # the draft is in the ledger and the desk: not lost
            r.did(f"draft not saved to {mailbox.drafts_folder}: {type(exc).__name__}: {exc}")
    r.outcome.state = "needs_human"


def _on_auto_reply(r: _Reply) -> None:
    if r.result.intent == "wrong_contact" and r.match.found:
        _on_wrong_contact(r)
    else:
        r.did("automatic reply: not answered")
        r.outcome.state = "ignored"


def _on_untrusted(r: _Reply) -> None:
    """Someone who is not a known contact of the customer: nothing is sent or changed."""
    r.task(
        "untrusted",
        f"Reply from {r.message.sender}, not a known contact of customer "
        f"{r.match.customer_id}, about {', '.join(r.invoices) or 'its invoices'} "
        f"({r.result.intent}): check who wrote, then act",
    )
    r.outcome.state = "needs_human"


def _on_unauthenticated(r: _Reply, failures: list[str]) -> None:
    """Our mail server says the From address is not the sender's: nothing is changed."""
    r.task(
        "unauthenticated",
        f"Reply from {r.message.sender} failed mail authentication ({', '.join(failures)}): "
        f"possibly forged, nothing done ({r.result.intent}); check with the customer",
        assignee="manager",
    )
    r.outcome.state = "needs_human"


def _on_unmatched(r: _Reply) -> None:
    r.task("unmatched", f"Reply from {r.message.sender} matches no invoice: file it")
    if r.result.angry or r.result.intent == "dispute":
        _alert_managers(r, "dispute (unmatched)", "Unmatched angry reply")
    r.outcome.state = "needs_human"


HANDLERS: dict[str, Callable[[_Reply], None]] = {
    "dispute": _on_dispute,
    "promise_to_pay": _on_promise,
    "already_paid": _on_already_paid,
    "invoice_copy_request": _on_copy_request,
    "bank_details_request": _on_bank_details,
    "document_request": _on_document_request,
    "payment_plan_request": _on_payment_plan,
    "opt_out": _on_opt_out,
    "wrong_contact": _on_wrong_contact,
    "out_of_office": _on_out_of_office,
    "other": _on_other,
}


# -- answering ------------------------------------------------------------------------------


def _answer(
    r: _Reply,
    template: str,
    fresh: Invoice,
    *,
    key: str = "",
    key_suffix: str = "",
    attachment: Path | None = None,
    **extra: Any,
) -> None:
    """Send one answer to the customer, once per key, threaded under their message."""
    if r.message.channel != "email":
        # Answers go back on the channel asked on; only email can send documents today.
        r.task(f"answer:{template}", f"Answer the customer on {r.message.channel} ({template})")
        r.outcome.state = "needs_human"
        return
    if r.pool is None or r.identity is None:
        raise ValueError("answering a reply needs an SMTP pool and a sender identity")
    key = key or f"reply:{r.message.id}:{template}" + (f":{key_suffix}" if key_suffix else "")
    claim = r.ledger.claim(
        key=key,
        invoice_number=fresh.invoice_number,
        customer_id=fresh.customer_id,
        stage=template,
        channel="email",
        recipient=r.message.sender,
        amount_due=fresh.amount_due,
        currency=fresh.currency,
    )
    if not claim.claimed:
        r.did(f"{template}: already answered")
        return
    rendered = _render(r, template, fresh, {"has_attachment": attachment is not None, **extra})
    message = build_email(
        rendered,
        from_address=r.identity.from_address,
        from_name=r.identity.from_name,
        to=r.message.sender,
        reply_to=r.identity.reply_to,
        key=key,
        attachment=attachment,
        message_id_domain=r.identity.message_id_domain,
    )
    _thread_under(message, r.message)
    envelope = Envelope(r.identity.from_address, [r.message.sender], list(r.identity.bcc))
    delivery = deliver(
        r.ledger,
        r.pool,
        key,
        message,
        envelope,
        invoice_number=fresh.invoice_number,
        customer_id=fresh.customer_id,
        stage=template,
        channel="email",
    )
    r.did(f"{template} {delivery.status} to {r.message.sender}")


def _alert_recipients(r: _Reply) -> list[str]:
    """Who hears of a dispute at once: the policy's `replies.manager_emails`, else the
    invoice's `manager_email`, else its `owner_email` (else nobody by email: a task)."""
    if r.policy.replies.manager_emails:
        return list(r.policy.replies.manager_emails)
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    for address in (fresh.manager_email, fresh.owner_email) if fresh is not None else ():
        if address.strip():
            return [address.strip()]
    return []


def _alert_managers(r: _Reply, reason: str, title: str) -> None:
    managers = _alert_recipients(r)
    if not managers or r.pool is None or r.identity is None:
        # Never to nobody: the manager role gets the task (the same one `_on_dispute`
        # opens, keyed by the message, so it is opened once).
        r.task("dispute", title, assignee="manager")
        r.did("no manager email known: a task for the manager role")
        return
    key = f"reply:{r.message.id}:alert"
    claim = r.ledger.claim(
        key=key,
        invoice_number=r.invoices[0] if r.invoices else "",
        customer_id=r.match.customer_id,
        stage="manager_alert",
        channel="email",
        recipient=", ".join(managers),
    )
    if not claim.claimed:
        return
    fresh = r.lookup(r.invoices[0]) if r.invoices else None
    loc = locale_for(r.policy.language, r.policy.country)
    extra = {
        "intent": r.result.intent,
        "reason": reason,
        "sender": r.message.sender,
        "received_at": format_day(r.today, loc),
        "reply_excerpt": r.excerpt,
        "task_title": title,
    }
    rendered = _render(r, "manager_alert", fresh, extra, language=r.policy.language)
    message = build_email(
        rendered,
        from_address=r.identity.from_address,
        from_name=r.identity.from_name,
        to=", ".join(managers),
        key=key,
        message_id_domain=r.identity.message_id_domain,
    )
    envelope = Envelope(r.identity.from_address, list(managers))
    delivery = deliver(
        r.ledger,
        r.pool,
        key,
        message,
        envelope,
        invoice_number=r.invoices[0] if r.invoices else "",
        customer_id=r.match.customer_id,
        stage="manager_alert",
        channel="email",
    )
    r.did(f"managers alerted ({delivery.status})")


def _render(
    r: _Reply,
    template: str,
    fresh: Invoice | None,
    extra: dict[str, Any],
    *,
    language: str = "",
):  # noqa: ANN202 - a RenderedMessage
    language = language or _answer_language(r, fresh)
    country = (fresh.country if fresh else "") or r.policy.country
    context: dict[str, Any] = {"customer_name": r.message.sender_name or r.message.sender}
    if fresh is not None:
        context = invoice_context(
            fresh,
            today=r.today,
            language=language,
            country=country,
            company_name=r.identity.from_name if r.identity else "",
            reply_to=(r.identity.reply_to or r.identity.from_address) if r.identity else "",
            stage=template,
        )
    if r.result.promise_date:
        context["promised_on"] = format_day(r.result.promise_date, locale_for(language, country))
    return render_email(
        template,
        language,
        context | extra,
        fallback_language="en",
        overlay=r.policy.templates_dir,
    )


def _answer_language(r: _Reply, fresh: Invoice | None) -> str:
    """The language an answer is written in: the invoice's, else the reply's, else the
    policy's."""
    return (fresh.language if fresh and fresh.language else r.result.lang) or r.policy.language


def _thread_under(message: EmailMessage, original: InboundMessage) -> None:
    """Make the answer show in the customer's thread."""
    in_reply_to, references = _thread_headers(original)
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = references


def _thread_headers(original: InboundMessage) -> tuple[str, str]:
    """The In-Reply-To and References an answer to `original` carries ("" when it has no
    real Message-ID to answer)."""
    if original.provider_id.startswith("<") and "@no-message-id>" not in original.provider_id:
        return original.provider_id, f"{original.references} {original.provider_id}".strip()
    return "", ""


def _link(url: str) -> str:
    return url if url.startswith(("https://", "http://")) else ""
