"""SMS and automated calls over Twilio, against an in-process fake of Twilio's REST API
(`tests/twilio_fake.py`), the real webhook receiver, a real SQLite ledger, the real SMTP
sink for fallbacks and the Prefect test harness for sweeps."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from apps.mailsink import MailSink
from apps.webhooks.app import ReceiverConfig, create_app
from apps.webhooks.twilio import TwilioReceiverConfig
from dunning.act import EmailIdentity, SmsSender, VoiceSender, execute_action
from dunning.ledger import Action, Event, HumanTask, InboundMessage, Ledger, Pause, WebhookEvent
from dunning.policy import default_policy
from dunning.render import message_context
from dunning.schema import Invoice
from dunning.smtp import SmtpPool, SmtpSettings
from dunning.twilio.client import RateLimited, TwilioClient, TwilioSettings
from dunning.twilio.signature import twilio_signature
from dunning.twilio.sms import SmsSettings
from dunning.twilio.text import measure, render_sms, to_gsm7
from dunning.twilio.voice import VoiceSettings, retry_unanswered_calls
from dunning.twilio.webhooks import TwilioEffects
from tests.twilio_fake import TwilioServer

DATA = Path(__file__).parent / "data" / "twilio"
ACCOUNT = "AC" + "0" * 31 + "1"
TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0f"
BASE = "https://cobros.example.com"
SENDER = "+34910000000"
NOW = datetime(2026, 12, 9, 10, 0, tzinfo=UTC)
TODAY = date(2026, 12, 9)
STAGES = ["pre_due", "due", "overdue_1", "overdue_7", "overdue_15", "final", "promise_broken"]


@pytest.fixture
def api():
    with TwilioServer(account_sid=ACCOUNT, auth_token=TOKEN) as server:
        yield server


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")


def client_for(api: TwilioServer, **kw) -> TwilioClient:
    settings = TwilioSettings(
        ACCOUNT, username=ACCOUNT, password=TOKEN, base_url=api.base_url, backoff_seconds=0.01
    )
    return TwilioClient(settings.__class__(**{**settings.__dict__, **kw}))


SMS = SmsSettings(sender={"From": SENDER}, status_callback_url=f"{BASE}/webhooks/twilio/sms/status")
VOICE = VoiceSettings(
    caller=SENDER,
    status_callback_url=f"{BASE}/webhooks/twilio/voice/status",
    gather_url=f"{BASE}/webhooks/twilio/voice/gather",
    say_languages={"es": "es-ES", "en": "en-US", "pt": "pt-BR"},
    voices={"es": "Polly.Lucia", "en": "Polly.Joanna", "pt": "Polly.Camila"},
    call_attempts=2,
    retry_after=timedelta(minutes=30),
)


def invoice(number: str = "F-100", **kw) -> Invoice:
    fields = dict(
        invoice_number=number,
        customer_id="C1",
        customer_name="Talleres Ebro S.L.",
        email="",
        phone="600 12 34 56",
        country="ES",
        language="es",
        timezone="Europe/Madrid",
        currency="EUR",
        amount_total=2000.0,
        amount_due=1234.56,
        issue_date=date(2026, 11, 2),
        due_date=date(2026, 12, 2),
        payment_link="https://pay.example/F-100",
    )
    return Invoice(**(fields | kw))


def act(ledger, inv, channel, *, stage="overdue_7", api=None, pool=None, client=None, voice=VOICE):
    """Carry out one planned action as the sweep's task does (SMTP pool for fallbacks)."""
    client = client or (client_for(api) if api else None)
    return execute_action(
        {
            "key": f"{inv.invoice_number}:{stage}:{channel}",
            "customer": inv.customer_id,
            "stage": stage,
            "language": inv.language,
            "country": inv.country,
            "timezone": "Europe/Madrid",
        },
        ledger=ledger,
        policy=default_policy(),
        lookup=lambda _: inv,
        pool=pool,
        identity=EmailIdentity(from_address="cobros@acme.example", from_name="Acme S.L."),
        now=NOW,
        sms=SmsSender(client, SMS) if client else None,
        voice=VoiceSender(client, voice) if client else None,
    )


def events(ledger: Ledger, kind: str) -> list[dict]:
    return ledger.frame(Event, kind=kind).to_dict("records")


# -- signatures ------------------------------------------------------------------------------


def test_signatures_match_twilios_vectors_and_the_contract_samples():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}  # fmt: skip
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    samples = json.loads((DATA / "signed_calls.json").read_text())
    for name, call in samples["calls"].items():
        form = parse_qs(call["body"], keep_blank_values=True)
        assert twilio_signature(samples["auth_token"], call["url"], form) == call["signature"], name
        assert twilio_signature(samples["auth_token"], call["url"] + "x", form) != call["signature"]


# -- SMS text: encoding and segments ----------------------------------------------------------


def test_segments_and_encoding_as_the_contract_computes_them():
    link = "https://pay.example.com/f/0153"
    aqui = f"Recordatorio: la factura F-2024-0153 de 1.250,00 EUR vence mañana. Pague aquí: {link}"
    assert (measure(aqui).encoding, measure(aqui).units, measure(aqui).segments) == (
        "UCS-2",
        109,
        2,
    )
    plain = aqui.replace("aquí", "aqui")
    assert (measure(plain).encoding, measure(plain).units, measure(plain).segments) == (
        "GSM-7",
        109,
        1,
    )
    euro = f"Recordatorio: la factura F-2024-0153 de 1.250,00 € vence mañana. Pague en {link}"
    assert (measure(euro).encoding, measure(euro).units) == ("GSM-7", len(euro) + 1)
    pt = f"Lembrete: a fatura F-2024-0153 de R$ 1.250,00 vence amanhã. Pague em {link}"
    assert (measure(pt).encoding, measure(pt).units, measure(pt).segments) == ("UCS-2", 99, 2)
    assert measure("x" * 160).segments == 1 and measure("x" * 161).segments == 2
    assert measure("á" * 70).segments == 1 and measure("á" * 71).segments == 2


