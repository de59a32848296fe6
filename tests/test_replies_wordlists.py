"""The reply word lists as data: the shipped files load, and a mistake in one is a clear error.

Each error test copies the shipped word lists to a temporary folder, breaks one thing, and
checks that loading names the file, the rule and the key a person has to fix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dunning.replies import INTENTS, rules, scoring
from dunning.replies.scoring import RulesError, load_rules


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    """A private copy of the shipped word lists, to break."""
    folder = tmp_path / "wordlists"
    shutil.copytree(scoring.DATA_DIR, folder)
    return folder


def _load(folder: Path) -> scoring.RuleSet:
    load_rules.cache_clear()  # each test edits the folder: load it afresh
    return load_rules(folder, INTENTS)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_shipped_lists_load_every_intent_and_signal() -> None:
    ruleset = rules.rule_set()
    assert {rule.intent for rule in ruleset.rules} == set(INTENTS)
    assert set(ruleset.signals) == set(scoring.SIGNALS)
    assert all(rule.lang and rule.weight > 0 for rule in ruleset.rules)


def test_a_copy_loads_like_the_shipped_lists(lists: Path) -> None:
    copy = _load(lists)
    shipped = rules.rule_set()
    assert [(r.intent, r.pattern.pattern, r.weight) for r in copy.rules] == [
        (r.intent, r.pattern.pattern, r.weight) for r in shipped.rules
    ]


def test_pattern_lines_are_joined_and_fragments_inserted(lists: Path) -> None:
    (lists / "opt_out.yaml").write_text(
        "- lang: [es]\n  weight: 2\n  pattern: |\n    \\bno\\s+me\\s+\n    (?:escriban|llamen)\n"
        "- lang: [en]\n  weight: 1\n  pattern: |\n    \\bstop\\b${not_file}\n",
        encoding="utf-8",
    )
    opt_out = [r for r in _load(lists).rules if r.intent == "opt_out"]
    assert opt_out[0].pattern.pattern == r"\bno\s+me\s+(?:escriban|llamen)"
    assert opt_out[1].pattern.pattern.startswith(r"\bstop\b(?:\A|")
    assert scoring.score("no me escriban mas", _load(lists))["opt_out"] == (
        [2],
        ["no me escriban"],
    )


# (file, text in it, replaced by, what the error must say)
_MISTAKES = [
    pytest.param(
        "dispute.yaml",
        "  weight: 3\n",
        "  wieght: 3\n",
        r"dispute\.yaml, rule 1 \(line \d+\): unknown key 'wieght' \(allowed: lang,",
        id="unknown key",
    ),
    pytest.param(
        "opt_out.yaml",
        "- lang: [es]\n  weight: 4\n",
        "- weight: 4\n",
        r"opt_out\.yaml, rule 1 .*: missing key 'lang'",
        id="missing key",
    ),
    pytest.param(
        "opt_out.yaml",
        "- lang: [es]\n",
        "- lang: [es, fr]\n",
        r"opt_out\.yaml, rule 1 .*, key 'lang': unknown language 'fr'",
        id="unknown language",
    ),
    pytest.param(
        "opt_out.yaml",
        "  weight: 4\n",
        "  weight: strong\n",
        r"opt_out\.yaml, rule 1 .*, key 'weight': expected a positive number",
        id="weight not a number",
    ),
    pytest.param(
        "other.yaml",
        "  pattern: |\n",
        "  pattern: |\n    (?:unclosed\n",
        r"other\.yaml, rule 1 .*, key 'pattern': not a valid regular expression",
        id="pattern does not compile",
    ),
    pytest.param(
        "promise_to_pay.yaml",
        "${time_after}",
        "${time_afterwards}",
        r"promise_to_pay\.yaml, rule \d+ .*: unknown fragment \$\{time_afterwards\}",
        id="unknown fragment",
    ),
    pytest.param(
        "signals.yaml",
        "\nanger: |",
        "\nangry: |",
        r"signals\.yaml: unknown key 'angry'",
        id="unknown signal",
    ),
    pytest.param(
        "opt_out.yaml",
        "- lang: [es]\n",
        "- lang: [es\n",
        r"opt_out\.yaml: not valid YAML",
        id="not YAML",
    ),
]


@pytest.mark.parametrize(("name", "old", "new", "message"), _MISTAKES)
def test_a_mistake_names_the_file_rule_and_key(
    lists: Path, name: str, old: str, new: str, message: str
) -> None:
    _replace(lists / name, old, new)
    with pytest.raises(RulesError, match=message):
        _load(lists)


def test_unknown_intent_names_the_file(lists: Path) -> None:
    shutil.copy(lists / "dispute.yaml", lists / "complaint.yaml")
    with pytest.raises(RulesError, match=r"complaint\.yaml: unknown intent 'complaint'"):
        _load(lists)
