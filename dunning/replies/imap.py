"""Read replies from an IMAP mailbox into the ledger's inbox.

Fetching is store-then-move: every message is written to the ledger (once, by Message-ID)
before it leaves the watched folder, so a crash in between only means the next fetch finds
it again and the ledger ignores the copy. Nothing is deleted.

One message can never stop the others. Before a message is parsed, its size (the server's
RFC822.SIZE, before downloading), its number of parts and of nested containers are
checked against `MAX_MESSAGE_BYTES`, `MAX_PARTS` and `MAX_CONTAINERS` (2,000 nested
multiparts made Python's parser recurse to death); after parsing, its depth against
`MAX_DEPTH`. A message over a limit, or that fails to parse, is stored raw in the inbox
(state `quarantined`: never classified or acted on), moved to the quarantine folder, and a
task tells a person to look at it.

Example:
    >>> settings = ImapSettings(host="imap.example.com", username="ar@example.com",
    ...                         password="...", processed_folder="Dunning/Processed")
    >>> new_ids = fetch_into(ledger, settings)
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import html
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Literal

from imap_tools import (
    AND,
    BaseMailBox,
    H,
    MailBox,
    MailBoxStartTls,
    MailBoxUnencrypted,
    MailMessage,
    MailMessageFlags,
)
from imap_tools.errors import MailboxFetchError
from imap_tools.utils import check_command_status
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


#: Larger messages are not downloaded: only their header is stored, and they are set aside.
MAX_MESSAGE_BYTES = 25_000_000
#: At most this many MIME parts (Content-Type headers) in one message...
MAX_PARTS = 500
#: ...of which at most this many containers (multipart/* or message/*): this bounds the
#: nesting depth before the parser sees the message...
MAX_CONTAINERS = 100
#: ...and the parsed message may nest at most this deep.
MAX_DEPTH = 30
#: How much of a message set aside is stored when it is too large to download.
QUARANTINE_HEADER_BYTES = 64_000

_CONTENT_TYPE = re.compile(rb"(?im)^content-type:[ \t]*(?:\r?\n[ \t]+)?(multipart/|message/)?")
_SIZE = re.compile(rb"RFC822\.SIZE\s+(\d+)")
_UID = re.compile(rb"UID\s+(\d+)")


class UnreadableMessage(ValueError):
    """A message that is over a limit or cannot be parsed (the message says which)."""


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
    quarantine_folder: str = "Quarantine"
    timeout: float = 30.0
    #: Drafted answers are saved here for a person to approve ("" : not saved to IMAP).
    drafts_folder: str = ""
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
    the processed folder. Returns the ids of the inbox rows that are new (to act on).

    A message over a limit or that cannot be parsed is stored raw as `quarantined`, moved
    to `settings.quarantine_folder` and reported in a task (see the module docstring).
    """
    with open_mailbox(settings) as box:
        uids = box.uids("ALL")[:limit]
        if not uids:
            return []
        sizes = _sizes(box, uids)
        read: dict[str, InboundMessage] = {}
        unreadable: dict[str, tuple[bytes, str]] = {}  # uid -> (raw or its header, reason)
        for uid in uids:
            size = sizes.get(uid, 0)
            if size > MAX_MESSAGE_BYTES:
                head = _fetch(box, uid, "BODY.PEEK[HEADER]")[:QUARANTINE_HEADER_BYTES]
                unreadable[uid] = (head, f"too large ({size:,} bytes; limit {MAX_MESSAGE_BYTES:,})")
                continue
            raw = _fetch(box, uid, "BODY.PEEK[]")
            if not raw:
                # Moved out meanwhile by another reader of the folder (the listener and the
                # poll may run at once): that reader stored it. Not an empty message.
                continue
            try:
                read[uid] = to_inbound(parse_message(raw))
            except Exception as exc:  # whatever one message does, the others go on
                reason = str(exc) if isinstance(exc, UnreadableMessage) else type(exc).__name__
                unreadable[uid] = (raw, f"cannot be read: {reason}")
        new_ids = ledger.store_inbound(list(read.values()))
        _quarantine(ledger, settings, unreadable)
        for folder, moved in (
            (settings.processed_folder, list(read)),
            (settings.quarantine_folder, list(unreadable)),
        ):
            if moved:
                if not box.folder.exists(folder):
                    box.folder.create(folder)
                box.move(moved, folder)
    return new_ids


