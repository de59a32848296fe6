"""Invoice-source blocks: where open invoices come from.

Every source is an `InvoiceSource`: the sweep flow reads it (`read`), re-checks one invoice
just before sending (`get_invoice`) and, where the system can say what changed, asks for the
invoices changed since the last sweep (`read_changed_since`). The file source lives here;
the API sources (Odoo, Stripe, Holded, any REST API) are in `blocks/erp.py`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr

from blocks.catalog import FILE_LOGO, docs_url
from dunning.importers import ImportResult, ReadOptions, read_invoice_file, to_invoice
from dunning.schema import Invoice


class InvoiceSource(Block, ABC):
    """Where invoices come from (an interface: save one of its concrete blocks)."""

    @abstractmethod
    def read(self) -> ImportResult:
        """Every invoice to consider, validated; bad records in the quarantine."""

    @abstractmethod
    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as the source has it now, or None if it has none by that number."""

    def read_changed_since(self, since: datetime) -> ImportResult:
        """Invoices changed since `since` (paid, cancelled ones included), where supported."""
        raise NotImplementedError(f"{self.label} cannot list what changed; use read()")

    def read_one(self, invoice_number: str) -> ImportResult:
        """Just this invoice (empty if the source has no valid invoice by that number)."""
        result = self.read()
        invoices = result.invoices[result.invoices["invoice_number"] == invoice_number]
        return ImportResult(invoices=invoices.reset_index(drop=True), quarantine=result.quarantine)

    @property
    def supports_changes(self) -> bool:
        """True when `read_changed_since` works for this source."""
        return False

    @property
    def label(self) -> str:
        """How messages name this source: its type and saved name."""
        return f"{self.get_block_type_name()} '{self._block_document_name or 'unsaved'}'"

    @property
    def attachments_root(self) -> str | None:
        """Folder relative `pdf_path` values are resolved against (None: no local files)."""
        return None

    @property
    def source_key(self) -> str:
        """Stable identity of the source in the ledger: type and saved name (or location)."""
        where = (
            self._block_document_name or getattr(self, "api_root", "") or getattr(self, "path", "")
        )
        return f"{self.get_block_type_slug()}:{where}"

    def rate_limit_name(self) -> str | None:
        """Name of the Prefect rate limit shared by all requests to this source, if any."""
        return None


