"""Automated calls over Twilio Programmable Voice: the call's TwiML, placing it, its outcome,
the keypad menu, and retries that end in a task for a person.

A call says (`<Say>`, in the customer's language with the block's voice for it) who calls,
the invoice number and the amount read the way a person of that locale says them ("1.234
euros con 56 céntimos"; a reference like `F-2024-0153` as "F, 2024, 0 1 5 3"), the due date,
then offers a menu (`<Gather>`, one digit): 1 = talk to a person -> a high-priority call-back
task; 2 = "I already paid" -> the invoice's reminders pause for the policy's
`payment_verification_days` and a verify-payment task opens (the same as an "already paid"
reply). The words are `templates/voice/<lang>.yaml`.

The call is an outbox action like a message (`<invoice>:<stage>:voice`): claimed once, marked
`sending` before Twilio is asked, its Call SID as `message_id`. A sweep killed while a call is
being placed leaves it `sending` (in doubt): it is never placed again by itself. Its outcome
(completed, busy, no-answer, failed, machine) comes by the status callback and is recorded on
the action, the timeline and the CRM; busy / no-answer / failed are retried after the
block's `retry_after_minutes` up to `call_attempts` calls, then a person gets a task to call.

Voicemail: with the block's `answer_url` (the receiver's `/webhooks/twilio/voice/answer`)
the call carries no TwiML; Twilio fetches it once the call is answered, saying who answered
(`AnsweredBy`, from answering-machine detection). A person hears the full call; a machine
hears what the `voicemail` setting says: `full` (the same call), `short` (the `voicemail`
words: invoice, amount, call us back) or `none` (hang up; the call counts as not answered).
Both scripts are rendered when the call is placed and kept on a `call_script` event, so the
receiver needs no invoice source to answer.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from babel.numbers import format_decimal, get_currency_name
from jinja2 import TemplateNotFound

from dunning.crm import queue_note
from dunning.ledger import Ledger
from dunning.ledger.delivery import (
    action_by_message_id,
    calls_to_retry,
    claim_call_retry,
    latest_event_detail,
    set_delivery_outcome,
    update_action,
)
from dunning.policy import Window
from dunning.render import (
    format_day,
    invoice_context,
    layout_words,
    locale_for,
    shared_environment,
    templates_dir,
)
from dunning.schema import Invoice
from dunning.twilio.client import TwilioClient, TwilioError, TwilioOutcomeUnknown
from dunning.twilio.consent import readiness
from dunning.twilio.sms import TwilioResult, failed, refuse

CHANNEL = "voice"
#: Call statuses that end a call (the others are progress: queued, ringing, in-progress).
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
#: Outcomes that count as "not answered": the call is tried again, then a person calls.
UNANSWERED = frozenset({"busy", "no-answer", "failed"})


@dataclass(frozen=True)
class VoiceSettings:
    """The calling side of a `VoiceChannel` block."""

    caller: str
    status_callback_url: str = ""
    gather_url: str = ""
    #: language -> Twilio `<Say language>` (es -> es-ES) and voice (es -> Polly.Lucia)
    say_languages: dict[str, str] = field(default_factory=dict)
    voices: dict[str, str] = field(default_factory=dict)
    machine_detection: str = "Enable"
    #: A machine (answering-machine detection) hears "full": the whole call, "short": the
    #: voicemail words; both count as reached. "none": hang up, the call counts as not
    #: answered (tried again, then a person calls). Only heard with `answer_url`.
    voicemail: str = "short"
    #: Where Twilio fetches the call's TwiML when answered (empty: the TwiML goes inline and
    #: a machine hears the full call).
    answer_url: str = ""
    call_attempts: int = 3
    retry_after: timedelta = timedelta(hours=1)
    ring_seconds: int = 30
    agent_number: str = ""

    def say(self, language: str) -> dict[str, str]:
        lang = _lang(language)
        return {
            "language": self.say_languages.get(lang, "en-US"),
            "voice": self.voices.get(lang, "Polly.Joanna"),
        }


def spoken_reference(reference: str) -> str:
    """An invoice number as it is read aloud: letters spelled, a number with a leading zero
    or more than 4 digits read digit by digit, groups separated by a pause (a comma).

    Example:
        >>> spoken_reference("F-2024-0153")
        'F, 2024, 0 1 5 3'
    """
    groups = []
    for token in re.findall(r"[A-Za-z]+|\d+", reference):
        if token.isdigit():
            groups.append(" ".join(token) if token[0] == "0" or len(token) > 4 else token)
        else:
            groups.append(" ".join(token.upper()))
    return ", ".join(groups) or reference


def spoken_amount(amount: float, currency: str, language: str, country: str) -> str:
    """The amount as said in the customer's locale: units with the locale's grouping, the
    currency's name (plural as the locale says it), and the cents in words of the language."""
    locale = locale_for(language, country)
    units, cents = divmod(round(abs(amount) * 100), 100)
    env = shared_environment(str(templates_dir()))
    words = _words(language)
    return env.from_string(words["amount"]).render(
        units=format_decimal(units, locale=locale),
        cents=cents,
        currency_name=get_currency_name(currency, count=units, locale=locale),
    )


