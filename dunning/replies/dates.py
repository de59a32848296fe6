"""Dates in a customer's reply, resolved against the day it arrived.

Conventions (the ones `tests/data/README.md` states; `r` is the received date):

- "hoy/today/hoje" → r; "mañana/tomorrow/amanhã" → r+1; "pasado mañana" → r+2;
- "en N días", "in N days", "daqui a N dias" → r+N; N weeks → r+7N;
- a weekday, "this X", "next X", "el próximo X" → the first X strictly after r;
  "el X de la semana que viene" → X in the week after r's week (weeks start on Monday);
- "la semana que viene", "next week", "semana que vem" (no day) → Monday of next week;
- "esta semana", "this week", "asap", "pronto" → no date;
- "fin de mes", "end of month", "fim do mês" → last day of r's month; "fin del mes que
  viene" → last day of next month; "mediados de mes" → the 15th;
- "quincena" → the 15th or the month's last day, whichever comes first on or after r;
- "el 15", "the 15th", "dia 15" → the next 15th on or after r;
- "15 de diciembre", "December 10th" → that day in r's year, or next year if already past;
- numeric dates are day-first for es/pt, month-first for en unless the sender is British.

dateparser was measured on these expressions (1.5.0, `PREFER_DATES_FROM=future`,
`RELATIVE_BASE=r`, `DATE_ORDER` by language): it returns nothing for "el próximo viernes",
"el viernes", "a fin de mes", "el 15", "pasado mañana", "la semana que viene", "end of
month", "próxima sexta", "fim do mês" and "dia 15", and "next Friday" costs ~35 ms. So the
expressions above are read by the patterns below, and dateparser's `search_dates` is only
a validated last resort (`fallback_date`) for phrasings the patterns do not know.

    >>> from datetime import date
    >>> promise_date("pagamos el proximo viernes", date(2025, 3, 12), "es")
    datetime.date(2025, 3, 14)
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

from dunning.replies.normalize import strip_accents

_WEEKDAYS = {
    "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4, "sabado": 5,
    "domingo": 6, "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4,
    "saturday": 5, "sunday": 6,
}  # fmt: skip
# Short or ambiguous names only count in their own language ("segunda via" is no Monday).
_WEEKDAYS_BY_LANG = {
    "en": {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4},
    "pt": {"segunda": 0, "terca": 1, "quarta": 2, "quinta": 3, "sexta": 4},
    "es": {},
}
_MONTHS = {
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "setiembre": 9, "octubre": 10, "noviembre": 11,
    "diciembre": 12, "january": 1, "february": 2, "march": 3, "april": 4, "may": 5,
    "june": 6, "july": 7, "august": 8, "september": 9, "october": 10, "november": 11,
    "december": 12, "janeiro": 1, "fevereiro": 2, "marco": 3, "maio": 5, "junho": 6,
    "julho": 7, "setembro": 9, "outubro": 10, "novembro": 11, "dezembro": 12,
}  # fmt: skip
_MONTHS_BY_LANG = {
    "en": {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
           "sept": 9, "oct": 10, "nov": 11, "dec": 12},
    "es": {"ene": 1, "feb": 2, "mar": 3, "abr": 4, "jun": 6, "jul": 7, "ago": 8, "sep": 9,
           "sept": 9, "oct": 10, "nov": 11, "dic": 12},
    "pt": {"jan": 1, "fev": 2, "mar": 3, "abr": 4, "mai": 5, "jun": 6, "jul": 7, "ago": 8,
           "set": 9, "out": 10, "nov": 11, "dez": 12},
}  # fmt: skip
_NUMBERS = {
    "un": 1, "una": 1, "uno": 1, "um": 1, "uma": 1, "a": 1, "one": 1, "dos": 2, "two": 2,
    "dois": 2, "duas": 2, "tres": 3, "three": 3, "cuatro": 4, "four": 4, "quatro": 4,
    "cinco": 5, "five": 5, "seis": 6, "six": 6, "siete": 7, "seven": 7, "sete": 7, "ocho": 8,
    "eight": 8, "oito": 8, "nueve": 9, "nine": 9, "nove": 9, "diez": 10, "ten": 10, "dez": 10,
    "quince": 15, "fifteen": 15, "quinze": 15, "veinte": 20, "twenty": 20, "vinte": 20,
    "treinta": 30, "thirty": 30, "trinta": 30, "couple": 2, "par": 2,
}  # fmt: skip

_NUMBER_ALT = "|".join(sorted(_NUMBERS, key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th|o|a|er)?"
_YEAR = r"(?:,?\s*(?:de\s+|del\s+)?(\d{4}))?"
_NEXT_WEEK = (
    r"(?:(?:de\s+|d[ae]\s+)?(?:la\s+|a\s+)?(?:semana\s+que\s+vi?ene|proxima\s+semana"
    r"|semana\s+proxima|semana\s+que\s+vem|semana\s+seguinte)|next\s+week)"
)


@dataclass(frozen=True)
class DateMention:
    """A date found in the text: the resolved day, where it was, and what kind of phrase."""

    day: date | None
    start: int
    end: int
    kind: str
    #: The day named had already passed, so it was moved to the next month or year
    #: ("el 2" received on the 10th). In a promise that is the rule; next to a past-tense
    #: verb it is more likely the day the customer already paid.
    rolled: bool = False


def _last_day(y: int, m: int) -> date:
    return date(y, m, calendar.monthrange(y, m)[1])


def _add_month(y: int, m: int) -> tuple[int, int]:
    return (y + 1, 1) if m == 12 else (y, m + 1)


def _next_weekday(r: date, weekday: int) -> date:
    return r + timedelta(days=(weekday - r.weekday() - 1) % 7 + 1)


def _weekday_next_week(r: date, weekday: int) -> date:
    return r - timedelta(days=r.weekday()) + timedelta(days=7 + weekday)


def next_day_of_month(r: date, day: int) -> date | None:
    """The first date on or after `r` whose day of month is `day` (months too short skip)."""
    if not 1 <= day <= 31:
        return None
    y, m = r.year, r.month
    for _ in range(13):
        if day <= calendar.monthrange(y, m)[1] and date(y, m, day) >= r:
            return date(y, m, day)
        y, m = _add_month(y, m)
    return None


def _day_month(r: date, day: int, month: int, year: int | None) -> date | None:
    """That day and month: in `year` if given, else in r's year or, if already past, the next."""
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        d = date(r.year, month, day)
        return d if d >= r else date(r.year + 1, month, day)
    except ValueError:
        return None


