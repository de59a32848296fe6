"""The project's settings: every `DUNNING_*` variable (and the demo's `DEMO_*`), in one place.

Each setting is read from the environment, else from a `.env` file in the working directory
(python-dotenv, through pydantic-settings), else its default. So a `.env` beside the project
(`dunning init` writes a commented one) configures the command line, the served deployments,
the workers, the desk, the webhook receiver and the demo without exporting anything in every
shell and service; an exported variable still wins over the file.

A key of the `.env` that looks like ours (`DUNNING_*`, `DEMO_*`) but names no setting is an
error with the closest names ("did you mean"): a typo must not silently leave a default in
place. Secrets are `SecretStr`: printed as `**********`, never in an error.

    >>> from dunning.settings import settings
    >>> settings().risk_threads
    1

README.md's "Settings" table lists every field (`tests/test_settings.py` checks it).
"""

from __future__ import annotations

import difflib
import os
import textwrap
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The file read from the working directory.
ENV_FILE = ".env"
#: Prefixes of the keys this project owns: any other key with them is a typo.
PREFIXES = ("DUNNING_", "DEMO_")


class SettingsError(ValueError):
    """A setting is unknown or has a value that cannot be used (says which and what to do)."""


def _demo(name: str) -> str:
    """The variable of a demo setting (`DEMO_*`, outside the `DUNNING_` prefix)."""
    return f"DEMO_{name.upper()}"


