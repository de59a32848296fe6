"""Signing secrets of the Stripe and ERP webhooks, for the receiver (`dunning webhooks serve`)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class WebhookSecrets(Block):
    """The secrets that prove a webhook call comes from Stripe or from your ERP.

    WhatsApp's secrets live in the `WhatsAppCloudChannel` block. In containers the
    `DUNNING_STRIPE_WEBHOOK_SECRET` / `DUNNING_ERP_WEBHOOK_SECRET` variables override these.

    Example:
        ```python
        from blocks.webhooks import WebhookSecrets

        WebhookSecrets(stripe_webhook_secret="whsec_...",       # Stripe Dashboard > Webhooks
                       erp_webhook_secret="a-long-random-string",
        ).save("default", overwrite=True)
        ```
    """

    _block_type_name = "Dunning Webhook Secrets"
    _description = "Signing secrets of the Stripe and ERP webhooks the receiver checks."

    stripe_webhook_secret: SecretStr | None = Field(
        None, description="The endpoint's signing secret (whsec_...)."
    )
    erp_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the ERP webhook (HMAC-SHA256 of the body)."
    )
