"""The company's document library as a block: the folder customers' document requests are
answered from."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from blocks.catalog import FILE_LOGO, docs_url
from dunning.documents import DEFAULT_MAX_BYTES, DocumentKind, Library


class DocumentLibrary(Block):
    """A folder of the company's documents, sent to customers who ask for them.

    A request from a known contact ("¿me mandan el RUT?", "necesito el certificado
    bancario") is answered in the thread with the file attached; a kind the library lacks,
    or a request from anyone else, becomes a task. The built-in kinds are
    `tax_certificate` (RUT/e-RUT, constancia de situación fiscal, constancia de CUIT, ficha
    RUC, cartão CNPJ, W-9, certificado de estar al corriente...) and `bank_certificate`;
    add your own under `kinds` with the words customers use for them.

    Each kind's file is `<kind>.pdf` in the folder (or the name given in `files`), with
    optional language variants beside it (`tax_certificate.en.pdf` for English-speaking
    customers). Only plain files inside the folder are ever sent (no links out of it, no
    sub-folders), of the allowed types (PDF, PNG, JPEG) and under `max_megabytes`; the
    customer's words only choose among the kinds listed here.

    Attributes:
        path: The folder the documents are in.
        country: The company's country (e.g. CL): how the answer names its tax certificate.
        files: Kind -> file name, for files not named `<kind>.pdf`.
        kinds: The company's own kinds: name, title in the answer, keywords, file.
        max_megabytes: Larger files are not sent (a task says so).

    Examples:
        Save the library once:
        ```python
        from blocks import DocumentLibrary

        DocumentLibrary(
            path="/srv/acme/documents", country="CL",
            files={"tax_certificate": "e-rut-acme.pdf"},
            kinds=[{"name": "compliance_letter", "title": "nuestro certificado de cumplimiento",
                    "keywords": ["cumplimiento laboral", "f30"]}],
        ).save("BLOCK_NAME", overwrite=True)
        ```

        Load it (e.g. for process-replies' `documents` parameter):
        ```python
        from blocks import DocumentLibrary

        document_library = DocumentLibrary.load("BLOCK_NAME")
        print(document_library.path, document_library.library().known_kinds())
        ```
    """

    _block_type_name = "Dunning Document Library"
    _description = "The company's documents (tax and bank certificates...) sent on request."
    _logo_url = FILE_LOGO
    _documentation_url = docs_url(_block_type_name)

    path: str = Field(description="The folder the documents are in.")
    country: str = Field(
        "", description="The company's country (e.g. CL, MX): names its tax certificate."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Kind -> file name in the folder, for files not named <kind>.pdf.",
    )
    kinds: list[DocumentKind] = Field(
        default_factory=list,
        description="Your own kinds of document: name, title in the answer, keywords, file.",
    )
    max_megabytes: float = Field(
        DEFAULT_MAX_BYTES / 1024 / 1024, gt=0, description="Larger files are not sent."
    )

    @model_validator(mode="after")
    def _valid(self) -> DocumentLibrary:
        self.library()  # a file name outside the folder or an unknown kind fails here
        return self

    def library(self) -> Library:
        """The library the reply handler answers from."""
        return Library(
            path=self.path,
            country=self.country,
            files=self.files,
            kinds=self.kinds,
            max_bytes=int(self.max_megabytes * 1024 * 1024),
        )