def _quincena(r: date) -> date:
    return date(r.year, r.month, 15) if r.day <= 15 else _last_day(r.year, r.month)


_BRITISH = re.compile(
    r"(?:\b(?:ltd|limited|plc|llp|bacs|chaps|faster\s+payments?|sort\s+code|united\s+kingdom|uk|"
    r"gbp|hmrc|companies\s+house|yours\s+faithfully|fortnight|cheque|london|manchester|"
    r"birmingham|leeds|glasgow|edinburgh|bristol|liverpool|sheffield|cardiff|belfast|"
    r"nottingham|leicester|newcastle|kent|surrey|essex|yorkshire|lancashire|hampshire|"
    r"england|scotland|wales)\b|£|\+44|\(0\)\s?\d)",
    re.IGNORECASE,
)
# UK postcodes ("SW1A 1AA", "M1 1AE") and phone numbers ("020 7946 0958", "07700 900123").
_UK_POSTCODE = re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")
_UK_PHONE = re.compile(r"(?<![\d+])0(?:[1-3]\d{2,3}|7\d{3})\s?\d{3}\s?\d{3,4}\b")


def is_british(text: str) -> bool:
    """Whether an English reply shows it comes from the UK (Ltd, £, BACS, a UK address or
    phone number)."""
    return bool(_BRITISH.search(text) or _UK_POSTCODE.search(text) or _UK_PHONE.search(text))


def day_first(lang: str, text: str) -> bool:
    """Whether numeric dates in `text` read day-first: es/pt always, en only if British."""
    return lang != "en" or is_british(text)


# -- patterns on normalized text (lowercase, no accents) -----------------------------------

