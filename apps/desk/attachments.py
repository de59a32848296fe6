"""Attachments in the desk: upload on a customer or on a task, download.

The checks on the file itself (size, sniffed type, the name) are `dunning.ledger.
attachments`'; this module adds the web side:

- an upload is a multipart form carrying the session's CSRF token; the body is read up to
  the size limit plus a little for the form's own fields and cut off beyond (413), even
  without a Content-Length;
- a user uploads where they may work (a customer they see, a task they may close) and
  downloads what belongs to such a customer or task; anyone else gets 403, a visitor
  without a session never reaches this module (the login gate answers 401 or redirects);
- a download is always `Content-Disposition: attachment` with the sniffed type, `nosniff`
  and a sandboxing Content-Security-Policy: the browser saves the file, never renders it
  as a page of the desk;
- every upload is a ledger event (`attachment_added`, on the customer's timeline with who
  and when) and a CRM note.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import Message

from apps.desk import csrf, queries
from apps.desk.auth import User
from apps.desk.views import _render
from dunning.crm import queue_note
from dunning.ledger import Ledger
from dunning.ledger.attachments import (
    Attachment,
    AttachmentRefused,
    attachment,
    max_bytes,
    read_attachment,
    store_attachment,
)

#: Room for the form's other fields and the multipart boundaries around the file.
FORM_OVERHEAD = 64 * 1024
#: The download's own Content-Security-Policy: should a browser ever render it, it runs in
#: a sandbox (no script, no forms, a unique origin) and loads nothing.
DOWNLOAD_CSP = "default-src 'none'; sandbox"


class _TooLarge(Exception):
    """The request body went past the upload limit."""


def _refused(request: Request, status: int, reason: str) -> Response:
    return _render(
        request, "error.html", status_code=status, message_key="attachment_refused", problem=reason
    )


def _too_large(request: Request, limit: int) -> Response:
    return _refused(request, 413, f"the file is larger than the limit of {limit / 1e6:g} MB")


async def _upload_form(request: Request, limit: int) -> FormData:
    """The posted multipart form, read up to `limit` + `FORM_OVERHEAD` bytes, with a valid
    CSRF token.

    Raises:
        _TooLarge: the body is (or says it is) larger.
        HTTPException: 403 without the session's CSRF token; 400 for a malformed form.
    """
    cap = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise _TooLarge
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > cap:
                raise _TooLarge
        return message

    form = await Request(request.scope, receive).form(max_files=1, max_fields=8)
    if not csrf.valid(request.session, form):
        await form.close()
        raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
    return form


async def _save(
    request: Request,
    *,
    customer_id: str,
    task: dict[str, Any] | None,
) -> Response | Attachment:
    """Read the form's `file`, store it, record the event and the CRM note; the row, or the
    error page to answer."""
    limit = max_bytes()
    try:
        form = await _upload_form(request, limit)
    except _TooLarge:
        return _too_large(request, limit)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _refused(request, 400, "choose a file to attach")
        data = await upload.read(limit + 1)
        name = upload.filename
    finally:
        await form.close()
    if len(data) > limit:
        return _too_large(request, limit)
    user: User = request.state.user
    ledger: Ledger = request.app.state.ledger
    try:
        row = await run_in_threadpool(
            store_attachment,
            ledger,
            data,
            filename=name,
            customer_id=customer_id,
            uploaded_by=user.email,
            task_id=task["id"] if task else None,
            invoice_number=task["invoice_number"] if task else "",
            limit=limit,
        )
    except AttachmentRefused as exc:
        return _refused(request, 415, str(exc))
    await run_in_threadpool(_record, ledger, user, row, task)
    return row


def _record(ledger: Ledger, user: User, row: Attachment, task: dict[str, Any] | None) -> None:
    """The upload on the customer's timeline (event) and in the CRM (note)."""
    ledger.record_event(
        "attachment_added",
        invoice_number=row.invoice_number,
        customer_id=row.customer_id,
        actor=f"desk:{user.email}",
        attachment_id=row.id,
        filename=row.filename,
        size=row.size,
        content_type=row.content_type,
        task_id=row.task_id,
        sha256=row.sha256,
    )
    on_task = f" on task '{task['title']}'" if task else ""
    queue_note(
        ledger,
        key=f"desk:attachment:{row.id}",
        text=f"Attachment '{row.filename}' ({row.size} bytes) added{on_task} by {user.email}",
        invoice_number=row.invoice_number,
        customer_id=row.customer_id,
        direction="desk",
        attachment_id=row.id,
        filename=row.filename,
    )


async def customer_upload(request: Request) -> Response:
    """Attach a file to the customer `?id=` (form fields `file`, `csrf_token`); the
    customer is in the URL so that who may upload is decided before the body is read."""
    customer_id = request.query_params.get("id", "")
    ledger: Ledger = request.app.state.ledger
    if not queries.can_see_customer(ledger, request.state.user, customer_id):
        return _refused(request, 403, "you cannot add files to this customer")
    if queries.customer_page(ledger, customer_id) is None:
        return _refused(request, 404, "no such customer")
    saved = await _save(request, customer_id=customer_id, task=None)
    if isinstance(saved, Response):
        return saved
    return RedirectResponse(
        f"/customer?id={quote(customer_id, safe='')}&done=attachment_added", status_code=303
    )


async def task_upload(request: Request) -> Response:
    """Attach a file to a task (and so to its customer)."""
    task = queries.task(request.app.state.ledger, request.path_params["task_id"])
    if task is None:
        return _refused(request, 404, "no such task")
    if not queries.can_close_task(request.state.user, task["assignee"]):
        return _refused(request, 403, "you cannot add files to this task")
    saved = await _save(request, customer_id=task["customer_id"] or "", task=task)
    if isinstance(saved, Response):
        return saved
    return RedirectResponse(f"/tasks/{task['id']}?done=attachment_added", status_code=303)


def _may_download(ledger: Ledger, user: User, row: Attachment) -> bool:
    if row.customer_id and queries.can_see_customer(ledger, user, row.customer_id):
        return True
    if row.task_id is not None:
        task = queries.task(ledger, row.task_id)
        return task is not None and queries.can_close_task(user, task["assignee"])
    return False


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266 / 5987)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def download(request: Request) -> Response:
    """One attachment's bytes, as a download (never rendered inline)."""
    ledger: Ledger = request.app.state.ledger
    row = attachment(ledger, request.path_params["attachment_id"])
    if row is None:
        return _refused(request, 404, "no such attachment")
    if not _may_download(ledger, request.state.user, row):
        return _refused(request, 403, "you cannot see this attachment")
    try:
        data = await run_in_threadpool(read_attachment, ledger, row)
    except FileNotFoundError:
        return _refused(request, 404, "the file is missing from the attachments folder")
    return Response(
        data,
        media_type=row.content_type,
        headers={
            "Content-Disposition": content_disposition(row.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": DOWNLOAD_CSP,
            "Cross-Origin-Resource-Policy": "same-origin",
        },
    )
