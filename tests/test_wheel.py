"""`pip install .` works, not only `pip install -e .`: the wheel carries the templates.

Builds a wheel of the working tree (with this venv's setuptools, no download), installs it
in a fresh venv that sees the already-installed dependencies but not the editable project,
and renders a reminder from a folder outside the repository. About 15-30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
import setuptools

pytestmark = pytest.mark.slow  # builds and installs a wheel

REPO = Path(__file__).resolve().parents[1]
NBSP = "\u00a0"

# Left out of the copy that is built: what no package holds (venv, ledgers, git, tests,
# benches, earlier builds) and caches anywhere.
TOP_LEVEL_SKIPPED = {".venv", "var", ".git", "build", "dist", "tests", "bench"}
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache")


def not_copied(folder: str, names: list[str]) -> set[str]:
    skipped = set(CACHES(folder, names))
    if Path(folder) == REPO:
        skipped |= {n for n in names if n in TOP_LEVEL_SKIPPED or n.endswith(".egg-info")}
    return skipped


# Run by the fresh venv's Python, in a folder outside the repository.
RENDER = textwrap.dedent(
    """
    import json, sys
    from datetime import date

    import dunning
    from dunning.render import message_context, render_email, templates_dir
    from dunning.whatsapp.templates import TemplateBook

    context = message_context(
        customer_name="Ferretería Acme SL", invoice_number="F-2026-0042",
        amount_due=1234.56, amount_total=1234.56, currency="EUR",
        due_date=date(2026, 12, 1), issue_date=date(2026, 11, 1), today=date(2026, 12, 9),
        language="es", country="ES", payment_link="https://pay.example.com/i/F-2026-0042",
    )
    msg = render_email("overdue_7", "es", context)
    json.dump({
        "prefix": sys.prefix,
        "dunning": dunning.__file__,
        "templates": str(templates_dir()),
        "subject": msg.subject, "text": msg.text, "html": msg.html, "language": msg.language,
        "whatsapp": TemplateBook.load().spec("overdue_7", "es").name,
    }, sys.stdout)
    """
)


PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


def _run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, **kwargs
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built from a copy of the working tree."""
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(
            f"setuptools {setuptools.__version__} cannot build this project (needs >= 77 for "
            "the SPDX license): `pip install -r requirements.lock`"
        )
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(REPO, source, ignore=not_copied)
    dist = work / "dist"
    _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
        "--wheel-dir", dist, source,
    )  # fmt: skip
    (built,) = dist.glob("prefect_dunning-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed and this venv's dependencies visible."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # This venv's pip installs into the new one (no second pip to bootstrap).
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel)
    # The dependencies: a path line in a .pth adds the directory but does not run the .pth
    # files inside it, so the editable install's finder stays out of the new venv.
    site = Path(_run(python, "-c", PURELIB).stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "main_venv_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return python


def test_the_wheel_carries_every_template(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packed = {n for n in archive.namelist() if n.startswith("templates/")}
    on_disk = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "templates").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert on_disk and on_disk <= packed, sorted(on_disk - packed)


def test_an_installed_wheel_renders_a_reminder(fresh_python: Path, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "DUNNING_TEMPLATES", "VIRTUAL_ENV", "PYTHONHOME"}
    }
    out = json.loads(_run(fresh_python, "-c", RENDER, cwd=tmp_path, env=env).stdout)
    prefix = Path(out["prefix"])
    # The wheel's code and templates, not the source tree's.
    assert Path(out["dunning"]).is_relative_to(prefix), out["dunning"]
    assert Path(out["templates"]).is_relative_to(prefix), out["templates"]
    assert not Path(out["dunning"]).is_relative_to(REPO)
    assert out["language"] == "es"
    assert "F-2026-0042" in out["subject"]
    for body in (out["text"], out["html"]):
        assert "F-2026-0042" in body
        assert f"1.234,56{NBSP}€" in body
        assert "Ferretería Acme SL" in body
    assert 'href="https://pay.example.com/i/F-2026-0042"' in out["html"]
    assert out["whatsapp"] == "dunning_overdue_7"