_P = re.compile
_DAY_AFTER_TOMORROW = _P(
    r"\b(?:pasado\s+manana|(?:the\s+)?day\s+after\s+tomorrow|depois\s+de\s+amanha)\b"
)
# "mañana" after "la/esta/una/cada" is the morning, not tomorrow ("por la mañana").
_TOMORROW = _P(r"(?<!\bla\s)(?<!\besta\s)(?<!\buna\s)(?<!\bcada\s)\b(?:manana|tomorrow|amanha)\b")
_TODAY = _P(
    r"\b(?:hoy|today|hoje|tonight|esta\s+noche|end\s+of\s+(?:the\s+)?(?:business\s+)?day|eod"
    r"|ainda\s+hoje|al?\s+final\s+del\s+dia|ate\s+o\s+final\s+do\s+dia)\b"
)
_IN_N = _P(
    r"\b(?:en|dentro\s+de|in|within|em|daqui(?:\s+a)?|give\s+(?:me|us)|dame|denme|deme|"
    r"dadme|me\s+da|me\s+de|me\s+deem|no\s+prazo\s+de|nos\s+proximos"
    r"|en\s+los\s+proximos|over\s+the\s+next|the\s+next|next)\s+(?:(\d{1,3})|("
    + _NUMBER_ALT
    + r"))\s+(?:(?:business|working)\s+)?(dias?|days?|semanas?|weeks?)\b"
)
_FORTNIGHT = _P(r"\b(?:in|within)\s+a\s+fortnight\b")
_END_NEXT_MONTH = _P(
    r"\b(?:(?:fin|final|finales|fines)\s+del?\s+"
    r"(?:mes\s+que\s+viene|proximo\s+mes|mes\s+proximo|mes\s+siguiente)"
    r"|end\s+of\s+next\s+month|(?:fim|final)\s+do\s+(?:mes\s+que\s+vem|proximo\s+mes))\b"
)
_END_MONTH = _P(
    r"\b(?:(?:fin|final|finales|fines|ultimo\s+dia|ultimos\s+dias)\s+(?:de|del)\s+(?:este\s+)?mes"
    r"|(?:end|close)\s+of\s+(?:the\s+|this\s+)?month|month[\s-]end"
    r"|(?:fim|final|ultimo\s+dia|ultimos\s+dias)\s+(?:do|de|deste)\s+mes"
    r"|antes\s+(?:de\s+)?que\s+(?:acabe|termine|finalice|se\s+acabe)\s+el\s+mes"
    r"|before\s+the\s+month\s+(?:ends|is\s+(?:out|over))|antes\s+(?:de\s+)?(?:acabar|terminar)\s+o\s+mes"
    r"|antes\s+que\s+(?:acabe|termine)\s+o\s+mes)\b"
)
_BEGIN_NEXT_MONTH = _P(
    r"\b(?:(?:principios|inicios|comienzos|primeros\s+dias)\s+del?\s+(?:mes\s+que\s+viene|"
    r"proximo\s+mes)|(?:beginning|start)\s+of\s+next\s+month|(?:inicio|comeco|principio)\s+do\s+"
    r"(?:mes\s+que\s+vem|proximo\s+mes))\b"
)
_MID_MONTH = _P(
    r"\b(?:mediados\s+del?\s+(?:este\s+)?mes|mid[\s-]month|middle\s+of\s+(?:the\s+)?month"
    r"|meados\s+do\s+mes)\b"
)
_QUINCENA = _P(r"\b(?:quincena|quinzena)\b")
_NEXT_WEEK_ONLY = _P(r"\b" + _NEXT_WEEK + r"\b")
_VAGUE = _P(
    r"\b(?:esta\s+semana|this\s+week|essa\s+semana|asap|as\s+soon\s+as\s+possible|pronto"
    r"|en\s+breve|shortly|soon|lo\s+antes\s+posible|cuanto\s+antes|o\s+quanto\s+antes"
    r"|em\s+breve|nos\s+proximos\s+dias|en\s+los\s+proximos\s+dias|next\s+payment\s+run"
    r"|in\s+the\s+coming\s+days)\b"
)
_ISO = _P(r"(?<![\d/.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d/-])")
_NUMERIC = _P(r"(?<![\d/.,$€£-])(\d{1,2})([/.-])(\d{1,2})(?:\2(\d{4}|\d{2}))?(?![\d%]|[.,/-]\d)")
_PAST_BEFORE = _P(r"\b(?:last|past)\s+$")
_PAST_AFTER = _P(r"\s*(?:pasado|pasada|passad[oa]|anterior)\b")
_PAID_BEFORE = _P(r"\b(?:was|were|paid|sent|posted|mailed|made|pague|paguei|pagaste)\b[^.!?\n]*$")
_FUTURE_BEFORE = _P(r"\b(?:will|'ll|shall|going\s+to|gonna|to\s+be|should\s+be)\b")
_UNITS = (
    r"%|€|\$|euros?|pesos|reais|dolares|dollars|dias|days|unidades|units|pagos|payments|"
    r"cuotas|parcelas|horas|hours|h\b|am\b|pm\b|invoices|facturas|faturas|items|veces|vezes"
)


