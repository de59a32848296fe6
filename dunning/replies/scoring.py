"""Weighted patterns per intent, scored on normalized text (lowercase, no accents, typos repaired).

Each rule adds its weight to one intent when it matches; the classifier compares the
totals. Weights: 3 is a phrase that says the intent on its own ("ya pagamos", "plan de
pagos"), 2 a strong hint, 1 a weak one. Rules marked `negatable` do not count when a
negation stands just before them in the same clause ("todavía no hemos pagado").

The patterns are data, not code: one YAML file per intent in `wordlists/` (its README.md says
how to read and add to them), plus `fragments.yaml` (pieces several patterns share),
`signals.yaml` (patterns the classifier asks about directly: anger, pay words, ...) and
`documents.yaml` (which document a request names, `document_kind`). This module loads them
once, checks them (a mistake is a `RulesError` naming the file, the entry and the key) and
scores a text against them.

The patterns cover Spanish (Spain and Latin America), English (US and UK) and Portuguese
(Brazil and Portugal) together: after normalization the three rarely collide, and a reply
mixing two languages still scores. Every rule is tried on every reply; a rule's `lang` says
which languages its words come from, for the person who edits it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from dunning.replies.language import LANGS

#: The word lists shipped with the package.
DATA_DIR = Path(__file__).with_name("wordlists")

FRAGMENTS_FILE = "fragments.yaml"
SIGNALS_FILE = "signals.yaml"
#: Which document a request names: one pattern per kind (`document_kind`).
DOCUMENTS_FILE = "documents.yaml"
_SHARED_FILES = (FRAGMENTS_FILE, SIGNALS_FILE, DOCUMENTS_FILE)

#: The patterns `signals.yaml` must define, and nothing else.
SIGNALS: tuple[str, ...] = (
    "anger",
    "complaint_hint",
    "pay_action",
    "pay_word",
    "past_mark",
    "negation",
)

_RULE_KEYS = {"lang": True, "weight": True, "pattern": True, "negatable": False}  # key: required
_FRAGMENT = re.compile(r"\$\{(\w*)\}")


class RulesError(ValueError):
    """A word-list file that cannot be used; the message names the file, entry and key."""


@dataclass(frozen=True)
class Rule:
    """One pattern: the intent it points to, its weight, and whether a negation cancels it."""

    intent: str
    weight: float
    pattern: re.Pattern[str]
    negatable: bool = False
    lang: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleSet:
    """Every rule, in the order the files list them, the signal patterns by name, and the
    pattern of each document kind (`documents.yaml`, in its order)."""

    rules: tuple[Rule, ...]
    signals: Mapping[str, re.Pattern[str]]
    documents: Mapping[str, re.Pattern[str]] = field(default_factory=lambda: MappingProxyType({}))


class _Entry(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its line, so an error can say where to look."""

    line: int = 0


# libyaml's loader when PyYAML has it: ten times faster than the pure-Python one on these files.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, with mappings read as `_Entry` (see the constructor below)."""


def _construct_entry(loader: _Loader, node: yaml.MappingNode) -> _Entry:
    entry = _Entry(loader.construct_mapping(node, deep=True))
    entry.line = node.start_mark.line + 1
    return entry


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_entry)


@functools.cache
def load_rules(
    directory: Path, intents: tuple[str, ...], document_kinds: tuple[str, ...] | None = None
) -> RuleSet:
    """Load and check the word lists in `directory` (once per directory: the result is cached).

    Every `<intent>.yaml` file must be named after one of `intents`; the other files are
    `fragments.yaml`, `signals.yaml` and (optional) `documents.yaml`, whose keys must be
    among `document_kinds` when given. Raises `RulesError` on the first mistake found.
    """
    if not directory.is_dir():
        raise RulesError(f"{directory}: no such folder of word lists")
    fragments = _load_fragments(directory / FRAGMENTS_FILE)
    signals = _load_signals(directory / SIGNALS_FILE, fragments)
    documents = _load_documents(directory / DOCUMENTS_FILE, fragments, document_kinds)
    rules: list[Rule] = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name in _SHARED_FILES:
            continue
        if path.stem not in intents:
            raise RulesError(
                f"{path}: unknown intent {path.stem!r} (the file name must be one of: "
                f"{', '.join(intents)})"
            )
        rules.extend(_load_intent(path, fragments))
    return RuleSet(tuple(rules), MappingProxyType(signals), MappingProxyType(documents))


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise RulesError(f"{path}: not valid YAML: {exc}") from None


def _mapping_of_text(path: Path) -> dict[str, str]:
    data = _read(path)
    if not isinstance(data, dict):
        raise RulesError(f"{path}: expected a mapping of name: pattern")
    for name, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise RulesError(f"{path}, key {name!r}: expected a pattern (text)")
    return data


def _load_fragments(path: Path) -> dict[str, str]:
    fragments = {}
    for name, text in _mapping_of_text(path).items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", str(name)):
            raise RulesError(f"{path}, key {name!r}: a fragment name is lowercase_with_underscores")
        if "${" in text:
            raise RulesError(f"{path}, key {name!r}: a fragment cannot use another fragment")
        fragments[name] = _joined(text)
        _compile(fragments[name], f"{path}, key {name!r}")
    return fragments


