"""One door to the ledger: no code outside `dunning/ledger/` talks SQL to it.

Read with the `ast` module, so comments and strings that mention SQLAlchemy do not count, and
imports inside functions do.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dunning", "apps", "tasks", "flows", "blocks")
LEDGER = ROOT / "dunning" / "ledger"
SQL_MODULES = ("sqlalchemy", "sqlmodel")
#: Calls that run SQL or open a database session, by the called name.
SQL_CALLS = frozenset(
    {"execute", "exec", "exec_driver_sql", "Session", "read_sql", "read_sql_query"}
)


def _outside_ledger() -> list[Path]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    return sorted(p for p in files if LEDGER not in p.parents)


def sql_uses(source: str) -> list[str]:
    """Where `source` imports SQLAlchemy/SQLModel, runs a statement, opens a session or
    reaches for an engine: `line: what`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        found += [(node.lineno, f"import {m}") for m in modules if m.split(".")[0] in SQL_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in SQL_CALLS:
                found.append((node.lineno, f"{name}(...)"))
        if isinstance(node, ast.Attribute) and node.attr == "engine":
            found.append((node.lineno, ".engine"))
    return [f"{line}: {what}" for line, what in sorted(found)]


def test_the_check_sees_sql_in_every_form() -> None:
    source = (
        "import sqlalchemy as sa\n"
        "from sqlmodel import select\n"
        "def f(ledger):\n"
        "    from sqlalchemy.exc import IntegrityError\n"
        "    with Session(ledger.engine) as s:\n"
        "        s.execute(select(1))\n"
        "    # sqlalchemy in a comment, 'execute(' in a string: neither counts\n"
        "    return 'execute('\n"
    )
    assert sql_uses(source) == [
        "1: import sqlalchemy",
        "2: import sqlmodel",
        "4: import sqlalchemy.exc",
        "5: .engine",
        "5: Session(...)",
        "6: execute(...)",
    ]


def test_the_check_reads_the_whole_tree() -> None:
    files = {p.relative_to(ROOT).as_posix() for p in _outside_ledger()}
    assert {"dunning/crm.py", "apps/desk/queries.py", "blocks/ledger.py"} <= files
    assert not any(f.startswith("dunning/ledger/") for f in files)
    assert sql_uses((LEDGER / "store.py").read_text(encoding="utf-8"))  # it does SQL


@pytest.mark.parametrize("path", _outside_ledger(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_sql_outside_the_ledger(path: Path) -> None:
    uses = sql_uses(path.read_text(encoding="utf-8"))
    assert not uses, (
        f"{path.relative_to(ROOT)} talks to the database itself ({'; '.join(uses)}): "
        "move the query into dunning/ledger/ and call it from here"
    )
