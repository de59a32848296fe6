"""Reading invoice files: default layout, mapped layouts, spreadsheets, quarantine, bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest

from dunning.importers import SourceError, describe_quarantine, read_invoice_file
from dunning.schema import INVOICE_COLUMNS

GOOD = {
    "invoice_number": "F-2026-001",
    "customer_id": "C1",
    "customer_name": "Ferretería Acme SL",
    "email": "ap@acme.es",
    "phone": "+34 600 000 001",
    "country": "ES",
    "language": "es",
    "timezone": "Europe/Madrid",
    "currency": "EUR",
    "amount_total": "1210.00",
    "amount_due": "1210.00",
    "issue_date": "2026-11-01",
    "due_date": "2026-12-01",
    "status": "open",
    "payment_link": "https://pay.example.com/F-2026-001",
    "pdf_path": "pdf/F-2026-001.pdf",
}


def row(**changes: str) -> dict[str, str]:
    return GOOD | changes


def write_csv(path: Path, rows: list[dict[str, str]], *, delimiter: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def three_rows(tmp_path: Path, **middle: str) -> Path:
    """A file whose rows 1 and 3 are good and row 2 carries `middle`'s changes."""
    return write_csv(
        tmp_path / "invoices.csv",
        [
            row(invoice_number="F-1"),
            row(invoice_number="F-2", customer_id="C2") | middle,
            row(invoice_number="F-3", customer_id="C3"),
        ],
    )


# -- good files ------------------------------------------------------------------------------


def test_csv_with_the_default_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "invoices.csv",
        [
            row(),
            row(
                invoice_number="F-2026-002",
                customer_id="C2",
                customer_name="Beta Inc",
                email="billing@beta.com",
                country="us",
                language="en_US",
                timezone="America/New_York",
                currency="usd",
                amount_total="500",
                amount_due="",
                status="",
                payment_link="",
                pdf_path="",
            ),
        ],
    )
    result = read_invoice_file(path)

    assert result.quarantine.empty
    inv = result.invoices.set_index("invoice_number")
    assert set(INVOICE_COLUMNS) <= set(result.invoices.columns)
    acme = inv.loc["F-2026-001"]
    assert acme["customer_name"] == "Ferretería Acme SL"
    assert acme["email"] == "ap@acme.es"
    assert acme["amount_due"] == pytest.approx(1210.0)
    assert acme["due_date"] == pd.Timestamp("2026-12-01")
    assert acme["issue_date"] == pd.Timestamp("2026-11-01")
    assert acme["payment_link"] == "https://pay.example.com/F-2026-001"
    beta = inv.loc["F-2026-002"]
    # Codes are normalized; an empty status is open; an empty amount due is the total.
    assert (beta["country"], beta["language"], beta["currency"]) == ("US", "en", "USD")
    assert beta["status"] == "open"
    assert beta["amount_due"] == pytest.approx(500.0)
    assert beta["payment_link"] == ""


def test_mapped_columns_day_first_dates_decimal_comma_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "export_erp.csv"
    path.write_text(
        "Factura;Cliente;Razón social;Correo;Total;Pendiente;Vencimiento;Estado\n"
        "A-17;C9;Construcciones Pérez SA;pagos@perez.es;1.234,56;1.234,56;05/12/2026;unpaid\n"
        "A-18;C9;Construcciones Pérez SA;pagos@perez.es;2.000,00;750,5;28/02/2027;\n"
        "A-19;C9;Construcciones Pérez SA;pagos@perez.es;99,00;0,00;13/01/2027;paid\n",
        encoding="utf-8",
    )
    result = read_invoice_file(
        path,
        column_mapping={
            "invoice_number": "Factura",
            "customer_id": "Cliente",
            "customer_name": "Razón social",
            "email": "Correo",
            "amount_total": "Total",
            "amount_due": "Pendiente",
            "due_date": "Vencimiento",
            "status": "Estado",
        },
        date_format="%d/%m/%Y",
        decimal_separator=",",
        delimiter=";",
    )

    assert result.quarantine.empty
    inv = result.invoices.set_index("invoice_number")
    assert list(inv.index) == ["A-17", "A-18", "A-19"]
    assert inv.loc["A-17", "due_date"] == pd.Timestamp("2026-12-05")  # 5 December, not 12 May
    assert inv.loc["A-17", "amount_due"] == pytest.approx(1234.56)
    assert inv.loc["A-17", "customer_name"] == "Construcciones Pérez SA"
    assert inv.loc["A-17", "email"] == "pagos@perez.es"
    assert inv.loc["A-18", "amount_total"] == pytest.approx(2000.0)
    assert inv.loc["A-18", "amount_due"] == pytest.approx(750.5)
    assert inv.loc["A-18", "due_date"] == pd.Timestamp("2027-02-28")
    assert inv.loc["A-19", "due_date"] == pd.Timestamp("2027-01-13")
    assert list(inv["status"]) == ["open", "open", "paid"]


