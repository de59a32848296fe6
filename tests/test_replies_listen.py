"""The replies listener (IMAP IDLE): a customer's email is answered while the listener runs,
with no poll; it survives a dropped connection and a server restart; run beside the 5-minute
poll, each message is still answered once; `dunning replies listen` stops cleanly on SIGTERM.

Real parts: dovecot (tests/imapserver.py), the aiosmtpd sink, a Prefect server, the ledger on
SQLite and PostgreSQL. The listener is given each test's own mailbox (a fresh login)."""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from imap_tools import MailBoxUnencrypted

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, LedgerDatabase
from blocks.mailbox import ImapMailbox
from dunning.importers import read_invoice_file
from dunning.ledger import Ledger
from dunning.replies.listen import ListenOptions, ListenStats, listen
from flows.replies import listen_replies, process_replies, process_replies_run
from tests.imapserver import Dovecot, _wait_for_port, start_dovecot
from tests.invoices import write_invoices
from tests.test_flows import channel_for

CUSTOMER = "compras@cliente-a.example"
ASK_FOR_COPY = "Buenos días, ¿me pueden reenviar la factura F-1 en PDF? No la encuentro."
WAIT = 90.0  # generous: the machine is shared; nothing here asserts a duration
#: Short backoff so that the reconnection tests do not wait a minute.
QUICK = ListenOptions(first_backoff=0.2, max_backoff=2.0)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def world(tmp_path: Path, imap_server, prefect_api) -> Iterator[dict[str, Any]]:
    """One overdue invoice with its PDF, its contact, a ledger, a mail sink, an empty mailbox."""
    with _world(tmp_path, imap_server, f"sqlite:///{tmp_path}/ledger.db") as w:
        yield w


@pytest.fixture
def world_on(tmp_path: Path, imap_server, prefect_api, ledger_url) -> Iterator[dict[str, Any]]:
    """`world` with the ledger on SQLite, then on PostgreSQL."""
    with _world(tmp_path, imap_server, ledger_url) as w:
        yield w


@contextmanager
def _world(tmp_path: Path, server: Dovecot, url: str) -> Iterator[dict[str, Any]]:
    pdf = tmp_path / "F-1.pdf"
    pdf.write_bytes(b"%PDF-1.4 invoice F-1")
    csv = write_invoices(
        tmp_path / "invoices.csv",
        [
            dict(
                invoice_number="F-1",
                customer_id="C1",
                customer_name="Cliente A S.L.",
                email=CUSTOMER,
                amount_total="1210.00",
                amount_due="1210.00",
                due_date="2026-11-02",
                pdf_path=str(pdf),
            )
        ],
    )
    Ledger(url).sync_invoices(read_invoice_file(csv).invoices)
    login = f"{tmp_path.name}@empresa.example"  # a fresh mailbox per test
    server.add_user(login, "imap-secret")
    with MailSink(tmp_path / "outbox", port=0) as sink:
        yield {
            "csv": csv,
            "source": CsvInvoiceSource(path=str(csv)),
            "ledger_url": url,
            "sink": sink,
            "channel": channel_for(sink),
            "mailbox": mailbox_for(server, login),
            "imap": server,
            "login": login,
        }


def mailbox_for(server: Dovecot, login: str) -> ImapMailbox:
    return ImapMailbox(
        host="127.0.0.1",
        port=server.port,
        security="none",
        username=login,
        password="imap-secret",
    )


def customer_writes(w: dict, text: str = ASK_FOR_COPY, *, server: Dovecot | None = None) -> str:
    """The customer's email lands in our mailbox (IMAP APPEND); returns its Message-ID."""
    msg = EmailMessage()
    msg["From"] = CUSTOMER
    msg["To"] = "maria@acme.example"
    msg["Subject"] = "Factura F-1"
    msg["Date"] = format_datetime(time_now())
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@cliente-a.example>"
    msg.set_content(text)
    server = server or w["imap"]
    with MailBoxUnencrypted("127.0.0.1", server.port).login(w["login"], "imap-secret") as box:
        box.append(msg.as_bytes(), "INBOX")
    return msg["Message-ID"]


