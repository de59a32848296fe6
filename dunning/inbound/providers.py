"""Read each provider's verified webhook body into `Incoming` events, one per thing that
happened, each with the provider's own id (what makes a replayed delivery recognisable).

- WhatsApp: one POST can carry several messages and statuses. A message's id is its `wamid`;
  a status's id is `<wamid>:<status>` (each status of a message happens once).
- Stripe: one event per POST, `evt_...`; the invoice is `data.object.number` (or its id,
  as the Stripe invoice source names invoices).
- ERP (ours): `{"id", "type": "invoice.created|updated|paid|cancelled", "invoice": {...}}`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

ERP_TYPES = ("invoice.created", "invoice.updated", "invoice.paid", "invoice.cancelled")
#: No provider nests its JSON this deep; a deeper body is refused before anything reads it
#: (Python's parser would raise RecursionError well before a 100k-deep body ends).
MAX_DEPTH = 32
#: The Unix times a provider may send (2000-01-01 to 2100-01-01); others are refused.
TIMESTAMP_RANGE = (946_684_800, 4_102_444_800)
#: The parts of a WhatsApp message that must be objects when present (effects read them).
_MESSAGE_OBJECTS = ("context", "text", "button", "interactive")


class PayloadError(ValueError):
    """A verified body that is not what the provider's contract says (answered 400)."""


@dataclass
class Incoming:
    """One event from a provider, as stored in `webhook_events`."""

    provider: str
    event_id: str
    kind: str
    invoice_number: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


def parse_json(body: bytes) -> Any:
    """The body as JSON nested at most `MAX_DEPTH` levels, or `PayloadError`."""
    if _bracket_depth(body) > MAX_DEPTH:
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(body)
    except RecursionError:  # a safety net: the depth check above should catch it first
        raise PayloadError(f"body nests deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON ({exc})") from None


def _bracket_depth(body: bytes) -> int:
    """How deep `[`/`{` nest outside strings: a linear scan of the raw bytes (brackets
    inside strings are stripped first with a regex, escapes included)."""
    outside = _STRINGS.sub(b"", body)
    depth = deepest = 0
    # Only the bracket bytes matter: walk those (re.finditer is linear and fast in C).
    for match in _BRACKETS.finditer(outside):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        else:
            depth -= 1
    return deepest


_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")


def whatsapp_events(doc: Any) -> list[Incoming]:
    """Messages, statuses and errors of a WhatsApp Business Account webhook."""
    if not isinstance(doc, dict) or doc.get("object") != "whatsapp_business_account":
        raise PayloadError("not a WhatsApp webhook: 'object' must be whatsapp_business_account")
    out: list[Incoming] = []
    for entry in _list(doc, "entry"):
        for change in _list(entry, "changes"):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                raise PayloadError("a change has no 'value' object")
            names = {
                str(c.get("wa_id")): str(_object(c, "profile", "contact").get("name") or "")
                for c in _list(value, "contacts")
            }
            for message in _list(value, "messages"):
                wamid = _required(message, "id", "message")
                _timestamp(message, "message")
                for key in _MESSAGE_OBJECTS:
                    if message.get(key) is not None and not isinstance(message[key], dict):
                        raise PayloadError(f"message {wamid}: '{key}' must be an object")
                sender = message.get("from")
                if not isinstance(sender, str | int | None):
                    raise PayloadError(f"message {wamid}: 'from' must be a phone number")
                item = dict(message, profile_name=names.get(str(sender), ""))
                out.append(Incoming("whatsapp", wamid, "message", payload=item))
            for status in _list(value, "statuses"):
                wamid = _required(status, "id", "status")
                name = _required(status, "status", "status")
                _timestamp(status, "status")
                _list(status, "errors")
                out.append(
                    Incoming("whatsapp", f"{wamid}:{name}", f"status.{name}", payload=status)
                )
            for error in _list(value, "errors"):
                digest = hashlib.sha256(json.dumps(error, sort_keys=True).encode()).hexdigest()
                out.append(Incoming("whatsapp", f"error:{digest[:32]}", "error", payload=error))
    return out


def stripe_events(doc: Any) -> list[Incoming]:
    """The one event of a Stripe webhook call."""
    if not isinstance(doc, dict) or doc.get("object") != "event":
        raise PayloadError("not a Stripe event: 'object' must be 'event'")
    event_id = _required(doc, "id", "event")
    kind = _required(doc, "type", "event")
    obj = _object(_object(doc, "data", "event"), "object", "event data")
    number = ""
    if obj.get("object") == "invoice":
        number = str(obj.get("number") or obj.get("id") or "")
    return [Incoming("stripe", event_id, kind, number, doc)]


def erp_events(doc: Any) -> list[Incoming]:
    """The one event of a call of our generic ERP webhook."""
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")
    event_id = _required(doc, "id", "event")
    kind = _required(doc, "type", "event")
    if kind not in ERP_TYPES:
        raise PayloadError(f"event type {kind!r} is not one of {', '.join(ERP_TYPES)}")
    invoice = doc.get("invoice") if isinstance(doc.get("invoice"), dict) else {}
    number = str(invoice.get("invoice_number") or doc.get("invoice_number") or "")
    if not number:
        raise PayloadError("event has no invoice.invoice_number")
    return [Incoming("erp", event_id, kind, number, doc)]


def _object(obj: dict[str, Any], key: str, what: str) -> dict[str, Any]:
    """`obj[key]` if it is an object, {} if absent; else `PayloadError`."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{what} '{key}' must be an object")
    return value


def _timestamp(obj: dict[str, Any], what: str) -> None:
    """A `timestamp`, when present, must be Unix seconds within `TIMESTAMP_RANGE`."""
    value = obj.get("timestamp")
    if value is None:
        return
    text = str(value)
    first, last = TIMESTAMP_RANGE
    if isinstance(value, bool) or not text.isdigit() or not first <= int(text) <= last:
        raise PayloadError(f"{what} 'timestamp' {text[:30]!r} is not a Unix time in range")


def _list(obj: Any, key: str) -> list[dict[str, Any]]:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PayloadError(f"'{key}' must be a list of objects")
    return value


def _required(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value in (None, ""):
        raise PayloadError(f"{what} has no '{key}'")
    return str(value)