def test_spanish_and_portuguese_accents_become_gsm7_and_keep_what_gsm7_has():
    assert to_gsm7("Pague aquí, ¿mañana? Última") == "Pague aqui, ¿mañana? Ultima"
    assert to_gsm7("não recebemos a cobrança até amanhã, você") == (
        "nao recebemos a cobranca até amanha, voce"  # é is GSM-7: kept
    )
    assert to_gsm7("1.234,56\xa0€ “ok”") == '1.234,56 € "ok"'
    assert measure(to_gsm7("Москва")).encoding == "UCS-2"


@pytest.mark.parametrize(
    ("lang", "country", "currency"), [("es", "ES", "EUR"), ("en", "US", "USD"), ("pt", "BR", "BRL")]
)
def test_every_stage_renders_within_two_segments_with_amount_invoice_and_link(
    lang, country, currency
):
    context = message_context(
        customer_name="Distribuidora Nacional de Ferreterías del Noroeste S.A.",
        invoice_number="FAC-2026-000153",
        amount_due=1234567.89,
        amount_total=2000000.0,
        currency=currency,
        due_date=date(2026, 11, 2),
        issue_date=date(2026, 10, 2),
        today=TODAY,
        language=lang,
        country=country,
        payment_link="https://pay.example.com/i/FAC-2026-000153-7f3a9c",
        company_name="Comercializadora Ibérica de Suministros S.L.",
    )
    for stage in STAGES:
        sms = render_sms(stage, lang, context)
        assert sms.segments <= 2 and sms.encoding == "GSM-7", (stage, sms)
        assert "FAC-2026-000153" in sms.text and "https://pay.example.com/i/" in sms.text
        assert "1.234.567,89" in sms.text or "1,234,567.89" in sms.text, sms.text


# -- sending an SMS ---------------------------------------------------------------------------


def test_an_sms_carries_amount_invoice_and_link_and_is_recorded(api, ledger):
    outcome = act(ledger, invoice(), "sms", api=api)
    assert (outcome.status, outcome.channel) == ("sent", "sms"), outcome
    (form,) = api.state.created("Messages")
    assert form["To"] == "+34600123456" and form["From"] == SENDER
    assert form["StatusCallback"] == f"{BASE}/webhooks/twilio/sms/status"
    assert "F-100" in form["Body"] and "1.234,56 €" in form["Body"]
    assert "https://pay.example/F-100" in form["Body"]
    assert measure(form["Body"]).segments <= 2
    assert api.state.requests[0]["content_type"].startswith("application/x-www-form-urlencoded")
    row = ledger.frame(Action, key="F-100:overdue_7:sms").iloc[0]
    assert (row["state"], row["recipient"]) == ("sent", "+34600123456")
    assert row["message_id"] == api.state.requests[0]["answer"]["sid"]
    (sent,) = events(ledger, "sent")
    assert sent["detail"]["segments"] == measure(form["Body"]).segments
    assert sent["detail"]["encoding"] == "GSM-7"


def test_rate_limit_20429_is_retried_with_backoff_and_sends_once(api, ledger):
    api.state.scripted["+34600123456"] = [20429, 20429]
    outcome = act(ledger, invoice(), "sms", api=api)
    assert outcome.status == "sent"
    assert [r["status"] for r in api.state.requests] == [429, 429, 201]
    assert len(api.state.created("Messages")) == 1
    retries = events(ledger, "send_retry")
    assert [(e["detail"]["code"], e["detail"]["attempt"]) for e in retries] == [
        (20429, 1),
        (20429, 2),
    ]


def test_a_lasting_rate_limit_is_raised_as_temporary_and_the_action_stays_retryable(api, ledger):
    api.state.scripted["+34600123456"] = [20429] * 3
    with pytest.raises(RateLimited) as caught:
        act(ledger, invoice(), "sms", client=client_for(api, max_attempts=3))
    assert caught.value.permanent is False
    assert ledger.frame(Action, key="F-100:overdue_7:sms").iloc[0]["state"] == "failed"
    outcome = act(ledger, invoice(), "sms", api=api)  # the task's retry
    assert outcome.status == "sent" and len(api.state.created("Messages")) == 1


@pytest.mark.parametrize(("code", "where"), [(21211, "invalid"), (21614, "landlines")])
def test_an_invalid_or_landline_number_falls_back_to_email_in_the_same_run(
    api, ledger, tmp_path, code, where
):
    if where == "landlines":
        api.state.landlines.add("+34600123456")
    else:
        api.state.scripted["+34600123456"] = [21211]
    inv = invoice(email="pagos@ebro.example")
    with MailSink(tmp_path / "outbox", port=0) as sink:
        pool = SmtpPool(SmtpSettings(host=sink.host, port=sink.port))
        outcome = act(ledger, inv, "sms", api=api, pool=pool)
        # The number is not tried again for SMS: the next invoice goes by email directly.
        again = act(ledger, invoice("F-101", email="pagos@ebro.example"), "sms", api=api, pool=pool)
        mails = sink.messages()
    assert (outcome.status, outcome.channel, outcome.fallback_from) == ("sent", "email", "sms")
    assert str(code) in outcome.fallback_reason
    assert [m["To"] for m in mails] == ["pagos@ebro.example"] * 2
    assert "F-100" in mails[0]["Subject"]
    assert ledger.frame(Action, key="F-100:overdue_7:sms").iloc[0]["state"] == "rejected"
    (task,) = ledger.frame(HumanTask).to_dict("records")
    assert "+34600123456" in task["title"] and "cannot get SMS" in task["title"]
    assert again.fallback_reason.startswith("contact_invalid"), again
    assert len(api.state.requests) == 1


