"""The receiver's Twilio routes: SMS statuses and replies, call statuses and the call menu.

For each POST, in this order (the same as the other providers'):

1. the form is read (at most `MAX_BODY` bytes) and `X-Twilio-Signature` is checked against
   the *public* URL the SMS/voice block declares (`webhook_base_url` + the path + the query
   Twilio called), with the account's Auth Token: missing, forged or signed for another
   URL -> 403, nothing stored;
2. the form becomes one event (`dunning.twilio.webhooks.twilio_event`): a required field
   missing -> 400, nothing stored;
3. the event is stored in `webhook_events` once (by Twilio's SID), then applied (outbox
   statuses, opt-outs, the inbox, call outcomes, the menu's pause and tasks); a SID seen
   before is answered as before and not applied again;
4. the answer is TwiML, and the event is emitted as a Prefect event in the background.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from pydantic import SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dunning.inbound.effects import apply_event, store_event
from dunning.inbound.providers import Incoming, PayloadError
from dunning.inbound.verify import SignatureError
from dunning.ledger import Ledger
from dunning.twilio.signature import HEADER, verify_twilio
from dunning.twilio.webhooks import (
    ROUTES,
    TwilioEffects,
    flat,
    replay_answer,
    twilio_event,
)

if TYPE_CHECKING:
    from blocks.twilio import SmsChannel, VoiceChannel
    from dunning.policy import Policy

log = logging.getLogger("dunning.inbound")
MAX_BODY = 64 * 1024  # Twilio's forms are a few hundred bytes


@dataclass(frozen=True)
class TwilioReceiverConfig:
    """The Twilio side of the receiver: the Auth Token that signs the calls, the public base
    URL(s) the blocks declare, and what applying the events needs."""

    auth_token: SecretStr
    sms_base_url: str = ""
    voice_base_url: str = ""
    effects: TwilioEffects = field(default_factory=TwilioEffects)

    @classmethod
    def from_blocks(
        cls,
        sms: SmsChannel | None = None,
        voice: VoiceChannel | None = None,
        policy: Policy | None = None,
    ) -> TwilioReceiverConfig:
        """From an `SmsChannel` and/or `VoiceChannel` block (same Twilio account)."""
        block = sms or voice
        if block is None:
            raise ValueError("give the SmsChannel or the VoiceChannel block (or both)")
        creds = block.credentials
        if creds.auth_token is None:
            raise ValueError(
                "the TwilioCredentials block has no auth_token: Twilio signs its webhooks "
                "with it, so the receiver needs it even when the API calls use an API key"
            )
        return cls(
            auth_token=creds.auth_token,
            sms_base_url=sms.webhook_base_url if sms else "",
            voice_base_url=voice.webhook_base_url if voice else "",
            effects=TwilioEffects(
                voice=voice.settings() if voice else TwilioEffects().voice, policy=policy
            ),
        )

    def public_url(self, path: str, query: str) -> str:
        base = self.sms_base_url if path.startswith("/webhooks/twilio/sms") else self.voice_base_url
        base = base or self.sms_base_url or self.voice_base_url
        return base.rstrip("/") + path + (f"?{query}" if query else "")


def twilio_routes(
    config: TwilioReceiverConfig | None, ledger: Ledger, wake: Callable[[], None]
) -> list[Route]:
    """The Twilio routes (`dunning.twilio.webhooks.ROUTES`); `wake()` tells the emitter new
    events are stored."""

    async def receive(request: Request) -> Response:
        path = request.url.path
        if config is None:
            return _refuse(503, path, "no Twilio auth token configured")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            return _refuse(413, path, f"body of {declared} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return _refuse(413, path, f"body over {MAX_BODY} bytes")
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            return _refuse(400, path, "body is not UTF-8")
        url = config.public_url(path, request.url.query)
        try:
            verify_twilio(
                url, form, request.headers.get(HEADER), config.auth_token.get_secret_value()
            )
        except SignatureError as exc:
            return _refuse(403, path, f"signature refused: {exc}", request)
        # Our own query parameters (the call's language on the menu URL) join the form.
        params = {k: v for k, v in request.query_params.items()} | flat(form)
        try:
            incoming = twilio_event(path, params)
        except PayloadError as exc:
            return _refuse(400, path, f"malformed: {exc}", request)
        try:
            twiml, new = await run_in_threadpool(_store_and_apply, ledger, incoming, config)
        except Exception as exc:
            log.exception("twilio webhook %s stored but its effect failed; Twilio retries", path)
            return JSONResponse({"error": f"could not apply the event: {type(exc).__name__}"}, 500)
        if new:
            wake()
        return Response(twiml, media_type="application/xml")

    return [Route(path, receive, methods=["POST"]) for path in ROUTES]


def _store_and_apply(
    ledger: Ledger, incoming: Incoming, config: TwilioReceiverConfig
) -> tuple[str, bool]:
    row_id, new = store_event(ledger, incoming)
    if not new:
        log.info("twilio event %s seen before: ignored", incoming.event_id)
        return replay_answer(incoming, config.effects, ledger), False
    # The same effects the receiver re-applies at start (`reapply_unapplied`).
    done = apply_event(ledger, row_id, incoming, twilio=config.effects)
    twiml = done.pop("twiml")
    log.info("twilio event %s (%s) stored: %s", incoming.event_id, incoming.kind, done)
    return twiml, True


def _refuse(status: int, path: str, reason: str, request: Request | None = None) -> Response:
    client = request.client.host if request is not None and request.client else "?"
    log.warning("twilio webhook %s refused (%d): %s [from %s]", path, status, reason, client)
    return JSONResponse({"error": reason}, status)
