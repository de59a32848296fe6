"""Stored webhook events -> Prefect events (the receiver's edge: the one place it uses Prefect).

Event names, so deployment triggers can react within seconds:

| provider event | Prefect event | resource |
|---|---|---|
| Stripe `invoice.paid`, ERP `invoice.paid` | `dunning.invoice.paid` | `dunning.invoice.<number>` |
| Stripe `invoice.voided`, ERP `invoice.cancelled` | `dunning.invoice.cancelled` | same |
| ERP `invoice.created` | `dunning.invoice.created` | same |
| ERP `invoice.updated`, other Stripe `invoice.*` | `dunning.invoice.updated` | same |
| WhatsApp message | `dunning.reply.received` | `dunning.reply.<wamid>` |
| WhatsApp status | `dunning.whatsapp.status.<status>` | `dunning.message.<wamid>` |
| Twilio inbound SMS | `dunning.reply.received` | `dunning.reply.<MessageSid>` |
| Twilio SMS status | `dunning.twilio.sms.status.<status>` | `dunning.message.<MessageSid>` |
| Twilio call status | `dunning.twilio.voice.status.<status>` | `dunning.call.<CallSid>` |
| Twilio call menu | `dunning.twilio.voice.gather` | `dunning.call.<CallSid>` |

Every payload carries `invoice_number` (may be empty), `provider`, `event_id` and `kind`.
The Prefect event id is derived from the provider's event id, so emitting twice (a retry
after an unclear failure) is recognised by the server and triggers nothing twice.

Events are sent over the events websocket with Prefect's `PrefectEventsClient` rather than
the fire-and-forget `emit_event`, because the receiver must know whether the server took
them: an event the server did not take stays `stored` and is sent again later.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dunning.ledger import Ledger
from dunning.ledger.inbound import (
    CLOSED,
    mark_emitted,
    note_emit_error,
    pending_webhook_events,
)
from dunning.ledger.models import utcnow

log = logging.getLogger("dunning.inbound")
_NAMESPACE = uuid.UUID("5c0e6a0e-4d7b-4f4e-9a59-2f6c1f0d7a11")


@dataclass(frozen=True)
class PrefectEventSpec:
    """What to emit for one stored webhook event."""

    id: uuid.UUID
    event: str
    resource: dict[str, str]
    payload: dict[str, Any]
    occurred: datetime


def event_spec(row: dict[str, Any]) -> PrefectEventSpec:
    """The Prefect event of a `webhook_events` row (see the table in the module docstring)."""
    provider, kind, number = row["provider"], row["kind"], row.get("invoice_number") or ""
    payload = row.get("payload") or {}
    name, resource = _name_and_resource(provider, kind, number, row["event_id"], payload)
    occurred = row.get("received_at") or utcnow()
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=UTC)
    data: dict[str, Any] = {
        "invoice_number": number,
        "provider": provider,
        "event_id": row["event_id"],
        "kind": kind,
    }
    if provider == "whatsapp" and kind == "message":
        data["sender"] = "+" + str(payload.get("from") or "")
    if provider == "whatsapp" and kind.startswith("status."):
        data["message_id"] = str(payload.get("id") or "")
    if provider == "twilio":
        data["sender"] = str(payload.get("From") or "")
        data["message_id"] = str(payload.get("MessageSid") or payload.get("CallSid") or "")
    return PrefectEventSpec(
        id=uuid.uuid5(_NAMESPACE, f"{provider}:{row['event_id']}"),
        event=name,
        resource=resource,
        payload=data,
        occurred=occurred,
    )


def _name_and_resource(
    provider: str, kind: str, number: str, event_id: str, payload: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    if provider == "twilio":
        if kind == "sms.inbound":
            return "dunning.reply.received", {
                "prefect.resource.id": f"dunning.reply.{event_id}",
                "dunning.channel": "sms",
            }
        sid = str(payload.get("MessageSid") or payload.get("CallSid") or event_id)
        what = "message" if kind.startswith("sms.") else "call"
        return f"dunning.twilio.{kind}", {"prefect.resource.id": f"dunning.{what}.{sid}"}
    if provider == "whatsapp":
        if kind == "message":
            return "dunning.reply.received", {
                "prefect.resource.id": f"dunning.reply.{event_id}",
                "dunning.channel": "whatsapp",
            }
        if kind.startswith("status."):
            wamid = str(payload.get("id") or event_id)
            return f"dunning.whatsapp.{kind}", {"prefect.resource.id": f"dunning.message.{wamid}"}
        return "dunning.whatsapp.error", {"prefect.resource.id": f"dunning.whatsapp.{event_id}"}
    resource = {"prefect.resource.id": f"dunning.invoice.{number}", "dunning.provider": provider}
    if number:
        resource["prefect.resource.name"] = number
    action = kind.removeprefix("invoice.")
    if provider == "stripe":
        action = {"paid": "paid", "voided": "cancelled"}.get(action, "updated")
        if not kind.startswith("invoice."):
            return f"dunning.stripe.{kind}", {"prefect.resource.id": f"dunning.stripe.{event_id}"}
    status = str((payload.get("invoice") or {}).get("status") or "")
    if provider == "erp" and action == "updated" and status in CLOSED:
        action = status
    return f"dunning.invoice.{action}", resource


# -- the emission outbox: stored events (`dunning.ledger.inbound`) not yet emitted ------------


class PrefectEmitter:
    """Sends stored events to a Prefect server's events endpoint and marks them emitted."""

    def __init__(self, api_url: str | None, *, reconnection_attempts: int = 2) -> None:
        self.api_url = api_url
        self.reconnection_attempts = reconnection_attempts

    async def emit_pending(self, ledger: Ledger) -> int:
        """Emit every stored event (oldest first); returns how many the server took.

        A server that is down leaves the rest `stored` with the error noted; nothing raises.
        """
        from starlette.concurrency import run_in_threadpool

        rows = await run_in_threadpool(pending_webhook_events, ledger)
        if not rows or not self.api_url:
            return 0
        from prefect.events.clients import PrefectEventsClient
        from prefect.events.schemas.events import Event, Resource

        sent: list[dict[str, Any]] = []
        try:
            async with PrefectEventsClient(
                api_url=self.api_url, reconnection_attempts=self.reconnection_attempts
            ) as client:
                for row in rows:
                    spec = event_spec(row)
                    await client.emit(
                        Event(
                            id=spec.id,
                            event=spec.event,
                            resource=Resource(spec.resource),
                            payload=spec.payload,
                            occurred=spec.occurred,
                        )
                    )
                    sent.append(row)
            # Closed cleanly: the server read every event sent before the close.
        except Exception as exc:  # Prefect down or refusing: all of them again next round
            # (the ids are stable, so an event the server did get is not acted on twice)
            reason = f"Prefect API not reachable: {type(exc).__name__}: {exc}"
            await run_in_threadpool(note_emit_error, ledger, [int(r["id"]) for r in rows], reason)
            log.warning("%d webhook event(s) kept to emit later: %s", len(rows), reason)
            return 0
        for row in sent:
            await run_in_threadpool(mark_emitted, ledger, int(row["id"]))
            log.info("emitted %s event %s", row["provider"], row["event_id"])
        return len(sent)