def test_21610_on_send_records_an_sms_opt_out_and_a_customer_without_email_gets_a_task(api, ledger):
    api.state.unsubscribed.add("+34600123456")
    outcome = act(ledger, invoice(), "sms", api=api)
    assert (outcome.status, outcome.channel, outcome.fallback_from) == ("task", "task", "sms")
    assert "21610" in outcome.fallback_reason
    (pause,) = ledger.frame(Pause).to_dict("records")
    assert (pause["kind"], pause["channel"], pause["customer_id"]) == ("opt_out", "sms", "C1")
    assert len(events(ledger, "sms_opt_out")) == 1
    # An SMS planned before the opt-out is not attempted (the next plan picks another channel).
    again = act(ledger, invoice("F-101"), "sms", api=api)
    assert (again.status, again.reason) == ("skipped", "opted_out")
    assert len(api.state.requests) == 1


# -- the receiver's Twilio webhooks -----------------------------------------------------------


@pytest.fixture
def receiver(ledger: Ledger):
    config = ReceiverConfig(
        ledger_url=ledger.url,
        twilio=TwilioReceiverConfig(
            auth_token=SecretStr(TOKEN),
            sms_base_url=BASE,
            voice_base_url=BASE,
            effects=TwilioEffects(voice=VOICE, policy=default_policy()),
        ),
    )
    with TestClient(create_app(config)) as client:
        yield client


def post(client: TestClient, path: str, params: dict, *, token: str = TOKEN, url: str = ""):
    """POST a form as Twilio does, signed for the public URL (or `url`) with `token`."""
    signed_for = url or BASE + path
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(token, signed_for, params),
    }
    return client.post(path, content=urlencode(params), headers=headers)


def status_form(sid: str, status: str, **extra) -> dict:
    """A message status callback with the fields of the contract's sample C."""
    return {"ApiVersion": "2010-04-01", "MessageStatus": status, "SmsSid": sid,
            "SmsStatus": status, "To": "+34600123456", "From": SENDER, "MessageSid": sid,
            "AccountSid": ACCOUNT, **extra}  # fmt: skip


def inbound_form(sid: str, body: str, sender: str = "+34600123456") -> dict:
    """An inbound SMS with the fields of the contract's sample D."""
    form = dict(parse_qs(json.loads((DATA / "signed_calls.json").read_text())["calls"]
                         ["sms_inbound"]["body"], keep_blank_values=True))  # fmt: skip
    flat = {k: v[0] for k, v in form.items()}
    return flat | {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "Body": body,
                   "From": sender, "To": SENDER}  # fmt: skip


def test_status_callbacks_move_the_sms_forward_once_per_sid_and_status(api, ledger, receiver):
    act(ledger, invoice(), "sms", api=api)
    sid = api.state.requests[0]["answer"]["sid"]
    for status in ("sent", "delivered", "delivered"):
        answer = post(receiver, "/webhooks/twilio/sms/status", status_form(sid, status))
        assert answer.status_code == 200 and "<Response" in answer.text
    row = ledger.frame(Action, key="F-100:overdue_7:sms").iloc[0]
    assert row["delivery_status"] == "delivered" and row["delivered_at"] is not None
    stored = ledger.frame(WebhookEvent)
    assert sorted(stored["event_id"]) == [f"{sid}:delivered", f"{sid}:sent"]
    assert len(events(ledger, "sms_delivered")) == 1
    # An undelivered SMS with 30006 (landline) marks the number for SMS.
    post(
        receiver, "/webhooks/twilio/sms/status", status_form(sid, "undelivered", ErrorCode="30006")
    )
    row = ledger.frame(Action, key="F-100:overdue_7:sms").iloc[0]
    assert row["delivery_status"] == "failed" and "30006" in row["error"]
    assert len(events(ledger, "sms_contact_invalid")) == 1


def test_stop_by_sms_opts_out_of_sms_and_start_opts_back_in(api, ledger, receiver):
    act(ledger, invoice(), "sms", api=api)
    answer = post(receiver, "/webhooks/twilio/sms/inbound", inbound_form("SM" + "1" * 32, "STOP"))
    assert answer.status_code == 200
    (pause,) = ledger.frame(Pause).to_dict("records")
    assert (pause["kind"], pause["channel"], pause["active"]) == ("opt_out", "sms", True)
    (opt_out,) = events(ledger, "sms_opt_out")
    assert opt_out["customer_id"] == "C1" and "STOP" in opt_out["detail"]["reason"]
    (message,) = ledger.frame(InboundMessage).to_dict("records")
    assert (message["channel"], message["state"], message["intent"]) == (
        "sms",
        "processed",
        "opt_out",
    )
    post(receiver, "/webhooks/twilio/sms/inbound", inbound_form("SM" + "3" * 32, "START"))
    assert not ledger.frame(Pause).iloc[0]["active"]
    assert len(events(ledger, "pause_opt_out_ended")) == 1


