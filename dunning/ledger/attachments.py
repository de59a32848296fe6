"""Attachments: files a desk user adds to a customer or to one of its tasks (a signed
agreement, a proof of payment, a screenshot of a chat).

The ledger keeps the record (`Attachment`: who, when, which customer or task, the sniffed
type, size and SHA-256); the bytes go to the attachments folder as one file named by a
random id. What an upload claims about itself is not trusted:

- the type is sniffed from the content and must be on the allow-list (`FILE_TYPES`: PDF,
  PNG, JPEG, plain UTF-8 text, XLSX, DOCX); HTML, SVG, scripts, macro-enabled Office files
  and anything else are refused, whatever the name or the client's Content-Type say;
- the uploaded name is only shown and offered on download, sanitized (`safe_filename`): no
  folders, no control characters, no leading dot, and an extension matching the sniffed
  type, so a saved download never opens as something else;
- the size is capped by `DUNNING_ATTACHMENTS_MAX_MB`.

Where the files go: `DUNNING_ATTACHMENTS_DIR`, else `attachments/` beside a SQLite ledger's
file, else `var/attachments` in the working directory (`attachments_dir`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from dunning.ledger.models import Attachment
from dunning.settings import settings

if TYPE_CHECKING:
    from dunning.ledger.store import Ledger

__all__ = [
    "FILE_TYPES",
    "Attachment",
    "AttachmentRefused",
    "FileType",
    "attachment",
    "attachments_dir",
    "customer_attachments",
    "max_bytes",
    "read_attachment",
    "safe_filename",
    "sniff",
    "store_attachment",
    "task_attachments",
]

#: An attachment id: 32 lower-case hex digits (128 random bits). Anything else is no id.
ID_PATTERN = re.compile(r"[0-9a-f]{32}")
#: The longest name kept (characters, extension included).
MAX_NAME = 120
_TABLE = Attachment.__table__
#: Markup a browser would run if it ever rendered the file: refused even in "text".
_MARKUP = re.compile(rb"<\s*(?:!doctype|html|head|body|script|svg|iframe|object|embed|\?xml)", re.I)


class AttachmentRefused(ValueError):
    """An upload the desk does not keep; the message says why and what is accepted."""


@dataclass(frozen=True)
class FileType:
    """An accepted kind of file: its served content type and its extensions (the first is
    added to a name that has none of them)."""

    label: str
    content_type: str
    extensions: tuple[str, ...]


PDF = FileType("PDF", "application/pdf", ("pdf",))
PNG = FileType("PNG", "image/png", ("png",))
JPEG = FileType("JPEG", "image/jpeg", ("jpg", "jpeg"))
TEXT = FileType("text", "text/plain; charset=utf-8", ("txt", "csv", "log"))
XLSX = FileType(
    "XLSX", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",)
)
DOCX = FileType(
    "DOCX", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)
)
#: The allow-list, by sniffed content.
FILE_TYPES: tuple[FileType, ...] = (PDF, PNG, JPEG, TEXT, XLSX, DOCX)
ACCEPTED = ", ".join(t.label for t in FILE_TYPES)


def max_bytes() -> int:
    """The largest attachment accepted, in bytes (`DUNNING_ATTACHMENTS_MAX_MB`)."""
    return int(settings().attachments_max_mb * 1_000_000)


def sniff(data: bytes) -> FileType:
    """The allow-listed type of `data`, from its content alone.

    Raises:
        AttachmentRefused: empty, or not one of `FILE_TYPES` (named in the message).
    """
    if not data:
        raise AttachmentRefused("the file is empty")
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"PK\x03\x04"):
        return _office(data)
    if b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if _MARKUP.search(data):
                raise AttachmentRefused(
                    f"HTML, SVG and XML files are not accepted (only {ACCEPTED})"
                )
            return TEXT
    raise AttachmentRefused(f"this kind of file is not accepted (only {ACCEPTED})")


def _office(data: bytes) -> FileType:
    # Only the zip's directory is read (no member is decompressed): a zip bomb costs nothing.
    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise AttachmentRefused(f"a damaged or unknown zip file (only {ACCEPTED})") from None
    if "[Content_Types].xml" in names:
        if any(n.lower().endswith("vbaproject.bin") for n in names):
            raise AttachmentRefused("Office files with macros are not accepted")
        if "xl/workbook.xml" in names:
            return XLSX
        if "word/document.xml" in names:
            return DOCX
    raise AttachmentRefused(f"zip archives are not accepted (only {ACCEPTED})")


def safe_filename(name: str, kind: FileType) -> str:
    """The uploaded `name` made safe to show and to offer on download.

    The last path component only; letters and digits of any script, space, `.`, `_`, `-`,
    `(`, `)` kept, anything else (control characters, quotes, `;`, `<`, `%`) becomes `_`; no
    leading or trailing dot or space; at most `MAX_NAME` characters; and an extension that
    matches the sniffed `kind` (added when missing or different, so `cv.html` holding text
    downloads as `cv.html.txt`).
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = "".join(ch if ch.isalnum() or ch in " ._-()" else "_" for ch in base)
    base = re.sub(r"\s+", " ", base).strip(" .") or "attachment"
    stem, dot, ext = base.rpartition(".")
    if not dot or ext.lower() not in kind.extensions:
        stem, ext = base, kind.extensions[0]
    stem = stem[: MAX_NAME - len(ext) - 1].rstrip(" .") or "attachment"
    return f"{stem}.{ext}"


