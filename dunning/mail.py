"""Build reminder emails: headers, parts, attachment, deterministic Message-ID."""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses
from pathlib import Path

from dunning.render import RenderedMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Envelope:
    """Who a message is from and to, with archive copies (BCC: envelope only)."""

    sender: str
    recipients: list[str]
    bcc: list[str] = field(default_factory=list)

    @property
    def all_recipients(self) -> list[str]:
        return list(dict.fromkeys(self.recipients + self.bcc))


def split_addresses(value: str) -> list[str]:
    """`a@x.com; b@y.com` -> ['a@x.com', 'b@y.com']."""
    return [addr for _, addr in getaddresses([value.replace(";", ",")]) if addr]


def message_id(key: str, domain: str) -> str:
    """The Message-ID of an action: the same key always gives the same id.

    Replies quote it in In-Reply-To/References, which is how they are matched back to the
    invoice; a resend after a crash would carry the same id, so the recipient's mail system
    can deduplicate it.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<dunning.{digest}@{domain}>"


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip(">").strip() or "localhost"


def resolve_attachment(path: str, root: str | None = None) -> Path | None:
    """The file to attach, or None (the message then goes without it; see `find_attachment`
    for why)."""
    return find_attachment(path, root)[0]


def find_attachment(path: str, root: str | None = None) -> tuple[Path | None, str]:
    """The file to attach and, when there is none, why (empty when no `path` was given).

    Only files inside the source's attachments folder `root` are attached (a relative
    `path` is read under it): a `pdf_path` in the source data cannot make us mail some other
    local file (`/etc/passwd`, `../secrets.env`). Without a `root` no local file is attached
    at all. A URL is never read here: an API source downloads its own documents (from its
    own host, with limits) into its folder before the invoice reaches the sender.
    """
    if not path:
        return None, ""
    if "://" in path:
        why = "a URL the source did not download (only its own API host's PDFs are)"
    elif not root:
        why = "the source has no attachments folder, so no local file may be attached"
    else:
        full = Path(path) if Path(path).is_absolute() else Path(root) / path
        if not full.resolve().is_relative_to(Path(root).resolve()):
            why = f"outside the attachments folder {root}"
        elif not full.is_file():
            why = "no such file"
        else:
            return full, ""
    log.warning("attachment %r not attached: %s", path, why)
    return None, why


def build_email(
    rendered: RenderedMessage,
    *,
    from_address: str,
    to: str,
    key: str,
    from_name: str = "",
    reply_to: str = "",
    attachment: str | Path | None = None,
    date: datetime | None = None,
    message_id_domain: str = "",
    attachments: Sequence[str | Path] = (),
) -> EmailMessage:
    """A multipart (text + HTML) email for one action, with the invoice PDF if given (and
    `attachments`, e.g. a statement's PDFs, after it)."""
    msg = EmailMessage()
    msg["From"] = formataddr((from_name, from_address)) if from_name else from_address
    msg["To"] = ", ".join(split_addresses(to))
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(date) if date else format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = message_id(key, message_id_domain or domain_of(from_address))
    msg["X-Dunning-Key"] = key
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for item in [attachment, *attachments] if attachment else attachments:
        path = Path(item)
        ctype, _ = mimetypes.guess_type(path.name)
        maintype, subtype = (ctype or "application/octet-stream").split("/", 1)
        msg.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )
    # Last: set_content() and the multipart conversions drop or move Content-* headers.
    msg["Content-Language"] = rendered.language
    return msg
