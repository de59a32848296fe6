"""A customer's email arriving in our mailbox on the test dovecot (`imap_server` fixture in
tests/conftest.py), and the `ImapMailbox` block that reads it: one fresh mailbox per test."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from imap_tools import MailBoxUnencrypted

from blocks.mailbox import ImapMailbox

#: The password of every test mailbox (the tests check it never shows in logs).
PASSWORD = "imap-secret"


def new_mailbox(imap_server: Any, tmp_path: Path) -> str:
    """A mailbox of its own for one test on the shared dovecot; returns its login."""
    login = f"{tmp_path.name}@empresa.example"
    imap_server.add_user(login, PASSWORD)
    return login


def mailbox_block(imap_server: Any, login: str, **fields: Any) -> ImapMailbox:
    """The `ImapMailbox` block of that mailbox (plain IMAP on loopback); `fields` adds e.g.
    `drafts_folder`."""
    return ImapMailbox(
        host="127.0.0.1",
        port=imap_server.port,
        security="none",
        username=login,
        password=PASSWORD,
        **fields,
    )


def arrive(
    imap_server: Any,
    login: str,
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    received_at: datetime,
    message_id: str,
) -> EmailMessage:
    """The customer's email lands in the mailbox's INBOX over IMAP; returns it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(received_at)
    msg["Message-ID"] = message_id
    msg.set_content(text)
    with MailBoxUnencrypted("127.0.0.1", imap_server.port).login(login, PASSWORD) as box:
        box.append(msg.as_bytes(), "INBOX")
    return msg
