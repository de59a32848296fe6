"""SMS sends per second against the in-process fake Twilio API, and the receiver's Twilio
webhooks per second (`python -m bench.twilio_bench [N]`).

Runs of N SMS each through the core send path (`dunning.twilio.sms.send_sms_reminder`:
consent, render, measure, claim, HTTP, record in a SQLite ledger), one thread:
unlimited; the fake answering 20429 above 10 requests/s (Twilio's own limit, retried with
backoff); with `--rate-limit`, through the `SmsChannel` block's `messages_per_second=10`
as the send task takes it (a Prefect global rate limit, one slot per message, on a
temporary Prefect server: `prefect_test_harness`); and the N status callbacks posted to the
real receiver (signature check, store once, apply). Prints wall time, messages/s and CPU
milliseconds per message (the rate-limited run's CPU includes the slot requests to the
server, not the server's own).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

from pydantic import SecretStr
from starlette.testclient import TestClient

from apps.webhooks.app import ReceiverConfig, create_app
from apps.webhooks.twilio import TwilioReceiverConfig
from dunning.ledger import Ledger
from dunning.schema import Invoice
from dunning.twilio.client import TwilioClient, TwilioSettings
from dunning.twilio.signature import twilio_signature
from dunning.twilio.sms import SmsSettings, send_sms_reminder
from tests.twilio_fake import TwilioServer

ACCOUNT, TOKEN, BASE = "AC" + "0" * 32, "t" * 32, "https://cobros.example.com"
SMS = SmsSettings(sender={"From": "+34910000000"}, status_callback_url=f"{BASE}/x")


def _send_all(ledger: Ledger, client: TwilioClient, n: int, prefix: str) -> list[str]:
    sids = []
    for i in range(n):
        inv = Invoice(invoice_number=f"{prefix}-{i}", customer_id=f"C{i}", phone=f"6{i:08d}",
                      country="ES", language="es", amount_due=1234.56, amount_total=1234.56,
                      due_date=date(2026, 12, 2), payment_link="https://pay.example/x")  # fmt: skip
        key = f"{inv.invoice_number}:overdue_7:sms"
        ledger.claim(key=key, invoice_number=inv.invoice_number, customer_id=inv.customer_id,
                     stage="overdue_7", channel="sms")  # fmt: skip
        result = send_sms_reminder(ledger=ledger, client=client, settings=SMS, key=key,
                                   invoice=inv, stage="overdue_7", language="es", country="ES",
                                   today=date(2026, 12, 9))  # fmt: skip
        sids.append(result.message_id)
    return sids


def _timed(label: str, n: int, run) -> None:  # noqa: ANN001
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<44} {n:>5}  {wall:7.2f} s  {n / wall:8.1f}/s  {1000 * cpu / n:6.2f} ms CPU")


def send_rate_limited(
    ledger: Ledger, client: TwilioClient, n: int, rate: float, prefix: str = "R"
) -> None:
    """Send `n` SMS as the send task does with an `SmsChannel` whose `messages_per_second`
    is `rate`: make sure of the block's Prefect rate limit, then take one slot per message.
    Needs a Prefect API (`PREFECT_API_URL`)."""
    from prefect.concurrency.sync import rate_limit

    from blocks.twilio import SmsChannel, TwilioCredentials
    from tasks.erp import ensure_rate_limit

    block = SmsChannel(credentials=TwilioCredentials(account_sid=ACCOUNT, auth_token=TOKEN),
                       from_number="+34910000000", messages_per_second=rate)  # fmt: skip
    name = ensure_rate_limit(block)
    assert name is not None
    for i in range(n):
        rate_limit(name, strict=True)
        _send_all(ledger, client, 1, f"{prefix}{i}")


def _with_block_rate_limit(ledger: Ledger, client: TwilioClient, n: int, rate: float) -> None:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        send_rate_limited(ledger, client, 1, rate, "W")  # outside the timing: server warm-up
        _timed(f"SMS, SmsChannel messages_per_second={rate:g}", n,
               lambda: send_rate_limited(ledger, client, n, rate))  # fmt: skip


def main(n: int = 200, with_rate_limit: bool = False) -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        TwilioServer(account_sid=ACCOUNT, auth_token=TOKEN) as api,
    ):
        ledger = Ledger(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        client = TwilioClient(TwilioSettings(ACCOUNT, ACCOUNT, TOKEN, base_url=api.base_url,
                                             backoff_seconds=0.25))  # fmt: skip
        sids: list[str] = []
        _timed("SMS, no limit", n, lambda: sids.extend(_send_all(ledger, client, n, "A")))
        api.state.max_per_second = 10
        _timed("SMS, Twilio answering 20429 above 10/s", n,
               lambda: _send_all(ledger, client, n, "B"))  # fmt: skip
        api.state.max_per_second = 0
        if with_rate_limit:
            _with_block_rate_limit(ledger, client, n, 10)
        config = ReceiverConfig(
            ledger_url=ledger.url,
            twilio=TwilioReceiverConfig(auth_token=SecretStr(TOKEN), sms_base_url=BASE),
        )
        with TestClient(create_app(config)) as receiver:

            def callbacks() -> None:
                for sid in sids:
                    form = {"MessageSid": sid, "MessageStatus": "delivered", "To": "+34600000000",
                            "AccountSid": ACCOUNT}  # fmt: skip
                    url = f"{BASE}/webhooks/twilio/sms/status"
                    signature = twilio_signature(TOKEN, url, form)
                    headers = {"Content-Type": "application/x-www-form-urlencoded",
                               "X-Twilio-Signature": signature}  # fmt: skip
                    answer = receiver.post("/webhooks/twilio/sms/status", content=urlencode(form),
                                           headers=headers)  # fmt: skip
                    assert answer.status_code == 200, answer.text

            _timed("receiver: SMS status webhooks", len(sids), callbacks)
    print(f"(measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 200, with_rate_limit="--rate-limit" in sys.argv)
