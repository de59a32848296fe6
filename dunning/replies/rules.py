"""Weighted patterns per intent, on normalized text (lowercase, no accents, typos repaired).

Each rule adds its weight to one intent when it matches; the classifier compares the
totals. Weights: 3 is a phrase that says the intent on its own ("ya pagamos", "plan de
pagos"), 2 a strong hint, 1 a weak one. Rules marked `negatable` do not count when a
negation stands just before them in the same clause ("todavía no hemos pagado").

The patterns cover Spanish (Spain and Latin America), English (US and UK) and Portuguese
(Brazil and Portugal) together: after normalization the three rarely collide, and a reply
mixing two languages still scores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One pattern: the intent it points to, its weight, and whether a negation cancels it."""

    intent: str
    weight: float
    pattern: re.Pattern[str]
    negatable: bool = False


_RULES: list[Rule] = []

# From the start of a sentence that does not talk about a file: "the goods arrived damaged"
# is a dispute, "the attachment was damaged" is a request for a new copy.
_NOT_FILE = (
    r"(?:\A|(?<=[.!?\n]))(?:(?!adjunt|archivo|pdf|attachment|file|anexo|arquivo|link|enlace|"
    r"documento|correo|e-?mail)[^.!?\n])*?"
)


def _add(intent: str, weight: float, *patterns: str, negatable: bool = False) -> None:
    for p in patterns:
        _RULES.append(Rule(intent, weight, re.compile(p), negatable))


# Verb families, as alternations (normalized text: no accents).
_PAY_ES = (
    r"(?:pag\w*|abon\w*|transf\w*|ingres\w*|deposit\w*|liquid\w*|consign\w*|cancel\w*|salda\w*)"
)
_PAY_EN = r"(?:pay|paid|payed|settle[ds]?|wire[ds]?|transfer(?:red)?|remit(?:ted)?|sen[dt])"
_PAY_PT = r"(?:pag\w*|quit\w*|transf\w*|deposit\w*|efetu\w*)"
_METHODS = (
    r"(?:bizum|spei|oxxo|pse|mercado\s?pago|nequi|daviplata|yape|plin|pix|ted|doc|boleto|"
    r"multibanco|mb\s?way|bacs|ach|zelle|paypal|venmo|cheque|check|wire|transferencia|"
    r"deposito|transfer|ingreso|consignacion)"
)

# -- promise_to_pay: a commitment to pay in the future -------------------------------------
_add(
    "promise_to_pay",
    3,
    r"\b(?:pagaremos|pagare|pagara|pagaran|pagariamos|abonaremos|abonare|abonara|"
    r"transferiremos|transferire|ingresaremos|ingresare|depositaremos|depositare|depositara|"
    r"liquidaremos|liquidare|consignaremos|consignare|saldaremos|cubriremos|efectuaremos|"
    r"realizaremos\s+(?:el|la|un)\s+(?:pago|transferencia|deposito|ingreso|abono))\b",
    r"\b(?:voy|vamos|van|iremos)\s+a\s+(?:pagar|abonar|transferir|ingresar|depositar|liquidar|"
    r"consignar|saldar|cubrir|hacer\s+(?:el|la|un)\s+(?:pago|transferencia|deposito|ingreso|bizum)|"
    r"realizar\s+(?:el|la)\s+(?:pago|transferencia)|mandar\s+el\s+pago|cancelar\s+(?:la|el|lo))",
    r"\b(?:se|te|le|les|os)\s+(?:pagara|abonara|transferira|ingresara|depositara|liquidara)\b",
    r"\bel\s+pago\s+(?:se\s+)?(?:realizara|hara|efectuara|saldra|sale|estara|esta\s+programado|"
    r"queda\s+programado|lo\s+hacemos|se\s+hace)\b",
    r"\b(?:sale|saldra)\s+el\s+pago\b",
    r"\b(?:sera|seran|quedara)\s+(?:pagad|abonad|transferid|liquidad|ingresad|cancelad)\w*",
    r"\b(?:programad[oa]|agendad[oa])\s+para\b",
    r"\b(?:entra|va|ira|incluida|incluimos|metemos|la\s+meto|la\s+incluyo)\s+(?:en\s+)?(?:la|el)\s+"
    r"(?:remesa|proximo\s+pago|pago\s+del|lista\s+de\s+pagos|corrida)",
    r"\b(?:lo|la)\s+(?:pasamos|paso|pasare)\s+a\s+(?:pago|pagos)\b",
    r"\b(?:esta|ya\s+esta|la\s+tenemos|entra)\s+en\s+(?:la\s+)?(?:lista|relacion|remesa|"
    r"programacion|corrida)\s+de\s+pagos\b|\bin\s+(?:the|our)\s+(?:next\s+)?payment\s+(?:run|batch)\b",
    r"\b(?:will|'ll|shall|going\s+to|gonna|plan\s+to|planning\s+to|intend\s+to|expect\s+to|"
    r"aim\s+to|can|will\s+be\s+able\s+to)\s+(?:(?!we\b|i\b|you\b|not\b|never\b)\w+\s+)?(?:pay|send|transfer|"
    r"wire|remit|settle|"
    r"process\s+(?:the\s+)?payment|make\s+(?:the\s+|a\s+)?payment|clear|get\s+(?:this|it|you)\s+"
    r"paid|mail\s+(?:the\s+|a\s+)?(?:check|cheque)|release)\b",
    r"\b(?:payment|funds|the\s+(?:check|cheque|wire|transfer|balance|invoice))\s+(?:will|should|"
    r"is\s+going\s+to)\s+(?:be\s+)?(?:go\s+out|made|sent|processed|released|issued|paid|"
    r"settled|wired|transferred|mailed|cleared|in\s+your|hit|reach|arrive)",
    r"\b(?:will|'ll)\s+be\s+(?:paid|settled|sent|processed|wired|released)\b",
    r"\b(?:payment|it|this|invoice)\s+is\s+(?:scheduled|planned|queued|booked|approved\s+and\s+"
    r"will|set)\b",
    r"\bscheduled\s+(?:for|on)\b",
    r"\b(?:next|our)\s+payment\s+run\b",
    r"\bpaying\s+(?:it|this|you)?\s*(?:today|tomorrow|on|by|this|next)\b",
    r"\b(?:vou|vamos|iremos|irei|vai|vao)\s+(?:pagar|fazer\s+(?:o|a)\s+(?:pagamento|pix|deposito|"
    r"ted|transferencia)|efetuar|realizar\s+o\s+pagamento|transferir|depositar|quitar|mandar\s+o\s+"
    r"(?:pix|pagamento)|acertar)",
    r"\b(?:pagarei|pagaremos|efetuaremos|efetuarei|faremos|farei|transferiremos|transferirei|"
    r"depositaremos|depositarei|quitaremos|quitarei|realizaremos|liquidaremos|acertaremos)\b",
    r"\b(?:sera|serao|vai\s+ser|vao\s+ser)\s+(?:feit[oa]|efetuad[oa]|realizad[oa]|pago|paga|quitad[oa]|"
    r"transferid[oa]|depositad[oa]|liquidad[oa])\b",
    r"\b(?:esta|fica|ficou)\s+(?:agendad|programad)\w*",
    negatable=True,
)
# Present tense with a time: "te pago el viernes", "pagamos el 15", "I pay Monday".
_TIME_AFTER = (
    r"(?:\s+\w+){0,4}?\s+(?:el|este|esta|la|a|en|dentro|para|hoy|manana|pasado|antes|hasta|"
    r"on|by|this|next|tomorrow|today|tonight|in|within|before|end|na|no|dia|amanha|hoje|ate|"
    r"semana|sexta|segunda|terca|quarta|quinta|depois|daqui|fim|final|proxima|proximo|"
    r"lunes|martes|miercoles|jueves|viernes|sabado|monday|tuesday|wednesday|thursday|friday|"
    r"sin\s+falta|first|asap|as\s+soon|cuanto|lo\s+antes|em|quando|cuando|once|when|after|"
    r"despues|luego|ahorita)\b"
)
_add(
    "promise_to_pay",
    2.5,
    r"(?<!\bel\s)(?<!\bun\s)(?<!\bdel\s)(?<!\bal\s)(?<!\bo\s)(?<!\bdo\s)(?<!\bmi\s)(?<!\bsu\s)"
    r"\b(?:(?:te|le|les|os|se\s+lo|se\s+la|lo|la)\s+)?(?:pago|pagamos|abono|abonamos|transfiero|"
    r"transferimos|ingreso|ingresamos|deposito|depositamos|consigno|consignamos|liquido|"
    r"liquidamos|cancelo|cubro)" + _TIME_AFTER,
    r"\b(?:hago|hacemos|mando|mandamos|envio|enviamos|realizo|realizamos|emitimos|emito|"
    r"efectuamos|sacamos)\s+(?:el|la|un|una)\s+(?:pago|transferencia|deposito|ingreso|bizum|"
    r"abono|consignacion|spei|giro)" + _TIME_AFTER,
    r"\b(?:te|le|les|os)\s+(?:hago|mando|envio|paso)\s+(?:el|la|un|una)\s+(?:pago|transferencia|"
    r"deposito|ingreso|bizum|spei)\b",
    r"\b(?:i|we)\s+(?:pay|transfer|wire|send)\s+(?:it|this|you|the\s+\w+\s+)?\s*(?:on|by|this|"
    r"next|tomorrow|today|monday|tuesday|wednesday|thursday|friday|end)\b",
    r"\b(?:pago|pagamos|faco|fazemos|transfiro|transferimos|deposito|depositamos|mando|"
    r"quito|quitamos)\s+(?:o\s+(?:pix|boleto|pagamento|deposito|ted)\s+)?" + _TIME_AFTER,
    r"\b(?:consigo|conseguimos|posso|podemos|puedo|podemos)\s+pagar\s+(?:(?:o|a|el|la|lo)\s+)?"
    r"(?:\w+\s+)?(?:dia|el|na|no|amanha|manana|hoje|hoy|ate|hasta|a\s+partir)\b",
    r"\b(?:sin\s+falta|sem\s+falta|without\s+fail|for\s+sure|i\s+promise|we\s+promise|promise)\b",
    negatable=True,
)
_add(
    "promise_to_pay",
    2,
    r"\b(?:dame|deme|denme|dadme|give\s+me|give\s+us|me\s+da|me\s+de|me\s+deem)\s+(?:\w+\s+)?"
    r"(?:unos|uns|a\s+few|some|un\s+par\s+de|a\s+couple\s+of|alguns)\s+(?:dias|days|semanas|weeks)\b",
    negatable=True,
)
_add(
    "promise_to_pay",
    1.5,
    r"\b(?:lo|la)\s+(?:tienen|tendran|tendras|tienes|recibiran)\b",
    r"\b(?:once|as\s+soon\s+as|when)\s+(?:we|i)\s+(?:get|receive|are\s+paid|have)\b",
    r"\b(?:en\s+cuanto|apenas|cuando|assim\s+que|quando)\s+(?:\w+\s+){0,3}?"
    r"(?:cobre|cobremos|tengamos|tenga|me\s+paguen|nos\s+paguen|entre|llegue|receba|recebermos|"
    r"liberar|liberem|caia|cair)\b",
    r"\b(?:aprobad[oa]|approved)\b",
    negatable=True,
)

