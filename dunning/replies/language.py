"""Which language a reply is written in: Spanish, English or Portuguese.

Replies are short ("Pago mañana", "paid", "Já paguei"), so a general-purpose detector
guesses poorly. Each language gets weighted marker words, chosen so that the words the
three languages share ("no", "que", "de", "para") do not count, and words that tell Spanish
and Portuguese apart ("mañana"/"amanhã", "factura"/"fatura", "ya"/"já") count most.

    >>> detect_language("Já paguei a fatura ontem")
    'pt'
"""

from __future__ import annotations

import re

from dunning.replies.normalize import strip_accents

LANGS = ("es", "en", "pt")

_MARKERS: dict[str, dict[str, float]] = {
    "es": {
        **dict.fromkeys(
            "el la los las del y en es un una con por su sus mi mis pero muy hola "
            "usted ustedes nosotros hemos he ha han esta este esto estos estamos estoy voy "
            "vamos lo le les al cuando como donde hasta pues ya tambien fue viene queda".split(),
            1.0,
        ),
        **dict.fromkeys(
            "gracias factura facturas pago pagos pagado pagada pagamos pagaremos pagare manana "
            "semana viernes lunes martes miercoles jueves sabado domingo proximo proxima "
            "cuenta transferencia mes dia dias ayer hoy favor saludos cordial buenos buenas "
            "tardes noches enviar envien adjunto comprobante importe dinero quiero puedo "
            "podemos necesito necesitamos tenemos tengo sido fue hicimos hice realizamos "
            "realizado abonado ingresado recibido correo quincena disculpe disculpen "
            "ningun ninguna nunca mucho muchas usted senor senora estimado estimada quiero "
            "comunicaciones baja numero deseo mensajes mensaje recibir aqui".split(),
            2.0,
        ),
    },
    "pt": {
        **dict.fromkeys(
            "o os as um uma com em no na nos nas do da dos das ao aos pelo pela seu sua "
            "meu minha isso isto esse essa este esta voce voces nos ja tambem ate "
            "muito obrigado obrigada ola oi".split(),
            1.0,
        ),
        **dict.fromkeys(
            "nao fatura faturas pagamento pagamentos paguei pagamos pagaremos vou vamos "
            "amanha hoje ontem semana sexta segunda terca quarta quinta sabado domingo "
            "proxima proximo mes dia dias conta transferencia boleto pix deposito favor "
            "bom boa tarde noite atenciosamente abracos cumprimentos enviar envie anexo "
            "comprovante valor estou estamos tenho temos fiz fizemos efetuado efetuamos "
            "realizado recebi recebemos recebido cobranca quero posso podemos preciso "
            "precisamos agora depois entao porque sim senhor senhora prezado prezada "
            "nota fiscal trabalho ferias escritorio parcelar parcelas quinzena "
            "gostaria poderia voltarei retornarei pagarei vem segue ainda aqui tudo foi "
            "ficou prezados enviem mandem efetuarmos sair remova remover mensagens numero "
            "tirem parem tem vezes duas voces daqui pra pro ciente receber mensagem deseja "
            "retirem contatos da ta pode assim podem".split(),
            2.5,
        ),
    },
    "en": {
        **dict.fromkeys(
            "the and to of is are was were we i you it this that be have has had our your "
            "my with will would can could for on at by from not do does did an".split(),
            1.0,
        ),
        **dict.fromkeys(
            "invoice invoices pay paid payment payments please thanks thank hi hello dear "
            "regards best sincerely tomorrow today yesterday next week month friday monday "
            "tuesday wednesday thursday saturday sunday account bank transfer wire sent "
            "already received send copy office back until out dispute wrong amount "
            "i'm we'll we've i'll don't can't won't it's unsubscribe stop remove owe charge "
            "charged bill billed wrong number office leave email emails sorry want year last "
            "in if or all any there here morning hope you're well just got get".split(),
            2.0,
        ),
    },
}

# A word two languages share is no evidence for either ("semana", "pagamos", "vamos").
_SHARED = {w for a in LANGS for b in LANGS if a < b for w in set(_MARKERS[a]) & set(_MARKERS[b])}
for _lang in LANGS:
    for _w in _SHARED:
        _MARKERS[_lang].pop(_w, None)

# Letters and digraphs only one of the languages uses (checked on the accented text).
_ORTHOGRAPHY = {
    "es": re.compile(r"ñ|¿|¡|ci[óo]n(?:es)?\b|\bll[aeiou]"),
    "pt": re.compile(r"ã|õ|ç|ção\b|ções\b|\blh|nh[aeiou]"),
}

_TOKEN = re.compile(r"[a-z']+")


def language_scores(text: str) -> dict[str, float]:
    """Evidence per language (marker words and spelling), higher is more likely."""
    lowered = text.lower()
    tokens = _TOKEN.findall(strip_accents(lowered))
    scores = {lang: 0.0 for lang in LANGS}
    for tok in tokens:
        for lang in LANGS:
            scores[lang] += _MARKERS[lang].get(tok, 0.0)
    for lang, pattern in _ORTHOGRAPHY.items():
        scores[lang] += 3.0 * len(pattern.findall(lowered))
    return scores


def detect_language(text: str, default: str = "es") -> str:
    """'es', 'en' or 'pt' for `text`; `default` when there is no evidence at all."""
    scores = language_scores(text)
    best = max(LANGS, key=lambda lang: scores[lang])
    if scores[best] <= 0:
        return default
    return best