def test_baja_and_parar_are_opt_outs_but_a_sentence_is_a_reply(api, ledger, receiver):
    act(ledger, invoice(), "sms", api=api)
    post(receiver, "/webhooks/twilio/sms/inbound", inbound_form("SM" + "4" * 32, "Baja."))
    assert ledger.frame(Pause).iloc[0]["channel"] == "sms"
    act(ledger, invoice("P-1", customer_id="C2", phone="611 22 33 44"), "sms", api=api)
    post(receiver, "/webhooks/twilio/sms/inbound",
         inbound_form("SM" + "5" * 32, "PARAR", sender="+34611223344"))  # fmt: skip
    assert sorted(ledger.frame(Pause)["customer_id"]) == ["C1", "C2"]
    text = "Ya he pagado, gracias"
    post(receiver, "/webhooks/twilio/sms/inbound", inbound_form("SM" + "6" * 32, text))
    # "Sí" from a customer who never opted out is a reply for a person, not an opt-in.
    act(ledger, invoice("Q-1", customer_id="C3", phone="622 33 44 55"), "sms", api=api)
    post(receiver, "/webhooks/twilio/sms/inbound",
         inbound_form("SM" + "a" * 32, "Sí", sender="+34622334455"))  # fmt: skip
    yes = ledger.frame(InboundMessage, provider_id="SM" + "a" * 32).iloc[0]
    assert (yes["state"], yes["intent"]) == ("new", "")
    reply = ledger.frame(InboundMessage, provider_id="SM" + "6" * 32).iloc[0]
    # A reply goes to the inbox as new, for the replies flow (as email and WhatsApp do).
    assert (reply["state"], reply["channel"], reply["sender"]) == ("new", "sms", "+34600123456")
    assert len(ledger.frame(Pause)) == 2


def test_a_twilio_stop_stored_before_a_crash_is_applied_when_the_receiver_starts(api, ledger):
    from dunning.inbound.effects import store_event
    from dunning.twilio.webhooks import twilio_event

    act(ledger, invoice(), "sms", api=api)
    # The receiver stored the STOP, then died before applying it.
    stop = twilio_event("/webhooks/twilio/sms/inbound", inbound_form("SM" + "e" * 32, "STOP"))
    store_event(ledger, stop)
    assert ledger.frame(Pause).empty
    config = ReceiverConfig(
        ledger_url=ledger.url,
        twilio=TwilioReceiverConfig(auth_token=SecretStr(TOKEN), sms_base_url=BASE),
    )
    with TestClient(create_app(config)):
        pass  # starting it is enough
    (pause,) = ledger.frame(Pause).to_dict("records")
    assert (pause["kind"], pause["channel"], pause["active"]) == ("opt_out", "sms", True)
    assert len(events(ledger, "sms_opt_out")) == 1
    assert ledger.frame(WebhookEvent).iloc[0]["state"] not in ("received", "failed")


def test_a_forged_or_url_mismatched_signature_gets_403_and_stores_nothing(api, ledger, receiver):
    act(ledger, invoice(), "sms", api=api)
    form = inbound_form("SM" + "7" * 32, "STOP")
    forged = post(receiver, "/webhooks/twilio/sms/inbound", form, token="0" * 32)
    assert forged.status_code == 403
    other_url = post(receiver, "/webhooks/twilio/sms/inbound", form,
                     url="http://testserver/webhooks/twilio/sms/inbound")  # fmt: skip
    assert other_url.status_code == 403
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = receiver.post(
        "/webhooks/twilio/sms/inbound", content=urlencode(form), headers=form_type
    )
    assert unsigned.status_code == 403
    assert ledger.frame(WebhookEvent).empty and ledger.frame(InboundMessage).empty
    assert ledger.frame(Pause).empty
    assert post(receiver, "/webhooks/twilio/sms/inbound", form).status_code == 200


# -- automated calls --------------------------------------------------------------------------


def call_status(sid: str, status: str, answered_by: str = "") -> dict:
    """A call status callback with the fields of the contract's sample F."""
    return {"Called": "+34600123456", "Direction": "outbound-api", "CallSid": sid,
            "To": "+34600123456", "ApiVersion": "2010-04-01", "CallStatus": status,
            "From": SENDER, "AccountSid": ACCOUNT, "AnsweredBy": answered_by,
            "CallbackSource": "call-progress-events", "SequenceNumber": "3"}  # fmt: skip


def gather(sid: str, digits: str) -> dict:
    """A Gather action with the fields of the contract's sample G."""
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": sid,
            "CallStatus": "in-progress", "Digits": digits, "Direction": "outbound-api",
            "From": SENDER, "To": "+34600123456"}  # fmt: skip


def says(twiml: str) -> list[str]:
    return [el.text or "" for el in ET.fromstring(twiml).iter("Say")]


@pytest.mark.parametrize(
    ("lang", "country", "phone", "amount", "menu"),
    [
        ("es", "ES", "600 12 34 56", "1.234 euros con 56 céntimos", "pulse 2"),
        ("en", "US", "(212) 555-0143", "1,234 euros and 56 cents", "press 2"),
        ("pt", "BR", "(11) 91234-5678", "1.234 Euros e 56 centavos", "tecle 2"),
    ],
)
def test_a_voice_stage_places_a_call_that_says_the_amount_in_the_customers_locale(
    api, ledger, lang, country, phone, amount, menu
):
    inv = invoice("F-2024-0153", language=lang, country=country, phone=phone)
    outcome = act(ledger, inv, "voice", stage="overdue_15", api=api)
    assert (outcome.status, outcome.channel) == ("sent", "voice"), outcome
    (form,) = api.state.created("Calls")
    assert form["From"] == SENDER and form["MachineDetection"] == "Enable"
    assert form["StatusCallback"] == f"{BASE}/webhooks/twilio/voice/status"
    twiml = ET.fromstring(form["Twiml"])
    intro, prompt, _goodbye = says(form["Twiml"])
    assert amount in intro and "F, 2024, 0 1 5 3" in intro
    assert menu in prompt
    (gather_el,) = twiml.iter("Gather")
    assert gather_el.get("action") == f"{BASE}/webhooks/twilio/voice/gather?lang={lang}"
    assert gather_el.get("numDigits") == "1"
    assert twiml.find("Say").get("language") == VOICE.say(lang)["language"]
    row = ledger.frame(Action, key="F-2024-0153:overdue_15:voice").iloc[0]
    assert row["state"] == "sent" and row["message_id"] == outcome.message_id.strip()


