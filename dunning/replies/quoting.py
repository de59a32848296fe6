"""Keep only what the customer wrote: drop quoted history, forwarded headers and signatures.

A reply usually carries our reminder below it ("On Mon, ... wrote:", an Outlook header block,
"> " lines). That reminder is full of the words the rules look for ("factura vencida",
"pago"), so it must go before anything is classified:

    >>> strip_quoted("Pagamos el viernes.\\n\\nEl lun, 3 mar 2025, C <c@x.es> escribió:\\n> Hola")
    'Pagamos el viernes.'
"""

from __future__ import annotations

import re

# A line that starts the quoted part: everything from it on is history.
_CUT_LINE = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:original\s+message|mensaje\s+original|mensagem\s+original|forwarded\s+message
                  |mensaje\s+reenviado|mensagem\s+encaminhada)\s*-{2,}
      | _{10,}
      | (?:begin\ forwarded\ message|inicio\ del\ mensaje\ reenviado)\s*:
      | (?:sent\ from\ my|enviado\ desde\ mi|enviado\ do\ meu|enviado\ de\ mi|get\ outlook\ for
          |obtener\ outlook\ para|obter\ o\ outlook\ para|sent\ from\ outlook|sent\ from\ mail\ for
          |enviado\ desde\ outlook|enviado\ desde\ correo\ para|sent\ from\ yahoo
          |enviado\ desde\ yahoo|enviado\ pelo|sent\ via|enviado\ a\ trav[eé]s)\b.*
      | --\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)

# "On <date>, <name> wrote:" and its translations; Gmail may wrap it over two lines.
_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        (?:on|el|em|le|am|il)\b.{0,200}?
        (?:wrote|escribi[oó]|escreveu|a\ [eé]crit|schrieb|ha\ scritto)\s*:
      | .{0,200}?(?:<[^>\s]+@[^>\s]+>|\S+@\S+)\s*(?:wrote|escribi[oó]|escreveu)\s*:
    )\s*$""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)

# Outlook's header block: "From:/De:" followed shortly by "Sent:/Enviado:/Date:/Fecha:/...".
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|de|von)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:sent|enviado|enviada|enviado\s+el|enviada\s+em|enviado\s+em|fecha\s+de\s+envio|"
    r"date|fecha|data|to|para|subject|asunto|assunto|cc)\s*:\*?",
    re.IGNORECASE,
)

# Legal boilerplate that follows signatures; nothing the customer means is below it.
_DISCLAIMER = re.compile(
    r"""^\s*(?:confidentiality\ notice|this\ (?:e-?mail|message)\ (?:and\ any|is\ confidential
        |may\ contain)|aviso\ legal|aviso\ de\ confidencialidad|este\ (?:mensaje|correo)\ (?:y
        |es\ confidencial|puede\ contener|contiene)|esta\ mensagem\ (?:e|é|pode)
        |antes\ de\ imprimir|before\ printing|please\ consider\ the\ environment
        |confidencialidad|confidencialidade|confidential(?:ity)?\b|disclaimer|privileged
        |la\ informaci[oó]n\ contenida|the\ information\ (?:contained|in\ this)
        |a\ informa[cç][aã]o\ contida|aviso\ de\ privacidad|privacy\ notice)""",
    re.IGNORECASE | re.VERBOSE,
)


_HEADER_ONE_LINE = re.compile(
    r"^\s*\*?(?:from|de)\s*:.{1,200}\b(?:sent|enviado(?:\s+el)?|date|fecha|data)\s*:", re.IGNORECASE
)


def _is_header_block(lines: list[str], i: int) -> bool:
    if _HEADER_ONE_LINE.match(lines[i]):
        return True
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [ln for ln in lines[i + 1 : i + 5] if ln.strip()]
    return any(_HEADER_NEXT.match(ln) for ln in following[:3])


_SIGNATURE_LINE = re.compile(r"^\s*(?:--\s*$|(?:sent|enviado|get|obtener|obter)\b)", re.IGNORECASE)


def _cut_index(lines: list[str], *, signatures: bool = True) -> int | None:
    for i, line in enumerate(lines):
        if _CUT_LINE.match(line) and (signatures or not _SIGNATURE_LINE.match(line)):
            return i
        if (signatures and _DISCLAIMER.match(line)) or _is_header_block(lines, i):
            return i
        if _ATTRIBUTION.match(line):
            return i
        # Gmail wraps a long attribution: "On Mon, 3 Mar 2025 at 10:00, Name <a@b.c>\nwrote:"
        if i + 1 < len(lines) and re.match(
            r"^\s*(?:wrote|escribi[oó]|escreveu)\s*:\s*$", lines[i + 1], re.IGNORECASE
        ):
            if _ATTRIBUTION.match(line + " " + lines[i + 1].strip()):
                return i
    return None


def sender_part(text: str) -> str:
    """The sender's own message with its signature and footer, without the quoted history.

    Signatures say where a sender is (a "Ltd", a UK phone number), which decides how their
    numeric dates read; the quoted history would be our own reminder, so it is left out.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _cut_index(lines, signatures=False)
    kept = [ln for ln in (lines if cut is None else lines[:cut]) if not ln.lstrip().startswith(">")]
    return "\n".join(kept).strip() or text


def strip_quoted(text: str) -> str:
    """The part of an email reply the sender wrote, without quoted history or signatures.

    Removes "> " lines, cuts at the first attribution ("On ... wrote:", "El ... escribió:",
    "Em ... escreveu:"), original-message separator, Outlook "From:/De: ... Sent:/Enviado:"
    header block, "Sent from my iPhone"-style footer, "-- " signature or legal disclaimer.
    When the reply is written *below* the quote (bottom-posting), the text after the quote is
    kept. If nothing is left, the original text is returned rather than an empty string.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _cut_index(lines)
    head = lines if cut is None else lines[:cut]
    kept = [ln for ln in head if not ln.lstrip().startswith(">")]
    result = "\n".join(kept).strip()
    if result:
        return result
    # Bottom-posted reply: header and quote first, the customer's words after them.
    if cut is not None:
        tail = [ln for ln in lines[cut + 1 :] if not ln.lstrip().startswith(">")]
        # Skip the rest of an Outlook header block (To:, Subject: ...) at the top of the tail.
        while tail and (_HEADER_NEXT.match(tail[0]) or not tail[0].strip()):
            tail.pop(0)
        rest = strip_quoted("\n".join(tail)) if tail else ""
        if rest.strip():
            return rest.strip()
    return text.strip()
