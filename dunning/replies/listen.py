"""Replies within seconds: hold an IMAP IDLE connection and act on each new message.

The 5-minute poll (`process-replies`) reads the mailbox on a schedule; the listener keeps
one connection open in IDLE (RFC 2177), so the server says when a message arrives. Each
time it does, the listener runs the poll's own steps: `fetch_into` stores the folder's
new messages in the ledger's inbox (once, by Message-ID) and moves them out, then
`on_new(ids)` acts on them; the edges pass the `process-replies` flow there, so matching,
classification, answers and tasks are the poll's.

Listener and poll may run at the same time: a message is stored once (the ledger's unique
provider id), taken by one run only (`Ledger.claim_inbound` is a conditional update) and
answered once (the outbox's unique key). The poll stays on as the safety net for whatever
the listener misses while it reconnects.

Drops are expected (server restarts, NAT timeouts, idle limits): on any connection error
the listener logs the error's type and message (never the password: `open_mailbox`
leaves it out) and reconnects after a backoff that doubles up to `ListenOptions.max_backoff`;
after each reconnection it fetches first, so nothing that arrived meanwhile waits for the
poll. IDLE is re-issued every `ListenOptions.idle_seconds` (servers drop an IDLE after 30
minutes; RFC 2177 says re-issue within 29), which also bounds how long a silently dead
connection goes unnoticed.

Stopping: set the `stop` event (the edges do so on SIGTERM and SIGINT); the listener
notices within `ListenOptions.check_seconds`, ends IDLE, logs out and returns.

Example:
    >>> stop = threading.Event()
    >>> listen(settings, ledger, on_new=lambda ids: act_on(ids), stop=stop)
"""

from __future__ import annotations

import imaplib
import logging
import random
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from imap_tools import BaseMailBox

from dunning.ledger import Ledger
from dunning.replies.imap import ImapSettings, MailboxError, fetch_into, open_mailbox

log = logging.getLogger(__name__)

#: Re-issue IDLE this often (seconds): under the servers' 30-minute limit, and the longest a
#: silently dead connection (no FIN, no RST) goes unnoticed.
IDLE_SECONDS = 10 * 60
#: How often the stop event is looked at while idling (seconds).
CHECK_SECONDS = 1.0
#: The first reconnection waits this long (seconds); each failure in a row doubles it...
FIRST_BACKOFF = 1.0
#: ...up to this.
MAX_BACKOFF = 60.0

#: Errors that mean "the connection or the server failed": reconnect. Anything else raised
#: while acting on messages is logged and retried the same way, so the listener never dies.
CONNECTION_ERRORS = (OSError, imaplib.IMAP4.error, MailboxError, ConnectionError, EOFError)


class IdleRefused(RuntimeError):
    """The server does not accept IDLE (or ended it with an error)."""


@dataclass(frozen=True)
class ListenOptions:
    """How the listener idles and reconnects (the defaults suit every server we know)."""

    idle_seconds: float = IDLE_SECONDS
    check_seconds: float = CHECK_SECONDS
    first_backoff: float = FIRST_BACKOFF
    max_backoff: float = MAX_BACKOFF

    def backoff(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (doubling, capped, +-20%)."""
        base = min(self.max_backoff, self.first_backoff * 2 ** max(0, failures - 1))
        return base * random.uniform(0.8, 1.2)


@dataclass
class ListenStats:
    """What one `listen` call did, for its caller's last log line and for tests."""

    connections: int = 0
    reconnections: int = 0
    batches: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)