def test_pressing_2_pauses_the_invoice_and_opens_a_verify_task(api, ledger, receiver):
    outcome = act(ledger, invoice(), "voice", stage="overdue_15", api=api)
    answer = post(
        receiver, "/webhooks/twilio/voice/gather?lang=es", gather(outcome.message_id, "2")
    )
    assert answer.status_code == 200
    assert "comprobar el pago" in " ".join(says(answer.text))
    (pause,) = ledger.frame(Pause).to_dict("records")
    days = default_policy().replies.payment_verification_days
    assert (pause["kind"], pause["invoice_number"]) == ("verify_payment", "F-100")
    assert pause["until"] == date.today() + timedelta(days=days)
    tasks = ledger.frame(HumanTask).to_dict("records")
    assert any(t["title"].startswith("Verify payment of invoice F-100") for t in tasks)
    # Twilio retrying the same request: the same answer, nothing opened twice.
    again = post(receiver, "/webhooks/twilio/voice/gather?lang=es", gather(outcome.message_id, "2"))
    assert again.text == answer.text and len(ledger.frame(Pause)) == 1


def test_pressing_1_opens_a_high_priority_call_back_task(api, ledger, receiver):
    from dunning.ledger import CrmEntry

    outcome = act(ledger, invoice(), "voice", stage="overdue_15", api=api)
    answer = post(
        receiver, "/webhooks/twilio/voice/gather?lang=en", gather(outcome.message_id, "1")
    )
    assert "A person from our team" in answer.text
    (task,) = [t for t in ledger.frame(HumanTask).to_dict("records") if ":person" in t["key"]]
    assert "talk to a person" in task["title"]
    entry = ledger.frame(CrmEntry, key=task["key"]).iloc[0]
    assert entry["payload"]["priority"] == "HIGH"


def test_no_answer_is_retried_by_policy_then_a_person_gets_a_task(api, ledger, receiver):
    inv = invoice()
    first = act(ledger, inv, "voice", stage="overdue_15", api=api)
    post(receiver, "/webhooks/twilio/voice/status", call_status(first.message_id, "no-answer"))
    assert ledger.frame(HumanTask).empty
    key = "F-100:overdue_15:voice"
    assert ledger.frame(Action, key=key).iloc[0]["delivery_status"] == "no-answer"
    client = client_for(api)

    def retry(now: datetime) -> list[str]:
        return retry_unanswered_calls(ledger, client, VOICE, now=now, lookup=lambda _: inv,
                                      language=lambda i: i.language, today=TODAY,
                                      window=default_policy().window)  # fmt: skip

    placed_at = datetime.now(UTC)
    assert retry(placed_at) == []  # too early: retry_after is 30 minutes
    night = datetime.combine(placed_at.date() + timedelta(days=1), time(2, 0), UTC)
    assert retry(night) == []  # 03:00 in Madrid: outside the sending window
    later = datetime.combine(placed_at.date() + timedelta(days=1), time(9, 0), UTC)
    assert retry(later) == [key] and retry(later) == []  # placed once
    second = api.state.requests[-1]["answer"]["sid"]
    assert len(api.state.created("Calls")) == 2
    post(receiver, "/webhooks/twilio/voice/status", call_status(second, "busy"))
    (task,) = ledger.frame(HumanTask).to_dict("records")
    assert "not answered after 2 attempts" in task["title"] and "+34600123456" in task["title"]
    assert retry(later + timedelta(hours=2)) == []  # attempts used up
    outcomes = [e["kind"] for e in ledger.frame(Event).to_dict("records")
                if e["kind"].startswith("call_")]  # fmt: skip
    assert outcomes == ["call_placed", "call_no-answer", "call_placed", "call_busy"]


def test_an_answered_call_and_a_machine_are_recorded_on_the_timeline_and_in_the_crm(
    api, ledger, receiver
):
    from dunning.ledger import CrmEntry

    first = act(ledger, invoice(), "voice", stage="overdue_15", api=api)
    post(
        receiver,
        "/webhooks/twilio/voice/status",
        call_status(first.message_id, "completed", "human"),
    )
    other = act(ledger, invoice("F-200", customer_id="C2", phone="611223344"), "voice",
                stage="overdue_15", api=api)  # fmt: skip
    post(receiver, "/webhooks/twilio/voice/status",
         call_status(other.message_id, "completed", "machine_end_beep"))  # fmt: skip
    statuses = ledger.frame(Action).set_index("invoice_number")["delivery_status"]
    assert statuses["F-100"] == "completed" and statuses["F-200"] == "machine"
    notes = ledger.frame(CrmEntry)
    texts = " ".join(p["text"] for p in notes["payload"] if "Automated call 1" in p.get("text", ""))
    assert "completed" in texts and "machine" in texts
    assert ledger.frame(HumanTask).empty  # voicemail "short": the message was left


