"""The reply rules the classifier scores: the word lists in `wordlists/`, loaded once.

The patterns are data (one YAML file per intent; `wordlists/README.md` says how to read and
add to them) and `scoring.py` loads, checks and scores them. This module gives the
classifier the rule set it uses under the names it asks for: `score`, `combine`,
`document_kind`, `RULES` and the signal patterns `ANGER`, `COMPLAINT_HINT`, `PAY_ACTION`,
`PAY_WORD`, `PAST_MARK`.
"""

from __future__ import annotations

import functools
from typing import Any

from dunning.replies import scoring
from dunning.replies.scoring import RuleSet, combine  # noqa: F401 - combine: for classify

# The module attributes that are signal patterns, and their names in signals.yaml.
_SIGNALS = {
    "ANGER": "anger",
    "COMPLAINT_HINT": "complaint_hint",
    "PAY_ACTION": "pay_action",
    "PAY_WORD": "pay_word",
    "PAST_MARK": "past_mark",
}


@functools.cache  # scoring caches the load; this saves the per-call import below
def rule_set() -> RuleSet:
    """The shipped word lists, loaded and checked on first use."""
    # Imported here, not at the top: classify imports this module before it defines INTENTS,
    # the one list of intents a rule file may be named after.
    from dunning.replies.classify import DOCUMENT_KINDS, INTENTS

    return scoring.load_rules(scoring.DATA_DIR, INTENTS, DOCUMENT_KINDS)


def score(text: str) -> dict[str, tuple[list[float], list[str]]]:
    """Per intent: the weights of the rules that match `text`, and what they matched."""
    return scoring.score(text, rule_set())


def document_kind(text: str) -> str | None:
    """The document kind (`documents.yaml`) that normalized `text` names first, or None."""
    return scoring.document_kind(text, rule_set())


def __getattr__(name: str) -> Any:
    """`RULES` and the signal patterns (`ANGER`, ...), read from the loaded rule set."""
    if name == "RULES":
        return rule_set().rules
    if name in _SIGNALS:
        return rule_set().signals[_SIGNALS[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
