"""SMS sends per second against the in-process fake Twilio API, and the receiver's Twilio
webhooks per second (`python -m bench.twilio_bench [N]`).

Three runs of N SMS each through the core send path (`dunning.twilio.sms.send_sms_reminder`:
consent, render, measure, claim, HTTP, record in a SQLite ledger), one thread:
unlimited; the fake answering 20429 above 10 requests/s (Twilio's own limit, retried with
backoff); and the same N status callbacks posted to the real receiver (signature check,
store once, apply). Prints wall time, messages/s and CPU milliseconds per message.
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


def main(n: int = 200) -> None:
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
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