# -- already_paid: the payment was made ------------------------------------------------------
_add(
    "already_paid",
    4,
    r"\b(?:ended\s+up|went\s+ahead\s+and)\s+pay(?:ing)?\b|\bbut\s+(?:i|we)\s+(?:paid|sent)\b",
)
_add(
    "already_paid",
    3,
    r"\bya\s+(?:se\s+)?(?:(?:la|lo|les|te|le|os|se\s+la|se\s+lo)\s+)?(?:pague|pagamos|pago|"
    r"pagaron|pagado|abonamos|abone|abono|transferi|transferimos|transfirio|ingresamos|ingrese|"
    r"deposite|depositamos|hicimos|hice|hizo|realizamos|realice|realizo|efectuamos|efectue|"
    r"cancelamos|cancele|consignamos|consigne|liquidamos|saldamos|mandamos|mande|envie|"
    r"enviamos)\b",
    r"\bya\s+(?:esta|estaba|estan|fue|fueron|ha\s+sido|han\s+sido|quedo|quedaron)\s+"
    r"(?:pagad|abonad|transferid|liquidad|saldad|cancelad|ingresad|realizad|hech|cubiert)",
    r"\b(?:fue|fueron|ha\s+sido|han\s+sido|quedo|quedaron|esta|estan)\s+(?:pagad|abonad|"
    r"liquidad|saldad|transferid|ingresad|depositad)\w*",
    r"\b(?:la|lo|esto|eso|esta|este)\s+(?:factura\s+)?(?:esta|estaba)\s+(?:pagad|abonad|"
    r"liquidad|saldad)\w*",
    r"\b(?:fue|ha\s+sido)\s+cancelad[oa]\s+(?:el|mediante|con|por|en|via)\b",
    r"\b(?:se\s+(?:hizo|realizo|efectuo|pago|abono|envio|mando)|hicimos|hice|realice|efectue|"
    r"mande|mandamos)\s+(?:el|la|un|una)\s+(?:pago|transferencia|deposito|ingreso|bizum|"
    r"abono|spei|consignacion)\b",
    r"\b(?:el|la)\s+(?:pago|transferencia|deposito|ingreso|bizum)\s+(?:ya\s+)?(?:se\s+)?"
    r"(?:realizo|hizo|efectuo|envio|fue|salio|esta\s+hech)",
    r"\b(?:les|os|te|le)\s+(?:hicimos|hice|mandamos|mande|enviamos|envie)\s+(?:un|el|la|una)\s+"
    r"(?:ingreso|pago|transferencia|deposito|bizum)\b",
    r"\b(?:pague|pagamos|pagaron|abonamos|transferimos|ingresamos|depositamos|realizamos|"
    r"efectuamos|cancelamos|consignamos|liquidamos)\s+(?:\w+\s+){0,4}?(?:ayer|antier|anteayer|"
    r"el\s+(?:pasado|dia\s+\d|lunes|martes|miercoles|jueves|viernes)|la\s+semana\s+pasada|"
    r"el\s+mes\s+pasado|hace\s+\w+|esta\s+manana|hoy\s+temprano)",
    r"\bhecho\s+el\s+(?:pago|bizum|ingreso|deposito|spei)\b",
    r"\bse\s+(?:pago|abono|liquido|transfirio|deposito|ingreso|consigno|realizo\s+el\s+pago)\b",
    r"(?:^|\n)\s*(?:(?:listo|hecho|done|feito|pronto|ok|ya|ja|all|fully|esta|this\s+is|it's)"
    r",?\s+)?(?:pagad[oa]|abonad[oa]|liquidad[oa]|saldad[oa]|paid|pago|paga|quitad[oa])\b"
    r"(?!\s+(?:el|la|en|on|by|de|a|the|em|no|na|ate|hasta|when|cuando|quando))",
    r"\b(?:already|has\s+been|have\s+been|was|were)\s+(?:\w+\s+)?(?:paid|payed|settled|"
    r"processed|wired|transferred|mailed|posted|remitted|sent\s+(?:via|by|on|through)|"
    r"cleared|issued)\b",
    r"\b(?:we|i|they)\s+(?:have\s+|had\s+|already\s+|just\s+)?(?:paid|payed|settled|wired|"
    r"transferred|remitted|mailed\s+(?:the|a|you)|posted\s+(?:the|a)|sent\s+(?:the|a|you|it)\s*"
    r"(?:payment|check|cheque|money|funds|transfer|wire|ach|bacs)?)\b",
    r"\b(?:just|already)\s+(?:paid|payed|transferred|sent|wired|settled)\b",
    r"\b(?:it|this|payment|the\s+payment|check|cheque|wire|transfer|the\s+transfer|funds|money)\s+"
    r"went\s+(?:out|through)\b|\b(?:ach|wire|bacs|swift)\s+(?:trace|reference|ref|confirmation)\b|"
    r"\btrace\s+(?:number|no|#|num)\b",
    r"(?:^|[.!?\n]\s*)payment\s+(?:made|sent|done|processed|completed|submitted|issued)\b",
    r"\b(?:check|cheque)\s+(?:was\s+|has\s+been\s+)?(?:posted|mailed|sent|issued|cashed)\b",
    r"\bpayment\s+(?:was|has\s+been|had\s+been|went)\s+(?:sent|made|processed|submitted|"
    r"released|through|out)",
    r"\b(?:check|cheque)\s+(?:was|has\s+been)\s+(?:mailed|sent|posted|issued|cashed)\b",
    r"\bja\s+(?:foi|esta|estava|estao|foram)\s+(?:\w+\s+)?(?:pag|quitad|efetuad|realizad|feit|"
    r"transferid|depositad)",
    r"\bja\s+(?:(?:o|a|lhe|te)\s+)?(?:paguei|pagamos|pagou|pago|efetuamos|efetuei|fiz|fizemos|"
    r"transferi|transferimos|depositei|depositamos|quitei|quitamos|realizamos|realizei|mandei|"
    r"enviei|enviamos)\b",
    r"\b(?:foi|foram|esta|estao)\s+(?:pag[oa]s?|quitad[oa]s?|efetuad[oa]s?|realizad[oa]|"
    r"liquidad[oa]|transferid[oa]|depositad[oa])\b",
    r"\b(?:paguei|pagamos|efetuamos|efetuei|quitei|quitamos|transferi|depositei|fiz|fizemos)\s+"
    r"(?:\w+\s+){0,4}?(?:ontem|hoje|semana\s+passada|mes\s+passado|dia\s+\d|na\s+\w+\s+passada|"
    r"em\s+\d|pelo|pela|via|por|no\s+dia|ha\s+\w+|faz\s+\w+)",
    r"\b(?:paguei|quitei|depositei|transferi)\b",
    r"\b(?:fiz|fizemos|efetuei|realizei|mandei)\s+(?:o|a)\s+(?:pix|deposito|pagamento|ted|doc|"
    r"transferencia)\b",
    r"\bpagamento\s+(?:ja\s+)?(?:feito|efetuado|realizado|enviado)\b",
    negatable=True,
)
_add(
    "already_paid",
    3,
    r"\b(?:adjunto|adjuntamos|anexo|anexamos|envio|enviamos|remito|reenvio|mando|le\s+paso|"
    r"te\s+paso|les\s+paso|te\s+mando|le\s+mando|les\s+mando|aqui\s+(?:esta|va))\s+(?:el\s+|la\s+|"
    r"una\s+|un\s+)?(?:comprobante|justificante|recibo|resguardo|ticket|foto\s+del\s+(?:ticket|"
    r"comprobante|recibo)|captura|voucher|constancia|soporte)",
    r"\b(?:comprobante|justificante|resguardo|constancia|soporte)\s+(?:de\s+(?:pago|la\s+"
    r"transferencia|transferencia|deposito|ingreso)|adjunto|anexo|bancario)",
    r"\b(?:remittance(?:\s+advice)?|proof\s+of\s+payment|payment\s+(?:confirmation|receipt|proof)|"
    r"confirmation\s+(?:number|no|#|code)|(?:receipt|remittance|proof)\s+(?:is\s+)?attached|"
    r"attached\s+(?:is\s+)?(?:the\s+)?(?:receipt|remittance|proof|confirmation|payment))",
    r"\b(?:segue|seguem|envio|enviamos|mando|anexo|em\s+anexo)\s+(?:\w+\s+){0,2}?(?:comprovante|"
    r"comprovativo|recibo|talao)",
    r"\b(?:comprovante|comprovativo|talao)\s+(?:em\s+anexo|anexo|de\s+pagamento|segue)",
    r"\b(?:recibieron|recibiste|lo\s+recibieron|les\s+llego|os\s+llego|did\s+you\s+(?:get|receive)"
    r"|have\s+you\s+received|voces\s+nao\s+receberam|receberam|chegou)\b",
    r"\b(?:check\s+your\s+(?:account|records|bank)|revisen\s+(?:su|la)\s+cuenta|verifiquem|"
    r"verifiquen|favor\s+verificar|fijense\s+(?:en\s+)?la\s+cuenta|should\s+(?:hit|show\s+up|"
    r"clear|arrive|reach)|deberia\s+(?:reflejarse|llegar|verse)|deve\s+cair|ja\s+deve)",
)

# -- dispute: the debt, amount, goods, service or terms are contested --------------------------
_add(
    "dispute",
    3,
    r"\bno\s+(?:la\s+|lo\s+)?(?:reconocemos|reconozco|reconoce|reconozca)\b",
    r"\b(?:no|nao)\s+(?:nos\s+|me\s+)?(?:corresponde|procede|aplica)\b",
    r"\b(?:error|errores|equivocacion)\s+(?:en|con)\s+(?:la|el|las|los|esta|este)\s+"
    r"(?:factura|importe|cobro|cargo|monto|precio|cantidad|iva|cuenta)",
    r"\b(?:factura|importe|monto|precio|cantidad|iva|cobro|cargo|total|suma|tarifa|recargo)s?\s+"
    r"(?:\w+\s+){0,3}?(?:es|esta|son|estan|viene|vienen|aparece)\s+(?:\w+\s+)?"
    r"(?:incorrect|equivocad|erron|mal\b|mal\s+hech|mal\s+calculad|inflad)",
    r"\bestan?\s+mal\s+(?:hech|calculad|emitid|facturad)",
    r"\b(?:esta|la)\s+factura\s+(?:esta\s+)?mal\b",
    r"\b(?:cobrado|cobraron|cobran|cobrando|facturado|facturaron|facturan)\s+(?:\w+\s+){0,3}?"
    r"(?:de\s+mas|dos\s+veces|doble|por\s+duplicado|de\s+nuevo|otra\s+vez|algo\s+que|cosas\s+que|"
    r"un\s+servicio\s+que|lo\s+que\s+no)",
    r"\b(?:cobro|cargo|cobros|cargos)\s+(?:indebid|duplicad|incorrect|injustificad|abusiv)",
    r"\b(?:duplicad[oa]s?)\b(?!\s+de\s+(?:la|las)\s+factura)",
    _NOT_FILE
    + r"\b(?:defectuos|averiad|rot[oa]s?\b|danad|estropead|no\s+funciona|nunca\s+funciono|"
    r"dejo\s+de\s+funcionar|mal\s+hecho|mal\s+estado|incomplet|sin\s+servicio|no\s+esta\s+"
    r"terminad|a\s+medias)",
    r"\b(?:no|nunca)\s+(?:hemos|he|han|nos\s+han|me\s+han)?\s*(?:recibido|llego(?!\s+(?:a|al)\b)|llegaron|"
    r"entregaron|prestado|prestaron|instalaron|terminaron|pedimos|pedi|contratamos|contrate|"
    r"solicitamos|solicite|encargamos|firmamos)\b(?!\s+(?:\w+\s+){0,2}?(?:factura|facturas|"
    r"documento|correo|pdf|adjunto|archivo|email|mail|xml|copia|estado|extracto|enlace|link))",
    r"\b(?:reclamacion|queja|disputa|impugn\w*|rectificativa|factura\s+rectificada|nota\s+de\s+"
    r"credito|nota\s+credito|abono\s+pendiente|devolucion|devolvimos|devolvi|reembolso)\b",
    r"\bno\s+(?:pienso|pensamos|vamos\s+a|voy\s+a|vamos|voy|quiero|queremos)\s+(?:\w+\s+)?"
    r"(?:pagar|abonar)\b",
    r"\bno\s+(?:debo|debemos|le\s+debo|les\s+debo|le\s+debemos|les\s+debemos)\b",
    r"\bno\s+es\s+(?:mia|nuestra|mio|nuestro|de\s+nosotros)\b",
    r"\bno\s+estamos\s+de\s+acuerdo|\bno\s+estoy\s+de\s+acuerdo|\bdesacuerdo\b",
    r"\b(?:descuento|precio|tarifa|presupuesto)\s+(?:\w+\s+)?(?:pactad|acordad|convenid|aceptad|"
    r"que\s+acordamos|agreed|quoted|combinad)",
    r"\bfalta\s+(?:aplicar|descontar|el\s+descuento|la\s+nota|el\s+abono)",
    r"\b(?:cancelamos|cancele|dimos\s+de\s+baja|di\s+de\s+baja|rescindimos|anulamos)\s+(?:el|la|"
    r"nuestro|nuestra|mi)?\s*(?:servicio|contrato|suscripcion|pedido|cuenta|plan|orden)",
    r"\b(?:corrij\w*|corregir\w*|corregid[oa]s?|rectifiqu\w*|rectificar\w*|anulen|anular|"
    r"anulacion)\b",
    r"\ba\s+nombre\s+de\s+otra\s+(?:empresa|persona|razon)|\bno\s+es\s+el\s+nuestro\b",
    r"\b(?:intereses|recargos?|gastos|comision|penalizacion|mora)\s+(?:\w+\s+){0,4}?(?:que\s+)?"
    r"(?:no\s+(?:se\s+)?(?:acord|pact|explic|estaban|aparec|figur)|nunca\s+(?:se\s+)?(?:acord|"
    r"pact)|injust|abusiv)",
    r"\bno\s+(?:contrate|contratamos|pedi|pedimos|autorice|autorizamos|solicite|solicitamos)\b",
    r"\b(?:dispute|disputing|disputed|contest|contesting|challenge\s+this)\b",
    r"\b(?:never|did\s+not|didn't|did\s+n't)\s+(?:\w+\s+)?(?:ordered?|received?|arrived?|"
    r"delivered|completed|finished|authori[sz]ed?|agreed?|signed|requested|use[ds]?|worked?|"
    r"provided|rendered|install(?:ed)?)\b(?!\s+(?:\w+\s+){0,2}?(?:invoice|invoices|bill|pdf|"
    r"copy|statement|email|e-mail|attachment|link))",
    r"\bnot\s+(?:ordered|received|delivered|completed|finished|authori[sz]ed|agreed|provided|"
    r"rendered|what\s+we\s+(?:agreed|ordered))\b",
    r"\b(?:incorrect|inaccurate|wrong|erroneous)\s+(?:\w+\s+)?(?:amount|invoice|bill|price|"
    r"charge|quantity|rate|total|fee|figure|vat|tax|billing|hours)",
    r"\b(?:invoice|bill|amount|price|charge|total|quantity|rate)\s+(?:\w+\s+){0,3}?(?:is|are|was|"
    r"seems)\s+(?:\w+\s+)?(?:wrong|incorrect|inaccurate|too\s+high|inflated|not\s+right|off)\b",
    r"\b(?:overcharg|overbill|double[\s-]?(?:billed|charged|billing)|charged\s+(?:us\s+|me\s+)?"
    r"twice|billed\s+(?:us\s+|me\s+)?twice|duplicate\s+(?:invoice|charge|bill|payment)|"
    r"(?:is|was|looks\s+like|seems\s+to\s+be)\s+a\s+duplicate|a\s+duplicate\s+of)",
    _NOT_FILE
    + r"\b(?:damaged|defective|broken|faulty|not\s+working|stopped\s+working|poor\s+quality|"
    r"doesn't\s+work|does\s+not\s+work|down\s+for|never\s+worked|substandard|incomplete)\b",
    r"\b(?:credit\s+(?:memo|note)|refund|returned\s+(?:the|it|them|all)|we\s+returned|"
    r"were\s+returned|rma)\b",
    r"\b(?:don't|do\s+not|dont)\s+owe\b|\bnot\s+(?:paying|going\s+to\s+pay)\b|"
    r"\b(?:won't|will\s+not|refuse\s+to|shouldn't\s+have\s+to|should\s+not\s+have\s+to)\s+pay\b",
    r"\b(?:does\s+not|doesn't|do\s+not|don't)\s+match\b",
    r"\bshould\s+(?:not|n't)\s+(?:have\s+been\s+|be\s+)(?:billed|charged|invoiced)\b",
    r"\bshouldn't\s+(?:have\s+been\s+|be\s+)(?:billed|charged|invoiced)\b",
    r"\b(?:cancel+ed|terminated|closed)\s+(?:our|the|my|this)\s+(?:subscription|contract|"
    r"account|order|service|plan|membership)",
    r"\b(?:corrected|revised|amended)\s+(?:invoice|bill)\b",
    r"\bcancel\s+(?:this|the)\s+(?:invoice|bill|charge)\b",
    r"\bnao\s+(?:\w+\s+)?(?:reconhec|reconhecemos|reconheco)\w*",
    r"\b(?:cobranca|cobrancas|cobrado|cobrados|cobrada|cobraram|cobrando)\s+(?:\w+\s+){0,3}?"
    r"(?:indevid|errad|duas\s+vezes|em\s+dobro|a\s+mais|de\s+novo)",
    r"\b(?:indevid[oa]s?)\b",
    r"\b(?:valor|fatura|cobranca|preco|quantidade|montante|boleto|juros|multa|taxa|conta)\s+"
    r"(?:\w+\s+){0,3}?(?:errad[oa]|incorret[oa]|equivocad[oa]|a\s+mais)\b",
    _NOT_FILE + r"\b(?:defeito|quebrad[oa]|danificad[oa]|avariad[oa]|estragad[oa])\b",
    r"\bnao\s+(?:foi|foram)\s+(?:entregue|entregues|prestado|realizado|concluido|instalado)",
    r"\bnao\s+(?:recebi|recebemos|chegou|chegaram)\s+(?:a|o|os|as)\s+(?:mercadoria|produto|"
    r"servico|pedido|encomenda|material|equipamento)",
    r"\b(?:cancelamos|cancelei|rescindimos)\s+(?:o|a)\s+(?:contrato|servico|assinatura|plano|"
    r"pedido)",
    r"\b(?:estorno|reembolso|devolucao|devolvemos|nota\s+de\s+credito|fatura\s+corrigida|"
    r"corrigir\s+a\s+fatura|cancelamento\s+da\s+fatura|contestamos\s+a|contesto\s+a)\b",
    r"\bnao\s+(?:vou|vamos|irei|iremos)\s+(?:\w+\s+)?pagar\b|\bnao\s+devo\b|\bnao\s+devemos\b",
    r"\b(?:desconto|valor|preco)\s+(?:\w+\s+)?(?:acordado|combinado|negociado|contratado)\b",
    r"\bjuros\s+(?:\w+\s+){0,4}?(?:nao|indevid|abusiv)",
)
_add(
    "dispute",
    1.5,
    r"\b(?:presupuesto|pedido|orden\s+de\s+compra|purchase\s+order|po|quote|contrato|contract|"
    r"contrato)\b(?=.*\b(?:no|not|nao|never|nunca|pero|but|mas)\b)",
    r"\b(?:revision|revisar|review|reveja|revisao)\s+(?:de\s+)?(?:la\s+|the\s+|a\s+)?"
    r"(?:factura|invoice|fatura|cobranca|charge)",
    r"\b(?:falta|faltan|faltaron|missing|faltou|faltaram)\s+\d+",
    r"\b(?:iva|vat|irpf)\s+(?:aplicado|applied|charged)\b",
    r"\bquoted\b",
)

