"""The webhook receiver: a small Starlette app, served by uvicorn (`dunning webhooks serve`).

Paths: `/webhooks/whatsapp` (GET handshake, POST events), `/webhooks/stripe`,
`/webhooks/erp`, `/webhooks/twilio/{sms/status,sms/inbound,voice/status,voice/gather,voice/answer}`
(`apps.webhooks.twilio`: form posts checked by `X-Twilio-Signature`, 403 when refused),
`/healthz`. For every POST, in this order:

1. the signature is checked on the raw body: missing or wrong -> 401, nothing stored;
   a Stripe timestamp older than 5 minutes -> 401 (a replay), logged;
2. the body is read: not JSON, or not the provider's shape -> 400, nothing stored;
3. each event is written to the ledger (`webhook_events`) and its effect applied (inbox,
   statuses, invoice closed); an event id seen before is ignored and logged, unless its
   effect never made it into the ledger (a crash between the two): then it is applied now.
   At start, every stored event whose effect is missing is applied;
4. the answer goes back (200), and the new events are emitted as Prefect events in the
   background; if Prefect is down they stay `stored` and are sent by the next round.

A provider whose secret is not configured is answered 503: nothing is ever accepted unsigned.
The WhatsApp verify token travels in the handshake's query string: the access log shows it
redacted (`RedactVerifyToken`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from apps.webhooks.emit import PrefectEmitter
from apps.webhooks.twilio import TwilioReceiverConfig, twilio_routes
from dunning.inbound.effects import apply_event, reapply_unapplied, store_event
from dunning.inbound.providers import (
    Incoming,
    PayloadError,
    erp_events,
    parse_json,
    stripe_events,
    whatsapp_events,
)
from dunning.inbound.verify import (
    SignatureError,
    StaleSignature,
    verify_sha256_header,
    verify_stripe,
)
from dunning.ledger import Ledger
from dunning.ledger.inbound import count_pending_webhook_events
from dunning.settings import settings

log = logging.getLogger("dunning.inbound")
MAX_BODY = 1024 * 1024
ERP_SIGNATURE_HEADER = "X-Dunning-Signature"

#: The settings (`DUNNING_*` variables or `.env`) of the secrets; they override the blocks'.
SECRET_SETTINGS = {
    "whatsapp_verify_token": "whatsapp_verify_token",
    "whatsapp_app_secret": "whatsapp_app_secret",
    "stripe_secret": "stripe_webhook_secret",
    "erp_secret": "erp_webhook_secret",
}


@dataclass(frozen=True)
class ReceiverConfig:
    """What the receiver needs: the ledger, each provider's secret, where Prefect is."""

    ledger_url: str
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    stripe_secret: SecretStr | None = None
    erp_secret: SecretStr | None = None
    #: Twilio's Auth Token and the SMS/voice blocks' public URL (`/webhooks/twilio/...`).
    twilio: TwilioReceiverConfig | None = None
    prefect_api_url: str | None = None
    stripe_tolerance_seconds: int = 300
    #: Seconds between rounds that send events Prefect did not take yet.
    emit_retry_seconds: float = 15.0

    @classmethod
    def from_environment(
        cls, ledger_url: str, defaults: dict[str, SecretStr | None] | None = None, **kw: Any
    ) -> ReceiverConfig:
        """Secrets from the settings (`DUNNING_*` variables, `.env`), else from `defaults`
        (the blocks)."""
        values: dict[str, Any] = dict(defaults or {})
        current = settings()
        for name, field_name in SECRET_SETTINGS.items():
            if current.secret_value(field_name):
                values[name] = getattr(current, field_name)
        return cls(ledger_url=ledger_url, **values, **kw)

    def configured(self) -> dict[str, bool]:
        return {
            "whatsapp": self.whatsapp_app_secret is not None,
            "stripe": self.stripe_secret is not None,
            "erp": self.erp_secret is not None,
        }


