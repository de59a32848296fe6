"""Signing secrets of the Stripe and ERP webhooks, for the receiver (`dunning webhooks serve`)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import SECRET_LOGO, docs_url


class WebhookSecrets(Block):
    """The secrets that prove a webhook call comes from Stripe or from your ERP.

    WhatsApp's secrets live in the `WhatsAppCloudChannel` block. In containers the
    `DUNNING_STRIPE_WEBHOOK_SECRET` / `DUNNING_ERP_WEBHOOK_SECRET` variables override these.

    Attributes:
        stripe_webhook_secret: The Stripe endpoint's signing secret (`whsec_...`).
        erp_webhook_secret: Shared secret of the ERP webhook (HMAC-SHA256 of the body).

    Examples:
        Save the secrets once:
        ```python
        from blocks import WebhookSecrets

        WebhookSecrets(stripe_webhook_secret="whsec_...",       # Stripe Dashboard > Webhooks
                       erp_webhook_secret="a-long-random-string",
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load them (what `dunning webhooks serve --secrets-block BLOCK_NAME` does):
        ```python
        from blocks import WebhookSecrets

        webhook_secrets = WebhookSecrets.load("BLOCK_NAME")
        print(webhook_secrets.stripe_webhook_secret)  # shown as **********
        ```
    """

    _block_type_name = "Dunning Webhook Secrets"
    _description = "Signing secrets of the Stripe and ERP webhooks the receiver checks."
    _logo_url = SECRET_LOGO
    _documentation_url = docs_url(_block_type_name)

    stripe_webhook_secret: SecretStr | None = Field(
        None, description="The endpoint's signing secret (whsec_...)."
    )
    erp_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the ERP webhook (HMAC-SHA256 of the body)."
    )
