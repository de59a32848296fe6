"""Write tests/data/facturas_es.xls: a Spanish company's invoice list in the old Excel format.

pandas reads .xls (through xlrd) but cannot write it, so the fixture is made once with xlwt
(not a project dependency) and committed. To remake it:

    pip install --target /tmp/xlwt xlwt==1.3.0
    PYTHONPATH=/tmp/xlwt python tests/data/make_facturas_es_xls.py

The rows are those of `tests/test_spreadsheets.py`'s ROWS: dates and amounts written as a
Spanish user types them (text "31/12/2026", "1.234,56") and as real date and number cells.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import xlwt

HEADERS = ["Nº factura", "Cliente", "Correo", "Vencimiento", "Importe pendiente", "Estado"]
ROWS = [
    ["F-2026-101", "Ferretería Acme SL", "ap@acme.es", "31/12/2026", "1.234,56", "pendiente"],
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


def main() -> None:
    book = xlwt.Workbook(encoding="utf-8")
    # A summary sheet first, as many workbooks have: the mapping names the invoices' sheet.
    book.add_sheet("Resumen").write(0, 0, "Facturas pendientes de cobro")
    sheet = book.add_sheet("Facturas")
    as_date = xlwt.easyxf(num_format_str="DD/MM/YYYY")
    for col, header in enumerate(HEADERS):
        sheet.write(0, col, header)
    for r, row in enumerate(ROWS, start=1):
        for col, value in enumerate(row):
            if isinstance(value, datetime):
                sheet.write(r, col, value, as_date)
            else:
                sheet.write(r, col, value)
    book.save(str(Path(__file__).with_name("facturas_es.xls")))


if __name__ == "__main__":
    main()