def listen(
    settings: ImapSettings,
    ledger: Ledger,
    on_new: Callable[[list[int]], object],
    stop: threading.Event,
    *,
    options: ListenOptions | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> ListenStats:
    """Hold an IDLE connection on `settings.folder` until `stop` is set; each time messages
    arrive, store them in `ledger` (`fetch_into`) and call `on_new` with the new inbox ids.

    Returns what it did. Never raises for a connection or processing error: it logs it
    (without secrets) and reconnects with backoff (see the module docstring).
    """
    options = options or ListenOptions()
    logger = logger or log
    stats = ListenStats()
    failures = 0
    while not stop.is_set():
        try:
            with open_mailbox(settings) as box:
                stats.connections += 1
                if stats.connections > 1:
                    stats.reconnections += 1
                logger.info(
                    "listening for replies in %s on %s:%s (IMAP IDLE)",
                    settings.folder,
                    settings.host,
                    settings.port,
                )
                for _ in _serve(box, settings, ledger, on_new, stop, options, stats, logger):
                    failures = 0  # a full fetch-and-act went through: the link is healthy
        except Exception as exc:  # noqa: BLE001 - the listener must outlive any one failure
            failures += 1
            kind = "connection" if isinstance(exc, CONNECTION_ERRORS) else "processing"
            reason = f"{type(exc).__name__}: {exc}"[:300]
            stats.errors.append(reason)
            delay = options.backoff(failures)
            logger.warning(
                "replies listener: %s error (%s); reconnecting in %.1f s (failure %d in a row)",
                kind,
                reason,
                delay,
                failures,
            )
            stop.wait(delay)
    logger.info(
        "replies listener stopped: %d message(s) in %d batch(es), %d reconnection(s)",
        stats.messages,
        stats.batches,
        stats.reconnections,
    )
    return stats


def _serve(
    box: BaseMailBox,
    settings: ImapSettings,
    ledger: Ledger,
    on_new: Callable[[list[int]], object],
    stop: threading.Event,
    options: ListenOptions,
    stats: ListenStats,
    logger: logging.Logger | logging.LoggerAdapter,
) -> Iterator[None]:
    """Fetch, act, idle, until stopped or the connection fails (which raises); yields after
    each fetch-and-act that went through."""
    while not stop.is_set():
        # The poll's own fetch, on its own connection: catches up with whatever arrived
        # before this connection (or while it was down), then each arrival.
        new_ids = fetch_into(ledger, settings)
        if new_ids:
            stats.batches += 1
            stats.messages += len(new_ids)
            logger.info("%d new message(s): acting on them", len(new_ids))
            on_new(new_ids)
        yield
        # A message that arrived after that fetch looked (while acting, say) must not wait
        # for the next one: dovecot does not add it to this connection's view for a
        # SEARCH, it announces it (EXISTS) after a command. So: NOOP brings the view up to
        # date, the search lists what is there, and an EXISTS announced meanwhile means
        # fetch again; whatever arrives after these is announced during the IDLE below.
        client = box.client
        client.untagged_responses.clear()  # only what these two commands bring counts
        client.noop()
        if box.uids("ALL") or client.untagged_responses.get("EXISTS"):
            continue
        _idle(client, stop, options)


def _idle(client: imaplib.IMAP4, stop: threading.Event, options: ListenOptions) -> bool:
    """One IDLE: until a message arrives (True), `options.idle_seconds` pass or `stop` is
    set (False). Raises on a dropped connection or a server that refuses IDLE."""
    tag = client._command("IDLE")  # imaplib has no IDLE; imap_tools sends it the same way
    arrived = False
    while True:  # up to the continuation "+ idling"; an EXISTS may come before it
        response = client._get_response()
        if response is None:
            break
        if client.tagged_commands.get(tag):
            raise IdleRefused(f"the server refused IDLE: {client.tagged_commands[tag]}")
        arrived = arrived or _is_arrival(response)
    deadline = time.monotonic() + options.idle_seconds
    while not arrived and not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        if not _readable(client, min(options.check_seconds, remaining)):
            continue
        line = client._get_line()  # raises imaplib.IMAP4.abort at EOF (the connection dropped)
        if line.startswith(b"* BYE"):
            raise ConnectionError(f"the server ended the session: {line[:200]!r}")
        arrived = _is_arrival(line)  # "* OK Still here", EXPUNGE, FETCH: keep idling
    client.send(b"DONE\r\n")
    while client.tagged_commands.get(tag) is None:
        client._get_response()
    status, data = client.tagged_commands.pop(tag)
    if status != "OK":
        raise IdleRefused(f"IDLE ended with {status}: {data}")
    return arrived


def _is_arrival(line: bytes) -> bool:
    """`* <n> EXISTS`: the folder holds a new message (RFC 3501 7.3.1)."""
    parts = line.split()
    return len(parts) >= 3 and parts[0] == b"*" and parts[2].upper() == b"EXISTS"


def _readable(client: imaplib.IMAP4, timeout: float) -> bool:
    """Whether a line (or EOF) can be read, waiting up to `timeout` seconds.

    Data may already sit in imaplib's read buffer or in the TLS layer, where `select`
    cannot see it: that is looked at first, without blocking.
    """
    sock = client.sock
    previous = sock.gettimeout()
    sock.settimeout(0)
    try:
        if client.file.peek(1):
            return True
    except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
        pass
    finally:
        sock.settimeout(previous)
    ready, _, _ = select.select([sock], [], [], timeout)
    return bool(ready)