# -- angry complaint: insults, threats, "harassment" (always stops automation) -------------------
ANGER = re.compile(
    r"\b(?:verguenza|vergonha|disgrace|disgraceful|shameful|inaceptable|inadmisible|"
    r"unacceptable|inaceitavel|indignante|indignad[oa]|outrageous|outraged|ridicul\w*|absurd\w*|"
    r"palhacada|pesim[oa]|pessim[oa]|terrible\s+service|awful|horrible|horrivel|harto|harta|"
    r"hart[oa]s|fart[oa]|fed\s+up|sick\s+(?:and\s+tired|of)|ladrones|ladron|thieves|crooks|"
    r"scammers?|estafadores|fraudsters?|golpistas|sinverguenzas|"
    r"(?:es|is|e|this\s+is|esto\s+es|isso\s+e|son|are|sao|you're|voces\s+sao|ustedes\s+son)\s+(?:un|una|a|"
    r"um|uma|an|total|complete|completa|absolute|pura|puro|unos|uns)?\s*(?:\w+\s+)?(?:fraude|fraud|"
    r"scam|estafa|golpe|robo|roubo|rip-?off|ladrones)|as\s+fraud|(?:denunciar\w*|report\w*)\s+"
    r"(?:\w+\s+){0,4}?(?:fraud|fraude|estafa|scam)|en\s+consumo|a\s+consumo|hoja\s+de\s+"
    r"reclamaciones|libro\s+de\s+reclamaciones|(?:tercera|cuarta|third|fourth|terceira|quarta)\s+"
    r"vez|(?:third|fourth)\s+time|"
    r"idiots?|idiotas?|imbeciles?|inutiles|inutil|incompetent\w*|incompetentes|"
    r"acos(?:o|ar|an|ando|adores?|ais|en)|harass\w*|hostigamiento|perseguir|persiguiendo|perseguindo|assedio|"
    r"abogad[oa]s?|lawyers?|attorney|advogad[oa]s?|legal\s+action|sue\s+(?:you|them|your)|demandar\w*|take\s+(?:this|it|the\s+matter)\s+further|medidas\s+legales|medidas\s+legais|tribunales|small\s+claims|juzgado|"
    r"denunci\w*|profeco|condusef|ocu\b|facua|oficina\s+del?\s+consum\w*|procon|reclame\s+aqui|consumidor\w*|"
    r"trading\s+standards|ombudsman|better\s+business\s+bureau|bbb\b|"
    r"falta\s+de\s+(?:respeto|seriedad|profesionalidad)|falta\s+de\s+respeito|"
    r"es\s+increible|ya\s+van\s+\w+\s+(?:correos|mensajes|emails|llamadas)|"
    r"ultima\s+vez\s+que\s+(?:trabaj|compr|contrat|les\s+compr)\w*|never\s+again|nunca\s+mas\s+(?:les|os|te|le)|"
    r"exijo|exigimos|i\s+demand|mil\s+veces|million\s+times|hundred\s+times|"
    r"speak\s+to\s+a\s+manager|hablar\s+con\s+(?:un|el)\s+(?:responsable|encargado|gerente)|"
    r"(?:very|extremely|really)\s+(?:disappointed|upset|angry|frustrated)|disappointed|"
    r"queixa|reclamar\s+no|vou\s+reclamar|presentar\s+una\s+queja|poner\s+una\s+queja|"
    r"a\s+joke|una\s+broma|uma\s+piada|what\s+the\s+hell|wtf|joder|carajo|mierda|merda|"
    r"porra|damn|bloody|stupid|estupid\w*|burros|que\s+falta\s+de|robo|roubo|abuso|rip[\s-]?off|"
    r"llamar\s+a\s+mi\s+(?:madre|padre|familia|esposa|marido|trabajo)|que\s+pesad[oa]s|"
    r"son\s+unos\s+pesados|otra\s+vez\s+con\s+lo\s+mismo|pathetic|pateti\w+|lamentable|vergonzos[oa]|"
    r"how\s+you\s+treat|asi\s+(?:es\s+como\s+)?tratan|assim\s+que\s+(?:voces\s+)?tratam|"
    r"llevo\s+\w+\s+(?:meses|semanas|dias)\s+(?:reclamando|esperando|llamando|quejandome)|"
    r"nadie\s+(?:viene|me\s+(?:responde|contesta|atiende))|nobody\s+(?:comes|answers|responds)|"
    r"ninguem\s+(?:vem|responde|atende)|disgusting|asqueros[oa]|nojent[oa]|"
    r"forget\s+it|olvidate|esquece|ni\s+se\s+(?:les|te|le)\s+ocurra|"
    r"don't\s+you\s+dare|nem\s+pensem|encher\s+o\s+saco|de\s+nuevo\s+con\s+lo\s+mismo|"
    r"seriously\?|unbelievable|increible\s+que|inacreditavel|are\s+you\s+kidding|you\s+must\s+be\s+"
    r"joking|estan\s+de\s+broma|me\s+toman\s+el\s+pelo|ta\s+de\s+brincadeira|stop\s+chasing|"
    r"es\s+el\s+colmo|e\s+o\s+cumulo|the\s+last\s+straw)\b"
)
# Shouting without anger words is not a complaint ("WILL PAY MONDAY"); with these it is.
COMPLAINT_HINT = re.compile(
    r"\b(?:dejen\s+de|deja\s+de|stop|parem\s+de|pare\s+de|quit|molest\w*|bother\w*|"
    r"spam\w*|amenaz\w*|threat\w*|ameac\w*|no\s+pienso|not\s+paying|nao\s+vou\s+pagar)\b"
)

# -- invoice_copy_request ------------------------------------------------------------------------
_add(
    "invoice_copy_request",
    3,
    r"\b(?:copia|duplicado|pdf|xml|cfdi|original|archivo|documento)s?\s+(?:\w+\s+)?(?:de|del)\s+"
    r"(?:la|las|esa|esta|nuestra|su)?\s*(?:factura|facturas|recibo|nota)",
    r"\b(?:reenviar|reenviarme|reenviarnos|reenvien|reenvian|reenvia|reenvie|enviar|enviarme|"
    r"enviarnos|envien|envian|envie|envias|mandar|mandarme|mandarnos|manden|mandan|mandais|"
    r"mandas|mande|pasar|pasarme|pasen|remitir|remitan|remitirme|facilitar|facilitarme|"
    r"adjuntar|compartir|compartirme)\s+(?:\w+\s+){0,3}?(?:la|las|una|esa|dicha|el|nuevo)\s+"
    r"(?:factura|facturas|copia|pdf|xml|cfdi|estado\s+de\s+cuenta|extracto|documento|archivo|"
    r"adjunto)",
    r"\b(?:me|nos)\s+(?:la|las|lo|los)\s+(?:\w+\s+)?(?:reenvia|reenvian|reenviais|manda|mandan|"
    r"mandais|envia|envian|enviais|pasan|pasas|puede\s+(?:enviar|mandar|reenviar)|pueden\s+"
    r"(?:enviar|mandar|reenviar|volver\s+a\s+enviar))",
    r"\b(?:no|nunca)\s+(?:me\s+|nos\s+)?(?:ha|han|habia|he|hemos)?\s*(?:llegado|llego|recibido|"
    r"recibi|recibimos)\s+(?:\w+\s+)?(?:la|ninguna|las|el)?\s*(?:factura|facturas|adjunto|"
    r"archivo|pdf|documento)",
    r"\bno\s+(?:encuentro|encontramos|tengo|tenemos|localizo|ubico)\s+(?:la|las|ninguna|esa|el)\s+"
    r"(?:factura|facturas|pdf|documento|correo)",
    r"\b(?:sin|no\s+(?:venia|trae|traia|tenia|viene|tiene))\s+(?:el\s+)?(?:archivo\s+)?"
    r"(?:adjunto|archivo|pdf)\b",
    r"\b(?:no\s+(?:se\s+)?(?:abre|puedo\s+abrir|podemos\s+abrir|carga|descarga)|danado|corrupto|"
    r"no\s+funciona\s+el\s+(?:enlace|link))\b",
    r"\b(?:volver\s+a\s+(?:enviar|mandar)|de\s+nuevo\s+el\s+(?:documento|archivo|pdf|correo)|"
    r"mandar\s+de\s+nuevo|enviar\s+de\s+nuevo|enviar\s+nuevamente|reenviar)\b",
    r"\b(?:estado\s+de\s+cuenta|extracto\s+(?:de\s+cuenta|de\s+facturas|actualizado))\b",
    r"(?<!\ba\s)(?<!\bis\s)\b(?:copy|pdf|duplicate|original|itemi[sz]ed\s+copy)\s+(?:\w+\s+)?of\s+(?:the\s+|your\s+|"
    r"this\s+|that\s+|our\s+)?(?:invoice|bill|receipt)",
    r"\b(?:resend|re-send|forward|email|e-mail|send)\s+(?:\w+\s+){0,3}?(?:the\s+|a\s+|an\s+|that\s+|"
    r"this\s+)?(?:invoice|bill|pdf|copy|statement|attachment)\b",
    r"\b(?:resend|re-send|send\s+(?:it|this|them)\s+again|send\s+again|email\s+it\s+again)\b",
    r"\b(?:email|e-mail|send|forward)\s+(?:it|them|one|a\s+copy)\s+(?:again|over|to)\b",
    r"\b(?:never|didn't|did\s+not|haven't|have\s+not|hasn't)\s+(?:\w+\s+)?(?:received|got|get|"
    r"seen)\s+(?:the\s+|an\s+|any\s+|your\s+|this\s+)?(?:original\s+)?(?:invoice|bill)",
    r"\b(?:can't|cannot|couldn't|could\s+not|unable\s+to)\s+(?:find|locate|open|download|access)\s+"
    r"(?:the\s+|your\s+|this\s+|it|that)",
    r"\b(?:attachment|link|pdf|file)\s+(?:\w+\s+)?(?:won't|doesn't|does\s+not|will\s+not|didn't|"
    r"is\s+not|isn't|wasn't|was\s+not)\s+(?:open|work|load|attached|included|there)",
    r"\b(?:no|without\s+(?:the|an|any))\s+(?:attachment|invoice\s+attached|pdf)\b",
    r"\bstatement\s+of\s+account|\baccount\s+statement|\bsend\s+(?:me\s+|us\s+)?a\s+statement",
    r"\b(?:segunda|2a|2)\s+via\b",
    r"\b(?:copia|pdf|xml|original|arquivo)\s+(?:\w+\s+)?(?:da|do)\s+(?:fatura|boleto|nota|nf)",
    r"\b(?:reenviar|enviar|mandar|encaminhar|reenviem|enviem|mandem|encaminhem|manda|envia|"
    r"gerar|emitir)\s+(?:\w+\s+){0,3}?(?:a|o|um|uma|novo|nova)\s+(?:fatura|boleto|nota\s+fiscal|"
    r"nf|copia|pdf|segunda\s+via|extrato)",
    r"\bnao\s+(?:recebi|recebemos|chegou|encontro|encontrei|achei|acho)\s+(?:\w+\s+)?(?:a|o|"
    r"nenhuma|nenhum)?\s*(?:fatura|boleto|nota\s+fiscal|nf|anexo|arquivo|pdf)",
    r"\b(?:novo|nova)\s+(?:boleto|fatura)\b",
    r"\b(?:boleto|link|anexo|arquivo|pdf)\s+(?:\w+\s+)?(?:nao\s+(?:abre|funciona|carrega|veio|"
    r"chegou|esta)|vencido|venceu|expirou)",
    r"\b(?:extrato|nota\s+fiscal)\b",
    r"\b(?:factura|invoice|fatura)\s+(?:a\s+nombre\s+de|con\s+nuestros\s+datos|para\s+darla\s+de\s+alta)",
)
_add(
    "invoice_copy_request",
    3,
    r"\b(?!(?:mande|envie|mandei|enviei|enviamos|mandamos|envio|mando|sent|sended)\b)"
    r"(?:reenvi\w*|envi\w*|mand\w*|pas[ae]\w*|remit\w*|facilit\w*|compart\w*|resend\w*|send|"
    r"forward|email|e-mail|encaminh\w*|gerar|emitir|emit\w*|reemit\w*|reissu\w*|re-issu\w*)\s+"
    r"(?:\w+\s+){0,3}?(?:factura|facturas|fatura|faturas|invoice|invoices|bill|boleto|boletos|pdf|"
    r"copia|copy|xml|cfdi|nota\s+fiscal|extracto|estado\s+de\s+cuenta|statement|adjunto|"
    r"attachment|extrato|segunda\s+via)\b",
    r"\b(?:reissu\w*|re-issu\w*|reemit\w*|volver\s+a\s+emitir|emitir\s+de\s+nuevo|"
    r"nueva\s+factura|new\s+invoice|updated\s+invoice|factura\s+actualizada|fatura\s+nova|"
    r"nova\s+fatura|boleto\s+atualizado|emitir\s+(?:outro|novo|nova))\b",
)
_add(
    "invoice_copy_request",
    1.5,
    r"\b(?:pdf|xml|cfdi|copia|copy|adjunto|attachment|anexo)\b",
    r"\b(?:envien|mandar|enviar|send|manda|envie)\s+(?:\w+\s+)?(?:a|to|para)\s+\S+@\S+",
)

