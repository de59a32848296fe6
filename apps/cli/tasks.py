"""`dunning tasks ...`: the human tasks the ledger holds (call the customer, decide...)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(help="Human tasks: what people have to do.", no_args_is_help=True)


class TaskFormat(StrEnum):
    json = "json"
    table = "table"


class TaskState(StrEnum):
    open = "open"
    closed = "closed"
    all = "all"


@app.command("list")
def list_command(
    ledger: Annotated[
        str | None,
        typer.Option("--ledger", help="Ledger SQLAlchemy URL (default: DUNNING_LEDGER_URL)."),
    ] = None,
    assignee: Annotated[
        str, typer.Option("--assignee", help="Only this person's (or role's) tasks.")
    ] = "",
    state: Annotated[TaskState, typer.Option("--state", help="Which tasks.")] = TaskState.open,
    output: Annotated[TaskFormat, typer.Option("--format")] = TaskFormat.table,
) -> None:
    """List human tasks, soonest due first: id, invoice, customer, title, assignee, due,
    state. JSON: one object per line.

        dunning tasks list --ledger sqlite:///ledger.db --assignee ana@example.com
    """
    from dunning.ledger import Ledger
    from dunning.ledger.store import LedgerUnavailable
    from dunning.ledger.tasks import TASK_COLUMNS, list_tasks
    from dunning.settings import settings

    url = ledger or settings().ledger_url
    if not url:
        typer.echo("error: no ledger: give --ledger URL or set DUNNING_LEDGER_URL", err=True)
        raise typer.Exit(2)
    try:
        rows = list_tasks(
            Ledger(url), assignee=assignee, state=None if state is TaskState.all else state.value
        )
    except LedgerUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if output is TaskFormat.json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no tasks")
        return
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(TASK_COLUMNS)).fillna("")
    typer.echo(frame.to_string(index=False))
