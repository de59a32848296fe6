"""The mailbox replies arrive in, read over IMAP."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks.catalog import EMAIL_LOGO, docs_url
from dunning.ledger import Ledger
from dunning.replies.imap import ImapSettings, fetch_into


class ImapMailbox(Block):
    """Read customers' replies from an IMAP mailbox (the reminders' Reply-To address).

    New messages in `folder` are stored in the ledger's inbox and then moved to
    `processed_folder` (created if missing); nothing is deleted. A message too large, too
    deeply nested or unparseable is stored raw, moved to `quarantine_folder` and reported
    in a task; it never stops the others.

    Attributes:
        host, port, security: The IMAP server, its port and ssl, starttls or none.
        username, password: The login (the password is a secret).
        folder: Folder new replies are read from.
        processed_folder: Where read replies are moved.
        quarantine_folder: Where unreadable messages are moved (a task says so).
        drafts_folder: Where drafted answers are saved for a person to approve, as replies
            in the customer's thread (e.g. "Drafts"); empty: only in the desk.
        ca_file: CA bundle for a private certificate.
        timeout_seconds: IMAP network timeout.

    Examples:
        Save the mailbox once:
        ```python
        from blocks import ImapMailbox

        ImapMailbox(
            host="imap.acme.es", port=993, security="ssl",
            username="cobros@acme.es", password="...",
            folder="INBOX", processed_folder="Dunning/Processed",
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for process-replies' `mailbox` parameter):
        ```python
        from blocks import ImapMailbox

        imap_mailbox = ImapMailbox.load("BLOCK_NAME")
        print(imap_mailbox.host, imap_mailbox.folder)
        # new_ids = imap_mailbox.fetch_into(ledger)
        ```
    """

    _block_type_name = "Dunning IMAP Mailbox"
    _description = "IMAP mailbox where customers' replies to reminders arrive."
    _logo_url = EMAIL_LOGO
    _documentation_url = docs_url(_block_type_name)

    host: str = Field(description="IMAP server, e.g. imap.gmail.com or outlook.office365.com.")
    port: int = Field(993, description="993 for SSL, 143 for STARTTLS or no encryption.")
    security: Literal["ssl", "starttls", "none"] = Field(
        "ssl", description="'none' only for a server on this machine."
    )
    username: str = Field(description="Login, usually the mailbox address.")
    password: SecretStr = Field(description="Password or app password.")
    folder: str = Field("INBOX", description="Folder to read new replies from.")
    processed_folder: str = Field("Processed", description="Where read replies are moved.")
    quarantine_folder: str = Field(
        "Quarantine", description="Where unreadable messages are moved (a task says so)."
    )
    drafts_folder: str = Field(
        "",
        description="Drafted answers are also saved here as replies in the thread, for a "
        "person to approve (e.g. Drafts); empty: only in the desk.",
    )
    ca_file: str | None = Field(None, description="CA bundle for a private certificate.")
    timeout_seconds: float = Field(30.0, gt=0, description="IMAP network timeout.")

    def settings(self) -> ImapSettings:
        """The connection settings for `dunning.replies.imap` (the password stays secret)."""
        return ImapSettings(
            host=self.host,
            port=self.port,
            security=self.security,
            username=self.username,
            password=self.password,
            folder=self.folder,
            processed_folder=self.processed_folder,
            quarantine_folder=self.quarantine_folder,
            drafts_folder=self.drafts_folder,
            timeout=self.timeout_seconds,
            ca_file=self.ca_file,
        )

    def fetch_into(self, ledger: Ledger, limit: int = 500) -> list[int]:
        """Store new messages in the ledger's inbox; returns the new inbox ids."""
        return fetch_into(ledger, self.settings(), limit=limit)