# -- bank_details_request -------------------------------------------------------------------
_add(
    "bank_details_request",
    3,
    r"\b(?:numero|n|no|num|nro)\.?\s+de\s+(?:cuenta|conta)\b",
    r"\b(?:iban|clabe|cbu|cvu|swift|bic|aba|routing\s+number|sort\s+code|nib|chave\s+pix|"
    r"chave\s+do\s+pix|pix\s+key|wire\s+instructions|titularidad)\b",
    r"\b(?:datos|dados|detalles|informacion)\s+(?:\w+\s+)?(?:bancari[oa]s|de\s+(?:la\s+)?cuenta|"
    r"da\s+conta|de\s+pago|para\s+(?:el\s+)?(?:pago|transferir|la\s+transferencia|depositar)|"
    r"para\s+(?:pagamento|transferencia|deposito))",
    r"\b(?:a|en|em|para)\s+(?:que|cual|qual|quais)\s+(?:numero\s+de\s+)?(?:cuenta|conta|banco)\b",
    r"\b(?:cual|qual)\s+(?:es|e)\s+(?:la|a|su|sua)\s+(?:cuenta|conta|chave|clabe|cbu|alias)",
    r"\b(?:bank|banking|account|wire|payment)\s+(?:details|information|info|instructions|number|"
    r"coordinates)\b",
    r"\b(?:bank\s+account|cuenta\s+bancaria|conta\s+bancaria)\s+(?:\w+\s+)?(?:changed|change|"
    r"cambio|cambiado|mudou|alterad)",
    r"\b(?:cambio|cambiado|change|changed|mudanca|alteracao)\s+(?:de|of|in|da|na)?\s*(?:cuenta|"
    r"account|conta|datos\s+bancarios|bank\s+details|banco)",
    r"\b(?:where|how)\s+(?:do|can|should)\s+(?:i|we)\s+(?:send|make|wire|pay|transfer)\b",
    r"\b(?:donde|como|onde)\s+(?:puedo|podemos|posso|podemos|devo|debo|tengo\s+que)\s+(?:\w+\s+)?"
    r"(?:pagar|depositar|transferir|fazer\s+o\s+pagamento|hacer\s+el\s+pago|ingresar)\b|"
    r"\b(?:donde|onde)\s+(?:pago|deposito|transfiero|ingreso|faco\s+o\s+pagamento)\b",
    r"\b(?:link|enlace)\s+(?:de|para|to)\s+(?:pago|pagar|pay|pagamento)|\bpayment\s+link\b|"
    r"\blink\s+to\s+pay\b|\bpay\s+(?:by|with)\s+(?:card|credit\s+card)\b|"
    r"\baceptan\s+(?:tarjeta|pago\s+con)|\baceitam\s+cartao",
    r"\bagencia\s+e\s+conta\b|\bbanco,?\s+agencia\b|\bbanco\s+e\s+(?:a\s+)?agencia\b",
    r"\b(?:qual|cual|which|what|que)\s+(?:o\s+|a\s+|e\s+o\s+|e\s+a\s+|es\s+el\s+|es\s+la\s+)?"
    r"(?:banco|bank|agencia)\b",
    r"\b(?:el|tu|su|vuestro|your|o\s+seu|seu)\s+alias\b|\balias\s+(?:de\s+)?(?:mercado\s*pago|"
    r"mp|cbu|cvu)\b",
    r"\b(?:w-?9|letterhead)\b",
)
_add(
    "bank_details_request",
    1.5,
    r"\b(?:confirm|confirmen|confirmar|confirmem)\w*\s+(?:\w+\s+){0,3}?(?:cuenta|account|conta|"
    r"iban|datos|banco)",
)

_add(
    "invoice_copy_request",
    3,
    r"\b(?:preciso|precisamos|necesito|necesitamos|need|needs|requiero|requerimos|solicito|"
    r"solicitamos|gostaria|quisiera|would\s+like)\s+(?:\w+\s+){0,2}?(?:de\s+la|la|las|da|a|de|the|"
    r"a\s+copy\s+of\s+the|uma|una|an?)\s+(?:copia\s+de\s+la\s+|copia\s+da\s+)?(?:factura|facturas|"
    r"fatura|faturas|invoice|invoices|pdf|copia|copy|xml|cfdi|boleto|nota\s+fiscal|recibo)\b",
)
_add(
    "bank_details_request",
    6,
    r"\b(?:pasame|pasenme|mandame|mandenme|enviame|envienme|dame|denme|me\s+pasas|me\s+"
    r"pasan|me\s+manda|me\s+passa|manda|passa|me\s+envia|send\s+(?:me|us)|give\s+(?:me|us)|"
    r"dime|digame|diganme|me\s+dices|me\s+dice|tell\s+(?:me|us)|me\s+diz|me\s+fala|informe\w*|"
    r"indique\w*|indicame|indicanos|let\s+(?:me|us)\s+know|share|comparte\w*|compartilh\w*|"
    r"what\s+(?:is|are)|cual\s+es|qual\s+(?:e|a)|necesito|necesitamos|need|preciso|precisamos)\s+"
    r"(?:\w+\s+){0,2}?(?:el\s+|la\s+|a\s+|o\s+|your\s+|the\s+|su\s+|sua\s+)?(?:cbu|cvu|alias|"
    r"clabe|iban|pix|chave|numero\s+de\s+cuenta|datos\s+bancarios|dados\s+bancarios|sort\s+"
    r"code|account\s+number|routing|bank\s+details|banking|swift|bic)\b",
)

# -- payment_plan_request -------------------------------------------------------------------
_add(
    "payment_plan_request",
    3.5,
    r"\b(?:plan|acuerdo|convenio|calendario|plano|acordo)\s+de\s+(?:pagos?|pagamentos?)\b",
    r"\b(?:fraccionar|fraccionarlo|fraccionarla|fraccionado|fraccionamiento|aplazar|aplazarlo|"
    r"aplazamiento|prorroga|prorrogar|refinanciar|repactar|reprogramar|renegociar|diferir)\w*",
    r"\b(?:a|en)\s+plazos\b|\bpagos?\s+parciales?\b|\babonos\s+parciales\b|\ben\s+abonos\b",
    r"\ben\s+(?:\d+|dos|tres|cuatro|cinco|seis|varios|varias)\s+(?:pagos|plazos|cuotas|partes|"
    r"mensualidades|meses|abonos|veces)\b",
    r"\b(?:cuotas|mensualidades)\b",
    r"\b(?:mas|un\s+poco\s+mas\s+de|otro)\s+(?:plazo|tiempo)\b",
    r"\b(?:la\s+)?mitad\s+(?:ahora|hoy|este\s+mes|ya)\b|\by\s+el\s+resto\b|\by\s+la\s+otra\s+mitad\b",
    r"\b(?:cada|al|por)\s+(?:mes|quincena|semana)\b",
    r"\bfacilidades\s+de\s+pago\b",
    r"\b(?:payment|repayment|installment|instalment)\s+(?:plan|arrangement|schedule|agreement)\b",
    r"\b(?:installments?|instalments?|in\s+(?:\d+|two|three|four|five|six)\s+(?:parts|payments|"
    r"chunks|tranches))\b",
    r"\bsplit\s+(?:this|it|the|that|payment|the\s+balance|into)\b",
    r"\bpartial\s+payments?\b|\bpay\s+(?:it\s+)?(?:in\s+)?(?:parts|part|chunks|bits)\b",
    r"\b(?:extension|extend\s+the\s+(?:deadline|due\s+date|terms)|more\s+time|defer\w*|"
    r"postpone|push\s+back|grace\s+period)\b",
    r"\bhalf\s+(?:now|today|this\s+month)\b|\b(?:and\s+)?the\s+(?:rest|remaining|remainder)\s+"
    r"(?:\$?\S+\s+)?(?:on|next|in|by|later)\b|\band\s+the\s+balance\s+(?:on|next|in|by|later)\b",
    r"\b(?:over|across|durante|en|em|ao\s+longo\s+de)\s+(?:\d+|two|three|four|five|six|twelve|dos|"
    r"tres|cuatro|cinco|seis|doce|dois|duas|quatro)\s+(?:months|meses)\b|\bpay\s+(?:this|it)\s+off\s+"
    r"(?:over|in)\b",
    r"\bdividir\w*\s+(?:\w+\s+){0,2}?(?:em|en|in)\s+(?:\d+|dos|tres|duas|tres|two|three)\b|"
    r"\bdividir\s+(?:el|o)\s+(?:pago|pagamento|valor|importe)\b",
    r"\b(?:a|per|each|every)\s+(?:week|month|fortnight)\s+until\b|\bmonthly\s+payments\b",
    r"\b(?:parcelar|parcelamento|parcelad[oa]|parcelas|prestacoes|prestacao)\b",
    r"\bem\s+(?:\d+|duas|tres|quatro|cinco|seis)\s*(?:x|vezes|parcelas|prestacoes)\b",
    r"\b\d+\s*x\s+(?:no\s+cartao|sem\s+juros)\b",
    r"\b(?:mais|outro|novo)\s+prazo\b|\bprorroga\w*",
    r"\bmetade\s+(?:agora|hoje|dia|este\s+mes)\b|\be\s+(?:a\s+)?(?:outra\s+)?metade\b|"
    r"\be\s+o\s+resto\b",
    r"\bnegociar\s+(?:a|um|o|uma)\s+(?:divida|parcelamento|acordo|prazo)\b",
    r"\b(?:renegoci\w*|reprogram\w*|repactar|reestructur\w*|restructur\w*)\b",
    r"\b(?:pasar|cambiar|mover|ampliar|extender|alargar|prorrogar|aplazar|postergar|correr|adiar|"
    r"mudar|push|move|extend|postpone|delay|prorrogar|estender)\s+(?:\w+\s+)?(?:el\s+|la\s+|o\s+|"
    r"the\s+|a\s+)?(?:vencimiento|fecha|plazo|due\s+date|deadline|vencimento|prazo|terms|pago|"
    r"payment|pagamento)\b",
    r"\b\d{1,3}\s*%\s+(?:now|ahora|agora|hoy|hoje|today|upfront|this\s+month|este\s+mes)\b",
    r"\b(?:ir\s+pagando|ir\s+abonando|ir\s+pagando|pagar\s+aos\s+poucos|pagar\s+poco\s+a\s+poco|"
    r"pay\s+(?:it\s+)?(?:off\s+)?(?:bit\s+by\s+bit|little\s+by\s+little|gradually))\b",
)
_add(
    "payment_plan_request",
    2.5,
    r"\b(?:propose|proposal|propongo|proponemos|propuesta|proponho|propomos|proposta|suggest|"
    r"sugiero|sugerimos|sugiro)\b",
)
_add(
    "payment_plan_request",
    1.5,
    r"\b(?:no\s+(?:puedo|podemos)\s+pagar\s+(?:todo|la\s+totalidad|el\s+total)|"
    r"can't\s+pay\s+(?:the\s+)?(?:full|whole|all)|cannot\s+pay\s+(?:the\s+)?(?:full|whole|all)|"
    r"nao\s+(?:consigo|posso)\s+pagar\s+(?:tudo|o\s+valor\s+total|tudo\s+de\s+uma\s+vez)|"
    r"de\s+golpe|de\s+una\s+vez|de\s+uma\s+vez|no\s+me\s+alcanza|in\s+one\s+go|all\s+at\s+once|"
    r"de\s+una\s+sola\s+vez|de\s+uma\s+so\s+vez|in\s+full\s+right\s+now)",
    r"\b(?:mal\s+momento|dificultades|dificuldades|cash\s+flow|liquidez|apretad|apertad|"
    r"hardship|struggling)\b",
    r"\b(?:hasta\s+(?:fin\s+del\s+mes\s+que\s+viene|el\s+proximo\s+mes)|until\s+(?:the\s+)?"
    r"(?:new\s+year|next\s+month))\b",
)

# -- out_of_office: auto-replies and away messages ---------------------------------------------
_add(
    "out_of_office",
    4,
    r"\bfuera\s+de\s+(?:la\s+)?oficina\b|\bout\s+of\s+(?:the\s+)?office\b|"
    r"\bfora\s+do\s+escritorio\b|\bausente\s+do\s+escritorio\b",
    r"\b(?:respuesta|mensaje|contestacion|resposta|mensagem)\s+automatic[oa]\b|"
    r"\b(?:automatic|auto)[\s-]?(?:reply|response|message)\b|\bautoreply\b|\bauto-reply\b",
    r"\b(?:me\s+encuentro|estoy|estare|estaremos|i\s+am|i'm|we\s+are|estou|estarei|"
    r"encontro-me|encontro\s+me)\s+(?:\w+\s+)?(?:de\s+vacaciones|de\s+baja|de\s+permiso|"
    r"ausente|on\s+(?:annual\s+|parental\s+|sick\s+)?leave|on\s+vacation|on\s+holiday|"
    r"away\s+(?:from|until|on)|out\s+(?:of|until)|de\s+ferias|em\s+ferias|de\s+licenca|"
    r"fora\s+(?:do|ate)|ausente)",
    r"\b(?:sin|no\s+tendre|con\s+acceso\s+limitado|limited|no|sem|com\s+acesso\s+limitado)\s+"
    r"(?:\w+\s+)?(?:acceso|access|acesso)\s+(?:al|a\s+mi|to|to\s+my|ao|a)\s+(?:correo|e-?mail|"
    r"emails|mail)",
    r"\b(?:su|your|sua)\s+(?:mensaje|message|email|correo|mensagem)\s+(?:no\s+sera|will\s+not\s+be|"
    r"won't\s+be|nao\s+sera)\s+(?:reenviado|forwarded|encaminhad)",
    r"\b(?:este\s+buzon|this\s+mailbox|esta\s+caixa|this\s+(?:email\s+)?address)\s+(?:\w+\s+)?"
    r"(?:no\s+(?:se\s+)?(?:revisa|monitoriza|atiende)|is\s+not\s+(?:monitored|checked)|"
    r"nao\s+e\s+(?:monitorad|verificad))",
    r"\b(?:no\s+responda|do\s+not\s+reply|please\s+do\s+not\s+reply|nao\s+responda)\b",
    r"\b(?:a\s+mi\s+(?:regreso|vuelta)|when\s+i\s+return|upon\s+my\s+return|on\s+my\s+return|"
    r"on\s+our\s+return|ao\s+meu\s+regresso|no\s+meu\s+regresso|quando\s+(?:eu\s+)?(?:voltar|"
    r"retornar)|a\s+la\s+vuelta|a\s+mi\s+retorno)\b",
    r"\b(?:oficinas?|office|escritorio|empresa)\s+(?:\w+\s+){0,2}?(?:cerrad[oa]s?|closed|"
    r"fechad[oa]|permanecen\s+cerradas)\b",
    r"\b(?:horario|hours|horario)\s+de\s+(?:atencion|atendimento|oficina|servicio)\b|"
    r"\bfora\s+do\s+horario\b|\bfuera\s+(?:del|de)\s+horario\b|\boffice\s+hours\b|"
    r"\bbusiness\s+hours\b",
    r"\b(?:hemos|we\s+have|recebemos|recibimos)\s+(?:recibido\s+)?(?:received\s+)?(?:su|your|"
    r"seu|sua|o\s+seu|a\s+sua)\s+(?:mensaje|message|email|e-mail|correo|consulta|request|"
    r"mensagem|solicitacao)",
    r"\b(?:ticket|caso|case|chamado|protocolo)\s*(?:#|n|no|numero|number)?\s*\d{3,}",
    r"\b(?:responderemos|le\s+responderemos|te\s+responderemos|retornaremos|will\s+respond\s+"
    r"within|will\s+get\s+back\s+to\s+you\s+(?:shortly|as\s+soon|within)|responderemos\s+em\s+"
    r"breve|atenderemos\s+su)\b",
    r"\baway\s+from\s+(?:my|the)\s+(?:desk|office)\b|\bcurrently\s+(?:away|out)\b|"
    r"\b(?:back|de\s+vuelta|regreso|regresso|volto|retorno)\s+(?:in\s+the\s+office\s+)?"
    r"(?:on|el|el\s+dia|no\s+dia|a|em)\s",
)
_add(
    "out_of_office",
    1.5,
    r"\b(?:vacaciones|vacation|holiday|holidays|annual\s+leave|ferias|licencia|licenca|"
    r"baja\s+medica|maternity|paternity|sick\s+leave|ausente|away|absent)\b",
    r"\b(?:regresare|volvere|retornare|i\s+will\s+be\s+back|returning\s+on|back\s+on|"
    r"voltarei|retornarei|regresso\s+no|estare\s+de\s+vuelta)\b",
    r"\b(?:para|for)\s+(?:temas|asuntos|assuntos|matters|issues)\s+(?:\w+\s+)?"
    r"(?:urgentes|urgent)|\b(?:em\s+caso\s+de\s+urgencia|for\s+urgent)\b",
    r"\bgracias\s+por\s+(?:su\s+|tu\s+)?(?:mensaje|correo|comunicarte|comunicarse|contactar\w*|"
    r"escribir\w*)|"
    r"\bthank\s+you\s+for\s+(?:your\s+(?:email|message)|contacting)|"
    r"\bobrigad[oa]\s+(?:pelo\s+(?:seu\s+)?contato|pela\s+(?:sua\s+)?mensagem)",
)

