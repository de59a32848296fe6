"""Attachments in the collections desk (issue 13): a collector or manager attaches a file to
a customer or a task; it lands on the customer's timeline, in the ledger and the CRM, and
downloads only for logged-in users who may see that customer. Then the attacks: traversal
in the name, HTML/SVG and disguised files, oversized bodies (with and without a length),
forged forms, visitors without a session, collectors reaching other customers.

The desk runs in-process (Starlette's test client) over a real SQLite ledger and, for the
storage itself, PostgreSQL; one upload goes through the real Chromium of `conftest.py`.
"""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from apps.desk.app import SESSION_COOKIE, DeskConfig, create_app
from apps.desk.auth import add_user
from dunning.ledger import Ledger
from dunning.ledger import attachments as att
from dunning.ledger.models import Attachment, CrmEntry, Event, HumanTask
from tests.desk.conftest import login, shot
from tests.desk.helpers import COLLECTOR, MANAGER, csrf, logged_in, serve

TODAY = date(2026, 12, 9)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>'


def _zip(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name in names:
            z.writestr(name, "<x/>")
    return buffer.getvalue()


def _ledger(url: str) -> Ledger:
    ledger = Ledger(url)
    ledger.sync_invoices(
        pd.DataFrame(
            {
                "invoice_number": ["F-1", "F-2"],
                "customer_id": ["C1", "C2"],
                "customer_name": ["Ebro", "Beta"],
                "email": ["a@ebro.example", "b@beta.example"],
                "amount_due": [100.0, 200.0],
                "amount_total": [100.0, 200.0],
                "due_date": [date(2026, 11, 1), date(2026, 11, 1)],
                "status": ["open", "open"],
                "currency": ["EUR", "EUR"],
                "phone": ["", ""],
            }
        )
    )
    # The collector sees C1 (a task for the account owner); C2's task is the manager's.
    ledger.open_task(key="F-1:call", title="Call", invoice_number="F-1", customer_id="C1",
                     assignee="account_owner", due_on=TODAY)  # fmt: skip
    ledger.open_task(key="F-2:final", title="Decide", invoice_number="F-2", customer_id="C2",
                     assignee="manager", due_on=TODAY)  # fmt: skip
    add_user(ledger, *MANAGER, role="manager")
    add_user(ledger, *COLLECTOR, role="collector")
    return ledger


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The attachments folder (`DUNNING_ATTACHMENTS_DIR`), inside an otherwise empty tree."""
    folder = tmp_path / "store" / "attachments"
    monkeypatch.setenv("DUNNING_ATTACHMENTS_DIR", str(folder))
    monkeypatch.delenv("DUNNING_ATTACHMENTS_MAX_MB", raising=False)
    return folder


@pytest.fixture
def ledger(tmp_path: Path, files: Path) -> Ledger:
    return _ledger(f"sqlite:///{tmp_path}/ledger.db")


@pytest.fixture
def app(ledger: Ledger):
    return create_app(DeskConfig(ledger_url=ledger.url))


def _client(app) -> TestClient:
    return TestClient(app, base_url="http://desk.test", follow_redirects=False)


def _logged_in(app, who: tuple[str, str]) -> TestClient:
    return logged_in(_client(app), who)


def _task_id(ledger: Ledger, key: str) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(HumanTask.id).where(HumanTask.key == key)).scalar_one()


def _upload(client: TestClient, path: str, name: str, data: bytes, token: str | None = "page"):
    """Post `data` as the form's file, with the CSRF token of the page (or `token`)."""
    if token == "page":
        token = csrf(client.get("/customer?id=C1").text)
    fields = {"csrf_token": token} if token is not None else {}
    return client.post(path, data=fields, files={"file": (name, data, "application/pdf")})


def _rows(ledger: Ledger, model) -> list:
    with ledger.engine.connect() as conn:
        return conn.execute(sa.select(model.__table__)).all()


def _nothing_stored(ledger: Ledger, files: Path) -> None:
    assert _rows(ledger, Attachment) == []
    assert not files.exists() or list(files.iterdir()) == []
    with ledger.engine.connect() as conn:
        kinds = conn.execute(sa.select(Event.kind)).scalars().all()
    assert "attachment_added" not in kinds


# -- what a user does ------------------------------------------------------------------------------


def test_a_collector_attaches_a_pdf_sees_it_on_the_timeline_and_downloads_it(app, ledger, files):
    with _logged_in(app, COLLECTOR) as collector:
        answer = _upload(collector, "/customer/attachments?id=C1", "acuerdo firmado.pdf", PDF)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/customer?id=C1&done=attachment_added"
        page = collector.get(answer.headers["location"]).text
        (row,) = _rows(ledger, Attachment)
        # Listed with who and when, and on the timeline as an event by this user.
        listed = re.search(rf'<tr data-attachment="{row.id}">(.*?)</tr>', page, re.S).group(1)
        assert "acuerdo firmado.pdf" in listed and COLLECTOR[0] in listed and "UTC" in listed
        timeline = page.split('id="timeline"', 1)[1]
        assert "attachment_added" in timeline and f"desk:{COLLECTOR[0]}" in timeline
        assert f'href="/attachments/{row.id}"' in timeline

        got = collector.get(f"/attachments/{row.id}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-disposition"].startswith(
        'attachment; filename="acuerdo firmado.pdf"'
    )
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    assert got.headers["cache-control"] == "no-store"
    # Stored by its random id, beside nothing else; the record says who, what and where.
    assert [p.name for p in files.iterdir()] == [row.id]
    assert (files / row.id).read_bytes() == PDF
    assert (files / row.id).stat().st_mode & 0o077 == 0
    assert (row.customer_id, row.uploaded_by, row.size) == ("C1", COLLECTOR[0], len(PDF))
    assert row.content_type == "application/pdf" and row.task_id is None
    with ledger.engine.connect() as conn:
        event = conn.execute(sa.select(Event).where(Event.kind == "attachment_added")).one()
        notes = conn.execute(sa.select(CrmEntry.payload).where(CrmEntry.kind == "note")).all()
    assert event.customer_id == "C1" and event.actor == f"desk:{COLLECTOR[0]}"
    assert event.detail["attachment_id"] == row.id
    assert any(
        "acuerdo firmado.pdf" in n.payload["text"] and COLLECTOR[0] in n.payload["text"]
        for n in notes
    )


def test_a_file_attached_to_a_task_shows_on_the_task_and_the_customer(app, ledger, files):
    task_id = _task_id(ledger, "F-1:call")
    with _logged_in(app, COLLECTOR) as collector:
        token = csrf(collector.get(f"/tasks/{task_id}").text)
        answer = _upload(collector, f"/tasks/{task_id}/attachments", "captura.png", PNG, token)
        assert answer.status_code == 303
        assert answer.headers["location"] == f"/tasks/{task_id}?done=attachment_added"
        assert "captura.png" in collector.get(f"/tasks/{task_id}").text
        assert "captura.png" in collector.get("/customer?id=C1").text
    (row,) = _rows(ledger, Attachment)
    assert (row.task_id, row.customer_id, row.invoice_number) == (task_id, "C1", "F-1")
    assert row.content_type == "image/png"


def test_xlsx_docx_and_text_are_accepted_by_content():
    from openpyxl import Workbook

    buffer = io.BytesIO()
    Workbook().save(buffer)
    assert att.sniff(buffer.getvalue()) is att.XLSX
    assert att.sniff(_zip(["[Content_Types].xml", "word/document.xml"])) is att.DOCX
    assert att.sniff("Transferencia 1.234,56 € ñandú\n".encode()) is att.TEXT
    assert att.sniff(b"\xff\xd8\xff\xe0\x00\x10JFIF") is att.JPEG


# -- attacks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../../../evil.txt", "..\\..\\..\\evil.txt", "/etc/cron.d/evil.txt", "....//evil.txt"],
)
def test_a_name_with_folders_is_never_a_path(app, ledger, files, tmp_path, name):
    with _logged_in(app, MANAGER) as manager:
        assert _upload(manager, "/customer/attachments?id=C1", name, b"hola\n").status_code == 303
    (row,) = _rows(ledger, Attachment)
    assert row.filename == "evil.txt"
    assert [p.name for p in files.iterdir()] == [row.id]
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))
    assert not Path("/etc/cron.d/evil.txt").exists()