@pytest.mark.parametrize("voicemail", ["full", "short", "none"])
def test_a_voicemail_hears_the_full_call_a_short_message_or_nothing_by_policy(
    api, ledger, voicemail
):
    from dataclasses import replace

    settings = replace(VOICE, answer_url=f"{BASE}/webhooks/twilio/voice/answer",
                       voicemail=voicemail)  # fmt: skip
    config = ReceiverConfig(
        ledger_url=ledger.url,
        twilio=TwilioReceiverConfig(
            auth_token=SecretStr(TOKEN),
            voice_base_url=BASE,
            effects=TwilioEffects(voice=settings, policy=default_policy()),
        ),
    )
    person = act(ledger, invoice(), "voice", stage="overdue_15", api=api, voice=settings)
    machine = act(ledger, invoice("F-200", customer_id="C2", phone="611223344"), "voice",
                  stage="overdue_15", api=api, voice=settings)  # fmt: skip
    forms = api.state.created("Calls")
    # Twilio fetches the words once it knows who answered: no inline TwiML.
    assert all("Twiml" not in f and f["MachineDetection"] == "Enable" for f in forms)
    answer_paths = [f["Url"].removeprefix(BASE) for f in forms]
    assert answer_paths[0].startswith("/webhooks/twilio/voice/answer?lang=es&key=F-100")

    def fetch(path: str, sid: str, answered_by: str, **kw) -> str:
        form = {"AccountSid": ACCOUNT, "CallSid": sid, "CallStatus": "in-progress",
                "AnsweredBy": answered_by, "From": SENDER, "To": "+34600123456"}  # fmt: skip
        with TestClient(create_app(config)) as client:
            answer = post(client, path, form, **kw)
        assert answer.status_code == 200, answer.text
        return answer.text

    forged = post(TestClient(create_app(config)), answer_paths[0],
                  {"CallSid": person.message_id}, token="0" * 32)  # fmt: skip
    assert forged.status_code == 403
    full = fetch(answer_paths[0], person.message_id, "human")
    assert "1.234 euros con 56 céntimos" in says(full)[0] and "<Gather" in full
    heard = fetch(answer_paths[1], machine.message_id, "machine_end_beep")
    if voicemail == "full":
        assert "<Gather" in heard and "F, 200" in says(heard)[0]
    elif voicemail == "short":
        (words,) = says(heard)  # one short message, no menu nobody can answer
        assert "F, 200" in words and "llámenos" in words and "<Gather" not in heard
    else:
        assert says(heard) == [] and "<Hangup" in heard
    # Twilio retrying the fetch hears the same words.
    assert fetch(answer_paths[1], machine.message_id, "machine_end_beep") == heard


def test_a_call_in_progress_when_the_sweep_died_is_not_placed_again(api, ledger):
    inv = invoice()
    key = "F-100:overdue_15:voice"
    ledger.claim(key=key, invoice_number="F-100", customer_id="C1", stage="overdue_15",
                 channel="voice")  # fmt: skip
    ledger.mark_sending(key, "")  # the process died here, Twilio may be ringing
    outcome = act(ledger, inv, "voice", stage="overdue_15", api=api)
    assert outcome.status == "skipped" and api.state.requests == []


# -- the sweep, under Prefect -----------------------------------------------------------------


def test_a_sweep_sends_the_sms_stage_once_and_stop_moves_the_next_stage_to_a_task(
    prefect_api, api, tmp_path
):
    from prefect_email import EmailServerCredentials

    from blocks import (
        CsvInvoiceSource,
        DunningPolicy,
        EmailChannel,
        LedgerDatabase,
        SmsChannel,
        TwilioCredentials,
    )
    from flows.sweep import dunning_sweep
    from tests.invoices import write_invoices

    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number="F-1", customer_id="C1", email="", phone="600 12 34 56",
                 amount_due="1234.56", amount_total="1234.56", due_date="2026-12-02",
                 payment_link="https://pay.example/F-1"),
            dict(invoice_number="F-2", customer_id="C2", email="ap@beta.example",
                 phone="", due_date="2026-12-02"),
        ],
    )  # fmt: skip
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    sms = SmsChannel(
        credentials=TwilioCredentials(account_sid=ACCOUNT, auth_token=TOKEN, base_url=api.base_url),
        from_number=SENDER,
        webhook_base_url=BASE,
    )
    policy = DunningPolicy.default().model_copy(update={"channel_order": ["email", "sms"]})
    with MailSink(tmp_path / "outbox", port=0) as sink:
        email = EmailChannel(
            credentials=EmailServerCredentials(
                smtp_server=sink.host, smtp_port=sink.port, smtp_type="INSECURE"
            ),
            from_address="cobros@acme.example",
            from_name="Acme S.L.",
        )

        def sweep(now: str) -> dict:
            return dunning_sweep(
                source=CsvInvoiceSource(path=str(csv)),
                channel=email,
                ledger=LedgerDatabase(url=ledger_url),
                policy=policy,
                now=datetime.fromisoformat(now),
                sms=sms,
            )

        first = sweep("2026-12-09T10:00:00+01:00")
        assert first["sent"] == 2, first
        (form,) = api.state.created("Messages")
        assert form["To"] == "+34600123456"
        assert "F-1" in form["Body"] and "1.234,56 €" in form["Body"]
        assert "https://pay.example/F-1" in form["Body"] and measure(form["Body"]).segments <= 2
        assert [m["To"] for m in sink.messages()] == ["ap@beta.example"]

        again = sweep("2026-12-09T11:00:00+01:00")
        assert again["sent"] == 0 and len(api.state.requests) == 1

        ledger = Ledger(ledger_url)
        config = ReceiverConfig(
            ledger_url=ledger_url,
            twilio=TwilioReceiverConfig(auth_token=SecretStr(TOKEN), sms_base_url=BASE),
        )
        with TestClient(create_app(config)) as receiver:
            stop = inbound_form("SM" + "8" * 32, "STOP")
            assert post(receiver, "/webhooks/twilio/sms/inbound", stop).status_code == 200

        later = sweep("2026-12-17T10:00:00+01:00")  # overdue_15
        assert len(api.state.requests) == 1  # no SMS after STOP
    tasks = ledger.frame(HumanTask).set_index("key")
    assert "F-1:overdue_15:task" in tasks.index, (later, list(tasks.index))
    timeline = ledger.frame(Event, customer_id="C1")["kind"].tolist()
    assert "sms_opt_out" in timeline and "pause_opt_out" in timeline


