"""The webhook receiver under a real uvicorn on loopback (`dunning webhooks serve` in a
subprocess), with a real ledger, a real Prefect server (the session harness) and a real SMTP
server: valid, forged, replayed and malformed calls per provider; a paid event stopping a
planned reminder; a Prefect trigger starting the per-invoice flow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from apps.mailsink import MailSink, free_port
from dunning.inbound.verify import hmac_hex, stripe_header
from dunning.ledger import Action, Event, InboundMessage, InvoiceRecord, Ledger, WebhookEvent
from dunning.ledger.delivery import update_action
from dunning.ledger.inbound import closed_in_ledger, is_closed_in_ledger
from tests.invoices import write_invoices

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "data" / "whatsapp"
SECRETS = {
    "DUNNING_WHATSAPP_VERIFY_TOKEN": "verify-me-please",
    "DUNNING_WHATSAPP_APP_SECRET": "meta-app-secret",
    "DUNNING_STRIPE_WEBHOOK_SECRET": "whsec_test_secret",
    "DUNNING_ERP_WEBHOOK_SECRET": "erp-shared-secret",
}


class Receiver:
    """`dunning webhooks serve` in a subprocess on a free loopback port."""

    def __init__(self, ledger_url: str, prefect_api_url: str, log: Path) -> None:
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = os.environ | SECRETS | {"PYTHONPATH": str(ROOT)}
        args = [
            sys.executable, "-c", "from apps.cli import main; main()",
            "webhooks", "serve", "--port", str(self.port), "--ledger", ledger_url,
            "--prefect-api-url", prefect_api_url, "--emit-retry-seconds", "1",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"receiver did not start:\n{log.read_text()}")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", content=body, headers=headers, timeout=10)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('wh') / 'ledger.db'}"


@pytest.fixture(scope="module")
def receiver(prefect_api, ledger_url, tmp_path_factory) -> Iterator[Receiver]:
    r = Receiver(ledger_url, prefect_api, tmp_path_factory.mktemp("log") / "receiver.log")
    yield r
    r.stop()


@pytest.fixture
def ledger(ledger_url) -> Ledger:
    return Ledger(ledger_url)


def webhook_rows(ledger: Ledger, provider: str) -> list[dict]:
    return ledger.frame(WebhookEvent, provider=provider).to_dict("records")


def wait_for(check, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# -- WhatsApp ----------------------------------------------------------------------------------


def meta_headers(body: bytes, secret: str = SECRETS["DUNNING_WHATSAPP_APP_SECRET"]) -> dict:
    return {"X-Hub-Signature-256": f"sha256={hmac_hex(secret, body)}"}


def sample(name: str, wamid: str) -> bytes:
    doc = json.loads((SAMPLES / f"whatsapp_webhook_{name}.json").read_text())
    value = doc["entry"][0]["changes"][0]["value"]
    for item in value.get("messages", []) + value.get("statuses", []):
        item["id"] = wamid
    return json.dumps(doc).encode()


def test_health(receiver):
    answer = httpx.get(f"{receiver.url}/healthz").json()
    assert answer["status"] == "ok"
    assert answer["providers"] == {"whatsapp": True, "stripe": True, "erp": True}


def test_whatsapp_subscription_handshake(receiver):
    params = {"hub.mode": "subscribe", "hub.challenge": "1158201444"}
    ok = httpx.get(
        f"{receiver.url}/webhooks/whatsapp",
        params=params | {"hub.verify_token": "verify-me-please"},
    )
    assert (ok.status_code, ok.text) == (200, "1158201444")
    bad = httpx.get(
        f"{receiver.url}/webhooks/whatsapp", params=params | {"hub.verify_token": "guess"}
    )
    assert bad.status_code == 403 and "1158201444" not in bad.text


def test_whatsapp_message_valid_replayed_forged_malformed(receiver, ledger):
    body = sample("text_message", "wamid.REPLY-1")
    first = receiver.post("/webhooks/whatsapp", body, meta_headers(body))
    assert first.json() == {"stored": 1, "duplicates": 0}
    (inbox,) = ledger.frame(InboundMessage, provider_id="wamid.REPLY-1").to_dict("records")
    assert (inbox["channel"], inbox["sender"], inbox["sender_name"]) == (
        "whatsapp",
        "+972987654321",
        "Test Name",
    )
    assert (inbox["text"], inbox["state"]) == ("Body Text", "new")
    assert inbox["received_at"].replace(tzinfo=UTC) == datetime.fromtimestamp(1697043223, UTC)

    again = receiver.post("/webhooks/whatsapp", body, meta_headers(body))
    assert again.json() == {"stored": 0, "duplicates": 1}
    assert len(ledger.frame(InboundMessage, provider_id="wamid.REPLY-1")) == 1

    before = len(webhook_rows(ledger, "whatsapp"))
    forged = sample("text_message", "wamid.FORGED")
    assert (
        receiver.post("/webhooks/whatsapp", forged, meta_headers(forged, "wrong")).status_code
        == 401
    )
    assert receiver.post("/webhooks/whatsapp", forged, {}).status_code == 401
    broken = b'{"object": "whatsapp_business_account", "entry": [ '
    assert receiver.post("/webhooks/whatsapp", broken, meta_headers(broken)).status_code == 400
    other = b'{"object": "page", "entry": []}'
    assert receiver.post("/webhooks/whatsapp", other, meta_headers(other)).status_code == 400
    assert len(webhook_rows(ledger, "whatsapp")) == before
    assert len(ledger.frame(InboundMessage, provider_id="wamid.FORGED")) == 0
    log = receiver.log.read_text()
    assert "whatsapp webhook refused (401)" in log and "seen before: ignored" in log


def test_whatsapp_statuses_update_the_action(receiver, ledger):
    key = "F-WA-1:overdue_7:whatsapp"
    ledger.claim(
        key=key, invoice_number="F-WA-1", customer_id="C9", stage="overdue_7", channel="whatsapp"
    )
    update_action(ledger, key, message_id="wamid.SENT-1", recipient="+972987654321")
    ledger.mark_sent(key, "text")
    for status in ("sent", "delivered", "read"):
        body = sample(f"status_{status}", "wamid.SENT-1")
        assert receiver.post("/webhooks/whatsapp", body, meta_headers(body)).json()["stored"] == 1
    row = ledger.frame(Action, key=key).iloc[0]
    assert row["delivery_status"] == "read"
    assert row["delivered_at"].replace(tzinfo=UTC) == datetime.fromtimestamp(1698266945, UTC)
    assert row["read_at"].replace(tzinfo=UTC) == datetime.fromtimestamp(1689380458, UTC)
    assert len(ledger.frame(Event, kind="whatsapp_read")) == 1


def test_whatsapp_failed_status_is_recorded(receiver, ledger):
    key = "F-WA-2:due:whatsapp"
    ledger.claim(
        key=key, invoice_number="F-WA-2", customer_id="C9", stage="due", channel="whatsapp"
    )
    update_action(ledger, key, message_id="wamid.SENT-2")
    ledger.mark_sent(key, "text")
    body = sample("status_failed", "wamid.SENT-2")
    receiver.post("/webhooks/whatsapp", body, meta_headers(body))
    row = ledger.frame(Action, key=key).iloc[0]
    assert row["delivery_status"] == "failed"
    assert "experiment" in row["error"]


# -- Stripe ----------------------------------------------------------------------------------


def stripe_event(event_id: str, kind: str, number: str) -> bytes:
    return json.dumps(
        {
            "id": event_id, "object": "event", "type": kind, "api_version": "2026-06-24.dahlia",
            "created": int(time.time()), "livemode": False,
            "data": {"object": {"id": f"in_{event_id}", "object": "invoice", "number": number,
                                "status": kind.removeprefix("invoice."), "amount_due": 0}},
        }
    ).encode()  # fmt: skip


def stripe_headers(body: bytes, **kw) -> dict:
    return {"Stripe-Signature": stripe_header(body, SECRETS["DUNNING_STRIPE_WEBHOOK_SECRET"], **kw)}


def test_stripe_paid_and_voided_close_the_case_at_once(receiver, ledger):
    paid = stripe_event("evt_paid_1", "invoice.paid", "ST-1")
    assert receiver.post("/webhooks/stripe", paid, stripe_headers(paid)).json()["stored"] == 1
    assert closed_in_ledger(ledger, "ST-1") == "paid"
    voided = stripe_event("evt_void_1", "invoice.voided", "ST-2")
    receiver.post("/webhooks/stripe", voided, stripe_headers(voided))
    assert closed_in_ledger(ledger, "ST-2") == "cancelled"
    (event,) = ledger.frame(Event, kind="invoice_paid", invoice_number="ST-1").to_dict("records")
    assert event["actor"] == "webhook:stripe"
    # Stripe retries with a fresh signature: same event id, ignored
    again = receiver.post("/webhooks/stripe", paid, stripe_headers(paid))
    assert again.json() == {"stored": 0, "duplicates": 1}


def test_stripe_forged_old_and_malformed_are_refused_and_nothing_stored(receiver, ledger):
    before = len(webhook_rows(ledger, "stripe"))
    body = stripe_event("evt_forged", "invoice.paid", "ST-9")
    forged = {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}
    assert receiver.post("/webhooks/stripe", body, forged).status_code == 401
    old = stripe_headers(body, timestamp=int(time.time()) - 600)  # right signature, 10 min old
    refused = receiver.post("/webhooks/stripe", body, old)
    assert refused.status_code == 401 and "old" in refused.json()["error"]
    broken = b'{"id": "evt_x", "object": "event", '
    assert receiver.post("/webhooks/stripe", broken, stripe_headers(broken)).status_code == 400
    assert len(webhook_rows(ledger, "stripe")) == before
    assert not is_closed_in_ledger(ledger, "ST-9")
    assert "replayed or delayed call refused" in receiver.log.read_text()


# -- ERP -------------------------------------------------------------------------------------


def erp_headers(body: bytes, secret: str = SECRETS["DUNNING_ERP_WEBHOOK_SECRET"]) -> dict:
    return {"X-Dunning-Signature": f"sha256={hmac_hex(secret, body)}"}


def erp_event(event_id: str, kind: str, number: str, **invoice) -> bytes:
    doc = {"id": event_id, "type": kind, "invoice": {"invoice_number": number, **invoice}}
    return json.dumps(doc).encode()


def test_erp_events_valid_replayed_forged_malformed(receiver, ledger):
    for i, kind in enumerate(["invoice.created", "invoice.updated", "invoice.cancelled"]):
        body = erp_event(f"erp-{i}", kind, f"ERP-{i}")
        assert receiver.post("/webhooks/erp", body, erp_headers(body)).json()["stored"] == 1
    assert closed_in_ledger(ledger, "ERP-2") == "cancelled"
    assert closed_in_ledger(ledger, "ERP-1") is None
    replay = erp_event("erp-0", "invoice.created", "ERP-0")
    assert receiver.post("/webhooks/erp", replay, erp_headers(replay)).json()["duplicates"] == 1

    before = len(webhook_rows(ledger, "erp"))
    paid = erp_event("erp-forged", "invoice.paid", "ERP-9")
    assert receiver.post("/webhooks/erp", paid, erp_headers(paid, "guess")).status_code == 401
    unknown = erp_event("erp-x", "invoice.deleted", "ERP-9")
    answer = receiver.post("/webhooks/erp", unknown, erp_headers(unknown))
    assert answer.status_code == 400 and "invoice.created" in answer.json()["error"]
    broken = b"not json"
    assert receiver.post("/webhooks/erp", broken, erp_headers(broken)).status_code == 400
    assert len(webhook_rows(ledger, "erp")) == before
    assert not is_closed_in_ledger(ledger, "ERP-9")
    # An oversized body is refused before it is read whole, signature or not.
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert receiver.post("/webhooks/erp", huge, {"X-Dunning-Signature": "x"}).status_code == 413


# -- Prefect events ----------------------------------------------------------------------------


def prefect_events(api: str, prefix: str) -> list[dict]:
    answer = httpx.post(
        f"{api}/events/filter",
        json={"filter": {"event": {"prefix": [prefix]}, "order": "ASC"}, "limit": 50},
    )
    answer.raise_for_status()
    return answer.json()["events"]


def test_every_stored_event_is_emitted_once_to_prefect(receiver, ledger, prefect_api):
    body = erp_event("erp-emit-1", "invoice.paid", "ERP-E1")
    receiver.post("/webhooks/erp", body, erp_headers(body))
    receiver.post("/webhooks/erp", body, erp_headers(body))  # a replay: not a second event
    reply = sample("text_message", "wamid.REPLY-EMIT")
    receiver.post("/webhooks/whatsapp", reply, meta_headers(reply))

    def emitted():
        rows = ledger.frame(WebhookEvent)
        mine = rows[rows["event_id"].isin(["erp-emit-1", "wamid.REPLY-EMIT"])]
        return len(mine) == 2 and (mine["state"] == "emitted").all()

    wait_for(emitted, what="events emitted")
    paid = wait_for(
        lambda: [
            e
            for e in prefect_events(prefect_api, "dunning.invoice.paid")
            if e["payload"]["invoice_number"] == "ERP-E1"
        ],
        what="the paid event at the Prefect server",
    )
    assert len(paid) == 1
    assert paid[0]["resource"]["prefect.resource.id"] == "dunning.invoice.ERP-E1"
    replies = wait_for(
        lambda: [
            e
            for e in prefect_events(prefect_api, "dunning.reply.received")
            if e["payload"]["event_id"] == "wamid.REPLY-EMIT"
        ]
    )
    assert replies[0]["payload"]["sender"] == "+972987654321"


def test_events_wait_in_the_ledger_while_prefect_is_down(prefect_api, tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    down = f"http://127.0.0.1:{free_port('127.0.0.1')}/api"
    first = Receiver(url, down, tmp_path / "down.log")
    try:
        body = erp_event("erp-down-1", "invoice.paid", "ERP-D1")
        assert first.post("/webhooks/erp", body, erp_headers(body)).status_code == 200
        ledger = Ledger(url)
        wait_for(lambda: ledger.frame(WebhookEvent).iloc[0]["error"], what="an emit attempt")
        (row,) = ledger.frame(WebhookEvent).to_dict("records")
        assert row["state"] == "stored" and "Prefect API not reachable" in row["error"]
        assert is_closed_in_ledger(ledger, "ERP-D1")  # the effect did not wait for Prefect
    finally:
        first.stop()
    second = Receiver(url, prefect_api, tmp_path / "up.log")
    try:
        wait_for(
            lambda: ledger.frame(WebhookEvent).iloc[0]["state"] == "emitted",
            what="the stored event emitted after restart",
        )
        wait_for(
            lambda: [
                e
                for e in prefect_events(prefect_api, "dunning.invoice.paid")
                if e["payload"]["invoice_number"] == "ERP-D1"
            ],
            what="the event at the Prefect server",
        )
    finally:
        second.stop()


# -- a paid event stops a planned reminder -------------------------------------------------------


def test_a_paid_webhook_stops_the_reminder_a_sweep_planned(receiver, ledger, tmp_path):
    """The act step's send-time check, as the lead wires it into `execute_action`:

    fresh = lookup(invoice)
    if fresh is not None and (closed := closed_in_ledger(ledger, invoice)):
        fresh = fresh.model_copy(update={"status": closed})
    """
    from blocks import CsvInvoiceSource
    from dunning.act import EmailIdentity, execute_action
    from dunning.importers import read_invoice_file
    from dunning.plan import action_dicts, due_now, plan
    from dunning.policy import default_policy
    from dunning.smtp import SmtpPool, SmtpSettings

    now = datetime.fromisoformat("2026-12-09T10:00:00+01:00")
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="PAY-1", email="a@cliente.example", due_date="2026-12-02"),
            dict(
                invoice_number="PAY-2",
                email="b@cliente.example",
                due_date="2026-12-02",
                customer_id="C2",
            ),
        ],
    )
    source = CsvInvoiceSource(path=str(csv))
    ledger.sync_invoices(read_invoice_file(csv).invoices)
    actions = action_dicts(
        due_now(plan(read_invoice_file(csv).invoices, default_policy(), now), now)
    )
    assert sorted(a["invoice"] for a in actions) == ["PAY-1", "PAY-2"]

    # Stripe says PAY-1 is paid; the CSV (the source) does not know yet.
    paid = stripe_event("evt_pay_1", "invoice.paid", "PAY-1")
    assert receiver.post("/webhooks/stripe", paid, stripe_headers(paid)).status_code == 200
    # A sweep syncing the lagging source does not bring the reminder back.
    ledger.sync_invoices(read_invoice_file(csv).invoices)

    def lookup(number: str):
        fresh = source.get_invoice(number)
        if fresh is not None and (closed := closed_in_ledger(ledger, number)):
            fresh = fresh.model_copy(update={"status": closed})
        return fresh

    with MailSink(tmp_path / "outbox", port=0) as sink:
        outcomes = {
            a["invoice"]: execute_action(
                a,
                ledger=ledger,
                policy=default_policy(),
                lookup=lookup,
                pool=SmtpPool(SmtpSettings(host=sink.host, port=sink.port)),
                identity=EmailIdentity(from_address="cobros@acme.example"),
                now=now,
            )
            for a in actions
        }
        mails = sink.messages()
    assert (outcomes["PAY-1"].status, outcomes["PAY-1"].reason) == ("skipped", "paid_at_source")
    assert outcomes["PAY-2"].status == "sent"
    assert [m["To"] for m in mails] == ["b@cliente.example"]
    record = ledger.frame(InvoiceRecord, invoice_number="PAY-1").iloc[0]
    assert record["status"] == "open"  # the source still says open...
    assert closed_in_ledger(ledger, "PAY-1") == "paid"  # ...the webhook's payment holds


# -- the Prefect trigger starts the per-invoice flow ----------------------------------------------


def test_paid_event_triggers_the_per_invoice_flow(receiver, prefect_api, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.events import DeploymentEventTrigger

    from flows.sweep import dunning_invoice

    deployment = dunning_invoice.to_deployment(
        name="dunning-invoice-webhook-test",
        triggers=[
            DeploymentEventTrigger(
                expect={"dunning.invoice.paid", "dunning.invoice.updated"},
                match={"prefect.resource.id": "dunning.invoice.*"},
                parameters={"invoice": "{{ event.payload.invoice_number }}"},
            )
        ],
    )
    deployment_id = deployment.apply()

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

    # The triggers service picks a new automation up within moments; until it has, an event
    # starts nothing, so a fresh event (new id) is sent until one run starts (bounded).
    started = []
    for attempt in range(4):
        body = erp_event(f"erp-trigger-{attempt}", "invoice.paid", "TRIG-1", status="paid")
        assert receiver.post("/webhooks/erp", body, erp_headers(body)).status_code == 200
        try:
            started = wait_for(lambda: asyncio.run(runs()), timeout=15, what="a triggered run")
            break
        except AssertionError:
            continue
    assert started, "no flow run of the per-invoice deployment was triggered"
    assert {r.parameters["invoice"] for r in started} == {"TRIG-1"}