class _LangPatterns:
    """The patterns that depend on the language's month and weekday names."""

    def __init__(self, lang: str) -> None:
        self.months = {**_MONTHS, **_MONTHS_BY_LANG.get(lang, {})}
        self.weekdays = {**_WEEKDAYS, **_WEEKDAYS_BY_LANG.get(lang, {})}
        month_alt = "|".join(sorted(self.months, key=len, reverse=True))
        weekday_alt = "|".join(sorted(self.weekdays, key=len, reverse=True))
        self.month_day = _P(rf"\b({month_alt})\.?\s+(\d{{1,2}}){_ORD}\b{_YEAR}")
        self.day_month = _P(
            rf"\b(\d{{1,2}}){_ORD}\s*(?:de\s+|of\s+|del\s+)?({month_alt})\b\.?{_YEAR}"
        )
        self.weekday = _P(
            rf"\b(?:(?:proxim[oa]|next|this|este|esta|coming|this\s+coming|nesta|essa|nessa)\s+)?"
            rf"({weekday_alt})(?:[\s-]*feira|s)?\b"
            r"(?!\s+(?:via|vez|parcela|quinzena|quincena|metade|parte|opcao|cuota))"
            rf"(?:,?\s+(?:the\s+)?(\d{{1,2}}){_ORD}\b(?!\s*(?:de\s+)?(?:{month_alt})\b|[/.-]\d))?"
        )
        self.day_of_month = _P(
            r"\b(?:(?:el|el\s+dia|dia|los\s+dias|on\s+the|by\s+the|no\s+dia|ate\s+o\s+dia|ate\s+dia|para\s+el"
            r"|para\s+el\s+dia|hasta\s+el|antes\s+del|before\s+the|a\s+partir\s+del|o\s+dia"
            r"|del\s+dia|del|em)\s+)"
            rf"(\d{{1,2}}){_ORD}\b(?!\s*(?:{_UNITS}|de\s+(?:{month_alt})\b|[:/.,]\d))"
            rf"|\b(\d{{1,2}})(?:st|nd|rd|th)\b(?!\s*(?:of\s+)?(?:{month_alt})\b)"
        )
        self.month_words = _P(rf"\b(?:{month_alt})\b")
        self.month_part = _P(
            r"\b(?:(fin|final|finales|fines|end|fim|ultimo\s+dia|ultimos\s+dias|late)"
            r"|(principios|inicios|comienzos|beginning|start|inicio|comeco|early|primeros\s+dias)"
            r"|(mediados|mid|middle|meados))\s*[-\s]?(?:de|del|of|do|da)?\s*(?:el\s+mes\s+de\s+)?"
            rf"({month_alt})\b"
        )


@lru_cache(maxsize=8)
def _patterns(lang: str) -> _LangPatterns:
    return _LangPatterns(lang)


