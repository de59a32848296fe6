"""Reply understanding: intents, promised dates, quoting, the CLI and the LLM fallback.

The examples here are written for these tests (not taken from the held-out evaluation set
nor copied from the dev set the text model learns from).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dunning.replies import INTENTS, Classification, classify, classify_many
from dunning.replies.dates import promise_date
from dunning.replies.language import detect_language
from dunning.replies.llm import LLMSettings, classify_with_fallback
from dunning.replies.normalize import normalize
from dunning.replies.quoting import strip_quoted

DUNNING = str(Path(sys.executable).with_name("dunning"))

WED = date(2025, 3, 12)  # a Wednesday
THU = date(2025, 3, 13)
FRI = date(2025, 3, 14)


def intent_of(text: str, received_on: date = WED, **kw) -> str:
    return classify(text, received_on=received_on, **kw).intent


# -- one intent at a time, in each language -------------------------------------------------

CASES = [
    # promise_to_pay
    ("es", "promise_to_pay", "Buenas, el pago sale el lunes sin falta. Disculpad la demora."),
    ("es", "promise_to_pay", "ahorita no puedo pero el viernes le hago el deposito"),
    ("en", "promise_to_pay", "Apologies - we will wire the funds on Monday."),
    ("pt", "promise_to_pay", "Olá, vou fazer o pagamento na segunda-feira, obrigado."),
    # already_paid
    (
        "es",
        "already_paid",
        "Hola, ya os hicimos la transferencia el martes, os adjunto el justificante.",
    ),
    ("en", "already_paid", "We paid this in full last Friday; remittance advice attached."),
    ("pt", "already_paid", "Bom dia, já fizemos o pix ontem. Segue o comprovante."),
    # dispute
    ("es", "dispute", "No reconocemos este cargo: el servicio se dio de baja en enero."),
    ("en", "dispute", "The quantity on this invoice is wrong, we only received 10 boxes."),
    ("pt", "dispute", "Não concordamos com essa cobrança, o produto chegou com defeito."),
    # invoice_copy_request
    ("es", "invoice_copy_request", "¿Me podéis reenviar la factura en PDF? No la encuentro."),
    ("en", "invoice_copy_request", "Could you resend a copy of the invoice? I can't find it."),
    ("pt", "invoice_copy_request", "Podem me enviar a segunda via do boleto, por favor?"),
    # bank_details_request
    ("es", "bank_details_request", "¿Me pasáis el IBAN para hacer la transferencia?"),
    ("en", "bank_details_request", "Please send us your bank details so we can pay."),
    ("pt", "bank_details_request", "Qual é a chave PIX de vocês?"),
    # document_request
    ("es", "document_request", "Necesito el certificado bancario, por favor."),
    ("en", "document_request", "Could you send us your W-9 form?"),
    ("pt", "document_request", "Podem mandar o cartão CNPJ de vocês?"),
    # payment_plan_request
    ("es", "payment_plan_request", "¿Podríamos pagarlo en tres cuotas mensuales?"),
    ("en", "payment_plan_request", "Is a payment plan possible? We can't pay it all at once."),
    ("pt", "payment_plan_request", "Tem como parcelar em 4 vezes?"),
    # out_of_office
    ("es", "out_of_office", "Respuesta automática: estoy de vacaciones hasta el 1 de abril."),
    ("en", "out_of_office", "I am out of the office until March 24 with no access to email."),
    ("pt", "out_of_office", "Resposta automática: estou de férias até dia 30."),
    # opt_out
    ("es", "opt_out", "Por favor, dejen de enviarme mensajes por WhatsApp."),
    ("en", "opt_out", "Unsubscribe me from these messages please."),
    ("pt", "opt_out", "Não quero receber mais mensagens de vocês."),
    # wrong_contact
    ("es", "wrong_contact", "Ya no trabajo en esa empresa, escriban a pagos@example.es"),
    ("en", "wrong_contact", "Wrong number, I don't know any company by that name."),
    ("pt", "wrong_contact", "Não trabalho mais nessa empresa, falem com o financeiro."),
    # other
    ("es", "other", "Recibido, gracias."),
    ("en", "other", "Thanks, noted."),
    ("pt", "other", "Ok, obrigado."),
]


@pytest.mark.parametrize(("lang", "intent", "text"), CASES)
def test_intent_per_language(lang, intent, text):
    result = classify(text, received_on=WED)
    assert result.intent == intent, result.evidence
    assert result.lang == lang
    assert result.intent in INTENTS
    assert 0 < result.confidence <= 1


def test_every_intent_has_a_case_in_every_language():
    covered = {(lang, intent) for lang, intent, _ in CASES}
    assert covered == {(lang, intent) for lang in ("es", "en", "pt") for intent in INTENTS}


def test_all_caps_typos_and_missing_accents():
    assert intent_of("YA PAGAMOS LA FACTRUA AYER") == "already_paid"
    r = classify("pagare manana sin falta", received_on=WED)
    assert (r.intent, r.promise_date) == ("promise_to_pay", date(2025, 3, 13))
    assert intent_of("JA PAGUEI O BOLETO") == "already_paid"
    assert intent_of("WILL PAY ON MONDAY") == "promise_to_pay"


def test_angry_reply_is_a_dispute_whatever_it_says():
    paid = classify("I PAID ALREADY you idiots, stop harassing me", received_on=WED)
    assert (paid.intent, paid.angry) == ("dispute", True)
    promise = classify(
        "Os pago el viernes, pero esto es una vergüenza de servicio.", received_on=WED
    )
    assert (promise.intent, promise.angry, promise.promise_date) == ("dispute", True, None)
    calm = classify("Ya está pagado, revisad vuestra cuenta.", received_on=WED)
    assert (calm.intent, calm.angry) == ("already_paid", False)


def test_plain_stop_stays_an_opt_out_even_in_capitals():
    for text in ("STOP", "BAJA", "SAIR", "baja por favor"):
        result = classify(text, received_on=WED)
        assert (result.intent, result.angry) == ("opt_out", False), text


def test_wrong_contact_carries_the_new_address_or_phone():
    email = classify("Ya no llevo esto; escribid a Marta: marta.diaz@example.es", received_on=WED)
    assert (email.intent, email.new_contact) == ("wrong_contact", "marta.diaz@example.es")
    phone = classify(
        "I no longer work there. Call our office on +44 20 7946 0958.", received_on=WED
    )
    assert (phone.intent, phone.new_contact) == ("wrong_contact", "+442079460958")
    assert classify("Recibido, gracias.", received_on=WED).new_contact is None


def test_given_language_wins_over_detection():
    assert detect_language("Pagaremos el viernes") == "es"
    assert detect_language("Vou pagar amanhã") == "pt"
    assert detect_language("We will pay tomorrow") == "en"
    assert classify("ok", received_on=WED, lang="pt").lang == "pt"


def test_classify_many_answers_like_classify_in_order():
    items = [(text, WED, None) for _, _, text in CASES[:12]]
    assert classify_many(items) == [classify(t, received_on=r) for t, r, _ in items]


def test_classification_is_frozen_and_serializable():
    result = classify("Pagaremos el 15", received_on=WED)
    assert isinstance(result, Classification)
    with pytest.raises(AttributeError):
        result.intent = "other"  # type: ignore[misc]
    assert result.to_dict()["promise_date"] == "2025-03-15"
    json.dumps(result.to_dict())


# -- promised dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "lang", "text", "expected"),
    [
        # weekdays: the first one strictly after the received day
        (WED, "es", "pagamos el próximo viernes", date(2025, 3, 14)),
        (THU, "en", "we will pay next Friday", date(2025, 3, 14)),
        (FRI, "en", "we will pay next Friday", date(2025, 3, 21)),
        (FRI, "es", "te pago el viernes", date(2025, 3, 21)),
        (date(2025, 3, 16), "pt", "pago na segunda", date(2025, 3, 17)),  # a Sunday
        (WED, "es", "lo pagamos el viernes de la semana que viene", date(2025, 3, 21)),
        (WED, "en", "we'll pay next week", date(2025, 3, 17)),
        (date(2025, 3, 16), "es", "se paga la semana que viene", date(2025, 3, 17)),
        # relative days
        (WED, "es", "mañana por la mañana hago la transferencia", date(2025, 3, 13)),
        (WED, "es", "pasado mañana os pago", date(2025, 3, 14)),
        (date(2025, 12, 31), "pt", "amanhã faço o pix", date(2026, 1, 1)),
        (WED, "en", "we'll pay within two weeks", date(2025, 3, 26)),
        (WED, "es", "en 10 días le deposito", date(2025, 3, 22)),
        (WED, "en", "paying today", WED),
        # month ends, quincena, day of month
        (WED, "es", "pagaremos a fin de mes", date(2025, 3, 31)),
        (date(2025, 3, 31), "en", "will pay by end of month", date(2025, 3, 31)),
        (date(2028, 2, 10), "pt", "pago até o fim do mês", date(2028, 2, 29)),
        (date(2025, 12, 5), "es", "lo pago a fin del mes que viene", date(2026, 1, 31)),
        (date(2025, 3, 10), "es", "le pago en la quincena", date(2025, 3, 15)),
        (date(2025, 3, 20), "es", "le pago en la quincena", date(2025, 3, 31)),
        (WED, "es", "os lo abono el 15", date(2025, 3, 15)),
        (date(2025, 3, 20), "es", "os lo abono el 15", date(2025, 4, 15)),
        (date(2025, 1, 30), "en", "we'll pay on the 31st", date(2025, 1, 31)),
        (date(2025, 2, 3), "es", "pago el día 30", date(2025, 3, 30)),  # no 30 February
        # numeric and named dates
        (WED, "es", "pagamos el 10/12", date(2025, 12, 10)),
        (WED, "pt", "pagamos dia 10/12", date(2025, 12, 10)),
        (WED, "en", "we will pay on 10/12", date(2025, 10, 12)),
        (WED, "en", "we will pay on 10/12 by BACS. Hollis Ltd", date(2025, 12, 10)),
        (WED, "en", "payment on 4/25", date(2025, 4, 25)),  # only one reading is a date
        (date(2025, 12, 20), "es", "se paga el 5 de enero", date(2026, 1, 5)),
        (WED, "en", "we will pay on April 2nd", date(2025, 4, 2)),
        (WED, "pt", "pagamos em 3 de abril de 2025", date(2025, 4, 3)),
        (WED, "es", "pago el 2025-04-07", date(2025, 4, 7)),
    ],
)
def test_promise_date_conventions(received, lang, text, expected):
    assert promise_date(normalize(text), received, lang) == expected
    result = classify(text, received_on=received, lang=lang)
    assert (result.intent, result.promise_date) == ("promise_to_pay", expected), result.evidence


@pytest.mark.parametrize(
    "text",
    ["Esta semana te lo pago", "We'll pay asap", "Vamos pagar em breve", "lo pago pronto"],
)
def test_vague_times_are_promises_without_a_date(text):
    result = classify(text, received_on=WED)
    assert (result.intent, result.promise_date) == ("promise_to_pay", None)


def test_british_signature_reads_dates_day_first_but_our_quoted_reminder_does_not():
    signed = "We will pay on 10/12.\n\n--\nTom Hale\nHale Joinery, Leeds LS1 4AP"
    assert classify(signed, received_on=WED).promise_date == date(2025, 12, 10)
    quoted = "We will pay on 10/12.\n\nOn Mon, Mar 10, 2025, AR wrote:\n> Acme Ltd, London"
    assert classify(quoted, received_on=WED).promise_date == date(2025, 10, 12)


def test_no_promise_date_outside_promises():
    ooo = classify("Out of office until Monday 17 March.", received_on=WED)
    assert (ooo.intent, ooo.promise_date) == ("out_of_office", None)
    plan = classify("Puedo pagar 300 € el 15 y el resto el 30.", received_on=WED)
    assert (plan.intent, plan.promise_date) == ("payment_plan_request", None)


def test_invoice_numbers_amounts_and_morning_are_not_dates():
    text = normalize("La factura 2025/118 de 1.250,00 € la pagamos por la mañana del viernes")
    assert promise_date(text, WED, "es") == date(2025, 3, 14)
    assert promise_date(normalize("pagamos el 21% de IVA"), WED, "es") is None


# -- quoted history ---------------------------------------------------------------------------

REMINDER_ES = (
    "> Estimado cliente, le recordamos que la factura F-2025-0099 de 3.450,00 € está vencida.\n"
    "> Si ya ha pagado, ignore este mensaje. Si necesita copia de la factura o nuestros datos\n"
    "> bancarios, responda a este correo. Pague antes del 25/03."
)


def test_quoted_reminder_never_drives_the_intent_or_date():
    attribution = "El mar, 11 mar 2025 a las 9:00, Cobros <c@example.es> escribió:"
    text = f"Recibido, gracias.\n\n{attribution}\n{REMINDER_ES}"
    result = classify(text, received_on=WED)
    assert (result.intent, result.promise_date) == ("other", None)


def test_outlook_header_block_and_original_message_are_cut():
    outlook = (
        "Pagaremos el viernes.\n\nDe: Cobros <cobros@example.es>\nEnviado el: martes, 11 de marzo "
        "de 2025 9:00\nPara: Pagos\nAsunto: Factura vencida\n\nLe recordamos que ya puede pagar "
        "con su IBAN. Plan de pagos disponible."
    )
    assert strip_quoted(outlook) == "Pagaremos el viernes."
    assert classify(outlook, received_on=WED).promise_date == date(2025, 3, 14)
    original = "Already paid.\n-----Original Message-----\nFrom: AR\nSent: Monday\nPlease pay now."
    assert strip_quoted(original) == "Already paid."
    portuguese = (
        "Já paguei.\n\nEm ter., 11 de mar. de 2025 às 09:00, Cobrança <c@x.br> escreveu:\n> Pague"
    )
    assert strip_quoted(portuguese) == "Já paguei."


def test_signature_footers_and_bottom_posting():
    assert (
        strip_quoted("Paid yesterday.\n\nSent from my iPhone\n\n> old stuff") == "Paid yesterday."
    )
    bottom = (
        "On Tue, Mar 11, 2025 at 9:00 AM AR <ar@example.com> wrote:\n> Please pay.\n\n"
        "We dispute this."
    )
    assert strip_quoted(bottom) == "We dispute this."
    assert classify(bottom, received_on=WED).intent == "dispute"


# -- command line -------------------------------------------------------------------------------


def test_cli_round_trip_keeps_order_and_reports_the_bad_line():
    lines = [
        json.dumps({"id": "a", "text": "Les pagamos el próximo viernes"}),
        "{not json",
        json.dumps(
            {"id": "c", "text": "Already paid, remittance attached", "received_on": "2025-03-20"}
        ),
        json.dumps({"id": "d", "text": "ok", "received_on": "20/03/2025"}),
        json.dumps({"id": "e", "text": "Pagamos amanhã", "lang": "pt"}),
    ]
    proc = subprocess.run(
        [DUNNING, "replies", "classify", "--today", "2025-03-12"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 5
    assert out[0]["id"] == "a"
    assert (out[0]["intent"], out[0]["promise_date"], out[0]["lang"]) == (
        "promise_to_pay",
        "2025-03-14",
        "es",
    )
    assert out[1]["line"] == 2 and "not valid JSON" in out[1]["error"]
    assert (out[2]["id"], out[2]["intent"], out[2]["promise_date"]) == ("c", "already_paid", None)
    assert out[3]["id"] == "d" and "received_on" in out[3]["error"] and "line 4" in out[3]["error"]
    assert (out[4]["id"], out[4]["lang"], out[4]["promise_date"]) == ("e", "pt", "2025-03-13")
    assert {"intent", "confidence", "lang", "promise_date", "angry"} <= set(out[0])
    assert "2 lines with errors" in proc.stderr


# -- LLM fallback against an in-process OpenAI-compatible server --------------------------------


class _ChatServer:
    """An in-process HTTP server speaking the chat-completions shape, with a scripted reply."""

    def __init__(self) -> None:
        self.content = "{}"
        self.delay = 0.0
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                time.sleep(outer.delay)
                payload = {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": outer.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                data = json.dumps(payload).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat() -> Iterator[_ChatServer]:
    server = _ChatServer()
    yield server
    server.close()


UNSURE = "Mmm, vale."  # the rules are not confident about this one


def settings_for(server: _ChatServer, **kw) -> LLMSettings:
    return LLMSettings(base_url=server.url, model="test-model", api_key="sk-secret-123", **kw)


def test_unsure_offline_answer_is_low_confidence():
    assert classify(UNSURE, received_on=WED).confidence < 0.6


def test_llm_valid_answer_is_used_when_offline_is_unsure(chat, caplog):
    chat.content = (
        '```json\n{"intent": "promise_to_pay", "promise_date": "2025-03-20", "angry": false}\n```'
    )
    with caplog.at_level(logging.DEBUG):
        result = classify_with_fallback(UNSURE, WED, None, settings_for(chat))
    assert (result.intent, result.promise_date, result.source) == (
        "promise_to_pay",
        date(2025, 3, 20),
        "llm",
    )
    (request,) = chat.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-secret-123"
    assert request["body"]["model"] == "test-model"
    assert request["body"]["messages"][-1]["content"] == UNSURE
    assert "sk-secret-123" not in caplog.text
    assert "sk-secret-123" not in repr(settings_for(chat))


@pytest.mark.parametrize(
    "content",
    [
        "I think the customer will pay.",  # not JSON
        '{"intent": "maybe_pays", "promise_date": null, "angry": false}',  # unknown intent
        '{"intent": "promise_to_pay", "promise_date": "2025-03-01", "angry": false}',  # past
        '{"intent": "promise_to_pay", "promise_date": "next week", "angry": false}',  # no date
    ],
)
def test_llm_invalid_answer_keeps_the_offline_one(chat, content):
    chat.content = content
    offline = classify(UNSURE, received_on=WED)
    result = classify_with_fallback(UNSURE, WED, None, settings_for(chat))
    assert result == offline
    assert len(chat.requests) == 1


def test_llm_timeout_keeps_the_offline_one(chat):
    chat.content = '{"intent": "already_paid", "promise_date": null, "angry": false}'
    chat.delay = 2.0
    offline = classify(UNSURE, received_on=WED)
    result = classify_with_fallback(UNSURE, WED, None, settings_for(chat, timeout=0.3))
    assert result == offline


def test_llm_is_not_asked_when_offline_is_confident(chat):
    chat.content = '{"intent": "other", "promise_date": null, "angry": false}'
    result = classify_with_fallback(
        "Ya pagamos ayer, adjunto comprobante.", WED, None, settings_for(chat)
    )
    assert result.intent == "already_paid"
    assert chat.requests == []


def test_llm_anger_makes_a_dispute(chat):
    chat.content = '{"intent": "other", "promise_date": null, "angry": true}'
    result = classify_with_fallback(UNSURE, WED, None, settings_for(chat))
    assert (result.intent, result.angry) == ("dispute", True)