# -- opt_out: stop messages on a channel or altogether ----------------------------------------
_add(
    "opt_out",
    4,
    r"\b(?:dejen|deja|dejad|paren|para|dejar)\s+de\s+(?:enviar\w*|escribir\w*|mandar\w*|"
    r"llamar\w*|contactar\w*|spamear\w*)",
    r"\bno\s+(?:me|nos)\s+(?:\w+\s+)?(?:escriban|escribas|envien|mandes|manden|llamen|llames|"
    r"contacten|contactes|molesten|enviéis|escribais|mandeis)\b",
    r"\b(?:darme|darnos|denme|dadme|deme|me\s+den|nos\s+den)\s+de\s+baja\b|\bde\s+baja\s+de\b",
    r"^\s*(?:(?:por\s+favor|porfavor|please)\s*,?\s*)?(?:baja|stop|unsubscribe|sair|parar|cancelar|"
    r"remover|alto|basta|darme\s+de\s+baja)\s*(?:,?\s*(?:por\s+favor|porfavor|please|gracias|thanks|"
    r"obrigad[oa]|pls))?\s*[.!]*\s*$",
    r"\b(?:retir\w+|sac\w+|tir\w+|quit\w+|remov\w+|exclu\w+|elimin\w+|borr\w+)\s+(?:\w+\s+){0,2}?"
    r"(?:da|de\s+la|de\s+su|from\s+(?:the|your)|de)\s+(?:lista|list|base\s+de\s+datos|database|"
    r"lista\s+de\s+contatos|contact\s+list)\b",
    r"\bno\s+(?:quiero|queremos|deseo|deseamos)\s+(?:\w+\s+)?(?:recibir|que\s+me\s+(?:escriban|"
    r"contacten|llamen|manden|envien))\b",
    r"\b(?:elimin|borr|suprim|supriman|eliminen|borren)\w*\s+(?:\w+\s+)?(?:mis|nuestros|mi|"
    r"nuestro)\s+(?:datos|numero|correo|email|contacto)",
    r"\b(?:rgpd|gdpr|lopd|lgpd|proteccion\s+de\s+datos|derecho\s+de\s+supresion)\b",
    r"\bunsubscribe\w*|\bopt[\s-]?out\b|\bremove\s+(?:me|us|my|our|this)\b|\btake\s+(?:me|us|my|"
    r"this\s+number)\s+off\b",
    r"\bstop\s+(?:emailing|texting|calling|sending|contacting|messaging|writing|whatsapp\w*)\b",
    r"\b(?:do\s+not|don't|dont|never)\s+(?:contact|email|text|call|message|write\s+to)\s+"
    r"(?:me|us)\b",
    r"\bno\s+more\s+(?:emails|messages|texts|calls|reminders)\b",
    r"\b(?:parem|pare|deixem|deixe)\s+de\s+(?:me\s+)?(?:enviar|mandar|ligar|escrever|contatar|"
    r"mensagens)",
    r"\bnao\s+(?:quero|queremos|desejo)\s+(?:\w+\s+)?(?:receber|mais\s+mensagens|ser\s+"
    r"contatad)",
    r"\b(?:descadastr|desinscrev|remov\w+\s+(?:o\s+)?meu|tir\w+\s+(?:o\s+)?meu|excluir\s+(?:o\s+)?"
    r"meu|sair\s+da\s+lista|cancelar\s+(?:o\s+)?recebimento)",
    r"\bnao\s+me\s+(?:enviem|mandem|liguem|contatem|escrevam)\b",
    r"\b(?:mailing\s+list|lista\s+de\s+(?:correo|distribucion|envio)|base\s+de\s+datos)\b",
)

# -- wrong_contact -------------------------------------------------------------------------------
_add(
    "wrong_contact",
    4,
    r"\b(?:ya\s+no|no)\s+(?:trabajo|trabaja|estoy|esta|pertenezco|pertenece|laboro|labora)\s+"
    r"(?:\w+\s+)?(?:en|con|para|ahi|alli|aqui)\b",
    r"\b(?:ya\s+no\s+trabaj|dejo\s+la\s+empresa|salio\s+de\s+la\s+empresa|se\s+fue\s+de\s+la)\w*",
    r"\b(?:se\s+(?:han|ha)\s+equivocado|se\s+equivocaron|equivocad[oa])\s+de\s+(?:persona|"
    r"destinatario|numero|correo|contacto|empresa|cliente)",
    r"\b(?:numero|correo|persona|contacto|destinatario|email|e-mail)\s+equivocad[oa]\b",
    r"\bno\s+soy\s+(?:la\s+persona|el\s+responsable|la\s+responsable|quien|cliente|su\s+cliente|"
    r"el\s+titular|la\s+titular)",
    r"\bno\s+(?:tengo|tenemos)\s+(?:ninguna\s+)?relacion\b|\bno\s+(?:conozco|conocemos)\s+"
    r"(?:esa|esta|a\s+esa|dicha|ninguna)\s+empresa\b",
    r"\bno\s+(?:llevo|gestiono|manejo|veo|atiendo)\s+(?:las\s+facturas|los\s+pagos|eso|la\s+"
    r"facturacion|ese\s+tema|la\s+contabilidad)",
    r"\b(?:dirijanse|dirigirse|diríjase|dirijase|contacten\s+(?:a|con)|"
    r"escribanle|escribanles|escriban\s+a)\b",
    r"\b(?:el|la)\s+(?:contacto|persona|correo)\s+(?:correct[oa]|adecuad[oa]|indicad[oa])\b|"
    r"\bno\s+es\s+el\s+(?:contacto|correo|numero)\s+(?:correcto|adecuado)",
    r"\b(?:ese|este)\s+numero\s+(?:ahora\s+)?es\s+mio\b|\banterior\s+(?:dueno|titular)\b",
    r"\bno\s+longer\s+(?:work|works|with|employed|at|part\s+of|handles?|responsible)\b",
    r"\bwrong\s+(?:person|number|email|address|contact|recipient|company|department)\b|"
    r"\byou\s+have\s+the\s+wrong\b",
    r"\bnot\s+(?:the\s+)?(?:right|correct)\s+(?:person|contact|address|email|department)\b",
    r"\bnot\s+(?:responsible|in\s+charge)\s+(?:for|of)\s+(?:payments|invoices|billing|accounts)",
    r"\b(?:left|has\s+left|retired\s+from)\s+(?:the\s+company|the\s+business|us)\b|"
    r"\b(?:replacement|successor)\s+is\b",
    r"\b(?:please\s+)?(?:contact|write\s+to|reach\s+out\s+to|try)\s+(?:our\s+|the\s+)?"
    r"(?:\w+\s+){0,3}?(?:\S+@\S+|team|department|instead)\b",
    r"\b(?:don't|do\s+not|dont)\s+know\s+(?:any|this|your|a|the)\s+(?:company|business)\b|"
    r"\bnot\s+a\s+(?:customer|client|business)\b|\bpersonal\s+number\b",
    r"\bnao\s+(?:trabalho|trabalha)\s+mais\b|\b(?:saiu|sai)\s+da\s+empresa\b",
    r"\b(?:numero|pessoa|email|e-mail|contato)\s+errad[oa]\b",
    r"\bnao\s+(?:conheco|conhecemos)\s+(?:essa|esta|a|nenhuma)\s+empresa\b|"
    r"\bnao\s+sou\s+(?:cliente|a\s+pessoa|o\s+responsavel|a\s+responsavel|eu)\b",
    r"\b(?:falem|fale|contatar|entrar\s+em\s+contato|entrem\s+em\s+contato|contate|contatem|"
    r"procurem|procure)\s+(?:com|o|a)\b",
    r"\bquem\s+(?:cuida|trata|paga|faz)\s+(?:dos|das|disso|do|da|e)\b",
    r"\b(?:quien|el\s+que|la\s+que)\s+(?:lleva|paga|gestiona|ve)\s+(?:las|los|eso|la)\b",
)
_add(
    "wrong_contact",
    1.5,
    r"\b(?:sucursal|filial|matriz|sede|branch|head\s+office)\b",
    r"\b(?:el|la|mi)\s+(?:socio|socia|jefe|jefa|contador|contadora|companero|companera)\b",
    r"\b(?:no\s+longer|ya\s+no|ja\s+nao)\b",
)

# -- other: acknowledgements, questions --------------------------------------------------------
_add(
    "other",
    1.0,
    r"^\s*(?:ok|okay|vale|recibido|received|noted|thanks|gracias|obrigad[oa]|got\s+it|"
    r"entendido|perfecto|perfeito|de\s+acuerdo|buenos\s+dias|bom\s+dia|hola|hello|hi)\b",
    r"\b(?:get\s+back\s+to\s+you|pass\s+(?:this|it)\s+on|heads\s+up|cheers|noted|will\s+look\s+into|"
    r"vou\s+ver|lo\s+miro|lo\s+veo|te\s+aviso|le\s+aviso|les\s+aviso|te\s+digo|quem\s+(?:esta\s+"
    r"falando|e\s+voce|fala)|quien\s+(?:es|habla|me\s+escribe)|who\s+is\s+this|who\s+am\s+i|"
    r"se\s+lo\s+comento|lo\s+comento|ciente|valeu|entendido|understood|will\s+check)\b",
    r"\b(?:lo\s+reviso|lo\s+revisamos|lo\s+consulto|te\s+digo\s+algo|le\s+digo\s+algo|"
    r"look\s+into\s+it|get\s+back\s+to\s+you|vou\s+verificar|vamos\s+verificar|retorno|"
    r"forwarded|reenviado|se\s+lo\s+paso|le\s+he\s+pasado|lo\s+paso\s+a|encaminhei|"
    r"encaminhado|he\s+pasado\s+su\s+correo)\b",
    r"\?",
)

