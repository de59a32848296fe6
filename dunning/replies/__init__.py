"""Reply understanding: what a customer's answer to a reminder means.

`classify(text, received_on, lang=None)` returns a `Classification`: one of `INTENTS`, a
confidence, the language, the promised date for promises, an angry/complaint flag and, for
wrong-contact replies, the new contact found in the text, and for document requests the
kind of document asked for (`DOCUMENT_KINDS`). It runs offline (rules and date
patterns; no model download). An OpenAI-compatible LLM can be consulted as a fallback for
low-confidence replies: see `dunning.replies.llm`.

    >>> from datetime import date
    >>> from dunning.replies import classify
    >>> classify("Pagaremos a fin de mes", received_on=date(2025, 3, 12)).promise_date
    datetime.date(2025, 3, 31)
"""

from dunning.replies.classify import (
    DOCUMENT_KINDS,
    INTENTS,
    Classification,
    classify,
    classify_many,
)

__all__ = ["DOCUMENT_KINDS", "INTENTS", "Classification", "classify", "classify_many"]
