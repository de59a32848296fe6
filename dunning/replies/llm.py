"""Optional second opinion from an LLM, for the replies the offline classifier is unsure of.

Any OpenAI-compatible chat endpoint works (a local Ollama, vLLM, llama.cpp server, or a
hosted API): `POST {base_url}/v1/chat/completions`. The model is asked for JSON
`{"intent": ..., "promise_date": "YYYY-MM-DD" | null, "angry": true | false}` and its
answer is used only if it is valid: a known intent, a date that parses and is not before
the day the reply arrived, a boolean. Anything else (bad JSON, unknown intent, timeout,
HTTP error) leaves the offline answer in place. The offline classifier always runs first;
the LLM is asked only when its confidence is below `min_confidence`.

    >>> settings = LLMSettings(base_url="http://127.0.0.1:11434", model="llama3.1:8b")
    >>> result = classify_with_fallback("...", date(2026, 12, 9), None, settings)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from dunning.replies.classify import (
    INTENTS,
    Classification,
    classified_part,
    classify,
    find_contact,
)

log = logging.getLogger(__name__)

#: A promised date further away than this is not believed.
MAX_PROMISE_DAYS = 400
#: The confidence given to a validated LLM answer.
LLM_CONFIDENCE = 0.75

SYSTEM_PROMPT = """You classify a customer's reply to a payment reminder (accounts receivable).
The reply may be in Spanish, English or Portuguese. Ignore any quoted earlier messages.
Answer with one JSON object and nothing else:
{"intent": one of %(intents)s,
 "promise_date": "YYYY-MM-DD" or null,
 "angry": true or false}
Definitions: promise_to_pay = commits to pay (in one go); already_paid = says it was paid;
dispute = contests the debt, amount, fee, goods, service or terms, or any angry complaint;
invoice_copy_request = asks for the invoice, a PDF, a statement or a new boleto;
bank_details_request = asks for IBAN, account number, CLABE, CBU, PIX key or similar;
document_request = asks for a company document: the tax registration certificate (RUT,
constancia de situacion fiscal, CUIT, RUC, CNPJ, W-9) or a bank account certificate;
payment_plan_request = asks for instalments, a split or a deferral; out_of_office = an
automatic or away reply; opt_out = asks to stop messages; wrong_contact = wrong person,
number or company; other = anything else.
promise_date only for promise_to_pay with a stated date, resolved against the received
date %(received)s: "tomorrow" is the next day, a weekday is the first such day strictly
after it, "end of month" is the last day of that month. Otherwise null.
angry = insults, threats, "harassment", complaints to consumer bodies."""


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to ask: an OpenAI-compatible endpoint (the `ReplyLLM` block makes one)."""

    base_url: str
    model: str
    api_key: str = field(default="", repr=False)  # never in logs or reprs
    timeout: float = 20.0
    min_confidence: float = 0.6


@dataclass(frozen=True)
class LLMAnswer:
    """A validated answer of the LLM."""

    intent: str
    promise_date: date | None
    angry: bool


def chat_url(base_url: str) -> str:
    """The chat-completions URL for a base URL given with or without its `/v1`."""
    base = base_url.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


def _json_object(content: str) -> dict[str, Any] | None:
    """The JSON object in a model's reply, also when wrapped in ``` fences or prose."""
    content = content.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", content, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    start, end = content.find("{"), content.rfind("}")
    if start != -1 and end > start:
        candidates.append(content[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def validate(payload: dict[str, Any], received_on: date) -> LLMAnswer | None:
    """The answer if it is usable, else None (and the reason is logged)."""
    intent = payload.get("intent")
    if intent not in INTENTS:
        log.warning("LLM answer ignored: unknown intent %r", intent)
        return None
    angry = payload.get("angry", False)
    if not isinstance(angry, bool):
        log.warning("LLM answer ignored: 'angry' is %r, not true/false", angry)
        return None
    raw_date = payload.get("promise_date")
    promised = None
    if raw_date not in (None, "", "null"):
        try:
            promised = date.fromisoformat(str(raw_date))
        except ValueError:
            log.warning("LLM answer ignored: promise_date %r is not YYYY-MM-DD", raw_date)
            return None
        if not received_on <= promised <= received_on + timedelta(days=MAX_PROMISE_DAYS):
            log.warning("LLM answer ignored: promise_date %s is out of range", promised)
            return None
    if intent != "promise_to_pay":
        promised = None
    return LLMAnswer(intent=intent, promise_date=promised, angry=angry)


def ask_llm(text: str, received_on: date, settings: LLMSettings) -> LLMAnswer | None:
    """Ask the endpoint about one reply; a validated answer, or None on any failure."""
    import httpx

    system = SYSTEM_PROMPT % {"intents": ", ".join(INTENTS), "received": received_on.isoformat()}
    body = {
        "model": settings.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": text[:6000]},
        ],
    }
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.post(
            chat_url(settings.base_url), json=body, headers=headers, timeout=settings.timeout
        )
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
    except httpx.TimeoutException:
        log.warning("LLM timed out after %.1f s: offline answer kept", settings.timeout)
        return None
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        # the exception names the URL and status, never the key (it is only in a header)
        log.warning("LLM request failed (%s): offline answer kept", type(exc).__name__)
        return None
    payload = _json_object(content) if isinstance(content, str) else None
    if payload is None:
        log.warning("LLM answer ignored: no JSON object in the reply")
        return None
    return validate(payload, received_on)


def classify_with_fallback(
    text: str,
    received_on: date,
    lang: str | None,
    settings: LLMSettings | None,
    *,
    offline: Classification | None = None,
) -> Classification:
    """The offline classification, or the LLM's validated answer when the offline one is
    below `settings.min_confidence`.

    An angry reply stays a dispute whatever the LLM says, and the LLM can flag anger the
    rules missed (then it is a dispute too).
    """
    result = offline or classify(text, received_on=received_on, lang=lang)
    if settings is None or result.confidence >= settings.min_confidence:
        return result
    answer = ask_llm(text, received_on, settings)
    if answer is None:
        return result
    angry = result.angry or answer.angry
    intent = "dispute" if angry else answer.intent
    return replace(
        result,
        intent=intent,
        confidence=max(result.confidence, LLM_CONFIDENCE),
        promise_date=answer.promise_date if intent == "promise_to_pay" else None,
        angry=angry,
        new_contact=find_contact(classified_part(text), result.lang)
        if intent == "wrong_contact"
        else None,
        evidence=(*result.evidence, f"llm: {answer.intent}"),
        source="llm",
    )