# -- broader cues, each tied to how customers actually phrase things ----------------------------
_PAST_STEMS = (
    r"(?:pag|abon|transf|deposit|ingres|liquid|sald|cancel|consign|cubri|realiz|efectu|efetu|hic|"
    r"hiz|fiz|mand|envi|quit|acert|paid|payed|settled|sent|wired|made|done|taken|transferred|"
    r"cleared|processed|feit|hech)"
)
_add(
    "already_paid",
    3,
    # "ya/já/already" + a payment verb that is not in the future tense
    r"\b(?:ya|ja|already)\s+(?:(?:se|lo|la|les|te|le|os|o|a|lhe|we|i|have|has|been|was|were|had|"
    r"foi|esta|estaba|fue)\s+){0,2}" + _PAST_STEMS + r"(?!\w*(?:aremos|eremos|iremos|are|ara|aran|"
    r"arei|aria|ariamos|ar|er|ir)\b)\w*",
    r"\b(?:paid|settled)\s+in\s+full\b|\bfully\s+paid\b|\balready\s+(?:taken\s+care\s+of|sorted|"
    r"done|handled)\b|\bquitad[oa]\s+(?:em|no|ha)\b",
    r"\b(?:el|la|o|a)\s+(?:pago|transferencia|deposito|ingreso|bizum|pix|pagamento|ted|doc|spei|"
    r"consignacion)\s+(?:ya\s+|ja\s+)?(?:fue|esta|quedo|se\s+hizo|foi|esta|ficou)\s+(?:\w+\s+)?"
    r"(?:hech|realizad|efectuad|enviad|feit|efetuad|realizad|aplicad|acreditad|confirmad|"
    r"processad|procesad|compensad)",
    r"\b(?:ja\s+)?(?:caiu|cayo|entro|llego)\s+(?:na|en\s+la|en\s+su|a\s+la)\s+(?:conta|cuenta)\b",
    r"\b(?:fiz|fizemos|efetuei|mandei|enviei)\s+(?:o\s+|a\s+|um\s+|uma\s+)?(?:pix|ted|doc|deposito|"
    r"pagamento|transferencia)\b",
    r"\b(?:quedo|quedaron|ficou|ficaram)\s+(?:saldad|liquidad|pagad|pag|quitad|abonad)\w*",
    r"\b(?:les|le|te|os)\s+(?:pague|abone|transferi|deposite|ingrese)\b",
    r"\b(?:liquidei|liquidamos|quitamos|quitei|acertei|acertamos|saldamos|salde|cubrimos)\b",
    negatable=True,
)
_add(
    "dispute",
    3,
    r"\b(?:no|nao)\s+(?:estoy|estamos|estou)\s+(?:de\s+acuerdo|conforme|de\s+acordo)\b|"
    r"\b(?:nao|no)\s+(?:concordo|concordamos|concuerdo|concordamos)\b|\b(?:disagree|do\s+not\s+agree|"
    r"don't\s+agree)\b",
    r"\b(?:never|not)\s+(?:\w+\s+)?part\s+of\s+(?:our|the|my)\s+(?:agreement|contract|deal|quote|"
    r"order)|\b(?:no|nao)\s+(?:forma|formaba|formo|estaba|esta|fazia|faz|estava)\s+(?:\w+\s+)?"
    r"(?:parte|incluid[oa])\s+(?:de|del|en|do|no|da|na)\s+(?:el\s+|la\s+|o\s+|a\s+|nuestro\s+|"
    r"nosso\s+)?(?:contrato|acordo|acuerdo|pedido|presupuesto|orcamento|oferta|proposta|plan|plano)"
    r"|\b(?:no|nao)\s+(?:estaba|esta|estava)\s+(?:en\s+el\s+contrato|no\s+contrato|pactad[oa]|"
    r"acordad[oa]|combinad[oa])",
    r"\b(?:cancel\w*|anul\w*|rescind\w*|terminat\w*|dimos\s+de\s+baja|di\s+de\s+baja)\s+(?:\w+\s+){0,4}?"
    r"(?:pedido|orden|order|contrato|contract|servicio|service|suscripcion|subscription|plan|plano|"
    r"assinatura|membership|servico|encomenda)\b|\b(?:pedido|orden|order|contrato|contract|servicio|"
    r"service|suscripcion|subscription|plan|plano|assinatura|membership|servico|encomenda)\s+"
    r"(?:\w+\s+){0,4}?(?:cancel\w*|anulad\w*|anulamos|rescindid\w*|terminated|ended|finalizad\w*)",
    r"\b(?:only|solo|solamente|unicamente|so|somente|apenas)\s+(?:\w+\s+){0,2}?(?:pay|pagar\w*|"
    r"pagaremos|pagamos|vamos\s+a\s+pagar|vamos\s+pagar|abonaremos)\s+(?:\w+\s+){0,2}?(?:for|lo|"
    r"por|o\s+que|what|la\s+parte|the\s+part)",
    r"\b(?:short\s+by|short[\s-]shipped|shortage|missing\s+(?:items|units|pallets|boxes|parts)|"
    r"not\s+(?:all|everything)\s+(?:was\s+)?(?:delivered|arrived))\b",
    r"(?<!\bme\s)(?<!\bsent\s)(?<!\bto\s)(?<!\benviado\s)(?<!\bllego\s)(?<!\brecibi\s)"
    r"(?<!\bchegou\s)(?<!\brecebi\s)(?<!\benviada\s)\b(?:in\s+error|by\s+mistake|por\s+error|"
    r"por\s+engano|erroneamente|por\s+equivocacion)\b",
    r"\b(?:remove|quiten|quitar|retiren|eliminen|anulen|tirem|removam|retirem)\s+(?:\w+\s+){0,2}?"
    r"(?:fee|charge|cargo|recargo|comision|interes\w*|multa|taxa|juros|cobro|late\s+fee|it\s+from)",
    r"\b(?:a\s+medias|pela\s+metade|half[\s-]done|half\s+finished|sin\s+terminar|unfinished|"
    r"nao\s+terminad|inacabad)",
    r"\b(?:no|nunca|never|nao)\s+(?:me|nos|us|me\s+lo|nos\s+lo)?\s*(?:entregaron|entregaram|"
    r"delivered|llego(?!\s+(?:a|al)\b)|chegou|llegaron|chegaram|instalaron|instalaram|informaron|informaram|"
    r"explicaron|explicaram|avisaron|avisaram|dijeron|disseram|told)\b(?!\s+(?:\w+\s+){0,2}?"
    r"(?:factura|facturas|fatura|boleto|invoice|bill|adjunto|archivo|pdf|documento|correo|email|"
    r"e-mail|mensaje|anexo|arquivo|link|enlace|copia|xml|attachment))",
    r"\b(?:robo|roubo|rip[\s-]?off|robbery|abuso|abusivo|abusiva|abusive)\b",
    r"\b(?:revis\w*la|revis\w*las|revisen\s+(?:la|esta|esa|el)\s+(?:factura|importe|cobro|cargo)|"
    r"revisem\s+(?:a|esta|essa|o)\s+(?:fatura|cobranca|valor)|please\s+(?:review|check|look\s+at)\s+"
    r"(?:the|this|your)\s+(?:invoice|bill|charge|amount))\b",
    r"\b(?:fueron|eran|era|were|was\s+only|foram|eram)\s+(?:solo\s+|only\s+|so\s+|apenas\s+)?\d+\b",
    r"\b(?:no\s+es|not|nao\s+e|isn't|is\s+not)\s+(?:la|el|lo|the|o|a|what)\s+(?:que|what|one|o\s+que|"
    r"we)?\s*(?:\w+\s+){0,3}?(?:figura|pone|dice|acordamos|pactamos|agreed|quoted|contrato|contract|"
    r"presupuesto|quote|oferta|combinamos|consta|ordered|pedimos)\b",
    r"\b(?:rectific\w*|correccion|correcao|correction|corrigid[oa]|corregid[oa])\b",
    r"\b(?:diferente|different|distint[oa]|distinct)\s+(?:\w+\s+){0,3}?(?:orcamento|presupuesto|quote|"
    r"quotation|pedido|order|contrato|contract|oferta|offer|combinado|acordado|agreed|aprobado|"
    r"aprovado|approved)",
    r"\b(?:isn't|is\s+not|wasn't|was\s+not|not\s+yet|never|aren't|are\s+not)\s+(?:\w+\s+)?"
    r"(?:finished|complete|completed|done|delivered|installed|fixed|working)\b|\b(?:no\s+esta|no\s+"
    r"estan|nao\s+esta|nao\s+estao|sigue\s+sin|continua\s+sem)\s+(?:\w+\s+)?(?:terminad|acabad|"
    r"instalad|arreglad|funcionando|pront|conclu|resolvid|entregad)\w*",
    r"\b(?:pay|pagaremos|pagamos|pagare|vamos\s+pagar|vamos\s+a\s+pagar|pagarei)\s+(?:\w+\s+){0,2}?"
    r"(?:when|once|after|cuando|una\s+vez\s+que|quando|depois\s+que|assim\s+que)\s+(?:\w+\s+){0,4}?"
    r"(?:complete|completed|finished|fix|fixed|correct|corrected|deliver|delivered|termin\w*|"
    r"corrij\w*|arregl\w*|entregu\w*|corrig\w*|conclu\w*|resolv\w*|credit|abono|nota)",
    r"\b(?:void|cancel|anulen|anular|cancelen|cancelem|cancelar|anule)\s+(?:\w+\s+)?(?:the|this|la|"
    r"esta|essa|a|el)?\s*(?:invoice|bill|factura|fatura|cobro|cobranca|charge|cargo)\b",
    r"\b(?:we|i)\s+(?:rejected|refused)\b|\b(?:rejected|refused|rechazad[oa]s?|rechazamos|"
    r"recusad[oa]s?|recusamos)\s+(?:\w+\s+)?(?:at|on|en\s+la|na|a\s+la|the|el|la|o|a)?\s*(?:delivery|"
    r"entrega|order|pedido|goods|mercancia|mercadoria|shipment|envio|encomenda)\b|\b(?:devuelt[oa]s?|"
    r"devolvid[oa]s?|returned)\b(?!\s+(?:\w+\s+)?(?:transfer|transferencia|payment|pago|pagamento|"
    r"check|cheque|email|mail|correo))",
)
_add(
    "dispute",
    2.5,
    r"\b(?:cobraron|cobrado|cobrando|cobran|cobraste|cobrais|cobrais|cobrou|cobraram|cobrada|cobrados|"
    r"cobrando|charged|charging|billed|billing\s+us|invoiced\s+us|facturaron|facturado|faturaram|"
    r"faturado)\b(?!\s+(?:el|la|por|em|on|via|a\s+su)\s+(?:cuenta|conta|account|tarjeta|cartao|card))",
    r"\b(?:error|errores|erro|mistake|equivocacion|engano)\b",
    r"\b(?:no|not|nao|doesn't|don't|does\s+not|do\s+not)\s+(?:coincide|coinciden|cuadra|cuadran|"
    r"match|matches|add\s+up|bate|batem|corresponde|correspondem)\b",
)
_add(
    "promise_to_pay",
    3,
    r"\b(?:sera|seran|quedara|va\s+a\s+ser|van\s+a\s+ser)\s+(?:atendid|cubiert|procesad|gestionad|"
    r"tramitad|emitid|enviad|realizad|efectuad|hech|saldad|liquidad|abonad|pagad|cancelad)\w*",
    r"\b(?:tendran|tendra|tendras|tienen|recibiran|recibira|recibiras|receberao|recebera|"
    r"you'll\s+(?:have|get|receive|see)|you\s+will\s+(?:have|get|receive|see)|vao\s+receber|"
    r"vai\s+receber|vais\s+receber)\s+(?:\w+\s+)?(?:el|la|lo|o|a|the|your|su|seu)?\s*(?:dinero|pago|"
    r"plata|importe|transferencia|money|payment|funds|dinheiro|pagamento|valor|deposito|check|"
    r"cheque|wire)\b",
    r"\b(?:will|'ll|going\s+to|gonna)\s+(?:\w+\s+)?(?:sort|settle\s+up|take\s+care\s+of\s+(?:it|this|"
    r"the\s+(?:invoice|bill|payment|balance))|get\s+(?:it|this)\s+(?:sorted|done|over|paid))\b",
    r"\b(?:previsto|prevista|planned|planeado|planificado|previst[oa])\s+(?:para|for)\b",
    r"\b(?:queued|lined\s+up|booked\s+in|slotted\s+in|earmarked)\s+(?:for|to|on)\b",
    r"\b(?:te|se|le|les|os)\s+(?:lo|la|los|las)\s+(?:pago|abono|transfiero|deposito|ingreso|"
    r"consigno|liquido|cancelo)\b",
    r"\b(?:voy|vamos|vou|vamos|will|'ll|going\s+to)\s+(?:a\s+)?(?:regulariz\w*|ponerme\s+al\s+"
    r"(?:dia|corriente)|ponernos\s+al\s+(?:dia|corriente)|catch\s+up|bring\s+(?:the\s+)?account|"
    r"ficar\s+em\s+dia|por\s+em\s+dia|acertar|quitar|liquidar)\b",
    r"\bproced\w*\s+(?:con|al|a|com|ao|with)\s+(?:el\s+|la\s+|o\s+|a\s+|the\s+)?(?:pago|"
    r"transferencia|abono|ingreso|pagamento|payment)\b",
    r"\b(?:en\s+cuanto|apenas|cuando|assim\s+que|quando|logo\s+que|once|as\s+soon\s+as|when)\b"
    r"[^.!?\n]{0,60}\b(?:pagamos|pago|efetuamos|efectuamos|hacemos\s+el|procedemos|transferimos|"
    r"depositamos|we\s+pay|i\s+pay|pay\s+you|te\s+pago|le\s+pago|pagarei|pagaremos|pagamos)\b",
    r"\b(?:fica|ficara|queda|quedara)\s+para\s+(?:\w+\s+)?(?:segunda|terca|quarta|quinta|sexta|"
    r"lunes|martes|miercoles|jueves|viernes|el|o|a|amanha|manana|dia)\b",
    r"\b(?:pode\s+deixar|deja\s+que|leave\s+it\s+with\s+me)\b.{0,40}\b(?:pag|pay|transf|deposit)\w*",
    negatable=True,
)
_add(
    "out_of_office",
    4,
    r"\b(?:we\s+are|we're|estamos|nos\s+encontramos)\s+(?:currently\s+|actualmente\s+|"
    r"atualmente\s+)?(?:closed|cerrados|fechados)\b",
    r"\b(?:will|we'll|i'll)\s+(?:reply|respond|answer|get\s+back\s+to\s+you)\s+(?:\w+\s+)?(?:on|"
    r"when|within|as\s+soon|shortly|upon)\b",
    r"\b(?:le|les|te)\s+(?:contestaremos|responderemos|atenderemos)\b|\b(?:contestaremos|"
    r"responderemos|retornaremos|atenderemos)\s+(?:su|tu|sua|seu|a\s+sua|o\s+seu|en|em|el|na|no|"
    r"lo\s+antes)\b",
    r"^\s*\[?(?:auto|automatic|automatica|automatico|respuesta\s+automatica|resposta\s+automatica)",
)
_add(
    "out_of_office",
    4,
    r"\b(?:generad[oa]|enviad[oa]|gerad[oa])\s+automaticamente\b|\bautomatically\s+(?:generated|"
    r"sent)\b|\bautomated\s+(?:message|response|reply|email)\b|\bthis\s+is\s+an\s+automated\b",
    r"\b(?:you've|you\s+have)\s+reached\b|\b(?:has|ha)\s+contactado\s+con\b|\bwe\s+aim\s+to\s+"
    r"(?:respond|reply|answer)\b|\b(?:respond|reply)\s+to\s+all\s+(?:queries|emails|messages)\b|"
    r"\bwithin\s+\d+\s+(?:working|business)\s+days\b|\ben\s+un\s+plazo\s+de\s+\d+\s+horas\b",
    r"\b(?:nuestro|our|nosso)\s+(?:horario|hours|opening\s+hours|horario\s+de\s+atencion)\s+"
    r"(?:es|is|are|e|de)\b",
    r"\b(?:travelling|traveling|de\s+viaje|viajando|em\s+viagem)\b[^.!?\n]{0,40}\b(?:access|acceso|"
    r"acesso|email|correo|reply|respond|responder)",
    r"\b(?:estoy|estou|i'm|i\s+am|estare|estarei)\s+de\s+(?:licencia|licenca|baja)\b|\blicenca\s+"
    r"(?:medica|maternidade|paternidade)\b|\b(?:parental|maternity|paternity|sick|medical)\s+leave\b",
)
_add(
    "out_of_office",
    2.5,
    r"\b(?:thanks|thank\s+you|gracias|obrigad[oa])\s+(?:for|por|pela|pelo)\s+(?:your|su|tu|sua|seu|"
    r"escribirnos|escrevernos|contactarnos|contatar|getting\s+in\s+touch)\b",
    r"\bno\s+me\s+encuentro\s+en\s+la\s+oficina\b|\bnot\s+in\s+the\s+office\b|"
    r"\bnao\s+(?:estou|me\s+encontro)\s+no\s+escritorio\b",
)
_add(
    "opt_out",
    4,
    r"\b(?:don't|do\s+not|dont|please\s+stop|stop)\s+(?:\w+\s+){0,2}?(?:sending|send|texting|text|"
    r"emailing|email|calling|call|messaging|message|contacting|contact)\s+(?:me|us)\s+(?:\w+\s+)?"
    r"(?:any\s*more|again|more)\b|\b(?:don't|do\s+not|dont)\s+send\s+(?:me|us)\s+(?:any\s+)?more\b",
    r"\bno\s+(?:me|nos)\s+(?:\w+\s+)?(?:manden|envien|escriban|llamen|contacten)\s+(?:\w+\s+)?mas\b|"
    r"\bnao\s+(?:me|nos)\s+(?:\w+\s+)?(?:mandem|enviem|liguem|contatem|escrevam)\s+(?:\w+\s+)?mais\b",
    r"\bno\s+(?:quiero|queremos)\s+que\s+(?:me|nos)\s+(?:contacten|escriban|llamen|manden|envien)\b",
)
_add(
    "wrong_contact",
    4,
    r"\bya\s+no\s+(?:gestiona|gestiono|lleva|llevo|maneja|manejo|trabaja|esta|es|se\s+encarga|"
    r"me\s+encargo|forma\s+parte|pertenece|atiende|ve)\b",
    r"\bja\s+nao\s+(?:trabalha|trabalho|cuida|cuido|faz\s+parte|esta|e|pertence|sou)\b|"
    r"\bnao\s+(?:faz|fazem|faco)\s+mais\s+parte\b|\bdeixou\s+(?:a|de\s+trabalhar)\b",
    r"\bno\s+longer\s+(?:handles|deals|manages|looks\s+after|is\s+with|works|at|in\s+charge)\b",
    r"\b(?:i'm|i\s+am|we're|we\s+are)\s+not\s+(?:with|from|part\s+of|at)\s+[A-Za-z]|"
    r"\bno\s+(?:soy|somos)\s+(?:de|del|parte\s+de)\s+(?:la\s+)?(?:empresa|\w+)|"
    r"\bnao\s+(?:sou|somos)\s+(?:da|do)\s+(?:empresa|\w+)",
    r"\b(?:la\s+empresa|the\s+company|a\s+empresa|la\s+persona|the\s+person|a\s+pessoa)\s+que\s+"
    r"(?:buscan|busca|buscas|procuram|procura)\b|\b(?:company|person)\s+you(?:'re|\s+are)\s+"
    r"looking\s+for\b",
    r"\b(?:este|ese|esse|este|this)\s+(?:numero|number|correo|email|e-mail|telefono|telefone)\s+"
    r"(?:\w+\s+)?(?:es|e|is|pertenece|belongs)\s+(?:de|a|to|from)\s+(?:una|uma|un|um|a|an|otra|"
    r"outra|another|mi|my|meu|minha)\b",
    r"\bcorreo\s+personal\b|\bemail\s+pessoal\b|\bpersonal\s+(?:email|address|account)\b",
    r"\baqui\s+no\s+es\b|\baqui\s+nao\s+e\b|\bthis\s+is\s+not\s+(?:the|a)\b|\bcasa\s+particular\b|"
    r"\b(?:numero|telefono|telefone)\s+particular\b|\bprivate\s+(?:number|residence|home)\b",
    r"\b(?:retired|se\s+jubilo|se\s+aposentou|jubilad[oa]|aposentad[oa]|passed\s+away|fallecio|"
    r"faleceu)\b",
    r"\byou'll\s+want\b|\byou\s+(?:should|need\s+to|want\s+to)\s+(?:contact|speak|talk|write|email)\b|"
    r"\b(?:deberian|deben|debe|tienen\s+que|tiene\s+que)\s+(?:hablar|escribir|contactar|dirigirse)\b",
    r"\b(?:el\s+nuevo|la\s+nueva|o\s+novo|a\s+nova|the\s+new)\s+(?:responsable|contacto|contato|"
    r"contact|person|encargad[oa]|responsavel)\b",
)