def attachments_dir(ledger: Ledger) -> Path:
    """Where this ledger's attachments are stored (see the module's docstring)."""
    configured = settings().attachments_dir
    if configured is not None:
        return configured
    url = make_url(ledger.url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database).resolve().parent / "attachments"
    return Path("var") / "attachments"


def store_attachment(
    ledger: Ledger,
    data: bytes,
    *,
    filename: str,
    customer_id: str,
    uploaded_by: str,
    task_id: int | None = None,
    invoice_number: str = "",
    limit: int | None = None,
) -> Attachment:
    """Check `data` (size, sniffed type), write it under a new random id and record it.

    `limit` is the size cap in bytes (default `max_bytes()`). The file is written first
    (to a temporary name, then renamed) and the row after: a crash between leaves an
    unreferenced file, never a row without its file.

    Raises:
        AttachmentRefused: too large, empty, or a type that is not allowed.
    """
    limit = max_bytes() if limit is None else limit
    if len(data) > limit:
        raise AttachmentRefused(
            f"the file is {len(data) / 1e6:.1f} MB; the limit is {limit / 1e6:g} MB"
        )
    kind = sniff(data)
    row = Attachment(
        id=secrets.token_hex(16),
        customer_id=customer_id,
        task_id=task_id,
        invoice_number=invoice_number,
        filename=safe_filename(filename, kind),
        content_type=kind.content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=uploaded_by,
    )
    folder = attachments_dir(ledger)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / row.id
    partial = folder / f"{row.id}.part"
    # O_EXCL: never follow or overwrite anything already there; 0600: only this service.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    values = row.model_dump()
    try:
        with ledger.engine.begin() as conn:
            conn.execute(sa.insert(_TABLE), values)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    return Attachment(**values)


def attachment(ledger: Ledger, attachment_id: str) -> Attachment | None:
    """The attachment with this id; None for an unknown or malformed id."""
    if not isinstance(attachment_id, str) or not ID_PATTERN.fullmatch(attachment_id):
        return None
    with ledger.engine.connect() as conn:
        row = conn.execute(sa.select(_TABLE).where(_TABLE.c.id == attachment_id)).first()
    return Attachment(**row._mapping) if row is not None else None


def read_attachment(ledger: Ledger, row: Attachment) -> bytes:
    """The stored bytes of an attachment (its file is named by the row's id, never by the
    uploaded name).

    Raises:
        FileNotFoundError: the file was removed from the attachments folder.
    """
    if not ID_PATTERN.fullmatch(row.id):
        raise FileNotFoundError(row.id)
    return (attachments_dir(ledger) / row.id).read_bytes()


def customer_attachments(ledger: Ledger, customer_id: str, limit: int = 100) -> list[Attachment]:
    """The customer's attachments (its tasks' included), newest first."""
    return _rows(ledger, _TABLE.c.customer_id == customer_id, limit)


def task_attachments(ledger: Ledger, task_id: int, limit: int = 100) -> list[Attachment]:
    """The attachments added on one task, newest first."""
    return _rows(ledger, _TABLE.c.task_id == task_id, limit)


def _rows(ledger: Ledger, condition: sa.ColumnElement[bool], limit: int) -> list[Attachment]:
    stmt = (
        sa.select(_TABLE)
        .where(condition)
        .order_by(_TABLE.c.uploaded_at.desc(), _TABLE.c.id)
        .limit(limit)
    )
    with ledger.engine.connect() as conn:
        return [Attachment(**r._mapping) for r in conn.execute(stmt)]
