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
from dataclasses import dataclass, field
from typing import Any

ERP_TYPES = ("invoice.created", "invoice.updated", "invoice.paid", "invoice.cancelled")


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
    """The body as JSON, or `PayloadError`."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON ({exc})") from None


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
                c.get("wa_id"): (c.get("profile") or {}).get("name", "")
                for c in _list(value, "contacts")
            }
            for message in _list(value, "messages"):
                wamid = _required(message, "id", "message")
                item = dict(message, profile_name=names.get(message.get("from"), ""))
                out.append(Incoming("whatsapp", wamid, "message", payload=item))
            for status in _list(value, "statuses"):
                wamid = _required(status, "id", "status")
                name = _required(status, "status", "status")
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
    obj = (doc.get("data") or {}).get("object") or {}
    if not isinstance(obj, dict):
        raise PayloadError("event data.object is not an object")
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