def test_mapped_file_still_quarantines_against_its_own_format(tmp_path: Path) -> None:
    path = tmp_path / "export_erp.csv"
    path.write_text(
        "Factura;Vencimiento;Pendiente\nA-1;2026-12-05;10,00\nA-2;06/12/2026;1,234.5\n",
        encoding="utf-8",
    )
    result = read_invoice_file(
        path,
        column_mapping={
            "invoice_number": "Factura",
            "due_date": "Vencimiento",
            "amount_due": "Pendiente",
        },
        date_format="%d/%m/%Y",
        decimal_separator=",",
        delimiter=";",
    )
    q = result.quarantine
    assert list(q["row"]) == [1, 2]
    assert list(q["field"]) == ["due_date", "amount_due"]
    assert "DD/MM/YYYY" in q["reason"].iloc[0]
    assert "decimal separator is ','" in q["reason"].iloc[1]
    assert result.invoices.empty


def test_xlsx_written_by_a_spreadsheet(tmp_path: Path) -> None:
    path = tmp_path / "invoices.xlsx"
    pd.DataFrame(
        {
            "invoice_number": [1001, 1002],
            "customer_name": ["Acme SL", "Beta Inc"],
            "email": ["ap@acme.es", ""],
            "currency": ["EUR", "USD"],
            "amount_total": [1234.56, 99.9],
            "amount_due": [1234.56, 45.0],
            # Real date cells, as a spreadsheet stores them.
            "due_date": [pd.Timestamp("2026-12-09"), pd.Timestamp("2027-01-15")],
            "status": ["open", "open"],
        }
    ).to_excel(path, index=False)

    result = read_invoice_file(path)

    assert result.quarantine.empty
    inv = result.invoices.set_index("invoice_number")
    assert list(inv.index) == ["1001", "1002"]
    assert inv.loc["1001", "amount_due"] == pytest.approx(1234.56)
    assert inv.loc["1001", "due_date"] == pd.Timestamp("2026-12-09")
    assert inv.loc["1002", "due_date"] == pd.Timestamp("2027-01-15")
    assert inv.loc["1002", "amount_due"] == pytest.approx(45.0)
    assert inv.loc["1002", "email"] == ""


def test_xlsx_number_cells_with_a_decimal_comma_source(tmp_path: Path) -> None:
    # The same source set up for a Spanish CSV export (decimal ","), now given a spreadsheet:
    # number cells are numbers, text cells follow the declared separator.
    path = tmp_path / "facturas.xlsx"
    pd.DataFrame(
        {
            "invoice_number": ["A-1", "A-2", "A-3"],
            "amount_due": [1234.56, 45, "1.234,56"],
            "due_date": ["05/12/2026", "06/12/2026", "07/12/2026"],
        }
    ).to_excel(path, index=False)

    result = read_invoice_file(path, date_format="%d/%m/%Y", decimal_separator=",")

    assert result.quarantine.empty
    inv = result.invoices.set_index("invoice_number")
    assert inv.loc["A-1", "amount_due"] == pytest.approx(1234.56)
    assert inv.loc["A-2", "amount_due"] == pytest.approx(45.0)
    assert inv.loc["A-3", "amount_due"] == pytest.approx(1234.56)
    assert inv.loc["A-1", "due_date"] == pd.Timestamp("2026-12-05")


# -- quarantine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason_words"),
    [
        ({"due_date": ""}, "due_date", "missing due date"),
        ({"due_date": "31/12/2026"}, "due_date", "YYYY-MM-DD"),
        ({"due_date": "2026-02-30"}, "due_date", "YYYY-MM-DD"),
        ({"amount_due": "mil euros"}, "amount_due", "not a number"),
        ({"amount_total": "12O0"}, "amount_total", "not a number"),
        # Decimal comma in a file declared with decimal point: not silently 121000.
        ({"amount_due": "1.210,00"}, "amount_due", "decimal separator is '.'"),
        ({"amount_due": "-50.00"}, "amount_due", "negative"),
        ({"currency": "EURO"}, "currency", "ISO 4217"),
        ({"email": "ap at acme.es"}, "email", "invalid email"),
        ({"email": "ap@acme"}, "email", "invalid email"),
        ({"status": "pending"}, "status", "unknown status"),
    ],
)
def test_a_bad_row_is_quarantined_and_the_rest_comes_through(
    tmp_path: Path, change: dict[str, str], field: str, reason_words: str
) -> None:
    result = read_invoice_file(three_rows(tmp_path, **change))

    q = result.quarantine
    assert list(q["row"]) == [2]
    assert list(q["line"]) == [3]  # the header is line 1
    assert list(q["invoice_number"]) == ["F-2"]
    assert list(q["field"]) == [field]
    assert reason_words in q["reason"].iloc[0]
    assert list(result.invoices["invoice_number"]) == ["F-1", "F-3"]
    assert result.quarantined_rows == 1
    (line,) = describe_quarantine(q)
    assert "row 2" in line and "F-2" in line and field in line


