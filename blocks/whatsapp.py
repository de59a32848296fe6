"""The WhatsApp channel block: Cloud API phone number, token, webhook secrets, templates."""

from __future__ import annotations

import threading

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import API_LOGO, docs_url
from blocks.quota import MessageQuota
from dunning.whatsapp.client import CloudApiSettings, WhatsAppClient
from dunning.whatsapp.templates import TemplateBook

_clients: dict[CloudApiSettings, WhatsAppClient] = {}
_clients_lock = threading.Lock()


class WhatsAppCloudChannel(MessageQuota, Block):
    """Send reminders on WhatsApp through Meta's WhatsApp Business Cloud API.

    Reminders use templates approved in WhatsApp Manager, mapped per stage and language in
    `templates/whatsapp/*.yaml`; free text only answers a customer within 24 hours of their
    last message. The same block holds the webhook secrets the receiver checks
    (`dunning webhooks serve`): the app secret signs Meta's POSTs, the verify token answers
    Meta's subscription handshake.

    Attributes:
        phone_number_id: The sending number's id in WhatsApp Manager.
        access_token: Cloud API access token (a System User token; a secret).
        api_version: Graph API version.
        app_secret: Verifies the X-Hub-Signature-256 of webhook calls (a secret).
        verify_token: The token typed in Meta's webhook settings (a secret).
        base_url: API base URL (a local server in tests).
        templates_dir: Folder of the stage-to-template YAML files.
        timeout_seconds: HTTP timeout per request.
        messages_per_second: The number's quota, as a Prefect rate limit (0: none).
        max_attempts, backoff_seconds: Tries per message when rate-limited or Meta is down,
            and the first wait between them.

    Examples:
        Save the channel once:
        ```python
        from blocks import WhatsAppCloudChannel

        WhatsAppCloudChannel(
            phone_number_id="106540352242922",
            access_token="EAAG...",            # a System User token of the WhatsApp app
            app_secret="9f2c...",              # App settings > Basic > App secret
            verify_token="a-long-random-string",
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `whatsapp` parameter):
        ```python
        from blocks import WhatsAppCloudChannel

        whatsapp_cloud_channel = WhatsAppCloudChannel.load("BLOCK_NAME")
        print(whatsapp_cloud_channel.quota_key())
        ```
    """

    _block_type_name = "Dunning WhatsApp Cloud Channel"
    _description = "WhatsApp Business Cloud API: phone number id, token, webhook secrets."
    _logo_url = API_LOGO
    _documentation_url = docs_url(_block_type_name)

    phone_number_id: str = Field(description="The sending number's id in WhatsApp Manager.")
    access_token: SecretStr = Field(description="Cloud API access token (System User token).")
    api_version: str = Field("21.0", description="Graph API version, e.g. 21.0.")
    app_secret: SecretStr | None = Field(
        None, description="App secret: verifies the X-Hub-Signature-256 of webhook calls."
    )
    verify_token: SecretStr | None = Field(
        None, description="The token you typed in Meta's webhook settings (hub.verify_token)."
    )
    base_url: str = Field(
        "https://graph.facebook.com", description="API base URL (a local server in tests)."
    )
    templates_dir: str = Field(
        "", description="Folder of the stage-to-template YAML files; templates/whatsapp if empty."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="HTTP timeout per request.")

    def quota_key(self) -> str:
        """`whatsapp-<phone-number id>`: one quota per sending number (Meta's default
        throughput is 80 messages/s)."""
        return f"whatsapp-{self.phone_number_id}"

    max_attempts: int = Field(
        4, ge=1, le=10, description="Tries per message when rate-limited or Meta is down."
    )
    backoff_seconds: float = Field(
        2.0, ge=0, description="First wait between tries; doubles each time."
    )

    def settings(self) -> CloudApiSettings:
        """The client settings; an invalid token error names this block."""
        name = getattr(self, "_block_document_name", None)
        owner = (
            f"the WhatsAppCloudChannel block {name!r}" if name else "the WhatsAppCloudChannel block"
        )
        return CloudApiSettings(
            phone_number_id=self.phone_number_id,
            access_token=self.access_token.get_secret_value(),
            api_version=self.api_version,
            base_url=self.base_url,
            timeout=self.timeout_seconds,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
            owner=owner,
        )

    def client(self) -> WhatsAppClient:
        """The process-wide client for these settings (so a bad token fails fast for all)."""
        settings = self.settings()
        with _clients_lock:
            if settings not in _clients:
                _clients[settings] = WhatsAppClient(settings)
            return _clients[settings]

    def templates(self) -> TemplateBook:
        """The stage-to-template mapping."""
        return TemplateBook.load(self.templates_dir or None)