def test_a_hostile_name_is_shown_escaped_and_downloads_under_a_safe_name(app, ledger, files):
    name = '<img src=x onerror=alert(1)>"; filename=x.html\r\nSet-Cookie: a=b.html'
    with _logged_in(app, MANAGER) as manager:
        assert _upload(manager, "/customer/attachments?id=C1", name, b"ok\n").status_code == 303
        (row,) = _rows(ledger, Attachment)
        page = manager.get("/customer?id=C1").text
        got = manager.get(f"/attachments/{row.id}")
    assert "<img" not in page and "img src_x onerror_alert(1)" in page  # shown, as text
    assert row.filename.endswith(".html.txt")  # saved as text, never as a page
    assert not set('<>"\r\n;/\\') & set(row.filename)
    assert got.headers["content-type"].startswith("text/plain")
    assert "set-cookie" not in got.headers
    assert got.headers["content-disposition"].count("filename=") == 1


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("factura.pdf", HTML, "HTML"),
        ("logo.png", SVG, "SVG"),
        ("datos.txt", b'<?xml version="1.0"?><svg/>', "XML"),
        ("nota.txt", b"hola <script>alert(1)</script>", "HTML"),
        ("setup.pdf", b"MZ\x90\x00\x03" + b"\x00" * 60, "not accepted"),
        ("fotos.zip", _zip(["a.jpg"]), "zip"),
        (
            "macro.xlsx",
            _zip(["[Content_Types].xml", "xl/workbook.xml", "xl/vbaProject.bin"]),
            "macros",
        ),
        ("vacio.pdf", b"", "empty"),
    ],
)
def test_html_svg_and_disguised_files_are_refused(app, ledger, files, name, data, says):
    with _logged_in(app, MANAGER) as manager:
        answer = _upload(manager, "/customer/attachments?id=C1", name, data)
    assert answer.status_code == 415
    assert says in answer.text and "No se ha adjuntado el archivo." in answer.text
    _nothing_stored(ledger, files)