_add(
    "dispute",
    3,
    r"\b(?:factura|invoice|fatura|cargo|charge|cobro|cobranca|importe|amount|valor|precio|price|"
    r"bill)\s+(?:\w+\s+){0,2}?(?:incluye|includes|inclui|include|lleva|trae|aparece|shows|has|tiene|"
    r"tem|cobra|charges|pone|says|dice|diz|figura|lists|veio)\b[^.!?\n]{0,80}\b(?:pero|but|mas|"
    r"however|sin\s+embargo|porem|although|aunque|embora|cuando|when|while|mientras)\b",
    r"\b(?:exempt|exento|exenta|exentos|isento|isenta|isentos)\b|\b(?:sin|sem|without)\s+(?:el\s+|o\s+)?"
    r"(?:iva|vat|igv|itbis)\b",
    r"\b(?:are\s+you\s+kidding|you\s+must\s+be\s+joking|estan\s+de\s+broma|me\s+toman\s+el\s+pelo|"
    r"ta\s+de\s+brincadeira|esta\s+de\s+brincadeira|stop\s+chasing|dejen\s+de\s+perseguir|"
    r"parem\s+de\s+me\s+cobrar|es\s+el\s+colmo|e\s+o\s+cumulo|the\s+last\s+straw)\b",
    r"\b(?:problema|problem|issue|incidencia|reclamo)\s+(?:\w+\s+){0,2}?(?:con|with|com|en|in|na|no)\s+"
    r"(?:la|esta|esa|the|this|a|essa|esta)?\s*(?:factura|invoice|fatura|cobro|charge|cobranca|bill)",
    r"\b(?:no|nao)\s+(?:confere|confiere|cuadra|bate)\b|\bnot\s+(?:correct|right|accurate)\b|"
    r"\bno\s+es\s+correct[oa]\b|\bnao\s+(?:esta|e)\s+corret[oa]\b",
    r"\b(?:no|nao|not)\s+(?:nos|me|us)?\s*(?:la|lo|a|o)?\s*(?:deben|deberian|debian|should|devem|"
    r"deveriam)\s+(?:cobrar|charge|facturar|bill|cobrar)\b",
    r"\b(?:nunca|never|jamas)\s+(?:\w+\s+)?(?:contratamos|contrate|contratei|contratou|ordered|"
    r"signed\s+up|pedimos|pedi|solicitamos|usamos|used)\b",
    r"\bno\s+es\s+(?:nuestra|mia|nuestro|mio)\b|\bnao\s+e\s+(?:nossa|minha|nosso|meu)\b|"
    r"\b(?:isn't|is\s+not|not)\s+(?:ours|mine)\b",
)
_add(
    "already_paid",
    2.5,
    r"\b(?:cleared|settled|included|paid)\s+in\s+(?:our|the)\s+(?:last|previous|latest)\s+(?:payment\s+)?"
    r"(?:run|batch|remittance)\b|\b(?:ya\s+)?(?:esta|ta|tá)\s+pag[oa]\b|\bja\s+ta\b",
)
_add(
    "invoice_copy_request",
    3.5,
    r"\b(?:hacer\w*|haga\w*|hagan)\s+llegar\s+(?:\w+\s+){0,2}?(?:factura|facturas|copia|pdf|documento)\b",
    r"\b(?:formato\s+electronico|facturae|e-?invoice|electronic\s+invoice|factura\s+electronica|"
    r"nota\s+fiscal\s+eletronica|nfe|nf-e)\b",
    r"\b(?:get|need|send|want|have|obtener|necesito|mandar|enviar|tener)\s+(?:me\s+|us\s+)?(?:a|an|"
    r"un|una|uma|um)\s+(?:duplicate|duplicado|copy|copia|segunda\s+via|new\s+copy|nueva\s+copia)\b",
    r"\b(?:lost|misplaced|deleted|perdi|perdimos|borre|extravie|extravi\w*|se\s+me\s+borro|"
    r"se\s+me\s+perdio|apague\w*)\s+(?:\w+\s+){0,2}?(?:invoice|bill|factura|fatura|boleto|correo|"
    r"email|pdf|copy|copia)\b",
    r"\b(?:codigo\s+de\s+barras|barcode|linha\s+digitavel)\b[^.!?\n]{0,40}\b(?:ilegivel|illegible|"
    r"no\s+se\s+lee|nao\s+(?:le|da|aparece)|borrad|apagad|outro|otro|novo|nuevo)\b",
)
_add(
    "payment_plan_request",
    3.5,
    r"\b(?:poco\s+a\s+poco|aos\s+poucos|pouco\s+a\s+pouco|little\s+by\s+little|bit\s+by\s+bit)\b",
    r"\b(?:llegar|chegar|come|reach)\s+(?:a|to)\s+(?:un|um|an|some)?\s*(?:acuerdo|acordo|agreement|"
    r"arrangement)\b",
    r"\b(?:halves|dos\s+mitades|duas\s+metades|in\s+two\s+parts|en\s+dos\s+partes|em\s+duas\s+partes)\b|"
    r"\bone\s+now\s+and\s+(?:one|the\s+other)\b",
    r"\b\d+\s*(?:€|euros?|pesos|reais|dolares|dollars|\$)?\s*(?:por|al|a\s+la|cada|per|a|every)\s+"
    r"(?:mes|month|semana|week|quincena|quinzena)\b",
)
_add(
    "wrong_contact",
    4,
    r"\b(?:ya\s+no|no|ja\s+nao|nao|no\s+longer|don't|do\s+not)\s+(?:vivo|vive|vivimos|moro|mora|"
    r"live|lives)\b|\b(?:antiguo|anterior|former|previous|antigo)\s+(?:inquilino|tenant|owner|dueno|"
    r"dono|titular|propietario|proprietario|occupant|usuario|user)\b|\bno\s+tengo\s+nada\s+que\s+ver\b|"
    r"\bnothing\s+to\s+do\s+with\b|\bnao\s+tenho\s+nada\s+a\s+ver\b",
    r"\b(?:i|we)\s+(?:don't|do\s+not|dont)\s+(?:deal|handle|manage|look\s+after|do|take\s+care\s+of|"
    r"process)\s+(?:with\s+)?(?:the\s+)?(?:invoices|payments|billing|accounts|finance|bills)\b|"
    r"\b(?:no|nao)\s+(?:me\s+encargo|cuido|trato|gestiono|manejo)\s+(?:de\s+|das\s+|dos\s+)?(?:las\s+|"
    r"los\s+)?(?:facturas|pagos|faturas|pagamentos|cobros|cobrancas)\b",
    r"\b(?:numero|number|email|correo|e-mail|telefono|telefone|linea|linha)\s+(?:\w+\s+)?(?:ahora\s+|"
    r"agora\s+|now\s+)?(?:es|e|is)\s+(?:mio|meu|mine|minha|mia)\b|\b(?:agora|ahora)\s+(?:e|es)\s+"
    r"(?:meu|mio|minha|mia)\b",
)
_add(
    "wrong_contact",
    2,
    r"\b(?:just|only|solo|solamente|apenas|so)\s+(?:the|a|el|la|o|a|soy|sou)?\s*(?:receptionist|"
    r"recepcionista|secretary|secretaria|assistant|asistente|assistente|empleado|employee)\b",
    r"\b(?:email|write\s+to|escriban\s+a|escriba\s+a|escreva\s+para|escrevam\s+para|envie\s+para|"
    r"mande\s+para)\s+\S+@",
)

_add(
    "dispute",
    3,
    r"\b(?:sin|without|sem)\s+(?:\w+\s+)?(?:avisar|aviso|previo\s+aviso|notice|telling\s+us|asking|"
    r"warning|consultar|consultarnos|autorizacion|autorizacao|authori[sz]ation|permission|permiso)\b",
    r"\b(?:pero|but|mas|however)\s+(?:\w+\s+)?(?:solo|solamente|only|so|apenas|unicamente|just)\s+"
    r"(?:\w+\s+){0,2}?(?:importe|amount|valor|parte|part|lo\s+que|what|o\s+que|presupuesto|quote|"
    r"orcamento|agreed|acordado)\b",
    r"\b(?:extras?|cargos?\s+extra|additional\s+charges?|cargos?\s+adicionales|cobros?\s+extra|"
    r"taxas?\s+extra)\b",
)
_add(
    "payment_plan_request",
    3.5,
    r"\b(?:spread|repartir|distribuir|dividir|diluir|stagger)\s+(?:\w+\s+){0,2}?(?:payments?|pagos?|"
    r"cost|balance|importe|deuda|debt|pagamentos?|valor|divida)\b",
    r"\b(?:over|across|durante|en|em|in)\s+the\s+next\s+(?:\d+|two|three|four|five|six|twelve)\s+"
    r"months\b|\b(?:en|em)\s+los\s+proximos\s+(?:\d+|dos|tres|cuatro|seis)\s+meses\b",
)
_add(
    "out_of_office",
    4,
    r"\b(?:nuestro|nosso|our)\s+(?:horario|atendimento|atencion|hours|office\s+hours|opening\s+"
    r"hours|business\s+hours|servicio\s+de\s+atencion)\s+(?:\w+\s+){0,3}?(?:es|e|is|are|funciona|"
    r"de|from)\b",
    r"\b(?:atendimento|atencion|horario|servicio)\s+(?:funciona|es|e)\s+de\s+(?:lunes|segunda|\d)",
)
_add(
    "wrong_contact",
    4,
    r"\baqui\s+(?:es|e)\s+(?:la|el|a|o)\s+(?:delegacion|sucursal|tienda|oficina|filial|almacen|"
    r"loja|delegacao|escritorio|fabrica|planta)\b|\bthis\s+is\s+the\s+\w+\s+(?:branch|store|office|"
    r"depot|warehouse)\b",
    r"\b(?:delegacion|sucursal|filial|branch|loja|tienda|store)\b[^.!?\n]{0,60}\b(?:central|matriz|"
    r"sede|head\s+office|headquarters|casa\s+matriz|oficinas\s+centrales)\b",
    r"\b(?:se\s+)?(?:enganaram|enganou|enganaste|equivocaron|equivocaste|equivocou|equivocaram|"
    r"got\s+the\s+wrong)\s+(?:de\s+)?(?:pessoa|persona|numero|number|email|correo|contato|contacto|"
    r"empresa|company|person)\b",
    r"\b(?:no|nao)\s+(?:tengo|tenemos|tenho|temos)\s+(?:ninguna\s+|nenhuma\s+)?(?:cuenta|conta)\s+"
    r"(?:con|com)\s+(?:ustedes|voces|vosotros|ellos|esa\s+empresa|essa\s+empresa)\b|"
    r"\b(?:i|we)\s+(?:don't|do\s+not)\s+have\s+an?\s+account\s+with\s+you\b",
    r"\b(?:wrong|another|different|otra|outra)\s+(?:company|empresa|compania)\b|\bwe're\s+\w+(?:\s+"
    r"\w+){0,3},\s+not\b",
)

_add(
    "promise_to_pay",
    3,
    r"\b(?:cai|caira|cae|caera|entra|entrara|llega|llegara|lands?|hits?|will\s+(?:land|hit|reach))\s+"
    r"(?:na|en\s+(?:la|su|tu|vuestra)|in\s+your|em\s+sua|na\s+sua|your)\s+(?:conta|cuenta|account|bank)",
    r"\b(?:cuenta|cuente|cuenten|count|pode\s+contar|podem\s+contar|puedes\s+contar|puede\s+contar)\s+"
    r"(?:con|on|com)\s+(?:el|it|o|la|the)?\s*(?:pago|pagamento|payment|it|transferencia|dinero)?",
    negatable=True,
)
_add(
    "already_paid",
    3,
    r"(?:^|[.!?\n]\s*)(?:(?:hecho|listo|done|feito|pronto|ok|vale)\W+)?(?:transferid|pagad|depositad|"
    r"ingresad|abonad|enviad|liquidad|consignad)[oa]s?\b",
    r"\b(?:hace\s+un\s+rato|a\s+while\s+ago|ha\s+pouco|agora\s+ha\s+pouco|just\s+now|recien|"
    r"hace\s+nada|faz\s+pouco)\b",
)
_add(
    "dispute",
    3,
    r"\b(?:doesn't|does\s+not|don't|do\s+not|no|nao)\s+(?:reflect|include|show|apply|refleja|reflejan|"
    r"incluye|incluyen|aplica|aplican|mostra|reflete|inclui|considera|contempla)\s+(?:the|el|la|o|a|"
    r"our|nuestro|nuestra|nosso|nossa)\s+(?:\w+\s+)?(?:discount|descuento|desconto|credit|abono|"
    r"rebate|deposit|anticipo|adelanto|payment|pago|pagamento|bonificacion|nota\s+de\s+credito)",
    r"\b(?:discount|descuento|desconto|price|precio|preco|rate|tarifa)\s+(?:\w+\s+)?(?:we|que|que\s+"
    r"se)\s+(?:negotiated|agreed|negociamos|acordamos|pactamos|combinamos|negociou|agreed\s+on)\b",
    r"\b(?:malentendido|misunderstanding|mal-entendido|mal\s+entendido|confusion|confusao)\b",
    r"\b(?:promised|prometieron|prometeram|we\s+were\s+told|nos\s+dijeron|nos\s+disseram|"
    r"disseram\s+que)\b",
)
_add(
    "invoice_copy_request",
    3,
    r"\b(?:descargar|download|baixar|bajar|acceder\s+a|access)\s+(?:\w+\s+)?(?:la|el|the|a|o|my|mi|"
    r"minha)?\s*(?:factura|facturas|invoice|invoices|fatura|faturas|boleto|pdf|nota\s+fiscal)\b",
)
_add(
    "payment_plan_request",
    3.5,
    r"\b(?:da|daria|se\s+puede|podemos|can\s+we|could\s+we|posso|puedo|can\s+i|could\s+i|"
    r"podriamos|poderiamos|pra|para)\s+(?:\w+\s+){0,2}?(?:dividir|split|fraccionar|parcelar)\b",
    r"\bfinanci(?:ar\w*|acion|amiento|amento|ing|ado|ada|ad)\b",
)
_add(
    "wrong_contact",
    4,
    r"\bno\s+longer\s+(?:here|there|with\s+us|at\s+this\s+(?:company|address|number))\b|"
    r"\bya\s+no\s+(?:esta|trabaja)\s+(?:aqui|con\s+nosotros)\b|\bja\s+nao\s+(?:esta|trabalha)\s+"
    r"(?:aqui|conosco)\b|\b(?:trabajo|trabalho|work)\s+(?:en|em|for|at)\s+(?:otra|outra|another|a\s+"
    r"different)\s+(?:empresa|company)\b",
    r"\b(?:este|ese|esse|esta|this)\s+(?:correo|email|e-mail|buzon|numero|number|direccion|address)\s+"
    r"(?:ya\s+)?(?:no\s+se\s+usa|nao\s+(?:e\s+)?(?:mais\s+)?usad|is\s+no\s+longer\s+(?:used|in\s+use|"
    r"monitored)|no\s+(?:esta|es)\s+(?:activo|en\s+uso)|ya\s+no\s+existe|ya\s+no\s+lo\s+lleva)",
)

