"""Seconds from a customer's email landing in the mailbox to our answer at the SMTP server.

    .venv/bin/python -m bench.replies_latency [--messages 50] [--poll-runs 5]

Set-up, all real and on this machine: a private dovecot (`tests/imapserver.py`), a Prefect
server (Prefect's test harness, with our server settings), the aiosmtpd sink
(`apps/mailsink.py`), a SQLite ledger holding one overdue invoice with its PDF, and
`dunning replies listen` running as a user runs it (its own process, the mailbox a saved
block).

Each message is an invoice-copy request from the invoice's known contact ("¿me pueden
reenviar la factura F-1 en PDF?"), which is answered automatically with the PDF attached.
One at a time, `--gap` seconds after the previous answer (replies to reminders arrive
minutes apart, so each finds the listener idle; `--gap 0` sends the next as soon as the
previous is answered, while the listener still finishes that batch's run): the clock
starts just before the IMAP APPEND and stops at the moment the sink accepted the answer
(the sink names each file with `time.time_ns()` at acceptance).
The first message after start is a warm-up, reported apart (first flow run, classifier
training); the next `--messages` give the median and p95.

Baseline, the 5-minute poll it replaces: a message waits for the next `process-replies`
run, uniformly 0-300 s, then that run's duration. The duration is measured here
(`--poll-runs` runs of `process-replies` with the mailbox, one message each); the waits
are arithmetic (median 150 s, p95 285 s), not 50 real five-minute waits.

Target (issue 14): median under 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

CUSTOMER = "compras@cliente-a.example"
PASSWORD = "imap-secret"
POLL_EVERY = 300


def _invoices(folder: Path) -> Path:
    from tests.invoices import write_invoices

    pdf = folder / "F-1.pdf"
    pdf.write_bytes(b"%PDF-1.4 invoice F-1")
    return write_invoices(
        folder / "invoices.csv",
        [
            dict(
                invoice_number="F-1",
                customer_id="C1",
                email=CUSTOMER,
                amount_total="1210.00",
                amount_due="1210.00",
                due_date="2026-11-02",
                pdf_path=str(pdf),
            )
        ],
    )


def _append(port: int, login: str, n: int) -> float:
    """The customer's request lands in the mailbox; returns the wall time just before."""
    from datetime import UTC, datetime

    from imap_tools import MailBoxUnencrypted

    msg = EmailMessage()
    msg["From"] = CUSTOMER
    msg["To"] = "cobros@acme.example"
    msg["Subject"] = "Factura F-1"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@cliente-a.example>"
    msg.set_content(f"Buenos días, ¿me pueden reenviar la factura F-1 en PDF? ({n})")
    with MailBoxUnencrypted("127.0.0.1", port).login(login, PASSWORD) as box:
        started = time.time()
        box.append(msg.as_bytes(), "INBOX")
    return started


def _answered(outbox: Path, count: int, timeout: float = 120.0) -> float:
    """Waits for the `count`-th answer in the sink; returns when the sink accepted it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(outbox.glob("*.eml"))
        if len(files) >= count:
            return int(files[count - 1].name.split("-", 1)[0]) / 1e9
        time.sleep(0.01)
    raise RuntimeError(f"answer {count} did not arrive within {timeout:.0f} s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--poll-runs", type=int, default=5)
    parser.add_argument(
        "--gap", type=float, default=3.0, help="seconds between an answer and the next message"
    )
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from apps.mailsink import MailSink
    from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
    from blocks.mailbox import ImapMailbox
    from deployments.server import SERVER_SETTINGS
    from dunning.importers import read_invoice_file
    from dunning.ledger import Ledger
    from flows.replies import process_replies
    from tests.imapserver import start_dovecot

    os.environ.update(SERVER_SETTINGS)
    dovecot = start_dovecot()
    folder = Path(tempfile.mkdtemp(prefix="dunning-latency-"))
    login = "latency@empresa.example"
    dovecot.add_user(login, PASSWORD)
    csv = _invoices(folder)
    url = f"sqlite:///{folder}/ledger.db"
    Ledger(url).sync_invoices(read_invoice_file(csv).invoices)
    mailbox = ImapMailbox(
        host="127.0.0.1", port=dovecot.port, security="none", username=login, password=PASSWORD
    )
    dunning = str(Path(sys.executable).with_name("dunning"))
    try:
        with (
            prefect_test_harness(server_startup_timeout=300),
            MailSink(folder / "outbox", port=0) as sink,
        ):
            api = PREFECT_API_URL.value()
            mailbox.save("bench-latency", overwrite=True)
            log = folder / "listen.log"
            with log.open("w") as err:
                listener = subprocess.Popen(
                    [dunning, "replies", "listen", "--mailbox", "bench-latency"]
                    + ["--ledger", url, "--invoices", str(csv), "--from", "cobros@acme.example"]
                    + ["--smtp-host", sink.host, "--smtp-port", str(sink.port)],
                    env=os.environ | {"PREFECT_API_URL": api},
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
                try:
                    deadline = time.monotonic() + 300
                    while "listening for replies" not in log.read_text():
                        if listener.poll() is not None or time.monotonic() > deadline:
                            raise RuntimeError(log.read_text()[-3000:])
                        time.sleep(0.1)
                    outbox = folder / "outbox"
                    started = _append(dovecot.port, login, 0)
                    warm_up = _answered(outbox, 1) - started
                    latencies = []
                    for n in range(1, args.messages + 1):
                        started = _append(dovecot.port, login, n)
                        latencies.append(_answered(outbox, n + 1) - started)
                        print(f"message {n}: {latencies[-1]:.2f} s", file=sys.stderr)
                        time.sleep(args.gap)  # the listener finishes its batch and idles
                finally:
                    listener.send_signal(signal.SIGTERM)
                    out, _ = listener.communicate(timeout=120)
            if listener.returncode != 0:
                raise RuntimeError(f"the listener exited {listener.returncode}: {out}")

            # The baseline's run duration: one message each, the poll's own flow.
            channel = EmailChannel.model_validate(
                {
                    "credentials": {
                        "smtp_server": sink.host,
                        "smtp_port": sink.port,
                        "smtp_type": "INSECURE",
                    },
                    "from_address": "cobros@acme.example",
                }
            )
            runs = []
            for n in range(args.poll_runs):
                _append(dovecot.port, login, 1000 + n)
                started = time.perf_counter()
                process_replies(
                    mailbox=mailbox,
                    source=CsvInvoiceSource(path=str(csv)),
                    channel=channel,
                    ledger=LedgerDatabase(url=url),
                )
                runs.append(time.perf_counter() - started)
    finally:
        dovecot.stop()
    run = statistics.median(runs)
    result = {
        "messages": len(latencies),
        "listener_median_s": round(statistics.median(latencies), 2),
        "listener_p95_s": round(_percentile(latencies, 0.95), 2),
        "listener_max_s": round(max(latencies), 2),
        "listener_first_message_s": round(warm_up, 2),
        "poll_run_median_s": round(run, 2),
        "poll_median_s": round(POLL_EVERY * 0.5 + run, 1),
        "poll_p95_s": round(POLL_EVERY * 0.95 + run, 1),
        "listener_exit": json.loads(out.strip().splitlines()[-1]) if out.strip() else None,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