def append_draft(settings: ImapSettings, message: EmailMessage) -> bool:
    """Save `message` (a drafted answer, already threaded under the customer's message) to
    `settings.drafts_folder` with the \\Draft flag, creating the folder if missing; False
    when a message with its Message-ID is already there (saved by an earlier run)."""
    folder = settings.drafts_folder
    if not folder:
        raise ValueError("append_draft: the mailbox has no drafts_folder")
    with open_mailbox(settings) as box:
        if not box.folder.exists(folder):
            box.folder.create(folder)
        box.folder.set(folder)
        if message["Message-ID"] and box.uids(AND(header=H("Message-ID", message["Message-ID"]))):
            return False
        box.append(message.as_bytes(), folder, flag_set=[MailMessageFlags.DRAFT])
    return True


def parse_message(raw: bytes) -> MailMessage:
    """Parse one raw message, after checking what could make the parser or its users blow
    up: the number of parts and of nested containers (counted on the bytes), then the depth.

    Raises `UnreadableMessage` saying which limit the message is over.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise UnreadableMessage(f"{len(raw):,} bytes, over {MAX_MESSAGE_BYTES:,}")
    kinds = [m.group(1) for m in _CONTENT_TYPE.finditer(raw)]
    containers = sum(1 for kind in kinds if kind)
    if len(kinds) > MAX_PARTS or containers > MAX_CONTAINERS:
        raise UnreadableMessage(
            f"{len(kinds)} parts of which {containers} multipart or message containers "
            f"(limits {MAX_PARTS} and {MAX_CONTAINERS})"
        )
    message = MailMessage([(b"", raw)])
    depth, stack = 0, [(message.obj, 1)]
    while stack:  # iterative: the depth check itself must not recurse
        part, level = stack.pop()
        depth = max(depth, level)
        if part.is_multipart():
            stack.extend((sub, level + 1) for sub in part.get_payload())
    if depth > MAX_DEPTH:
        raise UnreadableMessage(f"nested {depth} levels deep (limit {MAX_DEPTH})")
    return message


def _sizes(box: BaseMailBox, uids: list[str]) -> dict[str, int]:
    """uid -> the server's RFC822.SIZE, for all of `uids` in one command."""
    result = box.client.uid("FETCH", ",".join(uids), "(UID RFC822.SIZE)")
    check_command_status(result, MailboxFetchError)
    sizes = {}
    for item in result[1]:
        line = item[0] if isinstance(item, tuple) else item
        uid, size = _UID.search(line or b""), _SIZE.search(line or b"")
        if uid and size:
            sizes[uid.group(1).decode()] = int(size.group(1))
    return sizes


def _fetch(box: BaseMailBox, uid: str, part: str) -> bytes:
    """One message's raw bytes (or its header), without parsing or marking it seen."""
    result = box.client.uid("FETCH", uid, f"({part})")
    check_command_status(result, MailboxFetchError)
    return b"".join(item[1] for item in result[1] if isinstance(item, tuple))


def _quarantine(
    ledger: Ledger, settings: ImapSettings, unreadable: dict[str, tuple[bytes, str]]
) -> None:
    """Store each unreadable message raw (never acted on) and open a task for it, once."""
    for raw, reason in unreadable.values():
        # Only the top-level header is parsed: it cannot nest, whatever the body does.
        header = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        provider_id = " ".join(str(header.get("message-id", "")).split())
        provider_id = (
            provider_id or f"<sha256.{hashlib.sha256(raw).hexdigest()[:32]}@no-message-id>"
        )
        sender = " ".join(str(header.get("from", "")).split())[:200]
        ids = ledger.store_inbound(
            [
                InboundMessage(
                    provider_id=provider_id,
                    channel="email",
                    received_at=datetime.now(UTC),
                    sender=sender.lower(),
                    subject=" ".join(str(header.get("subject", "")).split())[:500],
                    # Raw, as received (a NUL byte is not storable in PostgreSQL text).
                    text=raw.decode("utf-8", "replace").replace("\x00", "\ufffd"),
                    state="quarantined",
                    outcome=f"not processed: {reason}; moved to {settings.quarantine_folder}",
                )
            ]
        )
        for inbound_id in ids:  # empty when it was stored (and reported) before
            ledger.open_task(
                key=f"reply:{inbound_id}:quarantine",
                title=f"Unreadable email from {sender or 'unknown sender'} ({reason}): open it "
                f"in the mailbox folder {settings.quarantine_folder} and act on it by hand",
                assignee="account_owner",
                due_on=datetime.now(UTC).date() + timedelta(days=1),
                note=f"Inbox message {inbound_id}, {provider_id}",
            )


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
