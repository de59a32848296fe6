"""`dunning import check`: what the importer understands of an invoice file, before a sweep;
and the reading options `plan` and `sweep` build from `--mapping` and their own flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dunning.importers import (
    ReadOptions,
    SourceError,
    check_invoice_file,
    describe_quarantine,
    load_mapping_file,
)
from dunning.schema import DEFAULT_CURRENCY

app = typer.Typer(help="Check invoice files before a sweep.", no_args_is_help=True)

#: Normalized columns shown for the first invoices, in this order (those the file has).
SAMPLE_COLUMNS = (
    "row",
    "invoice_number",
    "customer_name",
    "email",
    "amount_due",
    "currency",
    "due_date",
    "status",
)
MappingOpt = Annotated[
    Path | None,
    typer.Option(
        "--mapping",
        help="YAML file saying how to read the invoice file: column_mapping (our field -> "
        "your header), date_format, decimal_separator, thousands_separator, delimiter, "
        "encoding, sheet, status_mapping (see 'dunning init').",
    ),
]


def read_options(mapping: Path | None, **overrides: str | None) -> ReadOptions:
    """The mapping file's options (defaults without one) with the command line's given
    flags on top (`overrides`: ReadOptions field -> value, None when the flag was not given).

    Raises:
        SourceError: the mapping file is missing or wrong, or a flag's value is bad.
    """
    base = load_mapping_file(mapping) if mapping else ReadOptions()
    given = {k: v for k, v in overrides.items() if v is not None}
    return ReadOptions.build(base, source="the command line", **given) if given else base


@app.command("check")
def check(
    invoices: Annotated[
        Path, typer.Option("--invoices", help="CSV or spreadsheet (xlsx, xls, ods) file.")
    ],
    mapping: MappingOpt = None,
    rows: Annotated[int, typer.Option("--rows", help="How many invoices to show.")] = 5,
) -> None:
    """Print how the file is read, without a ledger: which column feeds which field, how
    the status words are read, a few invoices as understood, and the quarantine.

    Exit 0 when at least one invoice is usable, 1 when none is (or the file cannot be read).
    """
    try:
        found = check_invoice_file(invoices, read_options(mapping))
    except SourceError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    result = found.result
    echo = typer.echo
    echo(f"{invoices}: {found.rows} rows")
    echo("columns read:")
    width = max(map(len, found.columns))
    for field_name, header in found.columns.items():
        same = " (same name)" if header == field_name else ""
        echo(f"  {field_name:<{width}}  <- {header!r}{same}")
    missing = list(found.not_found)
    if missing:
        echo(
            f"not in the file (left empty; an empty currency is {DEFAULT_CURRENCY}): "
            f"{', '.join(missing)}"
        )
        for field_name, close in found.not_found.items():
            if close:
                echo(
                    f"  {field_name}: did you mean {' or '.join(map(repr, close))}? "
                    "map it in the mapping file"
                )
    if found.unused:
        echo(f"columns not read: {', '.join(map(repr, found.unused))}")
    if found.statuses:
        echo("status words:")
        for word, status in found.statuses.items():
            echo(f"  {word!r} -> {status or 'unknown (quarantined; add it to status_mapping)'}")
    echo(
        f"usable invoices: {len(result.invoices)} of {found.rows} rows; "
        f"quarantined rows: {result.quarantined_rows}"
    )
    if len(result.invoices):
        columns = [c for c in SAMPLE_COLUMNS if c in result.invoices.columns]
        sample = result.invoices[columns].head(rows).copy()
        sample["due_date"] = sample["due_date"].dt.strftime("%Y-%m-%d")
        echo(f"first {len(sample)} invoices as understood:")
        echo(sample.to_string(index=False))
    if len(result.quarantine):
        echo("quarantine:")
        for line in describe_quarantine(result.quarantine):
            echo(f"  {line}")
    if result.invoices.empty:
        echo("nothing usable: fix the mapping file or the rows above", err=True)
        raise typer.Exit(1)
