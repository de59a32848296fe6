"""Spreadsheets as people have them: Spanish headers, 31/12/2026, 1.234,56, "pendiente",
.xls and .ods files, read through a mapping file by `dunning plan`, `dunning sweep` and
`dunning import check`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from apps.cli.main import app
from apps.mailsink import MailSink
from blocks import CsvInvoiceSource
from dunning.importers import (
    MAPPING_FILE_EXAMPLE,
    ReadOptions,
    SourceError,
    load_mapping_file,
    read_invoice_file,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
#: tests/data/facturas_es.xls, made by tests/data/make_facturas_es_xls.py from these rows.
XLS = DATA / "facturas_es.xls"
HEADERS = ["Nº factura", "Cliente", "Correo", "Vencimiento", "Importe pendiente", "Estado"]
ROWS = [
    ["F-2026-101", "Ferretería Acme SL", "ap@acme.es", "31/12/2026", "1.234,56", "pendiente"],
    # A real date cell and a real number cell, as a spreadsheet stores what it recognised.
    [
        "F-2026-102",
        "Construcciones Pérez SA",
        "pagos@perez.es",
        datetime(2026, 11, 20),
        2500.5,
        "Vencida",
    ],
    ["F-2026-103", "Beta Distribución", "cobros@beta.es", "15/11/2026", "99,90", "PAGADA"],
    ["F-2026-104", "Gamma Obras SL", "admin@gamma.es", "01/12/2026", "12.000,00", "Anulada"],
    ["F-2026-105", "Delta Suministros", "delta@delta.es", "10/12/2026", "450,00", "Parcial"],
]
#: The same invoices as we would write them: what the Spanish files must be read as.
EXPECTED = {
    "F-2026-101": ("2026-12-31", 1234.56, "open"),
    "F-2026-102": ("2026-11-20", 2500.5, "open"),
    "F-2026-103": ("2026-11-15", 99.9, "paid"),
    "F-2026-104": ("2026-12-01", 12000.0, "cancelled"),
    "F-2026-105": ("2026-12-10", 450.0, "open"),
}
MAPPING = """\
column_mapping:
  invoice_number: "Nº factura"
  customer_name: Cliente
  email: Correo
  due_date: Vencimiento
  amount_due: "Importe pendiente"
  status: Estado