@dataclass
class _Runtime:
    config: ReceiverConfig
    ledger: Ledger
    emitter: PrefectEmitter
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def create_app(config: ReceiverConfig, emitter: PrefectEmitter | None = None) -> Starlette:
    """The receiver app (an ASGI app: `uvicorn.run(create_app(config))`)."""
    rt = _Runtime(
        config, Ledger(config.ledger_url), emitter or PrefectEmitter(config.prefect_api_url)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not config.prefect_api_url:
            log.warning("no Prefect API URL: events are stored in the ledger, not emitted")
        missing = [p for p, ok in config.configured().items() if not ok]
        if missing:
            log.warning("no secret for %s: those webhooks are refused (503)", ", ".join(missing))
        _redact_access_log()
        # Events an earlier run stored but died before applying: their effect goes in now.
        twilio = config.twilio.effects if config.twilio else None
        reapplied = await run_in_threadpool(reapply_unapplied, rt.ledger, twilio=twilio)
        if reapplied:
            log.warning(
                "applied %d webhook event(s) an earlier run stored but not applied", reapplied
            )
        rt.wake.set()  # events left stored by an earlier run go out first
        task = asyncio.create_task(_emit_loop(rt))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def whatsapp_handshake(request: Request) -> Response:
        token = config.whatsapp_verify_token
        if token is None:
            return _refuse(503, "whatsapp", "no verify token configured")
        params = request.query_params
        given = params.get("hub.verify_token", "")
        if params.get("hub.mode") == "subscribe" and hmac.compare_digest(
            given.encode(), token.get_secret_value().encode()
        ):
            log.info("whatsapp webhook subscription verified")
            return PlainTextResponse(params.get("hub.challenge", ""))
        return _refuse(403, "whatsapp", "verify token does not match", request)

    async def whatsapp(request: Request) -> Response:
        secret = config.whatsapp_app_secret

        def check(body: bytes) -> None:
            assert secret is not None
            header = request.headers.get("X-Hub-Signature-256")
            verify_sha256_header(body, header, secret.get_secret_value(), "X-Hub-Signature-256")

        return await _receive(rt, request, "whatsapp", secret, check, whatsapp_events)

    async def stripe(request: Request) -> Response:
        secret = config.stripe_secret

        def check(body: bytes) -> None:
            assert secret is not None
            verify_stripe(
                body,
                request.headers.get("Stripe-Signature"),
                secret.get_secret_value(),
                tolerance=config.stripe_tolerance_seconds,
            )

        return await _receive(rt, request, "stripe", secret, check, stripe_events)

    async def erp(request: Request) -> Response:
        secret = config.erp_secret

        def check(body: bytes) -> None:
            assert secret is not None
            header = request.headers.get(ERP_SIGNATURE_HEADER)
            verify_sha256_header(body, header, secret.get_secret_value(), ERP_SIGNATURE_HEADER)

        return await _receive(rt, request, "erp", secret, check, erp_events)

    async def healthz(request: Request) -> Response:
        try:
            pending = await run_in_threadpool(count_pending_webhook_events, rt.ledger)
        except Exception as exc:
            return JSONResponse({"status": "error", "ledger": type(exc).__name__}, 503)
        return JSONResponse(
            {
                "status": "ok",
                "pending_events": pending,
                "prefect": bool(config.prefect_api_url),
                "providers": config.configured(),
            }
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/webhooks/whatsapp", whatsapp_handshake, methods=["GET"]),
            Route("/webhooks/whatsapp", whatsapp, methods=["POST"]),
            Route("/webhooks/stripe", stripe, methods=["POST"]),
            Route("/webhooks/erp", erp, methods=["POST"]),
            *twilio_routes(config.twilio, rt.ledger, rt.wake.set),
        ],
        lifespan=lifespan,
    )


async def _receive(
    rt: _Runtime,
    request: Request,
    provider: str,
    secret: SecretStr | None,
    check: Callable[[bytes], None],
    parse: Callable[[Any], list[Incoming]],
) -> Response:
    if secret is None:
        return _refuse(503, provider, "no secret configured")
    # Refused before it is read whole: nobody unauthenticated gets to fill our memory.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return _refuse(413, provider, f"body of {declared} bytes")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY:
            return _refuse(413, provider, f"body over {MAX_BODY} bytes")
    body = bytes(received)
    try:
        check(body)
    except StaleSignature as exc:
        return _refuse(401, provider, f"replayed or delayed call refused: {exc}", request)
    except SignatureError as exc:
        return _refuse(401, provider, f"signature refused: {exc}", request)
    try:
        events = parse(parse_json(body))
    except PayloadError as exc:
        return _refuse(400, provider, f"malformed: {exc}", request)
    except (TypeError, AttributeError, ValueError, RecursionError, OverflowError) as exc:
        # A signed body of a shape the readers did not foresee is still a malformed body:
        # refused before anything is stored, never a 500.
        return _refuse(400, provider, f"malformed: {type(exc).__name__}", request)
    try:
        stored, duplicates = await run_in_threadpool(_store_and_apply, rt.ledger, events)
    except Exception as exc:
        log.exception("%s webhook stored but its effect failed; the provider will retry", provider)
        return JSONResponse({"error": f"could not apply the event: {type(exc).__name__}"}, 500)
    if stored:
        rt.wake.set()
    return JSONResponse({"stored": stored, "duplicates": duplicates})


def _store_and_apply(ledger: Ledger, events: list[Incoming]) -> tuple[int, int]:
    stored = duplicates = 0
    for incoming in events:
        row_id, new = store_event(ledger, incoming)
        if not new:
            duplicates += 1
            log.info("%s event %s seen before: ignored", incoming.provider, incoming.event_id)
            continue
        apply_event(ledger, row_id, incoming)
        stored += 1
        log.info(
            "%s event %s (%s%s) stored",
            incoming.provider,
            incoming.event_id,
            incoming.kind,
            f", invoice {incoming.invoice_number}" if incoming.invoice_number else "",
        )
    return stored, duplicates


async def _emit_loop(rt: _Runtime) -> None:
    """Emit stored events when a request stored some, and every few seconds to catch up."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rt.wake.wait(), timeout=rt.config.emit_retry_seconds)
        rt.wake.clear()
        try:
            await rt.emitter.emit_pending(rt.ledger)
        except Exception:  # never let the loop die: the next round tries again
            log.exception("emitting webhook events failed")


def _refuse(status: int, provider: str, reason: str, request: Request | None = None) -> Response:
    client = request.client.host if request is not None and request.client else "?"
    log.warning("%s webhook refused (%d): %s [from %s]", provider, status, reason, client)
    return JSONResponse({"error": reason}, status)


class RedactVerifyToken(logging.Filter):
    """Hides the value of `hub.verify_token` in uvicorn's access log lines (uvicorn logs
    the whole query string; the token is a secret)."""

    PATTERN = re.compile(r"(?i)(hub(?:\.|%2e)verify_token=)[^&\s]*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1[redacted]", record.msg)
        return True


def _redact_access_log() -> None:
    """Install `RedactVerifyToken` on uvicorn's access logger (once; called at startup,
    after uvicorn has configured its logging)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactVerifyToken) for f in access.filters):
        access.addFilter(RedactVerifyToken())
