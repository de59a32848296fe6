"""The company's documents customers ask for, kept in one folder, sent only from there.

Customers ask for the company's bank certificate or its tax registration ("¿me mandan el
RUT?"). The library is a folder with one file per kind of document, and optional language
variants beside it:

    documents/
      tax_certificate.pdf        the RUT / constancia de situación fiscal / W-9 ...
      tax_certificate.en.pdf     the same in English, sent to English-speaking customers
      bank_certificate.pdf
      compliance_letter.pdf      a kind of the company's own (`kinds`, with its keywords)

Built-in kinds are `bank_certificate` and `tax_certificate` (what the classifier names in
`Classification.document`); a company adds its own with a name, a title for the answer and
the words its customers use. The kind's file is `<kind>.pdf` unless `files` names another.

Safety, because the request comes from outside: the customer's words only ever choose a
*kind* the company listed, never a path. A file is sent only when it is a regular file
inside the folder (after following symlinks: a link pointing out is refused), its name is a
plain name (no folders, no `..`, not hidden), its type is an allowed one (PDF or image) and
its size is under the limit. Anything else is refused with the reason, and the request
becomes a task for a person.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dunning.replies.normalize import normalize

log = logging.getLogger(__name__)

#: The kinds every library knows (the classifier's `DOCUMENT_KINDS`).
BUILTIN_KINDS = ("tax_certificate", "bank_certificate")
#: Only these file types are ever attached.
ALLOWED_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg")
#: The default size limit: well under what mail servers accept (25 MB is common).
DEFAULT_MAX_BYTES = 10 * 1024 * 1024

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")

#: How an answer names the company's tax certificate: by the company's country (what its
#: tax office issues), then by language.
TAX_CERTIFICATE_TITLES: dict[tuple[str, str], str] = {
    ("CL", "es"): "nuestro certificado de RUT (e-RUT)",
    ("CO", "es"): "nuestro RUT (Registro Único Tributario)",
    ("MX", "es"): "nuestra constancia de situación fiscal",
    ("AR", "es"): "nuestra constancia de inscripción (CUIT)",
    ("PE", "es"): "nuestra ficha RUC",
    ("ES", "es"): "nuestro certificado de estar al corriente de obligaciones tributarias",
    ("US", "en"): "our Form W-9",
    ("BR", "pt"): "o nosso cartão CNPJ",
    ("", "es"): "nuestro certificado tributario",
    ("", "en"): "our tax certificate",
    ("", "pt"): "o nosso comprovante de inscrição fiscal",
}
BANK_CERTIFICATE_TITLES = {
    "es": "nuestro certificado bancario de titularidad de la cuenta",
    "en": "our bank's account certificate",
    "pt": "a nossa declaração bancária de titularidade da conta",
}


class DocumentKind(BaseModel):
    """A kind of document of the company's own, recognised by its keywords."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Its id, e.g. compliance_letter (lowercase, digits, _).")
    title: str = Field(
        "", description="How the answer names it, e.g. 'nuestro certificado de cumplimiento'."
    )
    keywords: list[str] = Field(
        default_factory=list,
        description="Words customers use for it, e.g. 'cumplimiento laboral'; whole words, "
        "accents and case ignored.",
    )
    file: str = Field("", description="Its file in the folder; <name>.pdf when empty.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        if not _KIND_NAME.match(v):
            raise ValueError(f"kind name {v!r}: use lowercase letters, digits and _ (2-40)")
        return v

    @field_validator("file")
    @classmethod
    def _plain_file(cls, v: str) -> str:
        return plain_file_name(v) if v else v


def plain_file_name(name: str) -> str:
    """`name` if it is a plain file name in the folder, else a ValueError saying why."""
    if (
        not name
        or name != name.strip()
        or any(sep in name for sep in ("/", "\\", "\x00"))
        or name.startswith(".")
        or name in {".", ".."}
    ):
        raise ValueError(f"{name!r} is not a plain file name in the library folder")
    if not name.lower().endswith(ALLOWED_SUFFIXES):
        raise ValueError(f"{name!r}: only {', '.join(ALLOWED_SUFFIXES)} files are sent")
    return name


class Library(BaseModel):
    """The document library: a folder, the file of each kind, the company's own kinds.

    Example:
        >>> lib = Library(path="/srv/acme/documents", country="CL")
        >>> lib.kind_for("tax_certificate", "me mandan el RUT?")
        'tax_certificate'
        >>> lib.find("tax_certificate", "es")  # (Path or None, why not)
    """

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The folder the documents are in.")
    country: str = Field(
        "", description="The company's country: how the answer names its tax certificate."
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="Kind -> file name in the folder, when not <kind>.pdf.",
    )
    kinds: list[DocumentKind] = Field(
        default_factory=list, description="The company's own kinds, with their keywords."
    )
    max_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0, description="Larger files are not sent.")

    @model_validator(mode="after")
    def _known_files(self) -> Library:
        for kind, name in self.files.items():
            if kind not in self.known_kinds():
                raise ValueError(
                    f"files.{kind}: not a document kind (built-in: {', '.join(BUILTIN_KINDS)}"
                    "; add your own under kinds)"
                )
            try:
                plain_file_name(name)
            except ValueError as exc:
                raise ValueError(f"files.{kind}: {exc}") from None
        names = [k.name for k in self.kinds]
        if len(names) != len(set(names)):
            raise ValueError(f"kinds: names must be unique: {names}")
        self.country = self.country.strip().upper()
        return self

    def known_kinds(self) -> list[str]:
        """Every kind the library may send: the built-in ones and the company's."""
        return list(BUILTIN_KINDS) + [k.name for k in self.kinds if k.name not in BUILTIN_KINDS]

    def kind_for(self, named: str | None, text: str) -> str | None:
        """The kind a request asks for: one of the company's kinds whose keywords the text
        uses (theirs are the more specific words), else the kind the classifier `named` if
        the library knows it; None when neither."""
        words = normalize(text or "")
        for kind in self.kinds:
            for keyword in kind.keywords:
                phrase = normalize(keyword).strip()
                if phrase and re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", words):
                    return kind.name
        return named if named in self.known_kinds() else None

    def title(self, kind: str, language: str) -> str:
        """How the answer names the document, in `language`."""
        own = next((k for k in self.kinds if k.name == kind and k.title), None)
        if own is not None:
            return own.title
        if kind == "tax_certificate":
            return TAX_CERTIFICATE_TITLES.get(
                (self.country, language),
                TAX_CERTIFICATE_TITLES.get(("", language), TAX_CERTIFICATE_TITLES[("", "en")]),
            )
        if kind == "bank_certificate":
            return BANK_CERTIFICATE_TITLES.get(language, BANK_CERTIFICATE_TITLES["en"])
        return kind.replace("_", " ")

    def file_name(self, kind: str) -> str:
        own = next((k for k in self.kinds if k.name == kind and k.file), None)
        return self.files.get(kind) or (own.file if own else "") or f"{kind}.pdf"

    def find(self, kind: str, language: str = "") -> tuple[Path | None, str]:
        """The file to send for `kind` (its `language` variant first, e.g.
        `tax_certificate.en.pdf`), or None and why not."""
        if kind not in self.known_kinds():
            return None, f"{kind!r} is not a document kind of the library"
        name = self.file_name(kind)
        stem, dot, suffix = name.rpartition(".")
        candidates = [name]
        if _LANGUAGE.match(language or ""):
            candidates.insert(0, f"{stem}.{language}{dot}{suffix}")
        why = ""
        for candidate in candidates:
            found, why = self._safe(candidate)
            if found is not None:
                return found, ""
            if why != "no such file":
                break  # a file that is there but refused is reported, not skipped over
        log.warning("document %r not sent: %s", kind, why)
        return None, f"{name}: {why}"

    def _safe(self, name: str) -> tuple[Path | None, str]:
        """The file `name` in the folder if it may be sent, else None and why."""
        try:
            plain_file_name(name)
        except ValueError as exc:
            return None, str(exc)
        root = Path(self.path)
        if not root.is_dir():
            return None, f"the library folder {self.path} does not exist"
        full = root / name
        try:
            info = os.stat(full)  # follows a symlink: its target is what would be sent
        except FileNotFoundError:
            return None, "no such file"
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        if not full.resolve().is_relative_to(root.resolve()):
            return None, "a link to a file outside the library folder"
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_size > self.max_bytes:
            return None, f"{info.st_size} bytes, over the limit of {self.max_bytes}"
        return full, ""
