"""Retrieval quality of the knowledge base: top-1 hit rate on questions written against the
example knowledge base (docs/examples/knowledge), and how many questions it does not cover
are (rightly) left to a person.

    python bench/knowledge_bench.py        # prints the table for BENCHMARKS.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dunning.knowledge import MIN_SCORE, KnowledgeBase, load_knowledge  # noqa: E402

KNOWLEDGE = ROOT / "docs" / "examples" / "knowledge"

#: (question as a customer would write it, its language, the file and title it should find).
COVERED: list[tuple[str, str, str]] = [
    ("¿Tienen servicio en Valparaíso?", "es", "es/servicio.md › ¿En qué ciudades tienen servicio?"),
    ("hola, llegan hasta concepcion?", "es", "es/servicio.md › ¿En qué ciudades tienen servicio?"),
    ("A qué hora abren los sábados?", "es", "es/servicio.md › ¿Cuál es el horario de atención?"),
    (
        "cuantos dias demora la instalacion de 15 equipos",
        "es",
        "es/servicio.md › ¿Cuánto tarda la instalación?",
    ),
    (
        "El equipo se dañó, ¿lo cubre la garantía?",
        "es",
        "es/servicio.md › ¿Qué garantía tienen los equipos?",
    ),
    (
        "Queremos terminar el contrato, con cuánto aviso?",
        "es",
        "es/servicio.md › ¿Cómo cancelo o cambio mi contrato?",
    ),
    ("¿Se puede pagar con tarjeta de crédito?", "es", "es/pagos.md › ¿Qué medios de pago aceptan?"),
    ("me dejan pagar la factura en 3 cuotas?", "es", "es/pagos.md › ¿Puedo pagar en cuotas?"),
    (
        "¿Cobran interés si pago atrasado?",
        "es",
        "es/pagos.md › ¿Cobran intereses por pago atrasado?",
    ),
    (
        "Cambiamos de razón social, ¿cómo actualizo la facturación?",
        "es",
        "es/pagos.md › ¿Cómo cambio los datos de facturación o la razón social?",
    ),
    ("Do you have technicians in Antofagasta?", "en", "en/service.md › Which cities do you serve?"),
    ("What time do you open on Saturday?", "en", "en/service.md › What are your opening hours?"),
    (
        "Is the warranty valid after a power cut?",
        "en",
        "en/service.md › What warranty do the units have?",
    ),
    (
        "Can we split the payment into instalments?",
        "en",
        "en/payments.md › Can I pay in instalments?",
    ),
    (
        "Do you take credit card payments?",
        "en",
        "en/payments.md › Which payment methods do you accept?",
    ),
    (
        "When is the invoice issued each month?",
        "en",
        "en/payments.md › When do you issue invoices?",
    ),
    ("Vocês atendem em Viña del Mar?", "pt", "pt/servico.md › Em quais cidades vocês atendem?"),
    (
        "Posso pagar com cartão de crédito?",
        "pt",
        "pt/pagamentos.md › Quais formas de pagamento vocês aceitam?",
    ),
    (
        "Tem juros se eu pagar com atraso?",
        "pt",
        "pt/pagamentos.md › Vocês cobram juros por atraso?",
    ),
    (
        "Qual a garantia dos equipamentos instalados?",
        "pt",
        "pt/servico.md › Qual é a garantia dos equipamentos?",
    ),
]

#: Questions the example knowledge base does not answer: the draft must hand them to a person.
NOT_COVERED: list[tuple[str, str]] = [
    ("¿Venden repuestos de impresoras HP?", "es"),
    ("¿Tienen estacionamiento para clientes?", "es"),
    ("Is your company hiring accountants?", "en"),
    ("What's the weather like tomorrow?", "en"),
    ("Quanto custa o frete para Recife?", "pt"),
    ("Vocês fazem sites para empresas?", "pt"),
]


def measure(kb: KnowledgeBase) -> dict[str, float]:
    """Top-1 hit rate on `COVERED` (the best relevant passage is the expected one) and the
    share of `NOT_COVERED` questions with no relevant passage."""
    hits = 0
    for question, lang, expected in COVERED:
        found = kb.search(question, lang=lang, k=1)
        hits += bool(found) and found[0].passage.cite == expected
    handed = sum(not kb.search(q, lang=lang, k=1) for q, lang in NOT_COVERED)
    return {
        "covered": len(COVERED),
        "top1": hits / len(COVERED),
        "not_covered": len(NOT_COVERED),
        "handed_to_person": handed / len(NOT_COVERED),
    }


def misses(kb: KnowledgeBase) -> list[str]:
    """What went wrong, one line each (for tuning a knowledge base)."""
    out = []
    for question, lang, expected in COVERED:
        found = kb.search(question, lang=lang, k=1)
        got = f"{found[0].passage.cite} ({found[0].score})" if found else "nothing"
        if not found or found[0].passage.cite != expected:
            out.append(f"MISS {question!r}: {got}")
    for question, lang in NOT_COVERED:
        found = kb.search(question, lang=lang, k=1)
        if found:
            out.append(f"FALSE {question!r}: {found[0].passage.cite} ({found[0].score})")
    return out


def main() -> None:
    kb = load_knowledge(KNOWLEDGE)
    result = measure(kb)
    print(f"{len(kb)} passages; threshold {MIN_SCORE}")
    print("| questions | measure | result |\n|---|---|---|")
    print(
        f"| {result['covered']} covered (es 10, en 6, pt 4) | top-1 passage is the right one "
        f"| {result['top1']:.0%} |"
    )
    print(
        f"| {result['not_covered']} not covered | no passage relevant: a person answers "
        f"| {result['handed_to_person']:.0%} |"
    )
    for line in misses(kb):
        print(line)


if __name__ == "__main__":
    main()