def _load_signals(path: Path, fragments: dict[str, str]) -> dict[str, re.Pattern[str]]:
    data = _mapping_of_text(path)
    for name in data:
        if name not in SIGNALS:
            raise RulesError(f"{path}: unknown key {name!r} (expected: {', '.join(SIGNALS)})")
    missing = [name for name in SIGNALS if name not in data]
    if missing:
        raise RulesError(f"{path}: missing key {missing[0]!r} (expected: {', '.join(SIGNALS)})")
    signals = {}
    for name in SIGNALS:
        where = f"{path}, key {name!r}"
        signals[name] = _compile(_expand(data[name], fragments, where), where)
    return signals


def _load_documents(
    path: Path, fragments: dict[str, str], kinds: tuple[str, ...] | None
) -> dict[str, re.Pattern[str]]:
    if not path.exists():
        return {}
    documents = {}
    for name, text in _mapping_of_text(path).items():
        if kinds is not None and name not in kinds:
            raise RulesError(
                f"{path}: unknown document kind {name!r} (expected one of: {', '.join(kinds)})"
            )
        where = f"{path}, key {name!r}"
        documents[str(name)] = _compile(_expand(text, fragments, where), where)
    return documents


def _load_intent(path: Path, fragments: dict[str, str]) -> list[Rule]:
    data = _read(path)
    if not isinstance(data, list):
        raise RulesError(f"{path}: expected a list of rules (lines starting with '- ')")
    rules = []
    for n, entry in enumerate(data, start=1):
        where = f"{path}, rule {n}" + (f" (line {entry.line})" if isinstance(entry, _Entry) else "")
        if not isinstance(entry, dict):
            raise RulesError(f"{where}: expected keys {', '.join(_RULE_KEYS)}")
        for key in entry:
            if key not in _RULE_KEYS:
                raise RulesError(f"{where}: unknown key {key!r} (allowed: {', '.join(_RULE_KEYS)})")
        for key, required in _RULE_KEYS.items():
            if required and key not in entry:
                raise RulesError(f"{where}: missing key {key!r}")
        weight, negatable, lang = entry["weight"], entry.get("negatable", False), entry["lang"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise RulesError(f"{where}, key 'weight': expected a positive number, got {weight!r}")
        if not isinstance(negatable, bool):
            raise RulesError(f"{where}, key 'negatable': expected true or false")
        if not isinstance(lang, list) or not lang:
            raise RulesError(f"{where}, key 'lang': expected a list such as [es, pt]")
        for code in lang:
            if code not in LANGS:
                raise RulesError(
                    f"{where}, key 'lang': unknown language {code!r} (known: {', '.join(LANGS)})"
                )
        if not isinstance(entry["pattern"], str) or not entry["pattern"].strip():
            raise RulesError(f"{where}, key 'pattern': expected a pattern (text)")
        pattern = _expand(entry["pattern"], fragments, f"{where}, key 'pattern'")
        rules.append(
            Rule(
                intent=path.stem,
                weight=weight,
                pattern=_compile(pattern, f"{where}, key 'pattern'"),
                negatable=negatable,
                lang=tuple(lang),
            )
        )
    return rules


def _joined(text: str) -> str:
    """A pattern as written over several lines, as one line.

    Line breaks and indentation are only there for reading: the lines are joined with
    nothing between them (a space the pattern needs is written `\\s`).
    """
    return "".join(line.strip() for line in text.splitlines())


def _expand(text: str, fragments: dict[str, str], where: str) -> str:
    def fragment(m: re.Match[str]) -> str:
        if m.group(1) not in fragments:
            known = ", ".join(f"${{{name}}}" for name in fragments) or "none"
            raise RulesError(
                f"{where}: unknown fragment ${{{m.group(1)}}} ({FRAGMENTS_FILE} defines: {known})"
            )
        return fragments[m.group(1)]

    return _FRAGMENT.sub(fragment, _joined(text))


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RulesError(f"{where}: not a valid regular expression: {exc}") from None


def combine(weights: list[float]) -> float:
    """One intent's score from its rules' weights: the strongest counts fully, the rest a
    third each (rules overlap: ten ways of saying "paid" are not ten times the evidence)."""
    return max(weights) + (sum(weights) - max(weights)) / 3 if weights else 0.0


def score(text: str, rules: RuleSet) -> dict[str, tuple[list[float], list[str]]]:
    """Per intent: the weights of the rules that match `text`, and what they matched.

    Rules of one intent that match the same words count once, at the highest weight: they
    are the same evidence seen by two patterns.
    """
    negation = rules.signals["negation"]

    def negated(start: int) -> bool:
        return bool(negation.search(text[max(0, start - 28) : start]))

    found: dict[str, list[tuple[int, int, float, str]]] = {}
    for rule in rules.rules:
        m = rule.pattern.search(text)
        if m is None:
            continue
        if rule.negatable and negated(m.start()):
            # one negated match does not rule out a later plain one
            m = next((x for x in rule.pattern.finditer(text) if not negated(x.start())), None)
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


def document_kind(text: str, rules: RuleSet) -> str | None:
    """The document kind `text` names first (earliest match; on a tie, the kind listed first
    in `documents.yaml`), or None when it names none."""
    found = [
        (m.start(), n, kind)
        for n, (kind, pattern) in enumerate(rules.documents.items())
        if (m := pattern.search(text))
    ]
    return min(found)[2] if found else None