def test_every_problem_of_a_row_is_reported(tmp_path: Path) -> None:
    result = read_invoice_file(
        three_rows(tmp_path, email="nope", currency="EURO", amount_due="-1", due_date="")
    )
    q = result.quarantine
    assert set(q["row"]) == {2}
    assert set(q["field"]) == {"email", "currency", "amount_due", "due_date"}
    assert result.quarantined_rows == 1
    assert list(result.invoices["invoice_number"]) == ["F-1", "F-3"]


def test_duplicate_invoice_numbers_with_different_data_are_quarantined(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "invoices.csv",
        [
            row(invoice_number="F-1", amount_due="100.00"),
            row(invoice_number="F-2"),
            row(invoice_number="F-1", amount_due="80.00"),
        ],
    )
    result = read_invoice_file(path)

    q = result.quarantine
    assert list(q["row"]) == [1, 3]
    assert set(q["field"]) == {"invoice_number"}
    assert all("duplicate invoice number" in r and "rows 1, 3" in r for r in q["reason"])
    assert list(result.invoices["invoice_number"]) == ["F-2"]


def test_exact_duplicate_rows_are_kept_once_and_not_quarantined(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "invoices.csv",
        [row(invoice_number="F-1"), row(invoice_number="F-2"), row(invoice_number="F-1")],
    )
    result = read_invoice_file(path)

    assert result.quarantine.empty
    assert sorted(result.invoices["invoice_number"]) == ["F-1", "F-2"]


def test_amounts_written_every_way_in_one_column_are_all_read(tmp_path: Path) -> None:
    # Bare numbers are read without the currency-sign clean-up; the others need it. A file
    # mixing both must read each cell as its writer meant, and quarantine only the bad one.
    amounts = ["1210.00", " 1 234.50 ", "€99", "1'000.25", "$ 7", "1\u00a0500.00", "12.5 EUR"]
    path = write_csv(
        tmp_path / "invoices.csv",
        [
            row(invoice_number=f"F-{i}", amount_due=a, amount_total="")
            for i, a in enumerate(amounts, start=1)
        ],
    )
    result = read_invoice_file(path)

    due = dict(zip(result.invoices["invoice_number"], result.invoices["amount_due"], strict=True))
    assert due == {
        "F-1": 1210.0,
        "F-2": 1234.5,
        "F-3": 99.0,
        "F-4": 1000.25,
        "F-5": 7.0,
        "F-6": 1500.0,
    }
    assert describe_quarantine(result.quarantine) == [
        "quarantined row 7 (line 8) invoice F-7: amount_due = '12.5 EUR': not a number "
        "(decimal separator is '.')"
    ]


# -- files that cannot be read at all --------------------------------------------------------


def test_missing_file_says_which_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "invoices.csv"
    with pytest.raises(SourceError) as err:
        read_invoice_file(missing)
    assert str(missing) in str(err.value)
    assert "does not exist" in str(err.value)


def test_undecodable_file_names_the_encoding_to_set(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    text = "invoice_number,customer_name,due_date,amount_due\nF-1,Compañía Ñandú SA,2026-12-01,10\n"
    path.write_bytes(text.encode("latin-1"))

    with pytest.raises(SourceError) as err:
        read_invoice_file(path)
    message = str(err.value)
    assert "cannot decode" in message and "utf-8" in message
    assert "encoding" in message and "latin-1" in message

    # Following the advice works.
    result = read_invoice_file(path, encoding="latin-1")
    assert result.invoices["customer_name"].tolist() == ["Compañía Ñandú SA"]


def test_mapping_to_an_absent_column_lists_the_file_columns(tmp_path: Path) -> None:
    path = tmp_path / "erp.csv"
    path.write_text("Factura,Vence,Importe\nA-1,2026-12-01,10\n", encoding="utf-8")

    with pytest.raises(SourceError) as err:
        read_invoice_file(
            path, column_mapping={"invoice_number": "Factura", "due_date": "Vencimiento"}
        )
    message = str(err.value)
    assert "due_date -> 'Vencimiento'" in message
    assert "not in the file" in message
    assert "Vence" in message and "Importe" in message  # what the file does have


def test_file_without_a_due_date_column_says_to_map_it(tmp_path: Path) -> None:
    path = tmp_path / "erp.csv"
    path.write_text("invoice_number,Vence\nA-1,2026-12-01\n", encoding="utf-8")

    with pytest.raises(SourceError) as err:
        read_invoice_file(path)
    message = str(err.value)
    assert "due_date" in message and "column_mapping" in message and "Vence" in message
