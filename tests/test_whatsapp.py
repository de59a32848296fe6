"""WhatsApp channel against an in-process server speaking the Cloud API contract, a real
ledger (SQLite file, and the machine's PostgreSQL) and a real SMTP server for the fallback."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from apps.mailsink import MailSink
from dunning.act import EmailIdentity, execute_action
from dunning.ledger import Action, Event, HumanTask, InboundMessage, Ledger, Pause
from dunning.policy import default_policy
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from dunning.whatsapp import (
    CloudApiSettings,
    InvalidPhone,
    StatusUpdate,
    TemplateBook,
    TemplateError,
    WhatsAppClient,
    apply_status,
    delivery_rates,
    readiness,
    record_opt_in,
    send_whatsapp_answer,
    send_whatsapp_reminder,
    to_e164,
)
from dunning.whatsapp.client import AuthError, RateLimited
from tests.whatsapp_cloud import CloudApiServer, approved_from

TOKEN = "EAAG-test-token-never-logged"
PHONE_ID = "106540352242922"
TODAY = date(2026, 12, 9)
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
BOOK = TemplateBook.load()
DEFAULT_STAGES = ["pre_due", "due", "overdue_1", "overdue_7", "overdue_15", "final"]


@pytest.fixture
def api():
    with CloudApiServer(token=TOKEN, phone_number_id=PHONE_ID, approved=approved_from(BOOK)) as s:
        yield s


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def client_for(api: CloudApiServer, token: str = TOKEN, **kw) -> WhatsAppClient:
    settings = CloudApiSettings(
        PHONE_ID, access_token=token, base_url=api.base_url, backoff_seconds=0.01, **kw
    )
    return WhatsAppClient(settings)


def invoice(number: str = "F-100", **kw) -> Invoice:
    fields = dict(
        invoice_number=number,
        customer_id="C1",
        customer_name="Talleres Ebro S.L.",
        email="pagos@ebro.example",
        phone="600 12 34 56",
        country="ES",
        language="es",
        currency="EUR",
        amount_total=2000.0,
        amount_due=1234.56,
        issue_date=date(2026, 11, 2),
        due_date=date(2026, 12, 2),
        payment_link="https://pay.example/F-100",
    )
    return Invoice(**(fields | kw))


def send(ledger: Ledger, client: WhatsAppClient, inv: Invoice, stage: str = "overdue_7", **kw):
    key = f"{inv.invoice_number}:{stage}:whatsapp"
    claim = ledger.claim(
        key=key,
        invoice_number=inv.invoice_number,
        customer_id=inv.customer_id,
        stage=stage,
        channel="whatsapp",
    )
    assert claim.claimed
    args = dict(
        ledger=ledger,
        client=client,
        key=key,
        invoice=inv,
        stage=stage,
        language=inv.language,
        country=inv.country,
        today=TODAY,
        templates=BOOK,
        opted_in=True,
    )
    return send_whatsapp_reminder(**(args | kw))


def action(ledger: Ledger, key: str) -> dict:
    return ledger.frame(Action, key=key).iloc[0].to_dict()


def events(ledger: Ledger, kind: str) -> list[dict]:
    return ledger.frame(Event, kind=kind).to_dict("records")


# -- phone numbers and templates -------------------------------------------------------------


def test_phone_numbers_become_e164_with_the_customer_country():
    assert to_e164("600 12 34 56", "ES") == "+34600123456"
    assert to_e164("0034 600-12-34-56", "MX") == "+34600123456"
    assert to_e164("55 1234 5678", "MX") == "+525512345678"
    assert to_e164("(11) 91234-5678", "BR") == "+5511912345678"
    with pytest.raises(InvalidPhone, match=r"'12345' is not a valid number for country ES"):
        to_e164("12345", "ES")
    with pytest.raises(InvalidPhone, match="no phone number"):
        to_e164("", "ES")


def test_every_ladder_stage_has_a_template_in_es_en_pt():
    for stage in [*DEFAULT_STAGES, "promise_broken"]:
        assert BOOK.languages(stage) == ["en", "es", "pt"], stage
    assert [s.name for s in default_policy().ladder()] == DEFAULT_STAGES


def test_a_bad_template_mapping_names_the_file_and_the_problem(tmp_path: Path):
    (tmp_path / "due.yaml").write_text(
        "stage: due\nname: x\nlanguages:\n  es:\n    code: es\n"
        '    body: "Hola {{1}}, {{2}}"\n    parameters: [customer_name]\n'
    )
    with pytest.raises(TemplateError, match=r"due.yaml, language es: the body has placeholders"):
        TemplateBook.load(tmp_path)
    (tmp_path / "due.yaml").write_text(
        'name: x\nlanguages:\n  es:\n    code: es\n    body: "Hola {{1}}"\n    parameters: [iban]\n'
    )
    with pytest.raises(TemplateError, match=r"unknown parameter\(s\) \['iban'\]"):
        TemplateBook.load(tmp_path)


# -- template messages at the Cloud API -------------------------------------------------------


@pytest.mark.parametrize(
    ("lang", "country", "phone", "code", "amount", "due"),
    [
        ("es", "ES", "600 12 34 56", "es", "1.234,56\xa0€", "2 de diciembre de 2026"),
        ("en", "US", "(212) 555-0143", "en", "€1,234.56", "December 2, 2026"),
        ("pt", "BR", "(11) 91234-5678", "pt_BR", "€\xa01.234,56", "2 de dezembro de 2026"),
    ],
)
def test_template_message_carries_the_stage_template_and_locale_parameters(
    api, ledger, lang, country, phone, code, amount, due
):
    inv = invoice(language=lang, country=country, phone=phone)
    result = send(ledger, client_for(api), inv, stage="overdue_1")

    assert result.status == "sent", result
    (request,) = api.state.requests
    assert request["path"] == f"/v21.0/{PHONE_ID}/messages"
    body = request["body"]
    e164 = to_e164(phone, country)
    assert body["to"] == e164.lstrip("+")
    assert body["type"] == "template"
    assert body["template"]["name"] == "dunning_overdue_1"
    assert body["template"]["language"]["code"] == code
    params = [p["text"] for p in body["template"]["components"][0]["parameters"]]
    assert params == ["Talleres Ebro S.L.", "F-100", amount, due, "https://pay.example/F-100"]

    row = action(ledger, "F-100:overdue_1:whatsapp")
    answered = request["answer"]["messages"][0]["id"]
    assert (row["state"], row["message_id"], row["recipient"]) == ("sent", answered, e164)
    assert amount in row["provider_response"]  # the text the customer read
    (sent,) = events(ledger, "sent")
    assert sent["detail"]["template"] == "dunning_overdue_1"
    assert sent["detail"]["message_id"] == answered


def test_promise_broken_and_every_stage_are_accepted_by_meta(api, ledger):
    client = client_for(api)
    for i, stage in enumerate([*DEFAULT_STAGES, "promise_broken"]):
        result = send(ledger, client, invoice(f"F-{i}"), stage=stage)
        assert result.status == "sent", (stage, result)
    assert len(api.state.sent()) == 7


def test_invoice_missing_a_template_parameter_falls_back_to_email(api, ledger):
    result = send(ledger, client_for(api), invoice(payment_link=""), stage="overdue_1")
    assert (result.status, result.reason, result.fallback) == ("rejected", "no_template", "email")
    assert "needs 'payment_link'" in result.detail
    assert api.state.requests == []
    assert action(ledger, "F-100:overdue_1:whatsapp")["state"] == "rejected"


# -- error codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [130429, 131056])
def test_rate_limits_are_retried_with_backoff_and_recorded(api, ledger, code):
    api.state.scripted["34600123456"] = [code, code]
    result = send(ledger, client_for(api), invoice())
    assert result.status == "sent"
    assert [r["status"] for r in api.state.requests] == [400, 400, 200]
    retries = events(ledger, "send_retry")
    assert [(e["detail"]["code"], e["detail"]["attempt"]) for e in retries] == [
        (code, 1),
        (code, 2),
    ]
    assert action(ledger, "F-100:overdue_7:whatsapp")["state"] == "sent"


def test_a_lasting_rate_limit_leaves_the_action_retryable_and_the_others_go_on(api, ledger):
    api.state.scripted["34600123456"] = [130429] * 3
    client = client_for(api, max_attempts=3)
    with pytest.raises(RateLimited) as caught:
        send(ledger, client, invoice())
    assert caught.value.permanent is False  # the send task's retry condition retries it
    row = action(ledger, "F-100:overdue_7:whatsapp")
    assert row["state"] == "failed" and "130429" in row["error"]
    # the next customer of the sweep is sent as usual
    other = send(ledger, client, invoice("F-200", customer_id="C2", phone="611 22 33 44"))
    assert other.status == "sent"
    # and the rate-limited action can be claimed again by the next attempt
    assert ledger.claim(
        key="F-100:overdue_7:whatsapp",
        invoice_number="F-100",
        customer_id="C1",
        stage="overdue_7",
        channel="whatsapp",
    ).claimed


def test_undeliverable_number_falls_back_to_email_that_arrives_and_marks_the_contact(
    api, ledger, tmp_path
):
    api.state.not_on_whatsapp.add("34600123456")
    inv = invoice()
    result = send(ledger, client_for(api), inv)
    assert (result.status, result.reason, result.fallback) == ("rejected", "undeliverable", "email")
    assert result.code == 131026
    assert action(ledger, "F-100:overdue_7:whatsapp")["state"] == "rejected"
    (task,) = ledger.frame(HumanTask).to_dict("records")
    assert "+34600123456" in task["title"] and task["customer_id"] == "C1"

    # The act step's fallback: the same stage by email, through the real SMTP server.
    with MailSink(tmp_path / "outbox", port=0) as sink:
        outcome = execute_action(
            {
                "key": "F-100:overdue_7:email",
                "invoice": "F-100",
                "customer": "C1",
                "stage": "overdue_7",
                "channel": "email",
                "language": "es",
                "country": "ES",
                "timezone": "Europe/Madrid",
            },
            ledger=ledger,
            policy=default_policy(),
            lookup=lambda _: inv,
            pool=SmtpPool(SmtpSettings(host=sink.host, port=sink.port)),
            identity=EmailIdentity(from_address="cobros@acme.example"),
            now=NOW,
        )
        assert outcome.status == "sent", outcome
        (mail,) = sink.messages()
    assert mail["To"] == "pagos@ebro.example" and "F-100" in mail["Subject"]

    # The marked number is not tried again: no second request to Meta.
    again = readiness(
        ledger, customer_id="C1", phone="600123456", country="ES", opted_in_at_source=True
    )
    assert (again.ok, again.reason) == (False, "contact_invalid")
    second = send(ledger, client_for(api), invoice("F-101"))
    assert (second.reason, second.fallback) == ("contact_invalid", "email")
    assert len(api.state.requests) == 1


def test_an_unreadable_number_is_a_clear_per_invoice_error_and_falls_back(api, ledger):
    client = client_for(api)
    bad = send(ledger, client, invoice(phone="12-34"))
    assert (bad.status, bad.reason, bad.fallback) == ("rejected", "invalid_phone", "email")
    assert "'12-34'" in bad.detail and "fix it at the source" in bad.detail
    assert "invalid_phone" in action(ledger, "F-100:overdue_7:whatsapp")["error"]
    good = send(ledger, client, invoice("F-200", customer_id="C2", phone="+34 611 22 33 44"))
    assert good.status == "sent"
    assert [r["body"]["to"] for r in api.state.requests] == ["34611223344"]


def test_an_expired_token_fails_fast_naming_the_block_and_never_leaks(api, ledger):
    client = client_for(api, token="EAAG-expired", owner="the WhatsAppCloudChannel block 'wa'")
    with pytest.raises(AuthError) as caught:
        send(ledger, client, invoice())
    message = str(caught.value)
    assert "access_token" in message and "WhatsAppCloudChannel block 'wa'" in message
    assert "EAAG-expired" not in message
    # Not the message's fault: the action can be taken again once the token is fixed.
    assert action(ledger, "F-100:overdue_7:whatsapp")["state"] == "failed"
    # Fail fast: the next message does not even reach Meta.
    with pytest.raises(AuthError):
        send(ledger, client, invoice("F-200", customer_id="C2", phone="611223344"))
    assert len(api.state.requests) == 1
    everything = ledger.frame(Event).to_json(date_format="iso") + ledger.frame(Action).to_json(
        date_format="iso"
    )
    assert "EAAG-expired" not in everything


def test_block_names_itself_in_the_token_error(api, ledger, prefect_api):
    from blocks.whatsapp import WhatsAppCloudChannel

    WhatsAppCloudChannel(
        phone_number_id=PHONE_ID,
        access_token="EAAG-wrong",
        base_url=api.base_url,
        backoff_seconds=0.01,
    ).save("wa-test", overwrite=True)
    block = WhatsAppCloudChannel.load("wa-test")
    with pytest.raises(AuthError, match="WhatsAppCloudChannel block 'wa-test'"):
        send(ledger, block.client(), invoice())


# -- answers and the 24-hour window -----------------------------------------------------------


def inbound(ledger: Ledger, phone: str, at: datetime) -> None:
    ledger.store_inbound(
        [
            InboundMessage(
                provider_id=f"wamid.{at.timestamp()}",
                channel="whatsapp",
                sender=phone,
                text="¿Me reenvían la factura?",
                received_at=at,
            )
        ]
    )


def answer(ledger: Ledger, client: WhatsAppClient, key: str, now: datetime):
    ledger.claim(
        key=key, invoice_number="F-100", customer_id="C1", stage="answer", channel="whatsapp"
    )
    return send_whatsapp_answer(
        ledger=ledger,
        client=client,
        key=key,
        invoice=invoice(),
        phone="+34600123456",
        text="Le enviamos la factura\npor email hoy.",
        language="es",
        now=now,
        templates=BOOK,
    )


def test_answer_inside_the_window_is_free_text(api, ledger):
    now = datetime.now(UTC)
    inbound(ledger, "+34600123456", now - timedelta(hours=2))
    api.state.last_inbound["34600123456"] = time.time() - 7200
    result = answer(ledger, client_for(api), "F-100:answer-1:whatsapp", now)
    assert result.status == "sent"
    (request,) = api.state.requests
    assert request["body"]["type"] == "text"
    assert request["body"]["text"]["body"] == "Le enviamos la factura\npor email hoy."


def test_answer_outside_the_window_is_the_answer_template(api, ledger):
    now = datetime.now(UTC)
    inbound(ledger, "+34600123456", now - timedelta(hours=30))
    result = answer(ledger, client_for(api), "F-100:answer-1:whatsapp", now)
    assert result.status == "sent"
    (request,) = api.state.requests  # no free text was tried
    template = request["body"]["template"]
    assert template["name"] == "dunning_answer"
    params = [p["text"] for p in template["components"][0]["parameters"]]
    assert params == ["Talleres Ebro S.L.", "F-100", "Le enviamos la factura por email hoy."]


def test_131047_from_meta_falls_back_to_the_template(api, ledger):
    now = datetime.now(UTC)
    inbound(ledger, "+34600123456", now - timedelta(hours=1))  # our inbox says: open
    # ...but Meta's clock disagrees (no inbound message on its side): 131047
    result = answer(ledger, client_for(api), "F-100:answer-1:whatsapp", now)
    assert result.status == "sent"
    assert [r["body"]["type"] for r in api.state.requests] == ["text", "template"]
    assert [r["status"] for r in api.state.requests] == [400, 200]
    (outside,) = events(ledger, "whatsapp_outside_window")
    assert "131047" in outside["detail"]["error"]
    row = action(ledger, "F-100:answer-1:whatsapp")
    assert row["state"] == "sent"
    assert row["message_id"] == api.state.requests[1]["answer"]["messages"][0]["id"]


# -- consent --------------------------------------------------------------------------------


def test_whatsapp_only_with_an_opt_in_and_never_after_an_opt_out(api, ledger):
    client = client_for(api)
    no = send(ledger, client, invoice("F-1"), opted_in=False)
    assert (no.status, no.reason, no.fallback) == ("rejected", "no_consent", "email")

    record_opt_in(ledger, "C1", phone="+34600123456", source="signed contract 2026-01")
    assert send(ledger, client, invoice("F-2"), opted_in=False).status == "sent"

    ledger.add_pause("opt_out", customer_id="C1", channel="whatsapp", reason="STOP")
    out = send(ledger, client, invoice("F-3"), opted_in=True)
    assert (out.reason, out.fallback) == ("opted_out", "email")
    assert len(api.state.requests) == 1  # only F-2 reached Meta


def test_an_email_only_opt_out_still_allows_whatsapp(api, ledger):
    ledger.add_pause("opt_out", customer_id="C1", channel="email", reason="no email please")
    assert send(ledger, client_for(api), invoice()).status == "sent"


# -- delivery statuses ----------------------------------------------------------------------


def sample_statuses() -> dict[str, dict]:
    root = Path(__file__).parent / "data" / "whatsapp"
    out = {}
    for status in ("sent", "delivered", "read", "failed"):
        doc = json.loads((root / f"whatsapp_webhook_status_{status}.json").read_text())
        out[status] = doc["entry"][0]["changes"][0]["value"]["statuses"][0]
    return out


@pytest.mark.postgres
def test_statuses_move_forward_only_and_give_delivered_and_read_rates(api, pg_url):
    ledger = Ledger(pg_url)
    client = client_for(api)
    ids = []
    for i in range(4):
        result = send(ledger, client, invoice(f"F-{i}", customer_id=f"C{i}"))
        ids.append(result.message_id)
    samples = sample_statuses()

    def status(i: int, name: str, **kw) -> str | None:
        item = samples[name]
        at = datetime.fromtimestamp(int(item["timestamp"]), UTC)
        return apply_status(ledger, StatusUpdate(ids[i], name, at, **kw))

    assert status(0, "delivered") == "F-0:overdue_7:whatsapp"
    status(0, "read")
    status(0, "delivered")  # late and out of order: does not undo "read"
    status(1, "read")  # read without a delivered webhook: delivered too
    status(2, "delivered")
    code = samples["failed"]["errors"][0]["code"]
    status(3, "failed", error_code=code, error=samples["failed"]["errors"][0]["title"])
    assert apply_status(ledger, StatusUpdate("wamid.unknown", "read", NOW)) is None

    actions = ledger.frame(Action).set_index("invoice_number")
    assert actions.loc["F-0", "delivery_status"] == "read"
    assert actions.loc["F-1", "delivered_at"] is not None
    assert actions.loc["F-3", "delivery_status"] == "failed"
    rates = delivery_rates(ledger.frame(Action)).loc["whatsapp"]
    assert (rates["sent"], rates["delivered"], rates["read"], rates["failed"]) == (4, 3, 2, 1)
    assert rates["delivered_rate"] == 0.75 and rates["read_rate"] == 0.5
    assert len(ledger.frame(Event, kind="whatsapp_read")) == 2


def test_a_131026_failure_status_marks_the_contact(api, ledger):
    result = send(ledger, client_for(api), invoice())
    apply_status(
        ledger,
        StatusUpdate(
            result.message_id,
            "failed",
            NOW,
            recipient="34600123456",
            error_code=131026,
            error="Message undeliverable",
        ),
    )
    check = readiness(
        ledger, customer_id="C1", phone="+34600123456", country="ES", opted_in_at_source=True
    )
    assert check.reason == "contact_invalid"
    assert len(ledger.frame(Pause)) == 0


def test_a_whole_frame_of_numbers_is_normalised_for_planning(api, ledger):
    import pandas as pd

    from dunning.whatsapp.consent import invalid_contacts, opted_in_customers
    from dunning.whatsapp.phones import normalize_phones

    phones = pd.Series(["600 12 34 56", "600123456", "12-34", None, "+52 55 1234 5678"])
    countries = pd.Series(["ES", "ES", "ES", "ES", "ES"])
    assert normalize_phones(phones, countries).tolist() == [
        "+34600123456", "+34600123456", "", "", "+525512345678",
    ]  # fmt: skip
    record_opt_in(ledger, "C1", source="web form")
    api.state.not_on_whatsapp.add("34611223344")
    send(ledger, client_for(api), invoice(customer_id="C2", phone="611 22 33 44"))
    assert opted_in_customers(ledger) == {"C1"}
    assert invalid_contacts(ledger) == {("C2", "+34611223344")}
