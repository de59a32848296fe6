"""Invoice documents that an API source's records name (`pdf_path`): which may be attached.

A record is data from another system, so its `pdf_path` is not trusted: a local path is only
attached from the attachments folder configured on the source (`dunning.mail.find_attachment`
checks), and a URL only when it is on the API's own host, downloaded with limits (size, type,
time) into the source's folder. `/etc/hostname`, `../../secret.txt` or a URL elsewhere are
never attached; the reminder goes without them and the reason is recorded.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from dunning.connectors.http import ConnectorError, HttpClient
from dunning.schema import Invoice

log = logging.getLogger(__name__)

#: Largest invoice document downloaded.
MAX_DOCUMENT_BYTES = 10_000_000
#: What a downloaded document may be (its Content-Type, and its first bytes checked too).
DOCUMENT_TYPES = frozenset({"application/pdf"})


def with_downloaded_document(invoice: Invoice, http: HttpClient | None, folder: Path) -> Invoice:
    """The invoice with a `pdf_path` URL replaced by its downloaded copy in `folder`.

    Only URLs on the API's host are fetched (`HttpClient.download`), at most
    `MAX_DOCUMENT_BYTES` of a PDF. When the download is refused or fails, the invoice is
    returned as it was: the sender then attaches nothing and records why.
    """
    url = invoice.pdf_path
    if http is None or not url.lower().startswith(("https://", "http://")):
        return invoice
    try:
        body = http.download(url, max_bytes=MAX_DOCUMENT_BYTES, content_types=DOCUMENT_TYPES)
        if not body.startswith(b"%PDF-"):
            raise ConnectorError(f"{http.name}: {url} is not a PDF (it does not start with %PDF-)")
    except ConnectorError as exc:
        log.warning("invoice %s: %s", invoice.invoice_number, exc)
        return invoice
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(url.encode()).hexdigest()[:32]}.pdf"
    path.write_bytes(body)
    return invoice.model_copy(update={"pdf_path": str(path)})
