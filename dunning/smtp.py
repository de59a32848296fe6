"""Send email over SMTP through a small pool of reused connections.

The point of this module is to know, for every failure, whether the server may have the
message. MAIL, RCPT and DATA are issued one by one: anything that fails before the message
body is handed over, or that the server answers with an error code, certainly did not send
(`NotSent`, safe to retry); a connection lost while the server holds the body is
`OutcomeUnknown`, and the caller must not resend on its own.
"""

from __future__ import annotations

import queue
import smtplib
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

from dunning.mail import Envelope

#: SMTP connections a pool keeps open unless told otherwise (`EmailChannel.pool_size`); the
#: sweep sends with as many threads (`dunning.sweep.SEND_WORKERS`), one connection each.
DEFAULT_POOL_SIZE = 4


class SendError(Exception):
    """Base of SMTP sending failures; the message never contains credentials."""


class NotSent(SendError):
    """The server certainly did not accept the message.

    `permanent` is True for 5xx refusals (bad address, policy): retrying will not help.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class OutcomeUnknown(SendError):
    """The connection broke while the server held the message: it may have been delivered."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to connect. Built from prefect-email's `EmailServerCredentials`."""

    host: str
    port: int = 25
    security: str = "INSECURE"  # SSL | STARTTLS | INSECURE
    username: str | None = None
    password: str | None = None
    verify: bool = True
    timeout: float = 30.0

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r})"


def connect(settings: SmtpSettings) -> smtplib.SMTP:
    """Open, secure and authenticate one SMTP connection."""
    context = ssl.create_default_context()
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        if settings.security == "SSL":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            if settings.security == "STARTTLS":
                conn.starttls(context=context)
        conn.ehlo_or_helo_if_needed()
        if settings.username:
            conn.login(settings.username, settings.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        raise NotSent(
            f"SMTP login to {settings.host}:{settings.port} refused ({exc.smtp_code}); "
            "fix the username/password in the email credentials block",
            permanent=True,
        ) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise NotSent(f"cannot connect to SMTP {settings.host}:{settings.port}: {exc}") from None
    return conn


class SmtpPool:
    """Up to `size` open connections shared by threads; a broken one is replaced.

    Example:
        >>> pool = SmtpPool(SmtpSettings("127.0.0.1", 1025), size=4)
        >>> pool.send(message, Envelope("ar@acme.es", ["customer@example.com"]))
        '250 OK'
    """

    def __init__(
        self,
        settings: SmtpSettings,
        size: int = DEFAULT_POOL_SIZE,
        connector: Callable[[SmtpSettings], smtplib.SMTP] = connect,
    ) -> None:
        self.settings = settings
        self._connector = connector
        self._idle: queue.LifoQueue[smtplib.SMTP] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    def _checkout(self) -> tuple[smtplib.SMTP, bool]:
        try:
            return self._idle.get_nowait(), True
        except queue.Empty:
            return self._connector(self.settings), False

    def send(self, message: Message, envelope: Envelope) -> str:
        """Send one message; returns the server's final reply (e.g. `250 queued as X`)."""
        # The message's own policy (built reminders: `dunning.mail.MAIL_POLICY`, cheap
        # compat32 folding; report emails: the default one) with SMTP's CRLF line ends.
        payload = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        with self._slots:
            conn, reused = self._checkout()
            try:
                try:
                    reply = _transact(conn, envelope, payload)
                except _StaleConnection:
                    # The server closed an idle pooled connection: nothing was sent, reconnect.
                    _close(conn)
                    if not reused:
                        raise NotSent(f"SMTP {self.settings.host} closed the connection") from None
                    conn = self._connector(self.settings)
                    reply = _transact(conn, envelope, payload)
            except _StaleConnection:
                _close(conn)
                raise NotSent(f"SMTP {self.settings.host} closed the connection") from None
            except BaseException:
                _close(conn)
                raise
            self._idle.put(conn)
            return reply

    def close(self) -> None:
        while True:
            try:
                _close(self._idle.get_nowait())
            except queue.Empty:
                return


class _StaleConnection(Exception):
    pass


def _transact(conn: smtplib.SMTP, envelope: Envelope, payload: bytes) -> str:
    try:
        code, reply = conn.mail(envelope.sender)
    except (smtplib.SMTPServerDisconnected, OSError):
        raise _StaleConnection() from None
    if code != 250:
        _reset(conn)
        raise NotSent(f"sender refused: {code} {_text(reply)}", permanent=code >= 500)
    refused = {}
    try:
        for rcpt in envelope.all_recipients:
            code, reply = conn.rcpt(rcpt)
            if code not in (250, 251):
                refused[rcpt] = (code, _text(reply))
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise NotSent(f"connection lost before the message was sent: {exc}") from None
    if all(r in refused for r in envelope.recipients):
        _reset(conn)
        codes = [c for c, _ in refused.values()]
        detail = "; ".join(f"{r}: {c} {t}" for r, (c, t) in refused.items())
        raise NotSent(f"recipients refused: {detail}", permanent=min(codes) >= 500)
    try:
        code, reply = conn.data(payload)
    except smtplib.SMTPDataError as exc:
        raise NotSent(
            f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
            permanent=exc.smtp_code >= 500,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise OutcomeUnknown(f"connection lost while the server held the message: {exc}") from None
    if code != 250:  # smtplib returns, rather than raises, the reply to the message body
        raise NotSent(f"message refused: {code} {_text(reply)}", permanent=code >= 500)
    note = f" (refused: {', '.join(refused)})" if refused else ""
    return f"{code} {_text(reply)}{note}"


def _reset(conn: smtplib.SMTP) -> None:
    try:
        conn.rset()
    except (smtplib.SMTPException, OSError):
        pass


def _close(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