# -- channel choice in the planner ------------------------------------------------------------


def test_the_planner_chooses_sms_and_voice_by_preference_stage_consent_and_opt_out():
    import pandas as pd

    from dunning.channels import TwilioFacts
    from dunning.importers import normalize
    from dunning.ledger import LedgerState
    from dunning.plan import plan
    from dunning.policy import Stage

    def row(number: str, **fields: str) -> dict[str, str]:
        return {"invoice_number": number, "customer_id": f"C-{number}", "email": "",
                "phone": "600 12 34 56", "country": "ES", "language": "es",
                "timezone": "Europe/Madrid", "currency": "EUR", "amount_total": "100",
                "amount_due": "100", "due_date": "2026-12-02",
                "status": "open"} | fields  # fmt: skip

    invoices = normalize(
        pd.DataFrame(
            [
                row("F-1", email="a@x.example", preferred_channel="sms"),  # preferred
                row("F-2"),  # only a phone: channel_order's sms
                row("F-3", phone="12-34"),  # unreadable number: a task
                row("F-4", country="US", phone="(212) 555-0143"),  # US: no opt-in yet
                row("F-5", country="US", phone="(212) 555-0144"),  # US, opted in
                row("F-6"),  # opted out of SMS
            ],
            dtype=str,
        )
    ).invoices
    policy = default_policy().model_copy(update={"channel_order": ["email", "sms"]})
    state = LedgerState(
        pauses=pd.DataFrame(
            [
                {
                    "kind": "opt_out",
                    "channel": "sms",
                    "invoice_number": None,
                    "customer_id": "C-F-6",
                    "until": None,
                }
            ]
        )  # fmt: skip
    )
    facts = TwilioFacts(opted_in=frozenset({"C-F-5"}), opt_in_countries=frozenset({"US"}))
    planned = plan(
        invoices, policy, NOW, state, channels_available=frozenset({"email", "sms"}), twilio=facts
    ).set_index("invoice")
    assert planned["channel"].to_dict() == {
        "F-1": "sms", "F-2": "sms", "F-3": "task", "F-4": "task", "F-5": "sms", "F-6": "task",
    }  # fmt: skip
    assert "no opt-in" in planned.loc["F-4", "channel_note"]
    assert "opted out" in planned.loc["F-6", "channel_note"]
    # A stage on `voice`: the call when a voice channel is given, else the order (a task here).
    voice_ladder = [Stage(name="overdue_7", offset_days=7, channel="voice")]
    calls = policy.model_copy(update={"stages": voice_ladder})
    with_voice = plan(invoices, calls, NOW, channels_available=frozenset({"email", "voice"}))
    without = plan(invoices, calls, NOW, channels_available=frozenset({"email"}))
    assert with_voice.set_index("invoice").loc["F-2", "channel"] == "voice"
    assert without.set_index("invoice").loc["F-2", "channel"] == "task"
    assert with_voice.set_index("invoice").loc["F-3", "channel"] == "task"


def test_the_report_counts_sms_and_calls_per_channel_beside_email(api, ledger, receiver):
    from dunning.reports.activity import message_stats, read_ledger

    sms = act(ledger, invoice(), "sms", api=api)
    post(receiver, "/webhooks/twilio/sms/status", status_form(sms.message_id, "delivered"))
    call = act(ledger, invoice("F-200", customer_id="C2"), "voice", stage="overdue_15", api=api)
    answered = call_status(call.message_id, "completed", "human")
    post(receiver, "/webhooks/twilio/voice/status", answered)
    missed = act(ledger, invoice("F-300", customer_id="C3"), "voice", stage="overdue_15", api=api)
    post(receiver, "/webhooks/twilio/voice/status", call_status(missed.message_id, "no-answer"))
    frames = read_ledger(ledger.url)  # as the portfolio report reads it
    tomorrow = date.today() + timedelta(days=1)
    stats = message_stats(frames.actions, frames.inbound, None, tomorrow).set_index("channel")
    assert (stats.loc["sms", "sent"], stats.loc["sms", "delivered"]) == (1, 1)
    # A call counts as delivered when it was answered (by a person, or a machine took it).
    assert (stats.loc["voice", "sent"], stats.loc["voice", "delivered"]) == (2, 1)