def _post_chunked(app, cookie: str, token: str, chunks: int) -> tuple[int, int]:
    """Post a multipart upload straight to the ASGI app as `chunks` body messages of 64 KiB
    with no Content-Length; the answer's status and how many messages the app pulled."""
    boundary = "b" * 20
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    pulled = 0
    answer: dict = {}

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        body = head + PDF if pulled == 1 else b"0" * 65536
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/customer/attachments", "raw_path": b"/customer/attachments",
        "query_string": b"id=C1", "root_path": "", "server": ("desk.test", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"desk.test"),
            (b"cookie", f"{SESSION_COOKIE}={cookie}".encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
            (b"transfer-encoding", b"chunked"),
        ],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return answer["status"], pulled


def test_an_oversized_upload_is_refused_and_nothing_is_kept(app, ledger, files, monkeypatch):
    monkeypatch.setenv("DUNNING_ATTACHMENTS_MAX_MB", "0.1")  # 100 000 bytes
    big = PDF + b"0" * 100_000
    with _logged_in(app, MANAGER) as manager:
        answer = _upload(manager, "/customer/attachments?id=C1", "big.pdf", big)
        assert answer.status_code == 413 and "0.1 MB" in answer.text
        # A body far past the limit is cut off even when it declares no length (chunked):
        # the app stops pulling the body soon after the limit.
        token = csrf(manager.get("/customer?id=C1").text)
        status, pulled = _post_chunked(app, manager.cookies[SESSION_COOKIE], token, 1000)
        assert status == 413
        assert pulled < 5  # of 1000 chunks of 64 KiB offered
        # Exactly at the limit is fine.
        exact = PDF + b"0" * (100_000 - len(PDF))
        assert _upload(manager, "/customer/attachments?id=C1", "ok.pdf", exact).status_code == 303
    (row,) = _rows(ledger, Attachment)
    assert row.size == 100_000 and [p.name for p in files.iterdir()] == [row.id]


def test_a_forged_or_tokenless_upload_is_refused(app, ledger, files):
    with _logged_in(app, MANAGER) as manager, _logged_in(app, COLLECTOR) as other:
        foreign = csrf(other.get("/customer?id=C1").text)
        on_task = f"/tasks/{_task_id(ledger, 'F-1:call')}/attachments"
        for path, token in [
            ("/customer/attachments?id=C1", None),  # no token at all
            ("/customer/attachments?id=C1", foreign),  # another session's token
            (on_task, ""),
        ]:
            answer = _upload(manager, path, "a.pdf", PDF, token)
            assert answer.status_code == 403 and "CSRF" in answer.text, (path, token)
    _nothing_stored(ledger, files)


def test_without_a_session_nothing_uploads_or_downloads(app, ledger, files):
    row = att.store_attachment(
        ledger, PDF, filename="secreto.pdf", customer_id="C1", uploaded_by=MANAGER[0]
    )
    with _client(app) as visitor:
        answer = visitor.get(f"/attachments/{row.id}")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
        assert PDF not in answer.content
        posted = visitor.post(
            "/customer/attachments?id=C1", files={"file": ("x.pdf", PDF, "application/pdf")}
        )
        assert posted.status_code == 401
    with _logged_in(app, MANAGER) as manager:
        assert manager.get(f"/attachments/{row.id}").content == PDF
        token = csrf(manager.get("/tasks").text)
        assert manager.post("/logout", data={"csrf_token": token}).status_code == 303
        assert manager.get(f"/attachments/{row.id}").status_code == 303
    assert len(_rows(ledger, Attachment)) == 1


