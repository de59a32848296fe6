"""SMS text: rendering a stage's message, its encoding and how many segments it costs.

A message in GSM-7 fits 160 characters in one segment (153 per segment when split); one
character outside GSM-7 turns the *whole* message into UCS-2: 70 characters (67 when split).
Spanish and Portuguese are mostly GSM-7 (`ñ é ü ¿ ¡ à è ì ò ù Ç` are in it) but not
`á í ó ú ç ã õ â ê ô` (contract §2; Twilio's Smart Encoding does not map them either).

How accents are handled: after rendering, every character outside GSM-7 is replaced by its
closest GSM-7 form (`á`→`a`, `ç`→`c`, `ã`→`a`, a non-breaking space → a space, curly quotes
→ straight ones): Spanish and Portuguese readers read an unaccented `aqui` or `fatura
vencida amanha` without trouble, and the reminder costs half as much and is far less likely
to be split. Characters GSM-7 has (`ñ`, `é`, `¿`) are kept. A name in another script (Greek,
Cyrillic, ...) is kept too: the message then goes as UCS-2, and the segment count says so.

A reminder must fit `MAX_SEGMENTS` (2): a longer rendering is an error naming the template,
and the act step falls back to another channel rather than send a 4-part SMS.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateNotFound

from dunning.render import shared_environment, templates_dir

#: The GSM 03.38 basic character set (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: two septets each (an escape, then the character).
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
MAX_SEGMENTS = 2
#: Characters mapped by hand before the general rule (accent stripping).
_REPLACEMENTS = {
    "\u00a0": " ",  # no-break space (Babel puts one between amount and currency)
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "º": "o",
    "ª": "a",
}


class SmsTemplateError(ValueError):
    """An SMS template that is missing, or renders longer than a reminder may be."""


@dataclass(frozen=True)
class SmsText:
    """A rendered SMS: the text sent, its encoding (`GSM-7` or `UCS-2`), its length in
    the encoding's units (septets or UTF-16 code units) and its segments."""

    text: str
    encoding: str
    units: int
    segments: int
    language: str = ""


def is_gsm7(text: str) -> bool:
    """True if every character is in GSM-7 (basic or extension table)."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def to_gsm7(text: str) -> str:
    """`text` with each character outside GSM-7 replaced by its closest GSM-7 form, where
    one exists (accents dropped); characters without one (other scripts) are kept."""
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENDED:
            out.append(ch)
            continue
        ch = _REPLACEMENTS.get(ch, ch)
        if len(ch) == 1 and ch not in GSM7_BASIC:
            stripped = "".join(
                c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c)
            )
            if stripped and is_gsm7(stripped):
                ch = stripped
        out.append(ch)
    return "".join(out)


def measure(text: str) -> SmsText:
    """Encoding, units and segments of `text` as Twilio bills it.

    Example:
        >>> measure("La factura F-1 de 1.250,00 € vence mañana.").segments
        1
    """
    if is_gsm7(text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // multi)
    return SmsText(text, encoding, units, segments)


def render_sms(
    stage: str,
    language: str,
    context: dict[str, Any],
    *,
    fallback_language: str = "en",
    root: Path | None = None,
) -> SmsText:
    """Render `templates/sms/<lang>/<stage>.txt`, made GSM-7 where possible, measured.

    Raises `SmsTemplateError` when no template exists in the language or the fallback, or
    when the message would take more than `MAX_SEGMENTS` segments.
    """
    folder = root or templates_dir()
    env = shared_environment(str(folder))
    for lang in dict.fromkeys((language, fallback_language)):
        name = f"sms/{lang}/{stage}.txt"
        try:
            raw = env.get_template(name).render(context)
        except TemplateNotFound:
            continue
        text = to_gsm7(" ".join(raw.split()))  # one paragraph: newlines cost characters
        sms = measure(text)
        if sms.segments > MAX_SEGMENTS:
            raise SmsTemplateError(
                f"{folder}/{name} renders to {sms.units} {sms.encoding} units = "
                f"{sms.segments} segments for invoice {context.get('invoice_number', '?')}; "
                f"a reminder may take {MAX_SEGMENTS}: shorten the template"
            )
        return SmsText(sms.text, sms.encoding, sms.units, sms.segments, lang)
    raise SmsTemplateError(
        f"no SMS template for stage {stage!r} in {language!r} or {fallback_language!r}: "
        f"add {folder}/sms/{language}/{stage}.txt"
    )
