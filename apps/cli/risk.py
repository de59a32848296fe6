"""`dunning risk ...`: Payment-risk scoring: train and score who will pay late.

Heavy libraries are imported inside the commands so that `dunning plan` stays fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

    from dunning.risk import RiskData

app = typer.Typer(
    help="Payment-risk scoring: train and score who will pay late.", no_args_is_help=True
)

#: Problem lines printed to stderr before "... and N more" (all of them are in the output).
_SHOWN_PROBLEMS = 20


class Format(StrEnum):
    sap = "sap"
    ibm = "ibm"
    ledger = "ledger"


FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        help="sap: SAP FI line items CSV(.gz); ibm: IBM AR sample CSV; ledger: a ledger URL "
        "(e.g. sqlite:///var/ledger.db)",
    ),
]
ModelOption = Annotated[Path, typer.Option("--model", help="Model file (joblib; + .json)")]


@app.command()
def train(
    history: Annotated[
        str, typer.Option("--history", help="History file, or the ledger URL with --format ledger")
    ],
    fmt: FormatOption,
    model: ModelOption,
    split_date: Annotated[
        str | None,
        typer.Option(
            "--split-date",
            help="Evaluate on invoices issued on or after this day (YYYY-MM-DD), train on "
            "earlier ones; default: the month holding the 70th percentile of issue dates",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the trees")] = 0,
) -> None:
    """Train the payment-risk model on a history, print a time-split evaluation, save it.

    The evaluation trains on invoices issued before the split day and measures AUC, Brier
    score and a calibration table on the later ones, beside a plain baseline (each
    customer's past late share). The saved model is then trained on the whole history.

    Example:
        dunning risk train --history ../shared/data/sap_ar_2017_2018.csv.gz --format sap \\
            --model var/risk-sap.joblib --split-date 2018-07-01
    """
    import pandas as pd

    from dunning.risk import RiskModel, RiskModelError
    from dunning.risk.evaluation import default_split, format_evaluation, time_split_evaluation

    data = _read(history, fmt)
    _summary(data, fmt)
    frame = data.frame
    try:
        split = pd.Timestamp(split_date) if split_date else default_split(frame)
    except ValueError:
        _fail(f"--split-date {split_date!r} is not a date; use YYYY-MM-DD")
    evaluation = None
    try:
        evaluation = time_split_evaluation(frame, split, categorical=data.categorical, seed=seed)
        typer.echo(format_evaluation(evaluation))
    except RiskModelError as exc:
        typer.echo(f"no time-split evaluation: {exc}", err=True)
    try:
        fitted = RiskModel.fit(frame, categorical=data.categorical, seed=seed)
    except RiskModelError as exc:
        _fail(str(exc))
    fitted.metadata["training"]["source"] = {"format": fmt.value, "path": _shown(history, fmt)}
    fitted.metadata["evaluation"] = evaluation.as_dict() if evaluation else None
    fitted.save(model)
    t = fitted.metadata["training"]
    typer.echo(
        f"model trained on all {t['rows']} invoices issued {t['issue_date_from']}.."
        f"{t['issue_date_to']} (late {t['late_rate']:.1%}; calibration: {t['calibration']}) "
        f"saved to {model} (metadata: {model}.json)"
    )


@app.command()
def score(
    invoices: Annotated[
        str,
        typer.Option("--invoices", help="Invoice file, or the ledger URL with --format ledger"),
    ],
    fmt: FormatOption,
    model: ModelOption,
    out: Annotated[Path, typer.Option("--out", help="Where to write the scores (CSV)")],
    history: Annotated[
        list[str] | None,
        typer.Option(
            "--history",
            help="More history of the same customers, in the same format (e.g. the file the "
            "model was trained on); repeatable. Its rows are not scored.",
        ),
    ] = None,
) -> None:
    """Write p_late for every invoice row of a file (or every open invoice of the ledger).

    One output row per input data row that is an invoice: `row` (0-based index of the data
    row in the file), `p_late`, and `problem` when the row could not be scored (p_late is
    then empty). Each invoice's customer history is read from the same file (or ledger) and
    any `--history` files, only from invoices settled before its issue day: give the
    training file as `--history` when scoring a file of newer invoices alone. With
    `--format ledger` the rows are the ledger's open invoices and `invoice_number` says which.

    Example:
        dunning risk score --invoices ../shared/data/ibm_accounts_receivable.csv --format ibm \\
            --model var/risk-ibm.joblib --out var/ibm-scores.csv
    """
    from dunning.exports import write_csv
    from dunning.risk import RiskModel, RiskModelError

    try:
        fitted = RiskModel.load(model)
    except RiskModelError as exc:
        _fail(str(exc))
    data = _read(invoices, fmt)
    _summary(data, fmt)
    frame = data.frame
    targets = frame
    if fmt is Format.ledger:
        targets = frame[frame["status"].isin(["open", "disputed"]) & (frame["amount_due"] > 0)]
    past = frame
    if history:
        from dunning.risk import combine_history

        extra = [_read(source, fmt) for source in history]
        past = combine_history(*(d.frame for d in extra), frame)
        typer.echo(f"history: {sum(len(d.frame) for d in extra)} more invoices from --history")
    p_late = fitted.score_frame(targets, past)
    table = _score_table(targets, p_late, data.problems, with_number=fmt is not Format.sap)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out)  # invoice numbers and names from the file: never as formulas
    scored = int(table["p_late"].notna().sum())
    typer.echo(
        f"scored {scored} of {len(table)} invoices"
        + (
            f" ({len(table) - scored} without a score: see the problem column)"
            if scored < len(table)
            else ""
        )
        + f"; mean p_late {table['p_late'].mean():.3f}; wrote {out}"
    )


def _read(source: str, fmt: Format) -> RiskData:
    from dunning.risk import RiskSourceError, read_source

    try:
        return read_source(source, fmt.value)
    except RiskSourceError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def _summary(data: RiskData, fmt: Format) -> None:
    """What was read, what is not an invoice, and every problem (first ones on stderr)."""
    others = ", ".join(f"{n} {kind}" for kind, n in data.not_invoices.items())
    typer.echo(
        f"read {data.rows_read} {fmt.value} rows: {len(data.frame)} invoices"
        + (f"; not invoices (left out): {others}" if others else "")
    )
    for note in data.notes:
        typer.echo(f"note: {note}")
    problems = data.problems
    if len(problems):
        typer.echo(f"{len(problems)} problems in {problems['row'].nunique()} rows:", err=True)
        for r in problems.head(_SHOWN_PROBLEMS).itertuples():
            typer.echo(
                f"  row {r.row} (line {r.line}): {r.field} = {r.value!r}: {r.reason}", err=True
            )
        if len(problems) > _SHOWN_PROBLEMS:
            typer.echo(f"  ... and {len(problems) - _SHOWN_PROBLEMS} more", err=True)


def _score_table(
    targets: pd.DataFrame, p_late: pd.Series, problems: pd.DataFrame, with_number: bool
) -> pd.DataFrame:
    import pandas as pd

    table = pd.DataFrame({"row": targets["row"].to_numpy()})
    if with_number:
        table["invoice_number"] = targets["invoice_id"].to_numpy()
    table["p_late"] = p_late.round(4).to_numpy()
    reasons = problems.assign(text=problems["field"] + ": " + problems["reason"])
    joined = reasons.groupby("row")["text"].agg("; ".join)
    table["problem"] = table["row"].map(joined).fillna("")
    return table


def _shown(source: str, fmt: Format) -> str:
    """The source for the model's metadata, without a password in a ledger URL."""
    if fmt is not Format.ledger:
        return str(Path(source).resolve())
    from dunning.ledger.store import shown_url

    return shown_url(source)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
