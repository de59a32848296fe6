"""`dunning webhooks ...`: the receiver that turns provider webhooks into ledger rows and
Prefect events.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(help="Webhook receiver (WhatsApp, Stripe, ERP, Twilio).", no_args_is_help=True)


@app.command("serve")
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (keep loopback behind a tunnel or proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8787,
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", help="Ledger SQLAlchemy URL (default: DUNNING_LEDGER_URL)."),
    ] = None,
    ledger_block: Annotated[
        str | None, typer.Option(help="Saved LedgerDatabase block, when no --ledger.")
    ] = None,
    whatsapp_block: Annotated[
        str | None,
        typer.Option(help="Saved WhatsAppCloudChannel block (app secret, verify token)."),
    ] = None,
    secrets_block: Annotated[
        str | None, typer.Option(help="Saved WebhookSecrets block (Stripe and ERP secrets).")
    ] = None,
    sms_block: Annotated[
        str | None,
        typer.Option(help="Saved SmsChannel block: Twilio's Auth Token and the public URL."),
    ] = None,
    voice_block: Annotated[
        str | None,
        typer.Option(help="Saved VoiceChannel block: the call menu, retries, public URL."),
    ] = None,
    prefect_api_url: Annotated[
        str | None,
        typer.Option(help="Prefect API to emit events to; PREFECT_API_URL if empty."),
    ] = None,
    emit_retry_seconds: Annotated[
        float, typer.Option(help="Seconds between tries to emit events Prefect did not take.")
    ] = 15.0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Receive WhatsApp, Stripe and ERP webhooks: verify, store in the ledger, emit events.

    Secrets come from the `DUNNING_WHATSAPP_VERIFY_TOKEN`, `DUNNING_WHATSAPP_APP_SECRET`,
    `DUNNING_STRIPE_WEBHOOK_SECRET` and `DUNNING_ERP_WEBHOOK_SECRET` settings (variables or
    `.env`), else from the blocks named here. A provider without a secret is refused (503).
    Twilio's routes (`/webhooks/twilio/...`) take the Auth Token and the public URL from the
    SMS and/or voice channel blocks (`--sms-block`, `--voice-block`).
    """
    import logging

    import uvicorn

    from apps.webhooks.app import ReceiverConfig, create_app

    defaults: dict = {}
    if whatsapp_block:
        from blocks import WhatsAppCloudChannel, resolve_block

        wa = resolve_block(whatsapp_block, WhatsAppCloudChannel)
        defaults |= {"whatsapp_app_secret": wa.app_secret, "whatsapp_verify_token": wa.verify_token}
    if secrets_block:
        from blocks import WebhookSecrets, resolve_block

        ws = resolve_block(secrets_block, WebhookSecrets)
        defaults |= {"stripe_secret": ws.stripe_webhook_secret, "erp_secret": ws.erp_webhook_secret}
    from dunning.settings import settings

    ledger = ledger or settings().ledger_url
    if not ledger and ledger_block:
        from blocks import LedgerDatabase, resolve_block

        ledger = resolve_block(ledger_block, LedgerDatabase).connection_url()
    if not ledger:
        typer.echo(
            "no ledger: pass --ledger URL, set DUNNING_LEDGER_URL or --ledger-block", err=True
        )
        raise typer.Exit(2)
    if prefect_api_url is None:
        from prefect.settings import PREFECT_API_URL

        prefect_api_url = PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL")
    twilio = None
    if sms_block or voice_block:
        from apps.webhooks.twilio import TwilioReceiverConfig
        from blocks import SmsChannel, VoiceChannel, resolve_block

        sms = resolve_block(sms_block, SmsChannel) if sms_block else None
        voice = resolve_block(voice_block, VoiceChannel) if voice_block else None
        twilio = TwilioReceiverConfig.from_blocks(sms, voice)
    config = ReceiverConfig.from_environment(
        ledger,
        defaults,
        prefect_api_url=prefect_api_url,
        emit_retry_seconds=emit_retry_seconds,
        twilio=twilio,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    url = f"http://{host}:{port}"
    typer.echo(
        f"webhook receiver on {url}  (POST {url}/webhooks/whatsapp|stripe|erp, GET {url}/healthz)"
    )
    on = [p for p, ok in config.configured().items() if ok]
    typer.echo(
        f"providers with a secret: {', '.join(on) or 'none'}; Prefect: {prefect_api_url or 'none'}"
    )
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level)