class Settings(BaseSettings):
    """Every setting of prefect-dunning (see the module's docstring for where they are read).

    The field `ledger_url` is the variable `DUNNING_LEDGER_URL`; the demo's fields carry their
    `DEMO_*` names as aliases. `env_name(field)` gives a field's variable.
    """

    model_config = SettingsConfigDict(
        env_prefix="DUNNING_",
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        # Unknown keys are refused by `_check_dotenv`, with a "did you mean" pydantic lacks.
        extra="ignore",
        frozen=True,
    )

    # -- deployments (deployments/serve.py, the flows at run time) --------------------------
    timezone: str | None = Field(
        None,
        description="Timezone of the deployments' cron schedules (the sweep, the weekly "
        "report), e.g. `America/Mexico_City`; unset: what `prefect.yaml` declares "
        "(Europe/Madrid).",
    )
    sweep_cron: str | None = Field(
        None, description="Cron of `dunning-sweep`; unset: `prefect.yaml`'s (09:00 Mon-Fri)."
    )
    replies: bool = Field(True, description="`0` leaves the `process-replies` deployment out.")
    replies_every: int | None = Field(
        None, gt=0, description="Seconds between `process-replies` runs; unset: 300."
    )
    replies_mailbox: str | None = Field(
        None,
        description="Saved IMAP mailbox block `process-replies` reads; empty: none (only the "
        "replies the webhook receiver stores); unset: `default`.",
    )
    report_to: str = Field(
        "",
        description="The weekly report's recipients, comma-separated; empty: the report is "
        "published as artifacts only.",
    )
    crm: str | None = Field(
        None,
        description="Saved CRM block the sweeps deliver notes and tasks to "
        "(`hubspot-crm/prod`); unset: the ledger (no external CRM).",
    )
    policy: str | None = Field(
        None,
        description="The dunning policy: a YAML file (`policy.yaml`, relative to the working "
        "directory) or a saved DunningPolicy block's name; unset: the built-in ladder.",
    )
    home: str | None = Field(
        None,
        description="The project folder a worker runs the deployed flows in (`prefect.yaml`'s "
        "pull step; Prefect reads it from the worker's environment, export it there).",
    )
    # -- the ledger, the desk, the webhook receiver -----------------------------------------
    ledger_url: str | None = Field(
        None,
        description="Ledger SQLAlchemy URL (`sqlite:///var/ledger.db`, `postgresql+psycopg://"
        "...`) for the command line, the desk and the webhook receiver; unset: `--ledger` or "
        "the saved `default` LedgerDatabase block.",
    )
    desk_secret: SecretStr | None = Field(
        None,
        description="Signs the desk's session cookie; unset: a random key per process "
        "(everyone logs in again after a restart).",
    )
    prefect_ui_url: str | None = Field(
        None,
        description="The Prefect UI the desk links to (the portfolio's flow runs, the flow "
        "run of a sweep's entry in a customer's timeline); unset: Prefect's `PREFECT_UI_URL` "
        "(or its `PREFECT_API_URL` without `/api`), else no links.",
    )
    desk_url: str = Field(
        "http://127.0.0.1:8788",
        description="The collections desk as people reach it: internal notifications link to "
        "the customer's timeline there.",
    )
    attachments_dir: Path | None = Field(
        None,
        description="Folder the desk stores attachments in (one file per attachment, named by "
        "a random id); unset: `attachments/` beside a SQLite ledger's file, else "
        "`var/attachments` in the working directory.",
    )
    attachments_max_mb: float = Field(
        10, gt=0, le=100, description="Largest attachment the desk accepts, in MB (10**6 bytes)."
    )
    whatsapp_verify_token: SecretStr | None = Field(
        None, description="WhatsApp webhook handshake token (else the WhatsApp channel block's)."
    )
    whatsapp_app_secret: SecretStr | None = Field(
        None, description="Meta app secret that signs WhatsApp webhooks (else the block's)."
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None, description="Stripe webhook signing secret `whsec_...` (else WebhookSecrets')."
    )
    erp_webhook_secret: SecretStr | None = Field(
        None, description="Shared secret of the ERP's webhooks (else WebhookSecrets')."
    )
    # -- the core ---------------------------------------------------------------------------
    templates: Path | None = Field(
        None, description="A templates folder used instead of the installed `templates`."
    )
    replies_training: str = Field(
        "",
        description="Replies (JSONL) the reply model trains on; `off`: no model; empty: the "
        "bundled `dunning/replies/training.jsonl`.",
    )
    risk_threads: int = Field(1, ge=1, description="OpenMP threads of the risk model's trees.")
    # -- tests and benchmarks ---------------------------------------------------------------
    data_dir: Path | None = Field(
        None,
        description="Folder of the public data sets the real-data tests and benches read; "
        "unset: `../shared/data` beside the repository.",
    )
    faults_rows: int = Field(
        100_000, gt=0, description="Rows of the fault tests' large file (1000000 for the figures)."
    )
    faults_figures: Path | None = Field(
        None, description="JSONL file the fault tests write their figures to; unset: none."
    )
    # -- the demo (`make demo`) -------------------------------------------------------------
    demo_var: Path | None = Field(
        None, validation_alias=_demo("var"), description="The demo's folder; unset: `var/`."
    )
    demo_prefect_port: int = Field(
        4200, validation_alias=_demo("prefect_port"), description="The demo's Prefect server port."
    )
    demo_smtp_port: int = Field(
        1025, validation_alias=_demo("smtp_port"), description="The demo's mail sink port."
    )
    demo_webhook_port: int = Field(
        8787, validation_alias=_demo("webhook_port"), description="The demo's webhook port."
    )
    demo_desk_port: int = Field(
        8788, validation_alias=_demo("desk_port"), description="The demo's desk port."
    )
    demo_oneshot: bool = Field(
        False, validation_alias=_demo("oneshot"), description="`1`: exit after the first sweep."
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"{value!r} is not an IANA timezone; use e.g. Europe/Madrid"
                ) from None
        return value or None

    @field_validator("report_to")
    @classmethod
    def _addresses(cls, value: str) -> str:
        bad = [a for a in (x.strip() for x in value.split(",")) if a and "@" not in a]
        if bad:
            raise ValueError(f"{bad[0]!r} is not an email address (comma-separate several)")
        return value

    @field_validator(
        "desk_secret", "templates", "data_dir", "faults_figures", "attachments_dir", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `DUNNING_DESK_SECRET=` in a .env means "not set", as an empty export always did.
        return None if value == "" else value

    def policy_file(self) -> Path | None:
        """`policy` as a YAML file (a `.yaml`/`.yml` name or an existing file), else None
        (unset, or the name of a saved block)."""
        if not self.policy:
            return None
        path = Path(self.policy)
        return path if path.suffix.lower() in {".yaml", ".yml"} or path.is_file() else None

    def secret_value(self, name: str) -> str | None:
        """The plain text of the secret field `name`, or None when unset."""
        secret = getattr(self, name)
        return secret.get_secret_value() if secret is not None else None


def env_name(field: str) -> str:
    """The variable of a setting: `ledger_url` -> `DUNNING_LEDGER_URL`."""
    info: FieldInfo = Settings.model_fields[field]
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"{Settings.model_config['env_prefix']}{field.upper()}"


def known_names() -> dict[str, str]:
    """Every setting's variable -> its field."""
    return {env_name(field): field for field in Settings.model_fields}


#: Every setting's variable, as the environment spells it (keys the cache of `settings`).
_NAMES = frozenset(known_names())


def settings(env_file: str | Path | None = ENV_FILE) -> Settings:
    """The settings now: the environment, then `env_file` (default `.env` in the working
    directory; None: the environment only), then the defaults.

    Building them takes milliseconds and a sweep asks per message (the templates folder), so
    they are kept for as long as what they are read from is unchanged: our variables in the
    environment and the file (which one, its modification time and size). A test or a
    service that changes either sees the change at the next call.

    Raises:
        SettingsError: a `DUNNING_*`/`DEMO_*` key of the file is no setting, or a value is
            unusable; the message names the variable and what to do.
    """
    try:
        stat = os.stat(env_file) if env_file is not None else None
    except OSError:  # no such file: the environment and the defaults
        stat = None
    version = stat and (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    ours = sorted(_NAMES.intersection(os.environ))  # no lookup of absent names: they are slow
    return _read(env_file if version else None, version, tuple((n, os.environ[n]) for n in ours))


@lru_cache(maxsize=8)
def _read(env_file: str | Path | None, _version: tuple | None, _env: tuple) -> Settings:
    """The settings from `env_file` (None: no file) and the environment; the other
    arguments only key the cache."""
    path = Path(env_file) if env_file is not None else None
    if path is not None:
        _check_dotenv(path)
    try:
        return Settings(_env_file=path)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, path)) from None


