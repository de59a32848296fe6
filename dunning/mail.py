"""Build reminder emails: headers, parts, attachment, deterministic Message-ID."""

from __future__ import annotations

import base64
import hashlib
import logging
import mimetypes
import quopri
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.contentmanager import raw_data_manager
from email.message import EmailMessage, MIMEPart
from email.policy import Compat32
from email.utils import format_datetime, formataddr, getaddresses
from pathlib import Path
from typing import Any

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
    """The file to attach, or None (the message then goes without it, and the log says why:
    see `find_attachment`)."""
    found, why = find_attachment(path, root)
    if why:
        log.warning("attachment %r not attached: %s", path, why)
    return found


def find_attachment(path: str, root: str | None = None) -> tuple[Path | None, str]:
    """The file to attach and, when there is none, why (empty when no `path` was given).

    Only files inside the source's attachments folder `root` are attached (a relative
    `path` is read under it): a `pdf_path` in the source data cannot make us mail some other
    local file (`/etc/passwd`, `../secrets.env`). Without a `root` no local file is attached
    at all. A URL is never read here: an API source downloads its own documents (from its
    own host, with limits) into its folder before the invoice reaches the sender.

    The caller records the reason (the sweep: an `attachment_refused` event and the
    outcome's reason, in the run's table): a log line per message would be thousands of
    lines, each metered by Prefect Cloud, for one missing folder.
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
    return None, why


class _FastPolicy(Compat32):
    """compat32 (headers kept as the strings we set: no header parsing on set and again on
    fold, ~3x cheaper per message than the default policy) plus a content manager, so a
    built message still answers `get_body(...).get_content()` and `iter_attachments()`."""

    content_manager = raw_data_manager

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        # A short printable-ASCII value is written as it is: what compat32's folding
        # (`email.header.Header.encode`, ~0.2 ms a header, most of a message's cost) gives
        # for it anyway. Anything else is folded by compat32.
        if (
            isinstance(value, str)
            and value.isascii()
            and value.isprintable()
            and len(name) + 2 + len(value) <= (self.max_line_length or 78)
        ):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


#: Built messages carry it; `SmtpPool.send` serializes with it and CRLF line ends.
MAIL_POLICY = _FastPolicy()

#: SMTP's limit on a line (RFC 5321, 998 + CRLF): a longer body line goes quoted-printable.
_MAX_LINE = 998


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
    `attachments`, e.g. a statement's PDFs, after it).

    Headers are stored as plain strings (`MAIL_POLICY`): `message["Subject"]` is the text;
    a non-ASCII subject is RFC 2047-encoded when serialized, a non-ASCII display name when
    set. Callers may add headers (In-Reply-To, References) the same way.
    """
    body = EmailMessage(policy=MAIL_POLICY)
    files = [attachment, *attachments] if attachment else list(attachments)
    alternative = _multipart(
        "alternative", [_text(rendered.text, "plain"), _text(rendered.html, "html")]
    )
    if files:
        body["Content-Type"] = "multipart/mixed"
        body.attach(alternative)
        for item in files:
            body.attach(_file(Path(item)))
    else:
        body["Content-Type"] = "multipart/alternative"
        for part in alternative.get_payload():
            body.attach(part)
    body["MIME-Version"] = "1.0"
    body["From"] = _address(from_name, from_address)
    body["To"] = ", ".join(split_addresses(to))
    if reply_to:
        body["Reply-To"] = ", ".join(_address(n, a) for n, a in getaddresses([reply_to]) if a)
    body["Subject"] = _text_header(rendered.subject)
    body["Date"] = format_datetime(date) if date else format_datetime(datetime.now().astimezone())
    body["Message-ID"] = message_id(key, message_id_domain or domain_of(from_address))
    body["X-Dunning-Key"] = _text_header(key)
    body["Content-Language"] = rendered.language
    _set_boundaries(body, key, rendered)
    return body


