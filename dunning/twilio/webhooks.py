"""Twilio's webhook calls, without a web framework: the event each one is, and its effect.

Twilio posts forms (`application/x-www-form-urlencoded`). Each verified call becomes one
event with Twilio's own ids, so a retried or replayed call is recognised:

| path | event id | kind |
|---|---|---|
| `/webhooks/twilio/sms/status` | `<MessageSid>:<MessageStatus>` | `sms.status.<status>` |
| `/webhooks/twilio/sms/inbound` | `<MessageSid>` | `sms.inbound` |
| `/webhooks/twilio/voice/status` | `<CallSid>:<CallStatus>` | `voice.status.<status>` |
| `/webhooks/twilio/voice/gather` | `<CallSid>:gather` | `voice.gather` |
| `/webhooks/twilio/voice/answer` | `<CallSid>:answer` | `voice.answer` |

`voice/answer` is Twilio fetching an answered call's TwiML (the block's `answer_url`, with
`?lang=..&key=<action key>`): the script for a person, or for a machine what the block's
`voicemail` says (`dunning.twilio.voice.script_twiml`).

The receiver stores the event first (`dunning.ledger.inbound.store_webhook_event`), then
applies it here; the answer to Twilio is TwiML (empty, or the menu's spoken answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from dunning.inbound.providers import Incoming, PayloadError
from dunning.ledger import Ledger
from dunning.policy import Policy, default_policy, today
from dunning.twilio.sms import apply_sms_status, store_inbound_sms
from dunning.twilio.voice import (
    VoiceSettings,
    answer_twiml,
    apply_call_status,
    apply_gather,
    script_twiml,
)

PROVIDER = "twilio"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
ROUTES = {
    "/webhooks/twilio/sms/status": "sms.status",
    "/webhooks/twilio/sms/inbound": "sms.inbound",
    "/webhooks/twilio/voice/status": "voice.status",
    "/webhooks/twilio/voice/gather": "voice.gather",
    "/webhooks/twilio/voice/answer": "voice.answer",
}


@dataclass(frozen=True)
class TwilioEffects:
    """What applying a Twilio event needs besides the ledger: the voice channel's settings
    (retries, the menu's words), the policy (its timezone's today, the verification pause)."""

    voice: VoiceSettings = field(default_factory=lambda: VoiceSettings(caller=""))
    policy: Policy | None = None


def flat(params: Mapping[str, list[str]]) -> dict[str, str]:
    """A parsed form as name -> value (the last value of a repeated name)."""
    return {name: values[-1] if values else "" for name, values in params.items()}


def twilio_event(path: str, params: Mapping[str, str]) -> Incoming:
    """The event of one verified Twilio call to `path`; `PayloadError` when a field the
    contract requires is missing (answered 400, nothing stored)."""
    route = ROUTES.get(path)
    if route is None:
        raise PayloadError(f"no Twilio webhook at {path}")
    if route.startswith("sms."):
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if not sid:
            raise PayloadError("a Twilio SMS webhook without MessageSid")
        if route == "sms.inbound":
            if not params.get("From"):
                raise PayloadError("an inbound SMS without From")
            return Incoming(PROVIDER, sid, route, payload=dict(params))
        status = params.get("MessageStatus") or params.get("SmsStatus") or ""
        if not status:
            raise PayloadError("an SMS status callback without MessageStatus")
        return Incoming(PROVIDER, f"{sid}:{status}", f"{route}.{status}", payload=dict(params))
    sid = params.get("CallSid", "")
    if not sid:
        raise PayloadError("a Twilio voice webhook without CallSid")
    if route in ("voice.gather", "voice.answer"):
        suffix = route.removeprefix("voice.")
        return Incoming(PROVIDER, f"{sid}:{suffix}", route, payload=dict(params))
    status = params.get("CallStatus", "")
    if not status:
        raise PayloadError("a call status callback without CallStatus")
    return Incoming(PROVIDER, f"{sid}:{status}", f"{route}.{status}", payload=dict(params))


def apply_twilio_event(
    ledger: Ledger, incoming: Incoming, effects: TwilioEffects, *, now: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    """Apply a stored Twilio event; returns (the TwiML to answer with, what was done)."""
    now = now or datetime.now(UTC)
    p = incoming.payload
    kind = incoming.kind
    if kind.startswith("sms.status."):
        key = apply_sms_status(
            ledger,
            message_sid=incoming.event_id.rsplit(":", 1)[0],
            status=kind.removeprefix("sms.status."),
            at=_when(p.get("Timestamp"), now),
            error_code=_int(p.get("ErrorCode")),
            to=p.get("To", ""),
        )
        return EMPTY_TWIML, {"action_key": key or ""}
    if kind == "sms.inbound":
        return EMPTY_TWIML, store_inbound_sms(ledger, p, at=now)
    if kind == "voice.answer":
        answered_by = p.get("AnsweredBy", "")
        twiml = script_twiml(ledger, effects.voice, p.get("key", ""), answered_by)
        return twiml, {"action_key": p.get("key", ""), "answered_by": answered_by}
    policy = effects.policy or default_policy()
    day = today(policy, now)
    if kind.startswith("voice.status."):
        done = apply_call_status(
            ledger,
            effects.voice,
            call_sid=p["CallSid"],
            status=kind.removeprefix("voice.status."),
            answered_by=p.get("AnsweredBy", ""),
            at=_when(p.get("Timestamp"), now),
            today=day,
        )
        return EMPTY_TWIML, done
    if kind == "voice.gather":
        return apply_gather(
            ledger,
            effects.voice,
            call_sid=p["CallSid"],
            digits=p.get("Digits", ""),
            language=p.get("lang", "en"),
            today=day,
            verify_days=policy.replies.payment_verification_days,
        )
    return EMPTY_TWIML, {}


def replay_answer(incoming: Incoming, effects: TwilioEffects, ledger: Ledger) -> str:
    """The TwiML for an event seen before (Twilio retried): the same words, no new effect."""
    if incoming.kind == "voice.answer":  # reads the ledger, writes nothing: the same script
        p = incoming.payload
        return script_twiml(ledger, effects.voice, p.get("key", ""), p.get("AnsweredBy", ""))
    if incoming.kind != "voice.gather":
        return EMPTY_TWIML
    digits = incoming.payload.get("Digits", "")
    key = {"1": "person", "2": "paid"}.get(digits, "no_input")
    return answer_twiml(effects.voice, incoming.payload.get("lang", "en"), key)


def _int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _when(value: Any, default: datetime) -> datetime:
    try:
        return parsedate_to_datetime(str(value)) if value else default
    except (TypeError, ValueError):
        return default