def find_dates(text: str, received_on: date, lang: str, *, dayfirst: bool) -> list[DateMention]:
    """Every date phrase in normalized `text`, resolved against `received_on`, in text order.

    Longer, more specific phrases win over the shorter ones inside them ("15 de enero" over
    "el 15"). A mention whose `day` is None is a vague time ("this week", "asap"): it tells
    callers a time was named for which no date can be given.
    """
    r = received_on
    lp = _patterns(lang)
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []

    def add(span: tuple[int, int], day: date | None, kind: str, rolled: bool = False) -> None:
        s, e = span
        if any(s < te and ts < e for ts, te in taken):
            return
        taken.append((s, e))
        found.append(DateMention(day, s, e, kind, rolled))

    def rolled_year(day: date | None, year: int | None) -> bool:
        return day is not None and year is None and day.year > r.year

    def rolled_month(n: int) -> bool:
        return n < r.day

    for m in _ISO.finditer(text):
        add(m.span(), _day_month(r, int(m[3]), int(m[2]), int(m[1])), "numeric")
    for m in lp.month_day.finditer(text):
        day = _day_month(r, int(m[2]), lp.months[m[1]], _int(m[3]))
        add(m.span(), day, "month_name", rolled_year(day, _int(m[3])))
    for m in lp.day_month.finditer(text):
        day = _day_month(r, int(m[1]), lp.months[m[2]], _int(m[3]))
        add(m.span(), day, "month_name", rolled_year(day, _int(m[3])))
    for m in lp.month_part.finditer(text):
        month = lp.months[m[4]]
        year = r.year if month >= r.month else r.year + 1
        if m[1]:
            add(m.span(), _last_day(year, month), "end_of_month")
        elif m[2]:
            add(m.span(), date(year, month, 1), "day_of_month")
        else:
            add(m.span(), date(year, month, 15), "day_of_month")
    for m in _NUMERIC.finditer(text):
        a, b, year = int(m[1]), int(m[3]), _int(m[4])
        if m[2] == "." and year is None:
            continue  # "3.5" is a number far more often than a date
        day, month = (a, b) if dayfirst else (b, a)
        if month > 12 and day <= 12:  # only one reading is a date
            day, month = month, day
        if 1 <= month <= 12:
            resolved = _day_month(r, day, month, year)
            add(m.span(), resolved, "numeric", rolled_year(resolved, year))
    for m in _DAY_AFTER_TOMORROW.finditer(text):
        add(m.span(), r + timedelta(days=2), "relative")
    for m in _END_NEXT_MONTH.finditer(text):
        add(m.span(), _last_day(*_add_month(r.year, r.month)), "end_of_month")
    for m in _END_MONTH.finditer(text):
        add(m.span(), _last_day(r.year, r.month), "end_of_month")
    for m in _BEGIN_NEXT_MONTH.finditer(text):
        add(m.span(), date(*_add_month(r.year, r.month), 1), "day_of_month")
    for m in _MID_MONTH.finditer(text):
        add(m.span(), next_day_of_month(r, 15), "day_of_month")
    for m in _IN_N.finditer(text):
        n = int(m[1]) if m[1] else _NUMBERS[m[2]]
        weeks = m[3].startswith(("semana", "week"))
        add(m.span(), r + timedelta(days=n * 7 if weeks else n), "relative")
    for m in _FORTNIGHT.finditer(text):
        add(m.span(), r + timedelta(days=14), "relative")
    weekday_spans = [w.span() for w in lp.weekday.finditer(text)]
    for m in lp.weekday.finditer(text):
        before = text[max(0, m.start() - 45) : m.start()]
        if any(
            re.fullmatch(r"\s*(?:a|to|-|–|ate|hasta|thru|through)\s*", text[e1:s2])
            for e1, s2 in ((m.end(), s) for s, _ in weekday_spans)
        ) or any(
            re.fullmatch(r"\s*(?:a|to|-|–|ate|hasta|thru|through)\s*", text[e : m.start()])
            for _, e in weekday_spans
            if e <= m.start()
        ):
            continue  # "de lunes a viernes": opening days, not a date
        if _PAST_BEFORE.search(before) or _PAST_AFTER.match(text, m.end()):
            continue  # "last Friday", "el viernes pasado"
        if _PAID_BEFORE.search(before[-25:]) and not _FUTURE_BEFORE.search(before[-25:]):
            continue  # "paid on Friday": a past payment, not a promise ("will be paid" is)
        if m[2]:  # "Monday 3rd", "el lunes 3": the day of the month decides
            n = int(m[2])
            add(m.span(), next_day_of_month(r, n), "day_of_month", rolled_month(n))
            continue
        weekday = lp.weekdays[m[1]]
        after = re.match(r"\s*,?\s*" + _NEXT_WEEK, text[m.end() :])
        prior = re.search(_NEXT_WEEK + r"\s*,?\s*(?:on\s+|el\s+|na\s+|no\s+)?$", before)
        if after:
            add((m.start(), m.end() + after.end()), _weekday_next_week(r, weekday), "weekday")
        elif prior:
            start = m.start() - len(before) + prior.start()
            add((start, m.end()), _weekday_next_week(r, weekday), "weekday")
        else:
            add(m.span(), _next_weekday(r, weekday), "weekday")
    for m in _NEXT_WEEK_ONLY.finditer(text):
        add(m.span(), _weekday_next_week(r, 0), "next_week")
    for m in _QUINCENA.finditer(text):
        add(m.span(), _quincena(r), "quincena")
    for m in _TODAY.finditer(text):
        add(m.span(), r, "relative")
    for m in _TOMORROW.finditer(text):
        add(m.span(), r + timedelta(days=1), "relative")
    for m in lp.day_of_month.finditer(text):
        n = int(m[1] or m[2])
        add(m.span(), next_day_of_month(r, n), "day_of_month", rolled_month(n))
    for m in _VAGUE.finditer(text):
        add(m.span(), None, "vague")
    found.sort(key=lambda d: d.start)
    return found


