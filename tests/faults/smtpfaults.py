"""A real SMTP server (aiosmtpd on loopback) that fails on purpose.

`FaultSink` keeps every accepted message as `.eml` (like `apps.mailsink`, whose handler it
extends) and can:
- refuse recipients with a 4xx or 5xx reply at RCPT (`refuse(address, "550 5.1.1 ...")`);
- go down mid-run and come back on the same port: `outage(after=50, seconds=3)` stops the
  listener after the 50th accepted message; `graceful=True` first answers 421 to new
  transactions and lets those in flight finish (a `postfix stop`), `graceful=False` drops
  every connection at once (a crash: messages in flight are in doubt);
- count messages by Message-ID, so a duplicate cannot hide.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope

from apps.mailsink import OutboxHandler, free_port


class FaultHandler(OutboxHandler):
    """The outbox handler, with refusals per recipient and a 'shutting down' switch."""

    def __init__(self, directory: str | Path) -> None:
        super().__init__(directory)
        self.refusals: dict[str, list[Any]] = {}  # address -> [reply, times left or None]
        self.closing = False
        self.accepted = 0
        self._open: set[int] = set()  # sessions inside a transaction (MAIL .. DATA/RSET)
        self.on_accept: Any = None  # called with the count after each accepted message

    def refuse(self, address: str, reply: str, times: int | None = None) -> None:
        """Answer RCPT TO:<address> with `reply` (`times` times, or always)."""
        self.refusals[address.lower()] = [reply, times]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001, N802
        if self.closing:
            return "421 4.3.2 Service shutting down, try again later"
        with self._lock:
            self._open.add(id(session))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    @property
    def in_flight(self) -> int:
        return len(self._open)

    async def handle_RSET(self, server, session, envelope):  # noqa: ANN001, N802
        self._done(session)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, N802
        with self._lock:
            rule = self.refusals.get(address.lower())
            if rule and rule[1] != 0:
                if rule[1] is not None:
                    rule[1] -= 1
                return rule[0]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPProtocol, session: object, envelope: Envelope) -> str:  # noqa: N802
        reply = await super().handle_DATA(server, session, envelope)
        with self._lock:
            self.accepted += 1
            count = self.accepted
        self._done(session)
        if self.on_accept is not None:
            self.on_accept(count)
        return reply

    def _done(self, session: object) -> None:
        with self._lock:
            self._open.discard(id(session))


class FaultSink:
    """Start with `with FaultSink(dir) as sink:`; `sink.host`, `sink.port` as MailSink."""

    def __init__(self, directory: str | Path, host: str = "127.0.0.1") -> None:
        self.handler = FaultHandler(directory)
        self.host = host
        self.port = free_port(host)
        self.controller: Controller | None = None
        self.outages: list[tuple[float, float]] = []  # (down at, up at) monotonic
        self._threads: list[threading.Thread] = []

    # -- up and down ------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on the sink's port (again)."""
        self.handler.closing = False
        self.controller = Controller(
            self.handler, hostname=self.host, port=self.port, data_size_limit=50 * 1024 * 1024
        )
        self.controller.start()

    def stop(self, graceful: bool = True, drain_seconds: float = 10.0) -> None:
        """Stop listening; graceful: refuse new transactions, let those in flight finish."""
        if self.controller is None:
            return
        if graceful:
            self.handler.closing = True
            deadline = time.monotonic() + drain_seconds
            while self.handler.in_flight > 0 and time.monotonic() < deadline:
                time.sleep(0.01)
        self.controller.stop()
        self.controller = None

    def outage(self, after: int, seconds: float, graceful: bool = True) -> None:
        """Go down after the `after`-th accepted message, for `seconds` (None: stay down)."""

        def down_and_up() -> None:
            began = time.monotonic()
            self.stop(graceful=graceful)
            if seconds is not None:
                time.sleep(seconds)
                self.start()
            self.outages.append((began, time.monotonic()))

        def on_accept(count: int) -> None:
            if count == after:
                t = threading.Thread(target=down_and_up, daemon=True)
                self._threads.append(t)
                t.start()

        self.handler.on_accept = on_accept

    def refuse(self, address: str, reply: str, times: int | None = None) -> None:
        self.handler.refuse(address, reply, times)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for an outage in progress to end."""
        for t in self._threads:
            t.join(timeout)

    # -- what arrived -----------------------------------------------------------------------
    def messages(self) -> list[EmailMessage]:
        files = sorted(self.handler.directory.glob("*.eml"))
        return [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]

    def by_message_id(self) -> Counter[str]:
        """How many copies of each Message-ID arrived (any value above 1 is a duplicate)."""
        return Counter(m["Message-ID"] for m in self.messages())

    def __enter__(self) -> FaultSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait_idle(5)
        self.stop(graceful=False)


def duplicates(counts: Counter[str]) -> int:
    """Extra copies beyond the first of each Message-ID."""
    return sum(n - 1 for n in counts.values() if n > 1)