_add(
    "out_of_office",
    4,
    r"\b(?:ausente|away|out|fora)\s+(?:hasta|until|till|ate)\b|\b(?:cerrad[oa]s?|closed|fechad[oa]s?|"
    r"encerrad[oa]s?)\s+(?:por|for|para|durante)\s+(?:las\s+|the\s+)?(?:vacaciones|holidays?|ferias|"
    r"vacation|festivos|fiestas|obras|inventario)\b|\b(?:em|en)\s+recesso\b|\bde\s+recesso\b",
)

_add(
    "already_paid",
    3,
    r"\b(?:pix|transferencia|pago|pagamento|deposito|bizum|ted|transfer|payment|wire|ingreso|spei|"
    r"cheque|check)\s+(?:ya\s+|ja\s+)?(?:enviad[oa]|feit[oa]|hech[oa]|realizad[oa]|efetuad[oa]|"
    r"efectuad[oa]|sent|done|made|completed|submitted|processad[oa]|procesad[oa])\b",
)
_add(
    "dispute",
    3,
    r"\b(?:ya\s+no\s+|no\s+|nao\s+|ja\s+nao\s+)(?:deberia|debia|deveria|devia)\s+(?:\w+\s+)?(?:generar|"
    r"emitir|existir|cobrar|facturar|gerar|faturar|llegar|chegar)\w*|\bshould(?:\s+no\s+longer|"
    r"\s+not|n't)\s+(?:be\s+)?(?:issued|generated|billed|charged|invoiced|exist)\b",
    r"\b(?:cerramos|closed|fechamos|dimos\s+de\s+baja|encerramos)\s+(?:\w+\s+)?(?:el|la|our|the|o|a)\s+"
    r"(?:local|tienda|store|shop|oficina|office|cuenta|account|loja|negocio|business|empresa|"
    r"company|sucursal|branch)\b",
)

_add(
    "out_of_office",
    3.5,
    r"\b(?:estamos|nos\s+encontramos|we're|we\s+are)\s+(?:\w+\s+)?(?:de\s+vacaciones|de\s+ferias|em\s+"
    r"ferias|on\s+(?:holiday|vacation|leave)|away|fuera|closed|cerrados|fechados)\b",
    r"\b(?:volvemos|regresamos|voltamos|retornamos|we're\s+back|we\s+are\s+back|back\s+on|"
    r"reabrimos|reopen\w*|reabrimos)\s+(?:el|on|no|na|a|en|em|in|the)?\s*(?:\d|lunes|martes|"
    r"miercoles|jueves|viernes|monday|tuesday|wednesday|thursday|friday|segunda|terca|quarta|"
    r"quinta|sexta|proxim|next|septiembre|september|setembro|enero|january|janeiro)",
)
_add(
    "wrong_contact",
    3.5,
    r"\b(?:cobranza|cobranzas|cobros|pagos|facturas|facturacion|billing|payments|invoices|"
    r"pagamentos|faturas|cobranca|contabilidad|contabilidade|accounts)\s+(?:\w+\s+)?(?:(?:la|lo|las|"
    r"los)\s+(?:lleva|llevan|gestiona|gestionan|maneja|manejan|ve|ven)|handles?|(?:is|are)\s+handled|"
    r"cuida|cuidam|se\s+encarga|se\s+encargan)\b",
    r"\b(?:este|ese|esse|this)\s+(?:whatsapp|numero|number|correo|email|telefono|telefone)\s+"
    r"(?:\w+\s+)?(?:es|e|is)\s+(?:de|from|of)\s+(?:la|el|a|o|the|una|uma|un|um)\s+(?:sucursal|tienda|"
    r"filial|branch|store|loja|oficina|office|delegacion|almacen|particular|casa|persona|pessoa)",
)

_add(
    "dispute",
    3,
    r"\b(?:divergen\w*|discrepan\w*|mismatch\w*|difiere\w*|differs?|diverge\w*)\b",
    r"\b(?:valor|importe|amount|value|monto|precio|price|preco)\s+(?:correct[oa]|correto|right|"
    r"acordad[oa]|agreed|pactad[oa])\b",
)
_add(
    "wrong_contact",
    4,
    r"\b(?:sent|came|enviad[oa]|llego|llegado|chegou|recebi|recibi|received|got)\s+(?:\w+\s+){0,3}?"
    r"(?:in\s+error|by\s+mistake|por\s+error|por\s+equivocacion|por\s+engano)\b",
    r"\b(?:i|we)\s+left\s+(?!(?:a|the)\s+(?:message|voicemail|note))[A-Za-z]|\b(?:deje|dejamos|sai|"
    r"saimos)\s+(?:la|a)\s+empresa\b",
)
_add(
    "bank_details_request",
    3.5,
    r"\b(?:nuevo|nueva|new|novo|nova|otro|otra|different|distinto|distinta|diferente)\s+(?:numero\s+"
    r"de\s+)?(?:cuenta|account|conta|iban|banco|bank\s+details|datos\s+bancarios|dados\s+bancarios|"
    r"bank\s+account|cuenta\s+bancaria|conta\s+bancaria)\b",
)

_add(
    "dispute",
    3,
    r"\b(?:factura|invoice|fatura|cobro|cargo|charge|bill|cobranca)\s+(?:\w+\s+){0,3}?(?:anul\w*|"
    r"void\w*|annul\w*|withdrawn|retirad[oa])\b|\b(?:la|lo|a|o|it)\s+(?:anularon|anulaste|anulasteis|"
    r"anularam|voided|cancelaron\s+ustedes|cancelaram)\b",
)
_add(
    "payment_plan_request",
    3.5,
    r"\b(?:agree|set\s+up|arrange|work\s+out)\s+(?:a|an|some)\s+(?:\w+\s+)?(?:schedule|plan|"
    r"arrangement|timetable)\b|\b(?:payment|repayment)\s+schedule\b|\b(?:calendario|cronograma)\s+de\s+"
    r"(?:pagos|pagamentos|abonos)\b",
)

_add(
    "dispute",
    3,
    r"\b(?:price|precio|preco|importe|amount|valor|rate|tarifa|cuota|fee|charge|cargo|mensalidade|"
    r"mensualidad)\s+(?:\w+\s+){0,3}?(?:higher|more\s+expensive|mas\s+alt[oa]|mayor|mas\s+car[oa]|"
    r"maior|mais\s+alt[oa]|mais\s+car[oa]|increased|went\s+up|subio|subieron|aumento|aumentou|"
    r"aumentaron)\b|\b(?:me|nos)\s+(?:suben|subieron|subis|aumentaron|aumentan)\b|"
    r"\b(?:raised|increased|hiked)\s+(?:the|our|my)\s+(?:price|rate|fee)",
    r"\b(?:no|not|nao|won't|will\s+not|we\s+won't)\s+(?:pago|pagamos|pagaremos|paying|pay|be\s+paying|"
    r"vou\s+pagar|pagarei)\s+(?:\w+\s+){0,2}?(?:hasta\s+que|until|till|ate\s+que|mientras|"
    r"unless|a\s+menos\s+que|antes\s+de\s+que)\b|\bso\s+pago\s+quando\b|\bsolo\s+pago\s+cuando\b",
)

RULES: tuple[Rule, ...] = tuple(_RULES)

# A payment act in the present or infinitive ("hago la transferencia", "faço o pix", "se
# paga", "we pay"): with a future date in the same sentence it is a promise.
PAY_ACTION = re.compile(
    r"\b(?:(?:te|le|les|os|se|lo|la|eu|nos|we|i)\s+)?(?:pago|pagamos|paga|pagan|abono|abonamos|"
    r"abona|transfiero|transferimos|transfiro|ingreso|ingresamos|deposito|depositamos|consigno|"
    r"consignamos|liquido|liquidamos|cancelo|cubro|faco|fazemos|quito|quitamos|efetuo|efetuamos|"
    r"efectuamos|acerto|pay|transfer|wire|remit|settle)\b"
    r"|\b(?:hago|hacemos|mando|mandamos|envio|enviamos|realizo|realizamos|emito|emitimos|"
    r"sacamos|faco|fazemos|mando|mandamos|realizamos|efetuamos|efectuamos|send|make|do)\s+"
    r"(?:el|la|un|una|o|a|um|uma|the|a|our)?\s*(?:pago|pagos|transferencia|deposito|ingreso|bizum|"
    r"abono|consignacion|spei|giro|pix|ted|doc|pagamento|boleto|payment|transfer|wire|ach|bacs)\b"
    r"|\b(?:queda|quedara|fica|ficara)\s+(?:abonad|pagad|pag|quitad|liquidad)\w*"
    r"|\b(?:cai|caira|cae|caera|entra|entrara|llega|llegara|lands?|hits?)\s+(?:na|en|in|em)\s+"
    r"(?:la\s+|su\s+|tu\s+|sua\s+|your\s+)?(?:conta|cuenta|account)"
)
PAY_WORD = re.compile(
    r"\b(?:pag\w*|pay\w*|abon\w*|transf\w*|ingres\w*|deposit\w*|liquid\w*|consign\w*|"
    r"settle\w*|wire|remit\w*|efetu\w*|efectu\w*|quit\w*|pix|bizum|ted|cheque|check|remesa|"
    r"funds|bacs|ach|spei|oxxo|boleto|multibanco)\b"
)
# Words that put a payment in the past ("ya", "ayer", "this morning"): then a date is not
# a promise.
PAST_MARK = re.compile(
    r"\b(?:ya|ja|already|just)\s+(?:\w+\s+){0,2}?(?:pag|abon|realiz|transf|deposit|ingres|hic|"
    r"hiz|fiz|fue|foi|sent|paid|made|done|efetu|efectu|mand|envi|cancel|liquid|quit)\w*"
    r"|\b(?:quedo|quedaron|ficou|ficaram)\s+(?:saldad|liquidad|pagad|pag|quitad|abonad)\w*"
    r"|\bse\s+(?:pago|abono|realizo|efectuo|transfirio|deposito|ingreso|hizo|envio|mando|"
    r"liquido|cancelo|consigno)\b"
    r"|\b(?:meant\s+to|iba\s+a|ia\s+pagar|queria\s+pagar|intended\s+to|ended\s+up)\b"
    r"|(?<!\bsera\s)(?<!\bbe\s)(?<!\bser\s)(?<!\bseran\s)(?<!\bserao\s)(?<!\bvai\s)\b(?:made|done|"
    r"completed|processed|submitted|posted|mailed|went|feito|feita|efetuad[oa]|realizad[oa]|"
    r"efectuad[oa]|enviad[oa]|transferid[oa]|depositad[oa])\b"
    r"|\b(?:ayer|antier|anteayer|ontem|yesterday|hoy\s+temprano|hoje\s+cedo|esta\s+manana|"
    r"this\s+morning|earlier|hoje\s+de\s+manha|pasad[oa](?!\s+manana)|passad[oa]|last|hace|ago|faz\s+\w+|"
    r"hicimos|hice|fiz|fizemos|paid|sent|was|were|pague|paguei|realice|efectue|efetuei|"
    r"transferi|deposite|depositei|ingrese|abone|mande|mandei|envie|enviei)\b"
)

_NEGATION = re.compile(
    r"\b(?:no|not|nao|never|nunca|todavia\s+no|aun\s+no|ainda\s+nao|haven't|hasn't|didn't|"
    r"don't|won't|isn't|wasn't|weren't|can't|cannot|ni|sin|yet\s+to)\b[^.,;:!?\n]*$"
)


def _negated(text: str, start: int) -> bool:
    window = text[max(0, start - 28) : start]
    return bool(_NEGATION.search(window))


def combine(weights: list[float]) -> float:
    """One intent's score from its rules' weights: the strongest counts fully, the rest a
    third each (rules overlap: ten ways of saying "paid" are not ten times the evidence)."""
    return max(weights) + (sum(weights) - max(weights)) / 3 if weights else 0.0


def score(text: str) -> dict[str, tuple[list[float], list[str]]]:
    """Per intent: the weights of the rules that match `text`, and what they matched.

    Rules of one intent that match the same words count once, at the highest weight: they
    are the same evidence seen by two patterns.
    """
    found: dict[str, list[tuple[int, int, float, str]]] = {}
    for rule in RULES:
        m = rule.pattern.search(text)
        if m is None:
            continue
        if rule.negatable and _negated(text, m.start()):
            # one negated match does not rule out a later plain one
            m = next(
                (x for x in rule.pattern.finditer(text) if not _negated(text, x.start())), None
            )
            if m is None:
                continue
        spans = found.setdefault(rule.intent, [])
        start, end = m.span()
        overlapping = [i for i, (s, e, _, _) in enumerate(spans) if start < e and s < end]
        if overlapping:
            i = overlapping[0]
            if rule.weight > spans[i][2]:
                spans[i] = (start, end, rule.weight, m.group(0).strip())
            continue
        spans.append((start, end, rule.weight, m.group(0).strip()))
    return {
        intent: ([w for _, _, w, _ in spans], [h for _, _, _, h in spans])
        for intent, spans in found.items()
    }
