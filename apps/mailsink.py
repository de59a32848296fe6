"""A local SMTP server that keeps every message it receives as an `.eml` file.

The demo's outbox, and the real SMTP server of the tests (aiosmtpd on loopback). It can be
told to answer the first messages with a temporary error, to exercise retries.

Run it: `python -m apps.mailsink --dir var/outbox --port 1025`.
"""

from __future__ import annotations

import argparse
import signal
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope


class OutboxHandler:
    """Writes each accepted message to `<dir>/<n>-<message-id>.eml` with its envelope."""

    def __init__(self, directory: str | Path, fail_first: int = 0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fail_first = fail_first
        self._lock = threading.Lock()
        self._seen = 0

    async def handle_DATA(self, server: SMTPProtocol, session: object, envelope: Envelope) -> str:  # noqa: N802
        with self._lock:
            self._seen += 1
            if self._seen <= self.fail_first:
                return "451 4.3.0 Temporary failure, try again later"
            count = len(list(self.directory.glob("*.eml"))) + 1
        data = envelope.original_content or envelope.content
        msg = message_from_bytes(data, policy=policy.default)
        ident = (msg.get("Message-ID") or f"msg{count}").strip("<>").replace("/", "_")
        name = f"{time.time_ns()}-{ident}.eml"
        header = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(header + data)
        tmp.rename(self.directory / name)  # readers never see half a message
        return "250 2.0.0 OK queued"


class MailSink:
    """Start/stop an outbox SMTP server in a background thread.

    Example:
        >>> with MailSink("var/outbox", port=0) as sink:
        ...     print(sink.port)
    """

    def __init__(
        self, directory: str | Path, host: str = "127.0.0.1", port: int = 1025, fail_first: int = 0
    ) -> None:
        self.handler = OutboxHandler(directory, fail_first=fail_first)
        if port == 0:
            port = free_port(host)
        self.controller = Controller(
            self.handler, hostname=host, port=port, data_size_limit=50 * 1024 * 1024
        )

    @property
    def host(self) -> str:
        return self.controller.hostname

    @property
    def port(self) -> int:
        return self.controller.port

    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first."""
        files = sorted(self.handler.directory.glob("*.eml"))
        return [message_from_bytes(f.read_bytes(), policy=policy.default) for f in files]

    def __enter__(self) -> MailSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and side-by-side demos)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/outbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with MailSink(args.dir, args.host, args.port) as sink:
        print(f"mail sink on {sink.host}:{sink.port}, writing to {args.dir}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
