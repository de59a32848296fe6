"""The email channel block: SMTP connection (prefect-email credentials) and sender identity."""

from __future__ import annotations

import threading
from datetime import time

from prefect.blocks.core import Block
from prefect_email import EmailServerCredentials
from pydantic import Field

from blocks.catalog import EMAIL_LOGO, docs_url
from blocks.quota import MessageQuota
from dunning.act import EmailIdentity
from dunning.mail import split_addresses
from dunning.policy import Window
from dunning.smtp import DEFAULT_POOL_SIZE, SmtpPool, SmtpSettings

_pools: dict[tuple, SmtpPool] = {}
_pools_lock = threading.Lock()


class EmailChannel(MessageQuota, Block):
    """Send reminders by email.

    SMTP settings come from prefect-email's `EmailServerCredentials` block (server, port,
    SSL/STARTTLS/INSECURE, username, secret password). Connections are pooled and reused
    across the actions of a sweep.

    Attributes:
        credentials: SMTP server and login (prefect-email's `EmailServerCredentials`).
        from_address, from_name: The sender.
        reply_to: Where a person reads replies.
        bcc_archive: Archive address(es) copied on every message.
        window_start, window_end: Override the policy's sending window.
        pool_size: SMTP connections kept open.
        timeout_seconds: SMTP network timeout.
        messages_per_second: The SMTP account's quota, as a Prefect rate limit (0: none).

    Examples:
        Save the channel once:
        ```python
        from prefect_email import EmailServerCredentials
        from blocks import EmailChannel

        EmailChannel(
            credentials=EmailServerCredentials(smtp_server="smtp.acme.es", smtp_port=587,
                                               smtp_type="STARTTLS", username="ar@acme.es",
                                               password="..."),
            from_address="cobros@acme.es", from_name="Acme - Cobros",
            reply_to="maria.garcia@acme.es", bcc_archive="archivo@acme.es",
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for a sweep's `channel` parameter):
        ```python
        from blocks import EmailChannel

        email_channel = EmailChannel.load("BLOCK_NAME")
        print(email_channel.identity(), email_channel.quota_key())
        ```
    """

    _block_type_name = "Dunning Email Channel"
    _description = "SMTP (via prefect-email credentials), sender, reply-to, archive, window."
    _logo_url = EMAIL_LOGO
    _documentation_url = docs_url(_block_type_name)

    credentials: EmailServerCredentials = Field(description="SMTP server and login.")
    from_address: str = Field(description="Envelope and From address.")
    from_name: str = Field("", description="Display name, usually the company.")
    reply_to: str = Field("", description="Where a person reads replies.")
    bcc_archive: str = Field("", description="Archive address(es) copied on every message.")
    window_start: time | None = Field(None, description="Overrides the policy's window start.")
    window_end: time | None = Field(None, description="Overrides the policy's window end.")
    pool_size: int = Field(
        DEFAULT_POOL_SIZE, ge=1, le=32, description="SMTP connections kept open."
    )
    timeout_seconds: float = Field(30.0, gt=0, description="SMTP network timeout.")

    def quota_key(self) -> str:
        """`smtp-<saved name or server>`: one quota per SMTP account."""
        server = getattr(self.credentials.smtp_server, "value", self.credentials.smtp_server)
        return f"smtp-{self._block_document_name or server}"

    def identity(self) -> EmailIdentity:
        return EmailIdentity(
            from_address=self.from_address,
            from_name=self.from_name,
            reply_to=self.reply_to,
            bcc=tuple(split_addresses(self.bcc_archive)),
        )

    def window(self, default: Window) -> Window:
        return Window(start=self.window_start or default.start, end=self.window_end or default.end)

    def settings(self) -> SmtpSettings:
        c = self.credentials
        server = getattr(c.smtp_server, "value", c.smtp_server)
        smtp_type = getattr(c.smtp_type, "name", str(c.smtp_type))
        port = c.smtp_port or getattr(c.smtp_type, "value", 465)
        return SmtpSettings(
            host=server,
            port=int(port),
            security=smtp_type,
            username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            verify=c.verify if c.verify is not None else True,
            timeout=self.timeout_seconds,
        )

    def pool(self) -> SmtpPool:
        """The process-wide connection pool for these settings."""
        settings = self.settings()
        key = (settings, self.pool_size)
        with _pools_lock:
            if key not in _pools:
                _pools[key] = SmtpPool(settings, size=self.pool_size)
            return _pools[key]