def call_twiml(
    settings: VoiceSettings, language: str, context: dict[str, Any], *, country: str = ""
) -> str:
    """The TwiML of a reminder call (contract §8): intro, pause, one-digit menu, goodbye."""
    words = _rendered(language, context)
    say = settings.say(language)
    response = ET.Element("Response")
    ET.SubElement(response, "Say", say).text = words["intro"]
    ET.SubElement(response, "Pause", {"length": "1"})
    gather = ET.SubElement(
        response,
        "Gather",
        {"input": "dtmf", "method": "POST", "numDigits": "1", "timeout": "6"}
        | ({"action": _with_lang(settings.gather_url, language)} if settings.gather_url else {}),
    )
    ET.SubElement(gather, "Say", say).text = words["menu"]
    ET.SubElement(response, "Say", say).text = words["no_input"]
    ET.SubElement(response, "Hangup")
    return _xml(response)


def voicemail_twiml(settings: VoiceSettings, language: str, context: dict[str, Any]) -> str:
    """The TwiML a voicemail gets with `voicemail: short`: who calls, the invoice, the
    amount, please call back or pay by the link (no menu: nobody will press a key)."""
    env = shared_environment(str(templates_dir()))
    text = " ".join(env.from_string(_words(language)["voicemail"]).render(context).split())
    response = ET.Element("Response")
    ET.SubElement(response, "Say", settings.say(language)).text = text
    ET.SubElement(response, "Hangup")
    return _xml(response)


HANGUP_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Hangup /></Response>'


def script_twiml(ledger: Ledger, settings: VoiceSettings, key: str, answered_by: str) -> str:
    """The TwiML for Twilio's fetch of the answered call of action `key`: the full call for
    a person (or when detection is off or unsure), for a machine what `voicemail` says.
    A call with no recorded script (not ours) is hung up."""
    scripts = latest_event_detail(ledger, "call_script", key)
    if not scripts:
        return HANGUP_TWIML
    if not _is_machine(answered_by) or settings.voicemail == "full":
        return str(scripts["full"])
    return str(scripts["short"]) if settings.voicemail == "short" else HANGUP_TWIML


def answer_twiml(settings: VoiceSettings, language: str, key: str) -> str:
    """The TwiML answering a menu choice: `key` is person, paid or no_input."""
    words = _words(language)
    say = settings.say(language)
    response = ET.Element("Response")
    ET.SubElement(response, "Say", say).text = words[key]
    if key == "person" and settings.agent_number:
        ET.SubElement(response, "Dial").text = settings.agent_number
    ET.SubElement(response, "Hangup")
    return _xml(response)