def test_a_collector_reaches_only_the_customers_and_tasks_they_work_on(app, ledger, files):
    theirs = att.store_attachment(
        ledger, PDF, filename="c2.pdf", customer_id="C2", uploaded_by=MANAGER[0]
    )
    managers_task = _task_id(ledger, "F-2:final")
    with _logged_in(app, COLLECTOR) as collector:
        assert collector.get(f"/attachments/{theirs.id}").status_code == 403
        assert _upload(collector, "/customer/attachments?id=C2", "x.pdf", PDF).status_code == 403
        answer = _upload(collector, f"/tasks/{managers_task}/attachments", "x.pdf", PDF)
        assert answer.status_code == 403
        for bad in ("..%2F..%2Fledger.db", "0" * 31, "G" * 32, theirs.id.upper()):
            assert collector.get(f"/attachments/{bad}").status_code == 404, bad
    with _logged_in(app, MANAGER) as manager:
        assert manager.get(f"/attachments/{theirs.id}").content == PDF
        assert _upload(manager, "/customer/attachments?id=NOPE", "x.pdf", PDF).status_code == 404
    assert len(_rows(ledger, Attachment)) == 1


def test_safe_filename_keeps_words_and_fixes_the_extension():
    assert att.safe_filename("Factura Nº 12 (copia).pdf", att.PDF) == "Factura Nº 12 (copia).pdf"
    assert att.safe_filename("ñandú.TXT", att.TEXT) == "ñandú.TXT"
    assert att.safe_filename(".htaccess", att.TEXT) == "htaccess.txt"
    assert att.safe_filename("   ", att.PNG) == "attachment.png"
    assert att.safe_filename("foto.jpeg", att.JPEG) == "foto.jpeg"
    assert att.safe_filename("a\x00b\x1b.pdf", att.PDF) == "a_b_.pdf"
    long = att.safe_filename("x" * 500 + ".pdf", att.PDF)
    assert len(long) == att.MAX_NAME and long.endswith(".pdf")


# -- storage on both databases, and the default folder ---------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_storage_on_both_databases(backend, request, tmp_path, files):
    url = f"sqlite:///{tmp_path}/l.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    ledger = Ledger(url)
    first = att.store_attachment(ledger, PDF, filename="a.pdf", customer_id="C1", uploaded_by="u")
    second = att.store_attachment(
        ledger, PNG, filename="b.png", customer_id="C1", uploaded_by="u", task_id=7
    )
    assert first.id != second.id
    assert [a.id for a in att.customer_attachments(ledger, "C1")] in (
        [second.id, first.id],
        [first.id, second.id],  # same timestamp resolution on a fast machine
    )
    assert [a.id for a in att.task_attachments(ledger, 7)] == [second.id]
    loaded = att.attachment(ledger, first.id)
    assert loaded.filename == "a.pdf" and att.read_attachment(ledger, loaded) == PDF
    assert att.attachment(ledger, "../" + first.id) is None


def test_the_default_folder_is_beside_a_sqlite_ledger(tmp_path, monkeypatch):
    monkeypatch.delenv("DUNNING_ATTACHMENTS_DIR", raising=False)
    ledger = Ledger(f"sqlite:///{tmp_path}/books/ledger.db")
    assert att.attachments_dir(ledger) == (tmp_path / "books" / "attachments").resolve()


# -- one upload in a real browser ------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, files: Path) -> Iterator[tuple[str, Ledger]]:
    """The desk under a real uvicorn on loopback (the browser needs a socket)."""
    ledger = _ledger(f"sqlite:///{tmp_path}/ledger.db")
    with serve(DeskConfig(ledger_url=ledger.url)) as url:
        yield url, ledger


def test_upload_and_download_in_chromium(served, page, tmp_path):
    url, ledger = served
    desk = type("DeskURL", (), {"url": url})()
    login(page, desk, COLLECTOR)
    page.goto(f"{url}/customer?id=C1")
    assert page.locator("#no-attachments").is_visible()
    upload = tmp_path / "justificante transferencia.pdf"
    upload.write_bytes(PDF)
    page.set_input_files("#attach-file", str(upload))
    page.click("#attach-form button[type=submit]")
    page.wait_for_url(f"{url}/customer?id=C1&done=attachment_added")
    assert page.locator("p.flash").inner_text() == "Archivo adjuntado"
    link = page.locator("#attachments a", has_text="justificante transferencia.pdf")
    assert COLLECTOR[0] in page.locator("#attachments tbody tr").first.inner_text()
    shot(page, "customer-attachments")
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "justificante transferencia.pdf"
    assert Path(download.path()).read_bytes() == PDF
    assert len(_rows(ledger, Attachment)) == 1