def _int(value: str | None) -> int | None:
    return int(value) if value else None


_PAY_WORD = _P(
    r"\b(?:pag\w*|pay\w*|paid|abon\w*|transf\w*|ingres\w*|deposit\w*|liquid\w*|consign\w*|"
    r"settle\w*|wire|remit\w*|send|sale|saldra|efetu\w*|efectu\w*|quit\w*|pix|bizum|ted|"
    r"check|cheque|remesa|funds|bacs|ach)\b"
)


def choose_promise_date(text: str, mentions: list[DateMention], received_on: date) -> date | None:
    """The promised day among `mentions`: a future one, the nearest to a payment word.

    Past dates (an invoice date, "we paid on the 3rd") and dates more than about a year
    away are ignored. With no usable date the answer is None.
    """
    limit = received_on + timedelta(days=400)
    usable = [m for m in mentions if m.day is not None and received_on <= m.day <= limit]
    if len(usable) <= 1:
        return usable[0].day if usable else None
    pay_positions = [p.start() for p in _PAY_WORD.finditer(text)]

    def distance(m: DateMention) -> int:
        if not pay_positions:
            return 0
        return min(min(abs(p - m.start), abs(p - m.end)) for p in pay_positions)

    return min(usable, key=lambda m: (distance(m), m.start)).day


def promise_date(
    text: str, received_on: date, lang: str, *, dayfirst: bool | None = None
) -> date | None:
    """The date a customer promises to pay by, read from normalized `text`, or None."""
    if dayfirst is None:
        dayfirst = day_first(lang, text)
    mentions = find_dates(text, received_on, lang, dayfirst=dayfirst)
    return choose_promise_date(text, mentions, received_on)


def fallback_date(raw_text: str, received_on: date, lang: str) -> date | None:
    """dateparser's `search_dates` as a last resort, accepted only when plausible.

    The phrase found must hold a digit or a month name, and the date must fall within about
    a year on or after `received_on`; anything else is ignored (dateparser will read "a" or
    "de" as dates).
    """
    from dateparser.search import search_dates

    settings = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime(received_on.year, received_on.month, received_on.day),
        "DATE_ORDER": "DMY" if day_first(lang, raw_text) else "MDY",
        "REQUIRE_PARTS": ["day"],
    }
    try:
        hits = search_dates(raw_text, languages=[lang], settings=settings) or []
    except Exception:  # dateparser raises assorted errors on odd input: then no date
        return None
    month_words = _patterns(lang).month_words
    for phrase, when in hits:
        plain = strip_accents(phrase.lower())
        if not (re.search(r"\d", plain) or month_words.search(plain)):
            continue
        if received_on <= when.date() <= received_on + timedelta(days=400):
            return when.date()
    return None