def time_now():  # noqa: ANN201
    from datetime import UTC, datetime

    return datetime.now(UTC)


def answers(w: dict) -> list[EmailMessage]:
    """Our answers to the customer: threaded under one of their messages."""
    return [m for m in w["sink"].messages() if CUSTOMER in m["To"] and m["In-Reply-To"]]


def answered(w: dict, message_id: str, timeout: float = WAIT) -> list[EmailMessage]:
    """Waits (polling the sink) until `message_id` has an answer; returns its answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in answers(w) if m["In-Reply-To"] == message_id]
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no answer to {message_id} within {timeout:.0f} s")


class Running:
    """The listener in a thread, as `dunning replies listen` runs it: each batch a
    `process-replies` flow run of its own. Stopped (and checked stopped) on exit."""

    def __init__(
        self,
        w: dict,
        mailbox: ImapMailbox,
        options: ListenOptions = QUICK,
        while_acting: Callable[[], object] | None = None,
    ) -> None:
        self.stop = threading.Event()
        self.stats: ListenStats | None = None
        batch = {
            "mailbox": mailbox,
            "fetch": False,
            "source": w["source"],
            "channel": w["channel"],
            "ledger": LedgerDatabase(url=w["ledger_url"]),
        }

        def act(_ids: list[int]) -> None:
            process_replies_run(**batch)
            if while_acting is not None:  # after the batch's own fetch: only we can see it
                while_acting()

        def run() -> None:
            self.stats = listen(
                mailbox.settings(), Ledger(w["ledger_url"]), act, self.stop, options=options
            )

        # The thread runs in a copy of this context: the Prefect test server's settings.
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the listener did not stop"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def test_a_message_is_answered_while_the_listener_runs_without_any_poll(world_on):
    w = world_on
    with Running(w, w["mailbox"]) as running:
        first = customer_writes(w)
        (answer,) = answered(w, first)
        assert [a.get_filename() for a in answer.iter_attachments()] == ["F-1.pdf"]
        # And the next one, on the same connection.
        second = customer_writes(w, "Hola, ¿me reenvían la factura F-1? Gracias.")
        assert len(answered(w, second)) == 1
    assert running.stats is not None and running.stats.messages == 2
    assert running.stats.reconnections == 0
    inbox = Ledger(w["ledger_url"]).inbound()
    assert [(m.intent, m.state) for m in inbox] == [("invoice_copy_request", "processed")] * 2
    # Moved out of the watched folder, as the poll does.
    with MailBoxUnencrypted("127.0.0.1", w["imap"].port).login(w["login"], "imap-secret") as box:
        assert box.uids("ALL") == []


def test_a_message_arriving_while_the_listener_acts_is_answered_without_a_poll(world):
    """The server announces a message that lands during a batch after that batch's fetch;
    the listener must notice it then, not at the next arrival (found by the benchmark)."""
    w = world
    later: list[str] = []

    def the_customer_writes_again() -> None:
        if not later:
            later.append(customer_writes(w, "Perdón, ¿me reenvían también la factura F-1?"))

    with Running(w, w["mailbox"], while_acting=the_customer_writes_again) as running:
        first = customer_writes(w)
        assert len(answered(w, first)) == 1
        wait_until(lambda: bool(later), "the customer writes again, once that batch is done")
        assert len(answered(w, later[0])) == 1
    assert running.stats is not None and running.stats.batches == 2


def test_a_dropped_connection_is_reopened_and_the_next_message_answered(world):
    w = world
    with Running(w, w["mailbox"]) as running:
        wait_until(lambda: _idling(w["imap"], w["login"]), "the listener is connected")
        kicked = subprocess.run(
            ["doveadm", "-c", str(w["imap"].root / "dovecot.conf"), "kick", w["login"]],
            capture_output=True,
            text=True,
            check=True,
        )
        assert w["login"] in kicked.stdout  # its connection was there, and is cut
        wait_until(lambda: _idling(w["imap"], w["login"]), "the listener reconnects")
        after = customer_writes(w)
        assert len(answered(w, after)) == 1
    assert running.stats is not None and running.stats.reconnections >= 1
    assert running.stats.errors  # the drop was seen (EOF, BYE or a broken pipe) and logged


def test_a_server_that_is_down_is_retried_until_it_is_back(tmp_path, prefect_api):
    """dovecot is down when the listener starts (connection refused, retried with backoff),
    then comes back: the listener connects and answers. (A `dovecot stop` does not always
    cut the open IDLE connection, so the down time comes first here; the kick test above
    covers a connection cut under the listener.)"""
    server = start_dovecot()  # its own: the shared one must not go down under other tests
    conf = str(server.root / "dovecot.conf")
    try:
        with _world(tmp_path, server, f"sqlite:///{tmp_path}/ledger.db") as w:
            message = customer_writes(w, server=server)  # waiting in the mailbox
            subprocess.run(["dovecot", "-c", conf, "stop"], check=True)
            wait_until(lambda: not _listening(server.port), "dovecot is down")
            with Running(w, w["mailbox"]) as running:
                time.sleep(3)  # a few refused attempts
                subprocess.run(["dovecot", "-c", conf], check=True)
                _wait_for_port(server.port, server.root / "dovecot.log")
                assert len(answered(w, message)) == 1
                later = customer_writes(w, server=server)
                assert len(answered(w, later)) == 1
            assert running.stats is not None and running.stats.messages == 2
            assert running.stats.errors  # the refused attempts, logged
            assert all("imap-secret" not in e for e in running.stats.errors)
    finally:
        server.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _idling(server: Dovecot, login: str) -> bool:
    """Whether `login` has an IMAP connection open (dovecot's `doveadm who`)."""
    who = subprocess.run(
        ["doveadm", "-c", str(server.root / "dovecot.conf"), "who", login],
        capture_output=True,
        text=True,
    )
    return who.returncode == 0 and login in who.stdout


def test_listener_and_poll_at_once_answer_each_message_once(world_on):
    w = world_on
    poll_stop = threading.Event()
    poll_runs: list[dict] = []

    def poll() -> None:  # the 5-minute poll, as often as it can go
        while not poll_stop.is_set():
            poll_runs.append(
                process_replies(
                    mailbox=w["mailbox"],
                    source=w["source"],
                    channel=w["channel"],
                    ledger=LedgerDatabase(url=w["ledger_url"]),
                )
            )

    poller = threading.Thread(target=contextvars.copy_context().run, args=(poll,))
    sent = []
    with Running(w, w["mailbox"]):
        poller.start()
        try:
            for n in range(6):
                sent.append(customer_writes(w, f"¿Me reenvían la factura F-1 en PDF? ({n})"))
                time.sleep(0.3)
            for message_id in sent:
                answered(w, message_id)
            # Both kept going a while after the last answer: nothing more may come.
            runs = len(poll_runs)
            wait_until(lambda: len(poll_runs) >= runs + 2, "two more polls")
        finally:
            poll_stop.set()
            poller.join(WAIT)
    replies = answers(w)
    assert sorted(m["In-Reply-To"] for m in replies) == sorted(sent)  # each once
    inbox = Ledger(w["ledger_url"]).inbound()
    assert sorted(m.provider_id for m in inbox) == sorted(sent)  # stored once, no empty rows
    assert {m.state for m in inbox} == {"processed"}
    # Who handled what does not matter; that the poll did run alongside does.
    assert len(poll_runs) >= 2


def test_the_listen_replies_flow_answers_and_keeps_its_own_run_small(world):
    """The Prefect flow: each batch is a top-level `process-replies` run, so the long-running
    `listen-replies` run itself holds no task runs (not one per message or per batch)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    w = world
    result: dict[str, Any] = {}

    def run() -> None:
        state = listen_replies(
            mailbox=w["mailbox"],
            source=w["source"],
            channel=w["channel"],
            ledger=LedgerDatabase(url=w["ledger_url"]),
            run_for_seconds=25,
            return_state=True,
        )
        result["state"] = state

    thread = threading.Thread(target=contextvars.copy_context().run, args=(run,))
    thread.start()
    try:
        wait_until(lambda: _idling(w["imap"], w["login"]), "the flow is listening")
        message = customer_writes(w)
        assert len(answered(w, message)) == 1
    finally:
        thread.join(WAIT)
    state = result["state"]
    assert state.is_completed() and state.result()["messages"] == 1
    listen_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        assert client.read_task_runs(flow_run_filter=_by_id(listen_run_id)) == []
        batches = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["process-replies"]))
        )
        started = client.read_flow_run(listen_run_id).start_time
        mine = [r for r in batches if r.start_time and r.start_time >= started]
        assert mine and all(r.parent_task_run_id is None for r in mine)


def _by_id(flow_run_id):  # noqa: ANN001, ANN202
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    return FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))


DUNNING = str(Path(sys.executable).with_name("dunning"))


def test_dunning_replies_listen_answers_and_stops_cleanly_on_sigterm(world, prefect_api):
    w = world
    name = f"listen-{uuid.uuid4().hex[:8]}"
    w["mailbox"].save(name, overwrite=True)
    log = w["csv"].parent / "listen.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                DUNNING,
                "replies",
                "listen",
                "--mailbox",
                name,
                "--ledger",
                w["ledger_url"],
                "--invoices",
                str(w["csv"]),
                "--smtp-host",
                w["sink"].host,
                "--smtp-port",
                str(w["sink"].port),
                "--from",
                "cobros@acme.example",
            ],
            env=os.environ | {"PREFECT_API_URL": prefect_api},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            try:
                wait_until(
                    lambda: "listening for replies" in log.read_text() or proc.poll() is not None,
                    "the command starts",
                    timeout=3 * WAIT,  # imports and block look-ups on a shared machine
                )
            except AssertionError:
                raise AssertionError(log.read_text()[-3000:]) from None
            assert proc.poll() is None, log.read_text()[-3000:]
            message = customer_writes(w)
            assert len(answered(w, message)) == 1
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert '"messages": 1' in out
    assert "imap-secret" not in log.read_text()
    assert "replies listener stopped" in log.read_text()


def test_no_inbox_row_for_a_message_another_reader_moved_first(world, monkeypatch):
    """Two readers of one folder (listener and poll): one lists the message, the other
    stores and moves it, then the first fetches it and dovecot answers NIL. That must not
    become an empty inbox message (an 'unknown sender' task for nothing)."""
    from dunning.replies import imap

    w = world
    customer_writes(w)
    settings = w["mailbox"].settings()
    ledger = Ledger(w["ledger_url"])
    with MailBoxUnencrypted("127.0.0.1", w["imap"].port).login(w["login"], "imap-secret") as late:
        listed = late.uids("ALL")  # the late reader has listed the message...
        assert len(imap.fetch_into(ledger, settings)) == 1  # ...the other stores and moves it

        @contextmanager
        def the_late_reader(_settings):  # noqa: ANN001, ANN202
            yield late

        monkeypatch.setattr(imap, "open_mailbox", the_late_reader)
        monkeypatch.setattr(late, "uids", lambda *_a, **_k: listed)  # its view from before
        assert imap.fetch_into(ledger, settings) == []
    assert [m.sender for m in ledger.inbound()] == [CUSTOMER]