date_format: "%d/%m/%Y"
decimal_separator: ","
sheet: Facturas
"""
NOW = "2027-01-05T10:00:00+01:00"  # a Tuesday: 5 days after F-2026-101 fell due
runner = CliRunner()


def write_ods(path: Path) -> Path:
    """The same workbook as the .xls fixture, as LibreOffice would save it (.ods, odfpy)."""
    with pd.ExcelWriter(path, engine="odf") as book:
        pd.DataFrame({"Facturas pendientes de cobro": []}).to_excel(
            book, sheet_name="Resumen", index=False
        )
        pd.DataFrame(ROWS, columns=HEADERS).to_excel(book, sheet_name="Facturas", index=False)
    return path


def write_ours(path: Path) -> Path:
    """EXPECTED in our own CSV layout (ISO dates, decimal point, our status words)."""
    names = {r[0]: (r[1], r[2]) for r in ROWS}
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["invoice_number", "customer_name", "email", "due_date", "amount_due", "status"]
        )
        for number, (due, amount, status) in EXPECTED.items():
            writer.writerow([number, *names[number], due, f"{amount:.2f}", status])
    return path


@pytest.fixture(params=["xls", "ods"])
def spanish_file(request, tmp_path: Path) -> Path:
    return XLS if request.param == "xls" else write_ods(tmp_path / "facturas_es.ods")


@pytest.fixture
def mapping(tmp_path: Path) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def plan_lines(*args: str) -> list[dict]:
    result = runner.invoke(app, ["plan", "--now", NOW, *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- plan through --mapping -----------------------------------------------------------------


def test_spanish_spreadsheet_plans_through_the_mapping_file(
    spanish_file: Path, mapping: Path, tmp_path: Path
) -> None:
    records = {
        r["invoice"]: r
        for r in plan_lines("--invoices", str(spanish_file), "--mapping", str(mapping))
    }

    assert set(records) == set(EXPECTED)
    for number, (due, amount, _status) in EXPECTED.items():
        assert records[number]["due_date"] == due, number  # 31/12/2026 is 31 December
        assert records[number]["amount_due"] == pytest.approx(amount), number  # 1.234,56
    acme = records["F-2026-101"]
    assert acme["customer"] == "Ferretería Acme SL"
    assert acme["days_overdue"] == 5
    assert acme["stage"] == "overdue_1" and acme["channel"] == "email"  # "pendiente": open
    assert records["F-2026-103"]["skip_reason"] == "paid"  # "PAGADA"
    assert records["F-2026-104"]["stage"] is None  # "Anulada": cancelled, never dunned
    # Exactly the plan of the same invoices written in our own layout.
    assert list(records.values()) == plan_lines(
        "--invoices", str(write_ours(tmp_path / "ours.csv"))
    )


def test_command_line_flags_override_the_mapping_file(mapping: Path, tmp_path: Path) -> None:
    # The file says day first; a --date-format given on the command line wins.
    ods = tmp_path / "us.ods"
    rows = [[*r[:3], "12/31/2026", *r[4:]] for r in ROWS[:1]]
    with pd.ExcelWriter(ods, engine="odf") as book:
        pd.DataFrame(rows, columns=HEADERS).to_excel(book, sheet_name="Facturas", index=False)

    (record,) = plan_lines(
        "--invoices", str(ods), "--mapping", str(mapping), "--date-format", "%m/%d/%Y"
    )
    assert record["due_date"] == "2026-12-31"


# -- headers that are not found ---------------------------------------------------------------


def test_a_misspelt_header_in_the_mapping_says_did_you_mean(
    spanish_file: Path, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(MAPPING.replace("due_date: Vencimiento", "due_date: Vencimeinto"))

    result = runner.invoke(app, ["plan", "--invoices", str(spanish_file), "--mapping", str(wrong)])

    assert result.exit_code == 2
    assert "due_date -> 'Vencimeinto'" in result.stderr
    assert "no column 'Vencimeinto' for due_date: did you mean 'Vencimiento'?" in result.stderr


def test_unmapped_spanish_headers_are_suggested(spanish_file: Path, tmp_path: Path) -> None:
    sheet_only = tmp_path / "sheet.yaml"
    sheet_only.write_text("sheet: Facturas\n", encoding="utf-8")

    result = runner.invoke(
        app, ["plan", "--invoices", str(spanish_file), "--mapping", str(sheet_only)]
    )

    assert result.exit_code == 2
    assert (
        "no column 'due_date': did you mean 'Vencimiento'? map it in the mapping file"
        in result.stderr
    )
    assert "no column 'invoice_number': did you mean 'Nº factura'?" in result.stderr


def test_a_header_nothing_like_the_field_gets_no_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("Referencia,Observaciones\nA-1,ok\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        read_invoice_file(path, column_mapping={"invoice_number": "Referencia"})
    message = str(err.value)
    assert "no column 'due_date'; map the file's column for it in the mapping file" in message
    assert "did you mean" not in message


# -- status words ------------------------------------------------------------------------------


def status_file(tmp_path: Path, words: list[str]) -> Path:
    path = tmp_path / "status.csv"
    lines = ["invoice_number,due_date,amount_due,status"]
    lines += [f"S-{i},2026-12-01,10.00,{w}" for i, w in enumerate(words)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_status_words_in_spanish_portuguese_and_english(tmp_path: Path) -> None:
    words = {
        "Pendiente": "open",
        "VENCIDA": "open",
        "parcial": "open",
        "Em Aberto": "open",
        "em_aberto": "open",
        "Unpaid": "open",
        "Pagada": "paid",
        "cobrada": "paid",
        "Paga": "paid",
        "anulada": "cancelled",
        "Cancelada": "cancelled",
        "VOID": "cancelled",
        "En disputa": "disputed",
    }
    result = read_invoice_file(status_file(tmp_path, list(words)))

    assert result.quarantine.empty
    assert list(result.invoices["status"]) == list(words.values())


def test_an_unknown_status_word_is_quarantined_naming_the_words_accepted(tmp_path: Path) -> None:
    path = status_file(tmp_path, ["pendiente", "en revisión"])

    result = read_invoice_file(path)
    (reason,) = result.quarantine["reason"]
    assert result.quarantine["value"].tolist() == ["en revisión"]
    assert "unknown status" in reason
    for word in ("pendiente", "vencida", "pagada", "cobrada", "anulada", "em aberto", "void"):
        assert word in reason
    assert "status_mapping" in reason
    assert list(result.invoices["invoice_number"]) == ["S-0"]

    # A company's own word, in its mapping file, is understood like the built-in ones.
    own = read_invoice_file(path, status_mapping={"En Revisión": "disputed"})
    assert own.quarantine.empty
    assert list(own.invoices["status"]) == ["open", "disputed"]


# -- the mapping file itself -------------------------------------------------------------------


def test_an_unknown_key_in_the_mapping_file_names_the_allowed_keys(
    tmp_path: Path, spanish_file: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MAPPING + "date_fromat: '%d/%m/%Y'\n", encoding="utf-8")

    with pytest.raises(SourceError) as err:
        load_mapping_file(bad)
    assert "unknown key 'date_fromat'" in str(err.value)
    assert "column_mapping, date_format, decimal_separator" in str(err.value)
    result = runner.invoke(app, ["plan", "--invoices", str(spanish_file), "--mapping", str(bad)])
    assert result.exit_code == 2 and "unknown key 'date_fromat'" in result.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("status_mapping: {revisada: closed}", "a status is one of open, paid"),
        ("column_mapping: {vencimiento: Vence}", "unknown field 'vencimiento'"),
        ("decimal_separator: ';'", "decimal_separator"),
        ("encoding: utf9", "unknown encoding 'utf9'"),
        ("date_format: %d/%m/%Y", "quote values that start with %"),
        ("- column_mapping", "must be a mapping of keys"),
    ],
)
def test_bad_mapping_files_say_what_to_fix(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        load_mapping_file(path)
    assert words in str(err.value)
    assert str(path) in str(err.value)


def test_the_example_mapping_file_that_init_writes_is_valid() -> None:
    options = ReadOptions.build(__import__("yaml").safe_load(MAPPING_FILE_EXAMPLE))
    assert options.column_mapping["due_date"] == "Vencimiento"
    assert options.status_mapping == {"en revision": "disputed"}


def test_a_sheet_that_is_not_there_lists_the_sheets(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as err:
        read_invoice_file(XLS, sheet="Hoja1")
    assert "no sheet 'Hoja1'" in str(err.value) and "['Resumen', 'Facturas']" in str(err.value)


def test_thousands_separator_is_an_option(tmp_path: Path) -> None:
    path = tmp_path / "ch.csv"
    path.write_text("invoice_number;due_date;amount_due\nA-1;2026-12-01;1'234.50\n")
    swiss = read_invoice_file(path, delimiter=";", thousands_separator="'")
    assert swiss.invoices["amount_due"].tolist() == [1234.5]
    path.write_text("invoice_number;due_date;amount_due\nA-1;2026-12-01;1.234,50\n")
    # Declared: decimal comma and no digit grouping; "1.234,50" is then not a number.
    strict = read_invoice_file(path, delimiter=";", decimal_separator=",", thousands_separator="")
    assert strict.invoices.empty
    assert "not a number" in strict.quarantine["reason"].iloc[0]


# -- one model of the options: block, command line, importer -----------------------------------


def test_the_block_has_every_reading_option_with_the_same_default() -> None:
    block_fields = CsvInvoiceSource.model_fields
    for name, option in ReadOptions.model_fields.items():
        assert name in block_fields, name
        assert block_fields[name].get_default(call_default_factory=True) == option.get_default(
            call_default_factory=True
        ), name


def test_a_block_with_the_mapping_file_reads_what_the_command_line_reads(
    spanish_file: Path, mapping: Path
) -> None:
    options = load_mapping_file(mapping)
    block = CsvInvoiceSource(path=str(spanish_file), **options.model_dump())
    from_block = block.read().invoices
    from_cli = read_invoice_file(spanish_file, options).invoices
    pd.testing.assert_frame_equal(from_block, from_cli)
    assert block.get_invoice("F-2026-101").amount_due == pytest.approx(1234.56)


# -- dunning import check ----------------------------------------------------------------------


def test_import_check_prints_what_it_understood(spanish_file: Path, mapping: Path) -> None:
    result = runner.invoke(
        app, ["import", "check", "--invoices", str(spanish_file), "--mapping", str(mapping)]
    )

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "5 rows" in out
    assert "due_date        <- 'Vencimiento'" in out
    assert "amount_due      <- 'Importe pendiente'" in out
    assert "'pendiente' -> open" in out and "'PAGADA' -> paid" in out
    assert "usable invoices: 5 of 5 rows; quarantined rows: 0" in out
    assert "F-2026-101" in out and "1234.56" in out and "2026-12-31" in out


def test_import_check_shows_the_quarantine_and_fails_when_nothing_is_usable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.csv"
    path.write_text("invoice_number,due_date,status\nA-1,31/12/2026,revisar\n", encoding="utf-8")

    result = runner.invoke(app, ["import", "check", "--invoices", str(path)])

    assert result.exit_code == 1
    assert "usable invoices: 0 of 1 rows; quarantined rows: 1" in result.stdout
    assert "quarantined row 1 (line 2) invoice A-1: due_date = '31/12/2026'" in result.stdout
    assert "'revisar' -> unknown" in result.stdout
    assert "nothing usable" in result.stderr


# -- dunning sweep --mapping -------------------------------------------------------------------


def test_sweep_sends_from_a_spanish_ods_through_the_mapping_file(
    prefect_api: str, tmp_path: Path, mapping: Path
) -> None:
    ods = write_ods(tmp_path / "facturas_es.ods")
    with MailSink(tmp_path / "outbox", port=0) as sink:
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "apps.cli", "sweep", "--invoices", str(ods)),
                *("--mapping", str(mapping), "--now", NOW),
                *("--ledger", f"sqlite:///{tmp_path}/ledger.db"),
                *("--smtp-host", sink.host, "--smtp-port", str(sink.port)),
                *("--from", "cobros@acme.example"),
            ],
            env=os.environ | {"PREFECT_API_URL": prefect_api},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        sent = {m["X-Dunning-Key"].split(":")[0]: m for m in sink.messages()}
    # The open invoices ("pendiente", "Vencida", "Parcial") get a reminder; paid and
    # cancelled ones do not.
    assert set(sent) == {"F-2026-101", "F-2026-102", "F-2026-105"}
    assert sent["F-2026-101"]["To"] == "ap@acme.es"
    assert json.loads(proc.stdout.strip().splitlines()[-1])["sent"] == 3