def _set_boundaries(message: EmailMessage, key: str, rendered: RenderedMessage) -> None:
    """Give each multipart a boundary from the key's hash: left unset, the generator draws
    one and compiles a regular expression per message to check it against the text.

    The boundary cannot occur in a base64 attachment (no `_` in its alphabet) and is
    checked against the rendered text and HTML; the generator's own way is kept if it did
    occur."""
    stem = "=_d" + hashlib.sha256(key.encode()).hexdigest()[:20]
    if stem in rendered.text or stem in rendered.html:
        return
    for n, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"{stem}_{n}")


def _text_header(text: str) -> str | _Utf8Text:
    """`text` as it is when compat32 can write it so: ASCII and foldable at spaces; else
    (accents, or a word longer than a line such as a 5,000-digit invoice number: SMTP
    refuses lines over 998 bytes) as encoded words, which fold anywhere."""
    if text.isascii() and max(map(len, text.split()), default=0) <= 70:
        return text
    return _Utf8Text(text)


class _Utf8Text:
    """A non-ASCII (or unfoldable) subject that reads as its text (`str()`, `==`, `in`,
    str methods) and is written as RFC 2047 base64 words of <= 42 bytes each, one per line.

    compat32 would encode a plain `str` through `email.header.Header`, which measures
    every prefix of the text in both encodings: ~7 ms for one accented subject, more than
    the whole rest of the message."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return repr(self.text)

    def __eq__(self, other: object) -> bool:
        return self.text == str(other)

    def __hash__(self) -> int:
        return hash(self.text)

    def __contains__(self, part: str) -> bool:
        return part in self.text

    def __getattr__(self, name: str) -> Any:
        return getattr(self.text, name)  # startswith, lower, ...: the text's

    def encode(self, linesep: str = "\n", maxlinelen: int | None = None, **_: Any) -> str:
        """The folded header value, as `email.header.Header.encode` is called by compat32."""
        words, chunk = [], b""
        for char in self.text:
            data = char.encode()
            if len(chunk) + len(data) > 42:  # 56 base64 chars + 12 + "Subject: " < 78
                words.append(chunk)
                chunk = b""
            chunk += data
        words.append(chunk)
        return (linesep + " ").join(f"=?utf-8?b?{base64.b64encode(w).decode()}?=" for w in words)


def _address(name: str, address: str) -> str:
    """`Name <address>`, the name RFC 2047-encoded if not ASCII (never the address)."""
    return formataddr((name, address), charset="utf-8") if name else address


def _multipart(subtype: str, parts: list[MIMEPart]) -> MIMEPart:
    container = MIMEPart(policy=MAIL_POLICY)
    container["Content-Type"] = f"multipart/{subtype}"
    for part in parts:
        container.attach(part)
    return container


def _text(text: str, subtype: str) -> MIMEPart:
    """A UTF-8 text part: 7bit if ASCII, else 8bit (as the default policy chose), or
    quoted-printable when a line is too long for SMTP."""
    part = MIMEPart(policy=MAIL_POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    data = text.encode()
    if max(map(len, data.splitlines() or [b""])) > _MAX_LINE:
        part["Content-Transfer-Encoding"] = "quoted-printable"
        part.set_payload(quopri.encodestring(data).decode("ascii"))
    else:
        part["Content-Transfer-Encoding"] = "7bit" if data.isascii() else "8bit"
        # Raw UTF-8 bytes as compat32 keeps them (surrogate-escaped): written back as bytes.
        part.set_payload(data.decode("ascii", "surrogateescape"))
    return part


def _file(path: Path) -> MIMEPart:
    ctype, _ = mimetypes.guess_type(path.name)
    part = MIMEPart(policy=MAIL_POLICY)
    part["Content-Type"] = ctype or "application/octet-stream"
    part["Content-Transfer-Encoding"] = "base64"
    part.add_header("Content-Disposition", "attachment", filename=path.name)
    part.set_payload(base64.encodebytes(path.read_bytes()).decode("ascii"))
    return part
