"""Text normalization for matching: lowercase, no accents, no shouting, fewer typos.

Customers write "YA PAGAMOS!!!", "ya pagamoss", "ya pagamos" and "ya pagámos" for the same
thing. Rules and the date reader look at one canonical form instead of each variant:

    >>> normalize("YA PAGAMOSSS la FACTRUA!!!")
    'ya pagamos la factura!'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_REPEATED_LETTER = re.compile(r"([a-z])\1{2,}")
_REPEATED_PUNCT = re.compile(r"([!?.])\1+")
_NUMBER_SIGN = re.compile(r"\b(?:n|no|nr|nro|num)\s*[.º°]{1,2}\s*(?=[#\w-]*\d)|#\s*(?=\d)")
_SPACES = re.compile(r"[ \t\u00a0]+")
_WORD = re.compile(r"(?<![a-z0-9])[a-z]+(?![a-z0-9])")

# Chat shorthand and frequent misspellings, whole words only (after accent stripping).
_SHORTHAND: dict[str, str] = {
    # Spanish
    "q": "que",
    "k": "que",
    "xq": "porque",
    "pq": "porque",
    "porq": "porque",
    "tb": "tambien",
    "tmb": "tambien",
    "tbn": "tambien",
    "x": "por",
    "d": "de",
    "dl": "del",
    "fra": "factura",
    "fact": "factura",
    "fras": "facturas",
    "cta": "cuenta",
    "trans": "transferencia",
    "transf": "transferencia",
    "tranferencia": "transferencia",
    "trasferencia": "transferencia",
    "transferecia": "transferencia",
    "tranfer": "transfer",
    "xfa": "porfavor",
    "pf": "porfavor",
    "pfv": "porfavor",
    "porfa": "porfavor",
    "grs": "gracias",
    "grax": "gracias",
    "mñn": "manana",
    "mnn": "manana",
    "hrs": "horas",
    "slds": "saludos",
    "dsp": "despues",
    # English
    "u": "you",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "thanx": "thanks",
    "tks": "thanks",
    "ty": "thanks",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrrw": "tomorrow",
    "tomorow": "tomorrow",
    "tommorow": "tomorrow",
    "tommorrow": "tomorrow",
    "wk": "week",
    "wks": "weeks",
    "inv": "invoice",
    "pmt": "payment",
    "pymt": "payment",
    "paymnt": "payment",
    "recieved": "received",
    "recieve": "receive",
    "alredy": "already",
    "allready": "already",
    "alreday": "already",
    "invocie": "invoice",
    "invoce": "invoice",
    "im": "i'm",
    "dont": "don't",
    "didnt": "didn't",
    "wont": "won't",
    "cant": "can't",
    "eom": "end of month",
    "asap": "as soon as possible",
    # Portuguese
    "vc": "voce",
    "vcs": "voces",
    "hj": "hoje",
    "amnh": "amanha",
    "qdo": "quando",
    "qnd": "quando",
    "obg": "obrigado",
    "obgd": "obrigado",
    "obgda": "obrigada",
    "pgto": "pagamento",
    "pgt": "pagamento",
    "pagto": "pagamento",
    "td": "tudo",
    "tbm": "tambem",
    "msm": "mesmo",
    "ngm": "ninguem",
    "nf": "nota fiscal",
}

# Words that matter to the rules, for typo repair. Only typing slips are repaired: two
# letters swapped ("factrua"), a letter doubled ("pagamoss") or one left out inside a long
# word ("comprobnte"). A different letter is never assumed: "pasado" is not "pagado" and
# "abogado" is not "abonado".
_KEYWORDS = """
factura facturas fatura faturas invoice invoices transferencia transferencias transfer
transferimos transferido transferida pagado pagada
pagados pagadas pagamos pagaremos pagamento pagamentos pagaremos payment
payments already remittance comprobante justificante comprovante receipt abonado abonada
abonaremos ingresado ingreso deposito depositado depositamos depositaremos reclamacion
reclamamos reclamo reclamacao disputa dispute disputed incorrecto incorrecta incorrect
incorreto incorreta equivocado equivocada errado errada duplicado duplicada duplicate
duplicated cobrado cobrada cobranca indevida indevido overcharged recibido recibida
received recebido recebida recibimos recebemos mercancia mercaderia pedido produto
producto servicio servico service defectuoso defeito damaged vacaciones vacations vacation
holiday holidays ferias oficina office escritorio regresare volvere returning automatica
automatico automatic respuesta resposta response mensaje mensagem message unsubscribe
suscripcion inscricao contactar contacte contactar contato contacto contact persona
pessoa person empresa company trabajo trabaja trabalho trabalha departamento department
contabilidad contabilidade accounting accounts payable cuotas parcelas parcelar
parcelamento installments instalments fraccionar aplazar aplazamiento plazos prazo
extension semana semanas proximo proxima siguiente viernes sabado domingo miercoles
jueves martes friday saturday sunday monday tuesday wednesday thursday tomorrow manana
amanha quincena quinzena segunda terca quarta quinta sexta bancarios bancaria bancarias
bancario bancarios bancaria account cuenta numero number details detalles dados
gracias obrigado thanks please porfavor favor enviar envien mandar reenviar resend
send copia copy segunda documento document adjunto anexo attached anexado
""".split()

_KEYWORD_SET = frozenset(w for w in _KEYWORDS if len(w) >= 6)
_BY_LENGTH: dict[int, list[str]] = {}
for _w in sorted(_KEYWORD_SET):
    _BY_LENGTH.setdefault(len(_w), []).append(_w)


def _one_slip(word: str, keyword: str) -> bool:
    """Whether `word` is `keyword` with one typing slip (swap, doubled or missing letter)."""
    if len(word) == len(keyword):
        diff = [i for i, (a, b) in enumerate(zip(word, keyword, strict=True)) if a != b]
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and word[diff[0]] == keyword[diff[1]]
            and word[diff[1]] == keyword[diff[0]]
        )
    if len(word) == len(keyword) + 1:  # an extra letter: only a doubled one
        for i in range(1, len(word)):
            if word[i] == word[i - 1] and word[:i] + word[i + 1 :] == keyword:
                return True
        return False
    if len(word) + 1 == len(keyword) and len(word) >= 7:  # a letter left out, not at the end
        return any(keyword[:i] + keyword[i + 1 :] == word for i in range(1, len(keyword) - 2))
    return False


@lru_cache(maxsize=65536)
def _repair(word: str) -> str:
    """The keyword `word` is a typing slip of, or `word` itself."""
    if len(word) < 6 or word in _KEYWORD_SET:
        return word
    for n in (len(word), len(word) - 1, len(word) + 1):
        for keyword in _BY_LENGTH.get(n, ()):
            if keyword[0] == word[0] and _one_slip(word, keyword):
                return keyword
    return word


def strip_accents(text: str) -> str:
    """`text` without diacritics ("mañana" → "manana", "não" → "nao")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _fix_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return _SHORTHAND.get(word) or _repair(word)


@lru_cache(maxsize=4096)
def normalize(text: str) -> str:
    """Canonical form of `text` for matching: lowercase, accent-free, typos repaired.

    Repeated letters collapse ("siiii" → "si"), repeated punctuation too ("!!!" → "!"),
    shorthand expands ("q" → "que", "pls" → "please") and near-misses of keywords are
    repaired ("factrua" → "factura"). Line breaks are kept; other whitespace collapses.
    """
    t = _NUMBER_SIGN.sub("num ", text.lower())  # "nº 123", "no. 123": not a negation
    t = strip_accents(t).replace("\u2019", "'")
    t = _REPEATED_LETTER.sub(r"\1", t)
    t = _REPEATED_PUNCT.sub(r"\1", t)
    t = _WORD.sub(_fix_word, t)
    return _SPACES.sub(" ", t).strip()
