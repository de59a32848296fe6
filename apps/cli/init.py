"""`dunning init [DIR]`: the three files a new project fills in, each commented.

- `.env`: every setting (README.md, "Settings") at its default, commented out, except
  `DUNNING_POLICY=policy.yaml` so that the policy written beside it is the one used;
- `policy.yaml`: the built-in ladder (`dunning/default_policy.yaml`), to edit;
- `mapping.yaml`: how to read the company's invoice file (`--mapping mapping.yaml`): an
  example of every key `dunning.importers.ReadOptions` accepts.

Existing files are left alone unless `--force`: they may hold a company's own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dunning.importers import MAPPING_FILE_EXAMPLE
from dunning.policy import DEFAULT_POLICY_FILE
from dunning.settings import ENV_FILE, dotenv_template

POLICY_FILE = "policy.yaml"
MAPPING_FILE = "mapping.yaml"

POLICY_HEADER = """\
# The dunning policy: the ladder of stages (days from the due date, channel, template,
# tone, escalation), the sending window, segments and replies. A copy of the built-in
# ladder; the .env beside it selects it (DUNNING_POLICY=policy.yaml). Check an edit with
# `dunning plan --invoices FILE --policy policy.yaml`.

"""

NEXT_STEPS = """\
Next:
  1. {mapping}: map your invoice file's headers, date and number formats, then check
     what is understood: dunning import check --invoices YOUR_FILE --mapping {mapping}
  2. {env}: set DUNNING_LEDGER_URL, DUNNING_REPORT_TO and DUNNING_TIMEZONE (and the
     secrets of the webhooks and the desk if you use them).
  3. {policy}: adjust the ladder if the built-in one does not suit you.
  4. Plan without sending anything:
     dunning plan --invoices YOUR_FILE --mapping {mapping} --format table"""


def init(
    directory: Annotated[
        Path, typer.Argument(help="Project folder (created if missing; default: here).")
    ] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Write a commented .env, a policy.yaml (the built-in ladder) and a mapping.yaml to
    fill in, then print what to fill in next. Existing files are kept unless --force."""
    files = {
        directory / ENV_FILE: dotenv_template({"policy": POLICY_FILE}),
        directory / POLICY_FILE: POLICY_HEADER + DEFAULT_POLICY_FILE.read_text(encoding="utf-8"),
        directory / MAPPING_FILE: MAPPING_FILE_EXAMPLE,
    }
    existing = [path for path in files if path.exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        typer.echo(f"error: nothing written, already there: {names} (--force overwrites)", err=True)
        raise typer.Exit(1)
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {path}")
    typer.echo(
        NEXT_STEPS.format(
            env=directory / ENV_FILE,
            policy=directory / POLICY_FILE,
            mapping=directory / MAPPING_FILE,
        )
    )
