"""WhatsApp message templates: which approved template each ladder stage uses, per language.

Business-initiated WhatsApp messages must use templates approved by Meta, so the text lives
at Meta and here we only say which template to use and what fills its `{{1}}`, `{{2}}`, ...
One YAML file per stage in `templates/whatsapp/<stage>.yaml`:

```yaml
stage: overdue_7
name: dunning_overdue_7          # the template's name in WhatsApp Manager
category: UTILITY
languages:
  es:
    code: es                     # the template's language code at Meta
    body: "Hola {{1}}, la factura {{2}} de {{3}} venció el {{4}}."
    parameters: [customer_name, invoice_number, amount_due, due_date]
  en:
    code: en
    ...
```

`body` is the text as submitted for approval: it is checked against `parameters` (same count)
and recorded in the ledger as what the customer read. Parameter values come from
`dunning.render.message_context`, so amounts and dates are formatted for the customer's locale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dunning.render import templates_dir

#: What a template parameter may be: the keys of `message_context`, plus `text` for answers
#: and a statement's `count` (of invoices) and `total` (per currency, joined).
PARAMETERS: frozenset[str] = frozenset(
    {
        "count",
        "total",
        "customer_name",
        "invoice_number",
        "amount_due",
        "amount_total",
        "due_date",
        "issue_date",
        "days_overdue",
        "days_to_due",
        "payment_link",
        "company_name",
        "text",
    }
)
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
# Meta refuses body parameters with newlines, tabs or more than four spaces in a row.
_SPACES = re.compile(r"[ \t\r\n\f\v]+")


class TemplateError(ValueError):
    """A template mapping that is missing, malformed, or cannot be filled for an invoice."""


@dataclass(frozen=True)
class TemplateSpec:
    """One approved template in one language."""

    stage: str
    name: str
    language: str
    code: str
    body: str
    parameters: tuple[str, ...]
    source: str = ""

    def values(self, context: dict[str, Any]) -> list[str]:
        """The body parameter values, in order, from a `message_context`.

        Raises `TemplateError` naming the parameter when the invoice has no value for it
        (an empty parameter is refused by the API).
        """
        out = []
        for param in self.parameters:
            value = _SPACES.sub(" ", str(context.get(param, "") or "")).strip()
            if not value:
                raise TemplateError(
                    f"WhatsApp template {self.name!r} ({self.code}) needs {param!r}, which is "
                    f"empty for invoice {context.get('invoice_number', '?')}: add it at the "
                    f"source, or remove it from {self.source or self.stage + '.yaml'}"
                )
            out.append(value[:1024])
        return out

    def payload(self, values: list[str]) -> dict[str, Any]:
        """The `template` object of a Cloud API message (contract section 1)."""
        return {
            "name": self.name,
            "language": {"policy": "deterministic", "code": self.code},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": v} for v in values]}
            ],
        }

    def text(self, values: list[str]) -> str:
        """The message as the customer reads it (the approved body, filled in)."""
        return _PLACEHOLDER.sub(lambda m: values[int(m.group(1)) - 1], self.body)


@dataclass(frozen=True)
class TemplateMessage:
    """A filled-in template, ready to send: the API payload and the text it shows."""

    spec: TemplateSpec
    values: tuple[str, ...]

    @property
    def payload(self) -> dict[str, Any]:
        return self.spec.payload(list(self.values))

    @property
    def text(self) -> str:
        return self.spec.text(list(self.values))


class TemplateBook:
    """All stages' template mappings, loaded from a folder of YAML files.

    Example:
        >>> book = TemplateBook.load()
        >>> book.spec("overdue_7", "es").name
        'dunning_overdue_7'
    """

    def __init__(self, specs: dict[tuple[str, str], TemplateSpec], root: Path) -> None:
        self._specs = specs
        self.root = root

    @classmethod
    def load(cls, root: str | Path | None = None) -> TemplateBook:
        """Read every `<stage>.yaml` under `root` (default `templates/whatsapp/`)."""
        folder = Path(root) if root else templates_dir() / "whatsapp"
        return _load(str(folder.resolve()))

    @property
    def stages(self) -> list[str]:
        return sorted({stage for stage, _ in self._specs})

    def languages(self, stage: str) -> list[str]:
        return sorted(lang for s, lang in self._specs if s == stage)

    def spec(self, stage: str, language: str, fallback_language: str = "en") -> TemplateSpec:
        """The template of `stage` in `language`, else in the fallback language.

        Raises `TemplateError` when the stage has no mapping in either.
        """
        lang = (language or "").split("-")[0].split("_")[0].lower()
        for candidate in dict.fromkeys((lang, fallback_language)):
            spec = self._specs.get((stage, candidate))
            if spec is not None:
                return spec
        if not any(s == stage for s, _ in self._specs):
            raise TemplateError(
                f"no WhatsApp template for stage {stage!r}: add {self.root}/{stage}.yaml"
            )
        raise TemplateError(
            f"WhatsApp template for stage {stage!r} has no language {language!r} nor "
            f"{fallback_language!r}: add it to {self.root}/{stage}.yaml"
        )

    def message(
        self, stage: str, language: str, context: dict[str, Any], fallback_language: str = "en"
    ) -> TemplateMessage:
        """The stage's template filled in from a `message_context` (see `TemplateSpec.values`)."""
        spec = self.spec(stage, language, fallback_language)
        return TemplateMessage(spec, tuple(spec.values(context)))


@lru_cache(maxsize=8)
def _load(folder: str) -> TemplateBook:
    root = Path(folder)
    if not root.is_dir():
        raise TemplateError(f"no WhatsApp template folder {root}")
    specs: dict[tuple[str, str], TemplateSpec] = {}
    for path in sorted(root.glob("*.yaml")):
        for spec in _read(path):
            specs[(spec.stage, spec.language)] = spec
    return TemplateBook(specs, root)


def _read(path: Path) -> list[TemplateSpec]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML ({exc})") from None
    stage = str(doc.get("stage") or path.stem)
    languages = doc.get("languages")
    if not isinstance(languages, dict) or not languages:
        raise TemplateError(f"{path}: needs a 'languages' mapping (es: {{code, body, ...}})")
    specs = []
    for lang, entry in languages.items():
        where = f"{path.name}, language {lang}"
        if not isinstance(entry, dict):
            raise TemplateError(f"{where}: expected a mapping with code, body and parameters")
        name = str(entry.get("name") or doc.get("name") or "")
        params = tuple(str(p) for p in entry.get("parameters") or doc.get("parameters") or ())
        body = str(entry.get("body") or "")
        if not name:
            raise TemplateError(f"{where}: no template 'name'")
        unknown = sorted(set(params) - PARAMETERS)
        if unknown:
            raise TemplateError(
                f"{where}: unknown parameter(s) {unknown}; use any of {sorted(PARAMETERS)}"
            )
        numbers = sorted({int(n) for n in _PLACEHOLDER.findall(body)})
        if numbers != list(range(1, len(params) + 1)):
            raise TemplateError(
                f"{where}: the body has placeholders {numbers} but {len(params)} parameter(s) "
                f"{list(params)}; they must match one to one ({{{{1}}}}..{{{{{len(params)}}}}})"
            )
        specs.append(
            TemplateSpec(
                stage=stage,
                name=name,
                language=str(lang).lower(),
                code=str(entry.get("code") or lang),
                body=body,
                parameters=params,
                source=str(path),
            )
        )
    return specs
