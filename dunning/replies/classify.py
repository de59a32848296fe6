"""Understand one customer reply: intent, confidence, language, promised date, complaint.

Offline and deterministic: quoted history is cut, the text normalized, weighted rules
(`rules.py`) scored, dates read (`dates.py`), and a few decisions that the rules alone
cannot make are taken here (an angry message is always a dispute, several dates to pay on
are a payment plan, a promise needs a pay word). No model is downloaded.

    >>> from datetime import date, timedelta
    >>> c = classify("Les pagamos el próximo viernes", received_on=date(2025, 3, 12))
    >>> c.intent, c.promise_date, c.lang
    ('promise_to_pay', datetime.date(2025, 3, 14), 'es')
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from dunning.policy import today
from dunning.replies import dates, rules
from dunning.replies.language import LANGS, detect_language
from dunning.replies.model import IntentModel, default_model
from dunning.replies.normalize import normalize
from dunning.replies.quoting import sender_part, strip_quoted

INTENTS: tuple[str, ...] = (
    "promise_to_pay",
    "already_paid",
    "dispute",
    "invoice_copy_request",
    "bank_details_request",
    "document_request",
    "payment_plan_request",
    "out_of_office",
    "opt_out",
    "wrong_contact",
    "other",
)

# Order used to break ties: the costlier mistake first (a missed complaint is the worst).
_PRIORITY = {
    intent: i
    for i, intent in enumerate(
        (
            "dispute",
            "out_of_office",
            "opt_out",
            "wrong_contact",
            "payment_plan_request",
            "already_paid",
            "promise_to_pay",
            "bank_details_request",
            "document_request",
            "invoice_copy_request",
            "other",
        )
    )
}

#: The documents a `document_request` can name (`Classification.document`): the company's
#: tax registration or certificate (RUT, NIT, constancia de situación fiscal, constancia de
#: CUIT, ficha RUC, cartão CNPJ, W-9, certificado de estar al corriente...) and its bank's
#: certificate for the account (certificado bancario, constancia de CBU, bank letter...).
#: Their words are in `wordlists/documents.yaml`.
DOCUMENT_KINDS: tuple[str, ...] = ("tax_certificate", "bank_certificate")

#: Intents that may name a document: a request for one, or for bank details together with
#: a certificate ("el IBAN y el certificado de titularidad").
_NAMES_DOCUMENT = frozenset({"document_request", "bank_details_request"})


@dataclass(frozen=True)
class Classification:
    """What a reply means.

    `promise_date` is set only for `promise_to_pay` with a stated date. `angry` flags a
    complaint (insults, threats, "harassment"); an angry reply is always classified as
    `dispute`. `new_contact` is the e-mail address or phone number a `wrong_contact` reply
    points to. `document` is the kind of document asked for (one of `DOCUMENT_KINDS`) on a
    `document_request`, None when the kind is not one of them (the document library may
    still recognize the company's own kinds by their words); a `bank_details_request` that
    also asks for a certificate names it too. `evidence` lists the phrases that decided, for
    a person to check.
    """

    intent: str
    confidence: float
    lang: str
    promise_date: date | None = None
    angry: bool = False
    new_contact: str | None = None
    evidence: tuple[str, ...] = field(default_factory=tuple)
    source: str = "rules"
    document: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (dates as ISO strings)."""
        out = asdict(self)
        out["promise_date"] = self.promise_date.isoformat() if self.promise_date else None
        out["evidence"] = list(self.evidence)
        return out


_LETTERS = re.compile(r"[A-Za-zÀ-ÿ]")
_UPPER = re.compile(r"[A-ZÀ-Þ]")


def _shouting(text: str) -> bool:
    letters = len(_LETTERS.findall(text))
    return letters >= 12 and len(_UPPER.findall(text)) / letters > 0.6


def is_angry(norm: str, own_text: str, dispute_score: float = 0.0) -> bool:
    """Whether the customer complains angrily (insults, threats, shouting about a charge)."""
    if rules.ANGER.search(norm):
        return True
    loud = _shouting(own_text) or own_text.count("!") >= 3
    return loud and (bool(rules.COMPLAINT_HINT.search(norm)) or dispute_score >= 3)


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_REGION = {"es": "ES", "en": "US", "pt": "BR"}


def find_contact(text: str, lang: str) -> str | None:
    """The first e-mail address, else phone number (E.164 when it parses), in `text`."""
    m = _EMAIL.search(text)
    if m:
        return m.group(0).rstrip(".")
    import phonenumbers

    regions = [_REGION.get(lang, "ES"), "ES", "MX", "BR", "PT", "US", "GB", "AR", "CO"]
    for region in dict.fromkeys(regions):
        for match in phonenumbers.PhoneNumberMatcher(
            text, region, leniency=phonenumbers.Leniency.VALID
        ):
            return phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
    m = re.search(r"\+?\d[\d ()./-]{7,}\d", text)
    return m.group(0).strip() if m else None


def _confidence(top: float, second: float) -> float:
    strength = 1.0 - math.exp(-top / 2.5)
    margin = max(0.0, (top - second) / top) if top > 0 else 0.0
    return round(min(0.99, 0.35 + 0.6 * strength * (0.5 + 0.5 * margin)), 3)


_PRETERITE = re.compile(
    r"\b(?:pagó|abonó|transfirió|depositó|ingresó|realizó|efectuó|envió|mandó|liquidó|canceló|"
    r"consignó|saldó|pagué|aboné|transferí|deposité|ingresé|realicé|efectué|envié|mandé|liquidé|"
    r"cancelé|consigné|saldé)\b"
)
_PLAN_SPLIT = re.compile(
    r"\b(?:resto|rest|remaining|remainder|restante|metade|mitad|half|otra\s+parte|outra\s+parte"
    r"|(?:los|las|el|la|the|os|as|o|a)\s+otr[oa]s?|the\s+other|outr[oa]s?|segundo\s+pago"
    r"|segunda\s+parte|second\s+(?:half|part|payment))\b"
)


_MIN_SCORE = 2.0
#: The text model's probability for an intent counts as a rule of this weight times it.
MODEL_WEIGHT = 3.0
MODEL_MIN_PROBABILITY = 0.25
#: When the rules find (almost) nothing, the model's best intent is taken from this
#: probability on (its precision there was about 0.7 in cross-validation on the dev set).
MODEL_ALONE_PROBABILITY = 0.45
_SENTENCE_END = re.compile(r"[.!?;\n]")


class _Boundaries:
    """Where a text's sentences (or clauses) end, found in one pass: each lookup is then a
    binary search, so a text with many dates costs O(n log n), not O(n²)."""

    def __init__(self, text: str, pattern: re.Pattern[str]) -> None:
        self.text = text
        self.marks = [m.start() for m in pattern.finditer(text)]  # one-character marks

    def around(self, start: int, end: int, *, keep_mark: bool = False) -> str:
        """The text from the mark before `start` to the first mark at or after `end`
        (that mark included if `keep_mark`)."""
        before = bisect.bisect_left(self.marks, start)
        left = self.marks[before - 1] + 1 if before else 0
        after = bisect.bisect_left(self.marks, end)
        if after == len(self.marks):
            return self.text[left:]
        return self.text[left : self.marks[after] + (1 if keep_mark else 0)]


_NOT_A_PROMISE = re.compile(
    r"\?|\b(?:llam\w*|call|ligar|ligue|hablar|talk|speak|falar|reunion|meeting|reuniao|cita|"
    r"visit\w*|visita|abren|abrimos|open|cierran|closed|fechad\w*|volver\w*|volto|back|return\w*|"
    r"regres\w*|vacaciones|vacation|holiday|ferias|leave|ausente|away|horario|atendimento|"
    r"atencion|hours|funciona|abierto|aberto)\b"
)
_FUTURE_MARK = re.compile(
    r"\b(?:will|'ll|going\s+to|gonna|shall|voy\s+a|vamos\s+a|vou|vamos|sera|seran|pagaremos|"
    r"pagare|pagarei|faremos|haremos|iremos|irei|when|once|cuando|quando|en\s+cuanto|assim\s+que)\b"
)
_PAST_TIME = re.compile(
    r"\b(?:ayer|anoche|anteayer|antier|ontem|anteontem|yesterday|last\s+(?:night|week|month|monday|"
    r"tuesday|wednesday|thursday|friday|saturday|sunday)|la\s+semana\s+pasada|el\s+mes\s+pasado|"
    r"semana\s+passada|mes\s+passado|hace\s+\w+\s+(?:dias|semanas)|ha\s+\w+\s+dias|faz\s+\w+\s+"
    r"(?:dias|semanas)|\w+\s+(?:days|weeks)\s+ago|this\s+morning|esta\s+manana\s+(?:temprano)?|"
    r"hoje\s+(?:cedo|de\s+manha)|earlier\s+today|hoy\s+temprano|el\s+pasado|passad[oa]|"
    r"hace\s+un\s+rato|a\s+while\s+ago|ha\s+pouco|just\s+now|hace\s+nada|faz\s+pouco)\b"
)


_CLAUSE_END = re.compile(r"[.!?;,\n¿]")


def _dated_payment(norm: str, mentions: list[dates.DateMention], r: date) -> tuple[float, str]:
    """Extra promise weight for a payment act dated in the future (or vaguely: "en breve").

    A bare future date in a reply to a reminder ("El jueves queda hecho.") counts a little
    too, unless the sentence asks something or is about a call, a visit or being away.
    """
    best, phrase = 0.0, ""
    message_pays = bool(rules.PAY_WORD.search(norm))
    sentences = _Boundaries(norm, _SENTENCE_END)
    for m in mentions:
        if m.day is not None and not r <= m.day <= r + timedelta(days=183):
            continue  # past, or a day-month already gone this year that rolled to the next
        sentence = sentences.around(m.start, m.end)
        if rules.PAST_MARK.search(sentence):
            continue
        if rules.PAY_ACTION.search(sentence):
            weight = 3.5 if m.day is not None else 3.0
        elif rules.PAY_WORD.search(sentence) and m.day is not None:
            weight = 2.0
        elif m.day is not None and not _NOT_A_PROMISE.search(sentence):
            weight = 2.0 if message_pays else 1.5
        else:
            continue
        if m.rolled and not _FUTURE_MARK.search(sentence):
            weight = min(weight, 1.5)  # "la pagamos el día 2", received on the 10th: likely past
        if weight > best:
            best, phrase = weight, sentence.strip()
    return best, phrase


def _past_payment(norm: str, mentions: list[dates.DateMention], r: date) -> tuple[float, str]:
    """Extra already-paid weight for a payment told with a past time ("ayer", "on June 6")."""
    spans = [(m.start, m.end) for m in mentions if (m.day is not None and m.day < r) or m.rolled]
    spans += [t.span() for t in _PAST_TIME.finditer(norm)]
    sentences, clauses = _Boundaries(norm, _SENTENCE_END), _Boundaries(norm, _CLAUSE_END)
    for start, end in spans:
        sentence = sentences.around(start, end)
        clause = clauses.around(start, end, keep_mark=True)
        if _FUTURE_MARK.search(sentence) or "?" in clause:
            continue
        if rules.PAY_WORD.search(sentence) or rules.PAST_MARK.search(sentence):
            return 2.5, sentence.strip()
    return 0.0, ""


_AMOUNT = re.compile(r"(?:[$€£]\s*\d|\d\s*(?:%|€|euros?|pesos|reais|dolares|dollars|usd|eur|mxn))")


#: Only the start of a message is read (the customer's words come first; what follows is
#: quoted history or attachments pasted as text): at most this many characters are searched
#: for the quote...
MAX_SCANNED_CHARS = 32_000
#: ...and at most this many of the customer's own words are classified. A 5 MB message
#: then costs what a short one does.
MAX_CLASSIFIED_CHARS = 4_000


def classified_part(text: str) -> str:
    """The part of a message that is classified: the sender's own words (quoted history,
    signatures and footers dropped, `quoting.strip_quoted`), at most `MAX_CLASSIFIED_CHARS`
    of them, read from the first `MAX_SCANNED_CHARS` of the message."""
    return strip_quoted((text or "")[:MAX_SCANNED_CHARS])[:MAX_CLASSIFIED_CHARS]


def classify(
    text: str,
    received_on: date | None = None,
    lang: str | None = None,
    *,
    model: IntentModel | bool | None = True,
) -> Classification:
    """Classify one reply (see the module docstring); `lang` ('es', 'en', 'pt') if known.

    `received_on` (default: `dunning.policy.today()`) anchors relative dates ("mañana",
    "next Friday").
    `model`: True uses the text model trained on the repository's replies (if present),
    False or None the rules alone, or pass a trained `IntentModel`.
    """
    return classify_many([(text, received_on, lang)], model=model)[0]


def classify_many(
    items: Iterable[tuple[str, date | None, str | None]],
    *,
    model: IntentModel | bool | None = True,
) -> list[Classification]:
    """`classify` for many (text, received_on, lang) triples at once, in order.

    Same answers as one `classify` call each, several times faster on large batches: the
    text model scores all the messages in one pass.
    """
    prepared = []
    day = today()  # for messages that say nothing of when they arrived
    for text, received_on, lang in items:
        scanned = (text or "")[:MAX_SCANNED_CHARS]
        own = classified_part(scanned)
        prepared.append((own, normalize(own), received_on or day, lang, scanned))
    intent_model = default_model() if model is True else model or None
    if intent_model is not None and prepared:
        probabilities = intent_model.probabilities_many([p[1] for p in prepared])
    else:
        probabilities = [None] * len(prepared)
    return [
        _classify(own, norm, r, lang, probs, sender_part(text))
        for (own, norm, r, lang, text), probs in zip(prepared, probabilities, strict=True)
    ]


def _classify(
    own: str,
    norm: str,
    r: date,
    lang: str | None,
    probabilities: dict[str, float] | None,
    signed: str,
) -> Classification:
    language = lang if lang in LANGS else detect_language(own)
    scores = rules.score(norm)
    weights = {intent: list(ws) for intent, (ws, _) in scores.items()}
    evidence = {intent: list(hits) for intent, (_, hits) in scores.items()}

    def add(intent: str, weight: float, why: str) -> None:
        weights.setdefault(intent, []).append(weight)
        evidence.setdefault(intent, []).append(why)

    dayfirst = dates.day_first(language, signed)
    mentions = dates.find_dates(norm, r, language, dayfirst=dayfirst)
    future = {m.day for m in mentions if m.day is not None and m.day >= r}
    # A future date in the same sentence as a payment act is a promise, whatever the tense
    # ("mañana hago la transferencia", "se abona el 28"), unless the sentence is in the past.
    boost, phrase = _dated_payment(norm, mentions, r)
    if boost:
        add("promise_to_pay", boost, phrase)
    past_weight, past_phrase = _past_payment(norm, mentions, r)
    if past_weight:
        add("already_paid", past_weight, past_phrase)
    # Accents carry the tense that normalization drops: "pagó", "transferí" are past.
    past = _PRETERITE.search(own.lower())
    if past:
        add("already_paid", 3.0, past.group(0))
    # Several dates to pay on are a split: a payment plan (README rule 15).
    split = _PLAN_SPLIT.search(norm) or len(_AMOUNT.findall(own.lower())) >= 2
    if len(future) >= 2 and split and ("promise_to_pay" in weights or rules.PAY_WORD.search(norm)):
        add("payment_plan_request", 5.5, "several dates")
    for intent, p in (probabilities or {}).items():
        if intent != "other" and p >= MODEL_MIN_PROBABILITY:
            add(intent, MODEL_WEIGHT * p, f"model {p:.2f}")
    total = {intent: rules.combine(ws) for intent, ws in weights.items()}

    angry = is_angry(norm, own, total.get("dispute", 0.0))
    if angry:
        add("dispute", 4.0, "angry")
        total["dispute"] = rules.combine(weights["dispute"])

    ranked = sorted(
        ((s, intent) for intent, s in total.items() if intent != "other"),
        key=lambda x: (-x[0], _PRIORITY[x[1]]),
    )
    if not ranked:
        conf = 0.55 + 0.1 * min(total.get("other", 0.0), 3) / 3
        return Classification(
            "other", round(conf, 3), language, evidence=tuple(evidence.get("other", []))
        )
    top, intent = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if top < _MIN_SCORE and not angry:
        # The rules found too little. The text model may still recognize the phrasing, unless
        # the reply reads as an acknowledgement or a question; else one weak hint is not
        # enough to act on.
        probs = probabilities or {"other": 1.0}
        guess = max(probs, key=lambda k: probs[k])
        p = probs[guess]
        if guess == "other" or p < MODEL_ALONE_PROBABILITY or total.get("other", 0.0) > 0:
            return Classification("other", 0.5, language, evidence=tuple(evidence.get(intent, [])))
        return Classification(
            guess,
            round(0.3 + 0.5 * p, 3),  # below the usual 0.6 bar unless the model is sure
            language,
            promise_date=dates.choose_promise_date(norm, mentions, r)
            if guess == "promise_to_pay"
            else None,
            angry=False,
            new_contact=find_contact(own, language) if guess == "wrong_contact" else None,
            evidence=(f"model {p:.2f}",),
            source="model",
            document=rules.document_kind(norm) if guess in _NAMES_DOCUMENT else None,
        )
    # A complaint is the costliest miss: dispute wins unless clearly outweighed.
    disp = total.get("dispute", 0.0)
    # A promise, a payment, an opt-out... that also contests something is a dispute: any
    # strong complaint stops automation (auto-replies excepted: they contest nothing).
    if intent not in ("dispute", "out_of_office") and disp >= 3:
        intent, second, top = "dispute", top, max(disp, top)
    if angry:
        intent = "dispute"
        top = max(top, disp)
    # A bank certificate asked for is a document request even when the account's details are
    # named too ("la carátula con la CLABE", "el IBAN y el certificado de titularidad"): the
    # certificate carries them. Bank details named outright with another document ("a W-9
    # and your banking information") stay details; `document` names the other document.
    document = rules.document_kind(norm) if intent in _NAMES_DOCUMENT else None
    if document == "bank_certificate":
        if intent == "bank_details_request" and total.get("document_request", 0.0) >= _MIN_SCORE:
            intent, top = "document_request", max(top, total["document_request"])
    elif (
        intent == "document_request"
        and rules.combine(scores.get("bank_details_request", ([], []))[0]) >= 3
    ):
        intent = "bank_details_request"
    promised = None
    if intent == "promise_to_pay":
        promised = dates.choose_promise_date(norm, mentions, r)
    new_contact = find_contact(own, language) if intent == "wrong_contact" else None
    return Classification(
        intent=intent,
        confidence=_confidence(top, second),
        lang=language,
        promise_date=promised,
        angry=angry,
        new_contact=new_contact,
        evidence=tuple(evidence.get(intent, [])),
        document=document,
    )
