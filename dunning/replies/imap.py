"""Read replies from an IMAP mailbox into the ledger's inbox.

Fetching is store-then-move: every message is written to the ledger (once, by Message-ID)
before it leaves the watched folder, so a crash in between only means the next fetch finds
it again and the ledger ignores the copy. Nothing is deleted.

Example:
    >>> settings = ImapSettings(host="imap.example.com", username="ar@example.com",
    ...                         password="...", processed_folder="Dunning/Processed")
    >>> new_ids = fetch_into(ledger, settings)
"""

from __future__ import annotations

import hashlib
import html
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage
from pydantic import SecretStr

from dunning.ledger import InboundMessage, Ledger
from dunning.replies.authentication import HEADER as AUTH

#: Headers kept with each message: they tell auto-replies and bulk mail from people.
KEPT_HEADERS = (
    "auto-submitted",
    "x-auto-response-suppress",
    "precedence",
    "x-autoreply",
    "x-autorespond",
    "x-autoresponse",
    "return-path",
    "list-id",
    "content-type",
    AUTH,
)

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|answer)|auto:|out of (the )?office|"
    r"respuesta autom[aá]tica|fuera de (la )?oficina|ausencia|resposta autom[aá]tica|"
    r"aus[eê]ncia|fora do escrit[oó]rio|undeliverable|delivery status notification|"
    r"mail delivery (failed|subsystem)|returned mail|no entregado|n[aã]o entregue)",
    re.IGNORECASE,
)


class MailboxError(RuntimeError):
    """The mailbox could not be read: wrong host, port, TLS mode or credentials."""


@dataclass(frozen=True)
class ImapSettings:
    """How to reach the mailbox replies arrive in (the `ImapMailbox` block builds this).

    The password is kept as a `SecretStr` (a plain string given is wrapped), so neither
    `repr` nor a log line nor a traceback's locals show it.
    """

    host: str
    username: str
    password: SecretStr
    port: int = 993
    security: Literal["ssl", "starttls", "none"] = "ssl"
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    timeout: float = 30.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.password, SecretStr):
            object.__setattr__(self, "password", SecretStr(str(self.password)))


@contextmanager
def open_mailbox(settings: ImapSettings) -> Iterator[BaseMailBox]:
    """A logged-in mailbox with the watched folder selected."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.security == "ssl":
        box: BaseMailBox = MailBox(
            settings.host, settings.port, timeout=settings.timeout, ssl_context=context
        )
    elif settings.security == "starttls":
        box = MailBoxStartTls(
            settings.host, settings.port, timeout=settings.timeout, ssl_context=context
        )
    else:
        box = MailBoxUnencrypted(settings.host, settings.port, timeout=settings.timeout)
    try:
        box.login(
            settings.username, settings.password.get_secret_value(), initial_folder=settings.folder
        )
    except Exception as exc:
        # The password is never part of the message.
        raise MailboxError(
            f"cannot log in to {settings.host}:{settings.port} as {settings.username} "
            f"({settings.security}): {type(exc).__name__}: {exc}"
        ) from None
    try:
        yield box
    finally:
        box.logout()


def fetch_into(ledger: Ledger, settings: ImapSettings, *, limit: int = 500) -> list[int]:
    """Store new messages of the watched folder in the ledger's inbox, then move them to
    the processed folder. Returns the ids of the inbox rows that are new."""
    with open_mailbox(settings) as box:
        fetched = list(box.fetch("ALL", limit=limit, mark_seen=False, bulk=True))
        if not fetched:
            return []
        new_ids = ledger.store_inbound([to_inbound(m) for m in fetched])
        if not box.folder.exists(settings.processed_folder):
            box.folder.create(settings.processed_folder)
        box.move([m.uid for m in fetched if m.uid], settings.processed_folder)
    return new_ids


def to_inbound(message: MailMessage) -> InboundMessage:
    """One fetched email as an inbox row (not yet matched or classified)."""
    # Unfolded: a long References header arrives on several lines, and a line break in a
    # header value would make our threaded answer unbuildable.
    headers = {k.lower(): " ".join(", ".join(v).split()) for k, v in message.headers.items()}
    # Each Authentication-Results header is one server's verdicts: kept one per line, not
    # joined with commas, so each parses on its own (dunning.replies.authentication).
    results = [
        " ".join(v.split()) for k, vs in message.headers.items() if k.lower() == AUTH for v in vs
    ]
    if results:
        headers[AUTH] = "\n".join(results)
    provider_id = headers.get("message-id", "").strip() or _content_id(message)
    received = _received_at(message)
    return InboundMessage(
        provider_id=provider_id,
        channel="email",
        received_at=received.astimezone(UTC),
        sender=(message.from_ or "").lower(),
        sender_name=message.from_values.name if message.from_values else "",
        subject=message.subject or "",
        text=message.text or html_to_text(message.html or ""),
        in_reply_to=headers.get("in-reply-to", ""),
        references=headers.get("references", ""),
        headers={k: headers[k] for k in KEPT_HEADERS if k in headers},
    )


def _received_at(message: MailMessage) -> datetime:
    """When the message was written, from its Date header, but never later than now: the
    sender writes that header, and a date in the future would push "tomorrow" in a promise
    further out. (A date in the past only makes a promise look late: a person checks.)"""
    now = datetime.now(UTC)
    sent = message.date
    if sent.year <= 1900:
        return now
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    return min(sent, now)


def is_auto_reply(headers: dict[str, str], subject: str = "") -> bool:
    """True for machine-sent mail: vacation replies, bounces, lists. Never answer these.

    Uses RFC 3834 `Auto-Submitted`, Exchange's `X-Auto-Response-Suppress`, `Precedence`,
    the `X-Autoreply` family, an empty `Return-Path` (bounces) and the usual subjects.
    """
    h = {k.lower(): (v or "").strip().lower() for k, v in headers.items()}
    if h.get("auto-submitted", "no") not in ("", "no"):
        return True
    if any(t in h.get("x-auto-response-suppress", "") for t in ("all", "oof", "autoreply")):
        return True
    if h.get("precedence", "") in ("bulk", "junk", "list", "auto_reply"):
        return True
    if any(h.get(k) for k in ("x-autoreply", "x-autorespond", "x-autoresponse")):
        return True
    if h.get("return-path", None) == "<>" or "report-type=delivery-status" in h.get(
        "content-type", ""
    ):
        return True
    return bool(_AUTO_SUBJECT.match(subject or ""))


def html_to_text(markup: str) -> str:
    """Plain text of an HTML-only email: enough to classify it, not to display it."""
    markup = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</tr>|</li>", "\n", markup)
    markup = re.sub(r"(?i)<blockquote\b", "\n> <blockquote", markup)
    text = html.unescape(re.sub(r"<[^>]+>", "", markup))
    return "\n".join(line.strip() for line in text.splitlines()).strip()


def _content_id(message: MailMessage) -> str:
    """A stable id for a message that has no Message-ID."""
    digest = hashlib.sha256(message.obj.as_bytes()).hexdigest()[:32]
    return f"<sha256.{digest}@no-message-id>"