class CsvInvoiceSource(InvoiceSource):
    """Invoices from a CSV or spreadsheet (XLSX, XLS, ODS) file exported by the ERP or kept
    by hand.

    Headers default to the normalized schema (`invoice_number, customer_id, customer_name,
    email, phone, country, language, timezone, currency, amount_total, amount_due,
    issue_date, due_date, status, payment_link, pdf_path`); map other headers with
    `column_mapping`. Bad rows are quarantined with their row number and reason, never
    dropped silently; a missing file or a mapping to absent columns fails the run at once.
    The reading fields are those of `dunning.importers.ReadOptions`, the same keys as a
    mapping file (`dunning plan --mapping`).

    Attributes:
        path: Path of the CSV or spreadsheet file (relative to the working directory).
        column_mapping: Our field -> the file's column, for headers that differ.
        date_format: strftime format of the date columns.
        decimal_separator: "." or ",".
        thousands_separator: ".", ",", " ", "'" or "" (default: the other of "." and ",").
        delimiter: CSV field separator.
        encoding: CSV text encoding.
        sheet: Sheet of a spreadsheet: its name or position from 0 (default: the first).
        status_mapping: The file's own status words -> open, paid, cancelled or disputed.
        attachments_dir: Folder that relative `pdf_path` values are resolved against.

    Examples:
        Save the source once:
        ```python
        from blocks import CsvInvoiceSource

        CsvInvoiceSource(
            path="exports/facturas.csv",
            column_mapping={"invoice_number": "Factura", "due_date": "Vencimiento"},
            date_format="%d/%m/%Y",
            decimal_separator=",",
            delimiter=";",
            status_mapping={"en revisión": "disputed"},
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. in a flow) and read the file:
        ```python
        from blocks import CsvInvoiceSource

        csv_invoice_source = CsvInvoiceSource.load("BLOCK_NAME")
        print(csv_invoice_source.label, csv_invoice_source.source_key)
        # result = csv_invoice_source.read()  # .invoices, .quarantine
        ```
    """

    _block_type_name = "CSV Invoice Source"
    _description = (
        "Open invoices from a CSV, XLSX, XLS or ODS file, with column mapping and quarantine."
    )
    _logo_url = FILE_LOGO
    _documentation_url = docs_url(_block_type_name)

    path: str = Field(
        description="Path of the CSV, XLSX, XLS or ODS file (relative to the working dir)."
    )
    column_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="Our field -> the file's column, for headers that differ from the schema.",
    )
    date_format: str = Field("%Y-%m-%d", description="strftime format of the date columns.")
    decimal_separator: str = Field(".", description='Decimal separator: "." or ",".')
    thousands_separator: str | None = Field(
        None,
        description='Digit group separator: ".", ",", " ", "\'" or "" (default: the other of '
        '"." and ",").',
    )
    delimiter: str = Field(",", description="CSV field separator.")
    encoding: str = Field("utf-8", description="CSV text encoding.")
    sheet: str | int | None = Field(
        None, description="Sheet of a spreadsheet: name or position from 0 (default: first)."
    )
    status_mapping: dict[str, str] = Field(
        default_factory=dict,
        description="The file's status words -> open, paid, cancelled or disputed (English, "
        "Spanish and Portuguese words are known already).",
    )
    attachments_dir: str | None = Field(
        None, description="Folder that relative pdf_path values are resolved against."
    )

    _last_read: _FileRead | None = PrivateAttr(default=None)


    def _current(self) -> _FileRead:
        """The shared read of the file as it is now. A re-check per reminder costs one
        `stat` while the file is unchanged (the options are built only to read it again)."""
        last = self._last_read
        if last is not None and last.version == _version(self.path):
            return last
        self._last_read = _FILE_READS.read(self.path, self.read_options)
        return self._last_read

    @property
    def read_options(self) -> ReadOptions:
        """The block's reading fields as the importer's options (checked: a bad value raises
        `SourceError` naming the field)."""
        return ReadOptions.build(
            self.model_dump(include=set(ReadOptions.model_fields)), source=self.label
        )

    def read(self) -> ImportResult:
        """Read and validate the whole file (once per version of it: see `_FileReads`)."""
        done = _FILE_READS.read(self.path, self.read_options).result
        # Frames of their own (copy-on-write: no data copied): a caller's changes never
        # reach the shared read.
        return ImportResult(
            invoices=done.invoices.copy(deep=False), quarantine=done.quarantine.copy(deep=False)
        )

    def get_invoice(self, invoice_number: str) -> Invoice | None:
        """The invoice as the file says *now* (re-read when the file changed), or None."""
        frame = self._current().by_number()
        if invoice_number not in frame.index:
            return None
        return to_invoice(frame.loc[invoice_number].to_dict())

    @property
    def attachments_root(self) -> str:
        return self.attachments_dir or str(Path(self.path).resolve().parent)


class _FileRead:
    """One read of one version of a file: the validated result and, built on first use,
    the same invoices indexed by number (for re-checks)."""

    def __init__(self, version: tuple[int, int], result: ImportResult) -> None:
        self.version = version
        self.result = result
        self._indexed: pd.DataFrame | None = None
        self._lock = threading.Lock()

    def by_number(self) -> pd.DataFrame:
        with self._lock:
            if self._indexed is None:
                self._indexed = self.result.invoices.set_index("invoice_number", drop=False)
            return self._indexed


class _FileReads:
    """The last read of each file in this process, by path and reading options, kept while
    the file's size and modification time stay the same.

    A sweep reads the file (fetch) and then re-checks each invoice against it just before
    sending: sharing one read keeps one copy of the invoices in memory instead of two
    (~400 MB at 1M invoices), and a file changed meanwhile is read again."""

    def __init__(self) -> None:
        self._reads: dict[tuple[str, str], _FileRead] = {}
        self._lock = threading.Lock()

    def read(self, path: str, options: ReadOptions) -> _FileRead:
        try:
            version = _version(path)
        except OSError:  # the importer says what is wrong and what to check
            return _FileRead((0, 0), read_invoice_file(path, options))
        key = (str(Path(path).resolve()), repr(options))
        with self._lock:
            done = self._reads.get(key)
            if done is None or done.version != version:
                done = _FileRead(version, read_invoice_file(path, options))
                # Only the latest read of each file is kept.
                self._reads[key] = done
            return done


def _version(path: str) -> tuple[int, int]:
    """A file's version as far as a re-read is concerned: modification time and size."""
    stat = Path(path).stat()
    return stat.st_mtime_ns, stat.st_size


_FILE_READS = _FileReads()