def place_call(
    *,
    ledger: Ledger,
    client: TwilioClient,
    settings: VoiceSettings,
    key: str,
    invoice: Invoice,
    stage: str,
    language: str,
    country: str,
    today: date,
    company_name: str = "",
) -> TwilioResult:
    """Place the stage's reminder call to the invoice's customer (key already claimed)."""
    where = {"invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id}
    ready = readiness(
        ledger,
        channel=CHANNEL,
        customer_id=invoice.customer_id,
        phone=invoice.phone,
        country=country,
        invoice_number=invoice.invoice_number,
    )
    if not ready.ok:
        return refuse(ledger, key, where, CHANNEL, ready.reason, ready.detail, ready.phone)
    context = call_context(invoice, today, language, country, company_name, stage)
    twiml = call_twiml(settings, language, context)
    update_action(ledger, key, recipient=ready.phone)
    ledger.mark_sending(key, "")
    _record_scripts(ledger, settings, key, language, context, where)
    try:
        created = _create(client, settings, ready.phone, twiml, key, language)
    except TwilioOutcomeUnknown as exc:
        ledger.record_event("in_doubt", **where, action_key=key, channel=CHANNEL, error=str(exc))
        return TwilioResult("in_doubt", "in_doubt", str(exc), recipient=ready.phone)
    except TwilioError as exc:
        return failed(ledger, key, where, CHANNEL, exc, ready.phone)
    update_action(ledger, key, message_id=created.sid, delivery_status="queued")
    text = _spoken(twiml)
    ledger.mark_sent(key, text)
    ledger.record_event(
        "call_placed", **where, action_key=key, channel=CHANNEL, recipient=ready.phone,
        message_id=created.sid, attempt=1, stage=stage, language=language, text=text,
    )  # fmt: skip
    return TwilioResult("sent", recipient=ready.phone, message_id=created.sid, text=text)


def call_context(
    invoice: Invoice, today: date, language: str, country: str, company_name: str, stage: str
) -> dict[str, Any]:
    """`invoice_context` plus the spoken forms of the invoice number and amount."""
    context = invoice_context(
        invoice,
        today=today,
        language=language,
        country=country,
        company_name=company_name,
        stage=stage,
    )
    country = country or invoice.country
    context["company_name"] = company_name or _words(language)["supplier"]
    context["invoice_spoken"] = spoken_reference(invoice.invoice_number)
    context["amount_spoken"] = spoken_amount(
        invoice.amount_due, invoice.currency, language, country
    )
    context["due_date"] = format_day(invoice.due_date, locale_for(language, country))
    return context


def apply_call_status(
    ledger: Ledger,
    settings: VoiceSettings,
    *,
    call_sid: str,
    status: str,
    answered_by: str = "",
    at: datetime,
    today: date,
) -> dict[str, Any]:
    """Record a call's status callback; returns what was done (`outcome`, `action_key`,
    `retry`, `task`). Progress statuses are only recorded as events."""
    row = action_by_message_id(ledger, call_sid)
    if row is None:
        return {"action_key": ""}
    where = {"invoice_number": row.invoice_number, "customer_id": row.customer_id}
    if status not in FINAL_STATUSES:
        ledger.record_event(f"call_{status}", **where, action_key=row.key, actor="twilio")
        return {"action_key": row.key, "outcome": status}
    machine = _is_machine(answered_by)
    outcome = "machine" if machine and status == "completed" else status
    attempts = _attempts(ledger, row.key)
    set_delivery_outcome(ledger, row.key, outcome, at)
    ledger.record_event(
        f"call_{outcome}", **where, action_key=row.key, actor="twilio", call_sid=call_sid,
        answered_by=answered_by, attempt=attempts,
    )  # fmt: skip
    queue_note(
        ledger,
        key=f"{row.key}:call-{attempts}",
        text=f"Automated call {attempts} to {row.recipient} about invoice {row.invoice_number}: "
        f"{outcome}.",
        channel=CHANNEL,
        direction="out",
        outcome=outcome,
        **where,
    )
    done: dict[str, Any] = {"action_key": row.key, "outcome": outcome, "attempt": attempts}
    unanswered = outcome in UNANSWERED or (outcome == "machine" and settings.voicemail == "none")
    if not unanswered:
        return done
    if attempts < settings.call_attempts:
        done["retry"] = (at + settings.retry_after).isoformat()
        return done
    done["task"] = ledger.open_task(
        key=f"{row.key}:unanswered",
        invoice_number=row.invoice_number,
        customer_id=row.customer_id,
        title=f"Automated call not answered after {attempts} attempts ({outcome}): call "
        f"{row.recipient} about invoice {row.invoice_number}",
        assignee="account_owner",
        due_on=today,
        crm={"priority": "HIGH", "task_type": "CALL"},
    )
    return done


def apply_gather(
    ledger: Ledger,
    settings: VoiceSettings,
    *,
    call_sid: str,
    digits: str,
    language: str,
    today: date,
    verify_days: int,
) -> tuple[str, dict[str, Any]]:
    """Act on a menu choice; returns the TwiML to answer Twilio with and what was done.

    1: a high-priority task to call the customer back; 2: the invoice paused for
    `verify_days` (the policy's `payment_verification_days`) and a verify-payment task.
    """
    row = action_by_message_id(ledger, call_sid)
    if row is None or digits not in ("1", "2"):
        return answer_twiml(settings, language, "no_input"), {"action_key": row.key if row else ""}
    where = {"invoice_number": row.invoice_number, "customer_id": row.customer_id}
    ledger.record_event("call_choice", **where, action_key=row.key, actor="customer", digits=digits)
    if digits == "1":
        ledger.open_task(
            key=f"{row.key}:person",
            title=f"Customer asked on the call to talk to a person: call {row.recipient} about "
            f"invoice {row.invoice_number}",
            assignee="account_owner",
            due_on=today,
            crm={"priority": "HIGH", "task_type": "CALL"},
            **where,
        )
        return answer_twiml(settings, language, "person"), {"action_key": row.key, "did": "task"}
    until = today + timedelta(days=verify_days)
    ledger.add_pause(
        "verify_payment",
        reason="customer says paid (automated call)",
        until=until,
        actor="customer",
        **where,
    )
    ledger.open_task(
        key=f"verify:{row.invoice_number}:{row.key}",
        title=f"Verify payment of invoice {row.invoice_number} (customer pressed 'already "
        "paid' on the call)",
        assignee="account_owner",
        due_on=today,
        crm={"priority": "MEDIUM", "task_type": "TODO"},
        **where,
    )
    return answer_twiml(settings, language, "paid"), {"action_key": row.key, "paused_until": until}


def retry_unanswered_calls(
    ledger: Ledger,
    client: TwilioClient,
    settings: VoiceSettings,
    *,
    now: datetime,
    lookup: Callable[[str], Invoice | None],
    language: Callable[[Invoice], str],
    today: date,
    company_name: str = "",
    window: Window | None = None,
    timezone: str = "Europe/Madrid",
) -> list[str]:
    """Place again the calls not answered (busy, no-answer, failed) at least `retry_after`
    ago with attempts left; returns their keys. Each retry is claimed on the action (its
    attempt count), so two sweeps never ring the customer twice; a paid or paused invoice
    is not called, nor a customer outside the sending `window` in their timezone (the
    invoice's, else `timezone`): quiet hours hold for retries too."""
    outcomes = set(UNANSWERED) | ({"machine"} if settings.voicemail == "none" else set())
    placed = []
    for row in calls_to_retry(ledger, outcomes, settings.call_attempts, now - settings.retry_after):
        invoice = lookup(row["invoice_number"])
        if invoice is None or not invoice.is_payable or invoice.status == "disputed":
            continue
        if window is not None and not _inside(window, now, invoice.timezone or timezone):
            continue
        if ledger.pause_reason(invoice.invoice_number, invoice.customer_id, CHANNEL, today):
            continue
        if not claim_call_retry(ledger, row["key"], row["attempts"], row["delivery_status"]):
            continue
        stage = row["stage"]
        lang = language(invoice)
        context = call_context(invoice, today, lang, invoice.country, company_name, stage)
        where = {"invoice_number": invoice.invoice_number, "customer_id": invoice.customer_id}
        _record_scripts(ledger, settings, row["key"], lang, context, where)
        try:
            twiml = call_twiml(settings, lang, context)
            created = _create(client, settings, row["recipient"], twiml, row["key"], lang)
        except TwilioError as exc:
            ledger.record_event("call_retry_failed", **where, action_key=row["key"], error=str(exc))
            continue
        update_action(ledger, row["key"], message_id=created.sid, delivery_status="queued")
        ledger.record_event(
            "call_placed", **where, action_key=row["key"], channel=CHANNEL,
            message_id=created.sid, attempt=row["attempts"] + 1, recipient=row["recipient"],
        )  # fmt: skip
        placed.append(row["key"])
    return placed


def _inside(window: Window, now: datetime, timezone: str) -> bool:
    local = now.astimezone(zoneinfo.ZoneInfo(timezone)).time()
    return window.start <= local < window.end


def _create(
    client: TwilioClient, settings: VoiceSettings, to: str, twiml: str, key: str, language: str
) -> Any:
    url = ""
    if settings.answer_url:  # the action key rides in the signed URL: no wait for the SID
        url = _with_lang(settings.answer_url, language) + "&" + urlencode({"key": key})
    return client.create_call(
        to=to,
        caller=settings.caller,
        twiml=twiml,
        status_callback=settings.status_callback_url,
        machine_detection=settings.machine_detection,
        ring_seconds=settings.ring_seconds,
        url=url,
    )


def _record_scripts(
    ledger: Ledger,
    settings: VoiceSettings,
    key: str,
    language: str,
    context: dict[str, Any],
    where: dict[str, str],
) -> None:
    """Keep what the call will say to a person and to a voicemail, before it is placed
    (Twilio fetches it from the receiver, which has no invoice source)."""
    if not settings.answer_url:
        return
    ledger.record_event(
        "call_script", **where, action_key=key, language=language,
        full=call_twiml(settings, language, context),
        short=voicemail_twiml(settings, language, context),
    )  # fmt: skip


def _is_machine(answered_by: str) -> bool:
    return answered_by.startswith("machine") or answered_by == "fax"


def _attempts(ledger: Ledger, key: str) -> int:
    from dunning.ledger.delivery import action_attempts

    return action_attempts(ledger, key)


def _lang(language: str) -> str:
    return (language or "en").split("-")[0].split("_")[0].lower()


def _words(language: str) -> Any:
    env = shared_environment(str(templates_dir()))
    for lang in dict.fromkeys((_lang(language), "en")):
        try:
            return layout_words(env, f"voice/{lang}.yaml")
        except TemplateNotFound:  # no words in this language: the fallback's
            continue
    raise FileNotFoundError(f"no voice words for {language!r} under {templates_dir()}/voice/")


def _rendered(language: str, context: dict[str, Any]) -> dict[str, str]:
    env = shared_environment(str(templates_dir()))
    words = _words(language)
    return {
        name: " ".join(env.from_string(words[name]).render(context).split())
        for name in ("intro", "menu", "no_input")
    }


def _with_lang(url: str, language: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}lang={_lang(language)}"


def _xml(element: ET.Element) -> str:
    body = ET.tostring(element, encoding="unicode", short_empty_elements=True)
    return '<?xml version="1.0" encoding="UTF-8"?>' + body


def _spoken(twiml: str) -> str:
    """What the call says (the `<Say>` texts), for the timeline."""
    root = ET.fromstring(twiml)
    return " ".join(el.text or "" for el in root.iter("Say"))
