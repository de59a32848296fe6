"""`dunning policy ...`: check a policy file before a sweep uses it.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dunning.policy import (
    Policy,
    PolicyError,
    Stage,
    load_policy,
    resolve_assignee,
    resolve_recipients,
)

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(help="Check the dunning policy.", no_args_is_help=True)


@app.command("check")
def check(
    policy: Annotated[Path, typer.Option("--policy", help="Policy YAML file to check.")],
    invoices: Annotated[
        Path | None,
        typer.Option(
            "--invoices",
            help="CSV or spreadsheet of invoices: templates are checked in every language "
            "they use (a missing language column: the country's official language).",
        ),
    ] = None,
) -> None:
    """Say what is wrong with a policy (exit 1), or summarize its ladder (exit 0).

    Checked: unknown keys (with their path, the allowed keys and the closest one), values,
    and that every stage's email template exists in every language used (the policy's
    `language`, and with --invoices the invoices' languages), in the policy's
    `templates_dir` or the built-in templates.

        dunning policy check --policy policy.yaml --invoices invoices.csv
    """
    from dunning.render import templates_dir

    root = templates_dir()
    if not (root / "email").is_dir():
        typer.echo(
            f"error: the templates folder {root} has no email/ folder: check DUNNING_TEMPLATES",
            err=True,
        )
        raise typer.Exit(1)
    languages: set[str] = set()
    if invoices is not None:
        languages = _invoice_languages(invoices, policy)
    try:
        loaded = load_policy(policy, languages=languages)
    except PolicyError as exc:
        typer.echo(f"{exc.source}: {len(exc.problems)} problem(s)", err=True)
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for line in summary(loaded, sorted(languages | {loaded.language})):
        typer.echo(line)
    # A wrong bank account is left out, not fatal: the rest of the policy works.
    for line in loaded.replies.refused_accounts:
        typer.echo(f"warning: {line}", err=True)


def summary(policy: Policy, languages: list[str]) -> list[str]:
    """A few lines a person reads to confirm the ladder is the one they meant."""
    lines = [
        f"policy {policy.name!r}: OK, templates checked in {', '.join(languages)}"
        + (f" (overlay {policy.templates_dir})" if policy.templates_dir else ""),
    ]
    ladders = [("default", policy.stages)] + [(s.name, s.stages) for s in policy.segments]
    for name, stages in ladders:
        lines.append(f"ladder {name}:")
        lines.extend(f"  {_stage_line(s)}" for s in sorted(stages, key=lambda s: s.offset_days))
    accounts = policy.replies.accounts()
    if accounts:
        lines.append("bank accounts (answers show those in the invoice's currency):")
        lines.extend(f"  {a.country} {a.currency}  {a.label}" for a in accounts)
    return lines


def _stage_line(stage: Stage) -> str:
    line = (
        f"{stage.offset_days:+d} days  {stage.name}  channel={stage.channel}  tone={stage.tone}"
        f"  template={stage.template_name}"
    )
    esc = stage.escalation
    if esc and esc.human_task:
        line += f"  task={esc.human_task!r} for {esc.assignee} in {esc.task_due_days}d"
    if esc and esc.notify:
        line += f"  notify={','.join(esc.notify)}"
    if esc and esc.customer_status:
        line += f"  status={esc.customer_status}"
    return line


def _invoice_languages(invoices: Path, policy_file: Path) -> set[str]:
    """The languages the invoices' messages go out in, as the plan decides them."""
    import yaml

    from dunning.importers import SourceError, read_invoice_file
    from dunning.plan import plan

    try:
        result = read_invoice_file(invoices)
    except (SourceError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if result.invoices.empty:
        return set()
    # The plan fills in a missing language from the country, with the policy's `language`
    # and `country` as the last resort: read them leniently here, the full check comes after.
    try:
        raw = yaml.safe_load(policy_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raw = {}
    defaults = {k: raw[k] for k in ("language", "country") if isinstance(raw, dict) and k in raw}
    base = Policy.model_validate(load_policy().model_dump() | defaults)
    planned = plan(result.invoices, base, datetime.now(UTC))
    return {str(lang) for lang in planned["language"].dropna().unique() if lang}


def preview(
    records: list[dict[str, Any]], planned: pd.DataFrame, invoices: pd.DataFrame, policy: Policy
) -> list[str]:
    """Add to each planned record (in place) what the stage does besides sending: its
    `escalation` (task title, role, due days, customer status), the `assignee` the task goes
    to for this invoice, who is notified (`notify`), the `customer_status` it sets, and the
    `subject` of the message rendered as the customer would get it. `records` are
    `plan_records(planned)`, in the same order as `planned`'s rows.

    Returns the stages whose template is missing in a language these invoices use (the
    policy was checked in its own `language` only): their subject falls back to English.
    """
    from dunning.policy import missing_templates
    from dunning.render import message_context, render_email

    people = _people(invoices)
    for rec, row in zip(records, planned.itertuples(index=False), strict=True):
        if not rec.get("stage"):
            continue
        stage = policy.stage(rec["stage"], row.segment or None)
        esc = stage.escalation
        owner, manager = people.get(rec["invoice"], ("", ""))
        rec["escalation"] = esc.model_dump() if esc else None
        rec["assignee"] = (
            resolve_assignee(esc.assignee, policy, owner_email=owner, manager_email=manager)
            if esc and esc.human_task
            else None
        )
        rec["notify"] = (
            resolve_recipients(esc.notify, policy, owner_email=owner, manager_email=manager)
            if esc
            else []
        )
        rec["customer_status"] = esc.customer_status if esc else None
        rec["subject"] = (  # an internal stage (channel none) sends the customer nothing
            _subject(stage.template_name, row, policy, message_context, render_email)
            if stage.messages_customer
            else None
        )
    languages = {str(lang) for lang in planned["language"].dropna().unique() if lang}
    return missing_templates(policy, languages) if languages else []


def _people(invoices: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """invoice number -> (owner_email, manager_email), when the source has those columns."""
    import pandas as pd

    if "owner_email" not in invoices and "manager_email" not in invoices:
        return {}
    owners = invoices.get("owner_email", pd.Series("", index=invoices.index)).fillna("")
    managers = invoices.get("manager_email", pd.Series("", index=invoices.index)).fillna("")
    return {
        str(n): (str(o), str(m))
        for n, o, m in zip(invoices["invoice_number"], owners, managers, strict=True)
    }


def _subject(template: str, row: Any, policy: Policy, context: Any, render: Any) -> str:
    """The message's subject on the day it is sent, in the customer's language."""
    import pandas as pd

    local_day = row.send_at.tz_convert(row.timezone).date()
    ctx = context(
        customer_name=row.customer_name or row.customer,
        invoice_number=row.invoice,
        amount_due=float(row.amount_due),
        amount_total=float(row.amount_total),
        currency=row.currency,
        due_date=row.due_date.date(),
        issue_date=row.issue_date.date() if not pd.isna(row.issue_date) else None,
        today=local_day,
        language=row.language,
        country=row.country,
        payment_link=row.payment_link or "",
        stage=row.stage,
        tone=row.tone,
    )
    try:
        return render(template, row.language, ctx, overlay=policy.templates_dir).subject
    except Exception as exc:  # a broken template is shown in the preview, not a crash
        return f"(cannot render {template!r}: {type(exc).__name__}: {exc})"
