"""`dunning init [DIR]`: a commented .env, the default ladder as policy.yaml and a mapping
file, each usable as written; existing files kept unless --force; what to fill in next."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values
from typer.testing import CliRunner

from apps.cli.main import app
from dunning.importers import load_mapping_file
from dunning.policy import default_policy, load_policy
from dunning.settings import Settings, known_names, settings

ROOT = Path(__file__).resolve().parent.parent


def init(*args: str):
    return CliRunner().invoke(app, ["init", *args])


def test_init_writes_three_commented_files_that_work_as_written(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.upper().startswith(("DUNNING_", "DEMO_")):
            monkeypatch.delenv(name)
    project = tmp_path / "acme"
    result = init(str(project))
    assert result.exit_code == 0, result.output
    env, policy, mapping = project / ".env", project / "policy.yaml", project / "mapping.yaml"
    for path in (env, policy, mapping):
        assert f"wrote {path}" in result.output
    # What to do next names each file and the commands that check it.
    assert "Next:" in result.output and "DUNNING_LEDGER_URL" in result.output
    assert f"--mapping {mapping}" in result.output

    # .env: every setting, each under a comment; only the policy is set (to the file beside it).
    text = env.read_text()
    for name in known_names():
        assert f"# {name}=" in text or f"\n{name}=" in text, name
    assert dotenv_values(env) == {"DUNNING_POLICY": "policy.yaml"}
    assert "# DUNNING_RISK_THREADS=1" in text and "# DEMO_WEBHOOK_PORT=8787" in text
    monkeypatch.chdir(project)
    current = settings()  # no unknown key, no bad value
    assert current.policy_file() == Path("policy.yaml")
    assert current.model_dump(exclude={"policy"}) == Settings(_env_file=None).model_dump(
        exclude={"policy"}
    )

    # policy.yaml: the built-in ladder, commented; mapping.yaml: read by --mapping.
    assert policy.read_text().startswith("# The dunning policy")
    assert load_policy(policy) == default_policy()
    options = load_mapping_file(mapping)
    assert options.column_mapping["due_date"] == "Vencimiento"
    assert (options.date_format, options.decimal_separator) == ("%d/%m/%Y", ",")
    assert mapping.read_text().count("#") >= 5


def test_init_keeps_existing_files_unless_forced(tmp_path):
    env = tmp_path / ".env"
    env.write_text("DUNNING_REPORT_TO=cfo@acme.example\n")
    result = init(str(tmp_path))
    assert result.exit_code == 1
    assert f"already there: {env}" in result.output and "--force" in result.output
    assert env.read_text() == "DUNNING_REPORT_TO=cfo@acme.example\n"
    assert not (tmp_path / "policy.yaml").exists()  # nothing written at all
    forced = init(str(tmp_path), "--force")
    assert forced.exit_code == 0, forced.output
    assert "DUNNING_POLICY=policy.yaml" in env.read_text()


@pytest.mark.parametrize("where", [[], ["."]])
def test_init_in_the_working_directory_as_a_command(tmp_path, where):
    run = subprocess.run(
        [sys.executable, "-m", "apps.cli", "init", *where],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", "mapping.yaml", "policy.yaml"]