def test_the_report_counts_answered_calls_replies_and_payments_per_channel(api, ledger, receiver):
    import pandas as pd

    from dunning.reports.activity import message_stats, read_ledger

    sms = act(ledger, invoice(), "sms", api=api)
    post(receiver, "/webhooks/twilio/sms/status", status_form(sms.message_id, "delivered"))
    # The customer's answer, matched to the SMS (as the replies flow matches it).
    ledger.store_inbound([InboundMessage(
        provider_id="SM" + "f" * 32, channel="sms", received_at=datetime.now(UTC),
        sender="+34600123456", text="Pagaré el viernes", action_key="F-100:overdue_7:sms",
    )])  # fmt: skip
    person = act(ledger, invoice("F-200", customer_id="C2"), "voice", stage="overdue_15", api=api)
    post(receiver, "/webhooks/twilio/voice/status", call_status(person.message_id, "completed"))
    machine = act(ledger, invoice("F-300", customer_id="C3"), "voice", stage="overdue_15", api=api)
    voicemail = call_status(machine.message_id, "completed", "machine_end_beep")
    post(receiver, "/webhooks/twilio/voice/status", voicemail)
    today = pd.Timestamp(date.today())
    # F-100 and F-200 are paid today (within 7 days of their reminder), F-300 is not.
    invoices = pd.DataFrame({
        "invoice_number": ["F-100", "F-200", "F-300"],
        "status": ["paid", "paid", "open"],
        "closed_date": [today, today, pd.NaT],
        "due_date": [pd.Timestamp(2026, 12, 2)] * 3,
    })  # fmt: skip
    frames = read_ledger(ledger.url)
    stats = message_stats(frames.actions, frames.inbound, None, date.today(), invoices)
    got = stats.set_index("channel")
    sms_row = got.loc["sms", ["sent", "delivered", "replied", "paid_within"]].tolist()
    assert sms_row == [1, 1, 1, 1]
    assert pd.isna(got.loc["sms", "answered"])  # a message is not "answered"
    voice_row = got.loc["voice", ["sent", "delivered", "answered", "replied", "paid_within"]]
    # Both calls reached someone or a voicemail; a person answered one.
    assert voice_row.tolist() == [2, 2, 1, 0, 1]


def test_an_sms_reply_goes_through_the_same_reply_understanding_as_email(api, ledger, receiver):
    import pandas as pd

    from dunning.importers import normalize
    from dunning.replies.act import handle_reply

    inv = invoice()
    row = {k: str(v) for k, v in inv.model_dump().items() if v is not None}
    ledger.sync_invoices(normalize(pd.DataFrame([row], dtype=str)).invoices)
    act(ledger, inv, "sms", api=api)
    text = "Ya pagamos la factura ayer por transferencia"
    assert post(receiver, "/webhooks/twilio/sms/inbound", inbound_form("SM" + "9" * 32, text))
    (message,) = ledger.inbound(state="new")
    assert (message.channel, message.sender) == ("sms", "+34600123456")
    outcome = handle_reply(
        message,
        ledger=ledger,
        policy=default_policy(),
        lookup=lambda _: inv,
        pool=None,
        identity=None,
    )
    assert (outcome.intent, outcome.invoices) == ("already_paid", ["F-100"])
    (pause,) = ledger.frame(Pause).to_dict("records")
    assert (pause["kind"], pause["invoice_number"]) == ("verify_payment", "F-100")


def test_the_benchmarks_block_rate_limit_keeps_sms_under_twilios_limit(api, ledger, prefect_api):
    import time as clock

    from bench.twilio_bench import send_rate_limited

    # Twilio (the fake) refuses a 10th request within a second; the block allows 4/s (a
    # burst of 4, then 4 a second), so not one send meets a 20429 and each is sent once.
    api.state.max_per_second = 10
    started = clock.monotonic()
    send_rate_limited(ledger, client_for(api, max_attempts=1), 14, rate=4)
    elapsed = clock.monotonic() - started
    assert [r["status"] for r in api.state.requests] == [201] * 14
    assert elapsed >= 2.0  # 10 sends past the burst at 4 a second


def test_the_blocks_refuse_unknown_keys_and_half_credentials_without_echoing_secrets():
    from pydantic import ValidationError

    from blocks import SmsChannel, TwilioCredentials, VoiceChannel

    with pytest.raises(ValidationError, match=r"unknown field\(s\) \['auht_token'\]") as typo:
        TwilioCredentials(account_sid=ACCOUNT, auth_token="tok-SECRET-1", auht_token="x")
    with pytest.raises(ValidationError, match="api_key_sid and api_key_secret go together") as half:
        TwilioCredentials(
            account_sid=ACCOUNT, auth_token="tok-SECRET-1", api_key_sid="SK" + "1" * 32
        )
    assert "tok-SECRET-1" not in str(typo.value) + str(half.value)
    creds = TwilioCredentials(
        account_sid=ACCOUNT, api_key_sid="SK" + "1" * 32, api_key_secret="key-SECRET-2"
    )
    settings = creds.settings()  # an API key authenticates; the URL keeps the account SID
    assert (settings.username, settings.account_sid) == ("SK" + "1" * 32, ACCOUNT)
    assert "key-SECRET-2" not in repr(settings) + repr(creds)
    with pytest.raises(ValidationError, match="from_number or messaging_service_sid"):
        SmsChannel(credentials=creds)
    sms = SmsChannel(credentials=creds, from_number=SENDER, webhook_base_url=BASE + "/")
    assert sms.settings().status_callback_url == f"{BASE}/webhooks/twilio/sms/status"
    voice = VoiceChannel(credentials=creds, caller_number=SENDER, webhook_base_url=BASE)
    assert voice.settings().gather_url == f"{BASE}/webhooks/twilio/voice/gather"
    assert voice.settings().say("pt") == {"language": "pt-BR", "voice": "Polly.Camila"}