def _check_dotenv(path: Path) -> None:
    """Refuse a key of the file that looks like ours but names no setting."""
    names = known_names()
    for key in dotenv_values(path):
        upper = key.upper()
        if upper.startswith(PREFIXES) and upper not in names:
            close = difflib.get_close_matches(upper, names, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SettingsError(
                f"{path.resolve()}: unknown setting {key}: {hint}"
                "the settings are listed in README.md (Settings)"
            )


def _describe(exc: ValidationError, path: Path | None) -> str:
    """One line per bad setting, naming its variable; never the value (it may be a secret)."""
    where = f"the environment or {path.resolve()}" if path is not None else "the environment"
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = env_name(field) if field in Settings.model_fields else field
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"setting {name} (from {where}): {message}")
    return "; ".join(lines)


def dotenv_template(values: dict[str, str] | None = None) -> str:
    """A `.env` listing every setting under its meaning: commented out at its default, or
    set to `values[field]` (what `dunning init` writes)."""
    values = values or {}
    lines = [
        '# prefect-dunning settings (README.md, "Settings"). Read from this file in the working',
        "# directory; an exported variable wins. Uncomment a line to change a setting.",
    ]
    for field, info in Settings.model_fields.items():
        lines += [
            "",
            *textwrap.wrap(info.description or "", 90, initial_indent="# ", subsequent_indent="# "),
        ]
        if field in values:
            lines.append(f"{env_name(field)}={values[field]}")
        else:
            lines.append(f"# {env_name(field)}={_shown(info.default)}")
    return "\n".join(lines) + "\n"


def _shown(default: object) -> str:
    """A default as a `.env` value (empty when there is none)."""
    if default is None:
        return ""
    if isinstance(default, bool):
        return "1" if default else "0"
    return str(default)
