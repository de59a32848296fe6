"""One settings object: the environment, else a `.env` in the working directory, else the
defaults; typos refused; secrets kept secret; every reader (command line, deployments, desk,
webhook receiver, templates, demo) sees a `.env` with nothing exported."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dunning.settings import Settings, SettingsError, env_name, known_names, settings

ROOT = Path(__file__).resolve().parent.parent
OURS = ("DUNNING_", "DEMO_")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, no DUNNING_*/DEMO_* exported."""
    for name in list(os.environ):
        if name.upper().startswith(OURS):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any DUNNING_*/DEMO_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(OURS)}
    return env | {"PYTHONPATH": str(ROOT)} | extra


def test_the_readme_table_lists_exactly_the_settings():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = [re.match(r"\| `([A-Z_]+)` \|", row).group(1) for row in rows]
    assert sorted(documented) == sorted(known_names())
    assert len(documented) == len(set(documented)) == len(Settings.model_fields)
    assert all(row.count(" | ") >= 2 for row in rows)  # name | meaning | default


def test_the_environment_wins_over_the_dotenv_which_wins_over_the_defaults(project, monkeypatch):
    assert settings().report_to == "" and settings().risk_threads == 1
    (project / ".env").write_text(
        "# a comment\nDUNNING_REPORT_TO=cfo@acme.example\nDUNNING_RISK_THREADS=2\n"
        "DEMO_WEBHOOK_PORT=9123\nPREFECT_API_URL=http://127.0.0.1:1/api\n"
    )
    current = settings()
    assert (current.report_to, current.risk_threads, current.demo_webhook_port) == (
        "cfo@acme.example",
        2,
        9123,
    )
    monkeypatch.setenv("DUNNING_RISK_THREADS", "3")
    assert settings().risk_threads == 3 and settings().report_to == "cfo@acme.example"
    assert env_name("ledger_url") == "DUNNING_LEDGER_URL"
    assert env_name("demo_desk_port") == "DEMO_DESK_PORT"


def test_an_unknown_key_in_the_dotenv_is_an_error_with_the_closest_name(project):
    (project / ".env").write_text("DUNNING_REPORT_T0=cfo@acme.example\n")
    with pytest.raises(SettingsError, match="unknown setting DUNNING_REPORT_T0: did you mean "):
        settings()
    # The command line says it in one line, exit 2, before doing anything.
    run = subprocess.run(
        [sys.executable, "-m", "apps.cli", "plan", "--invoices", "x.csv"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"error: {project / '.env'}: unknown setting DUNNING_REPORT_T0: did you mean "
        "DUNNING_REPORT_TO? the settings are listed in README.md (Settings)"
    ]


def test_a_bad_value_names_its_variable_and_never_shows_a_secret(project):
    (project / ".env").write_text(
        "DUNNING_DESK_SECRET=desk-s3cret-value\nDUNNING_RISK_THREADS=tw0-s3cret\n"
        "DUNNING_TIMEZONE=Europe/Madird\n"
    )
    with pytest.raises(SettingsError) as caught:
        settings()
    message = str(caught.value)
    assert "setting DUNNING_RISK_THREADS" in message and "valid integer" in message
    assert "setting DUNNING_TIMEZONE" in message and "not an IANA timezone" in message
    assert "s3cret" not in message
    (project / ".env").write_text("DUNNING_DESK_SECRET=desk-s3cret-value\n")
    current = settings()
    assert "s3cret" not in repr(current) and "s3cret" not in str(current.model_dump())
    assert current.secret_value("desk_secret") == "desk-s3cret-value"


def test_every_reader_takes_the_dotenv(project):
    from apps.desk.app import DeskConfig
    from apps.webhooks.app import ReceiverConfig
    from blocks import DunningPolicy
    from deployments.serve import deployments
    from dunning.render import templates_dir
    from dunning.replies.model import training_path

    templates = shutil.copytree(ROOT / "templates", project / "my-templates")
    policy = yaml.safe_load((ROOT / "dunning" / "default_policy.yaml").read_text())
    policy["name"] = "from-dotenv"
    (project / "policy.yaml").write_text(yaml.safe_dump(policy))
    (project / ".env").write_text(
        "\n".join(
            [
                "DUNNING_DESK_SECRET=desk-key",
                "DUNNING_PREFECT_UI_URL=http://prefect.acme.example:4200",
                "DUNNING_STRIPE_WEBHOOK_SECRET=whsec_from_dotenv",
                "DUNNING_ERP_WEBHOOK_SECRET=erp-from-dotenv",
                f"DUNNING_TEMPLATES={templates}",
                "DUNNING_TIMEZONE=America/Mexico_City",
                "DUNNING_REPORT_TO=cfo@acme.example, ceo@acme.example",
                "DUNNING_REPLIES=0",
                "DUNNING_POLICY=policy.yaml",
                "DUNNING_REPLIES_TRAINING=off",
            ]
        )
        + "\n"
    )
    desk = DeskConfig(ledger_url="sqlite://")
    assert desk.secret_key == "desk-key"
    assert desk.prefect_ui_url == "http://prefect.acme.example:4200"
    receiver = ReceiverConfig.from_environment("sqlite://")
    assert receiver.stripe_secret.get_secret_value() == "whsec_from_dotenv"
    assert receiver.erp_secret.get_secret_value() == "erp-from-dotenv"
    configured = receiver.configured()
    assert (configured["whatsapp"], configured["stripe"], configured["erp"]) == (False, True, True)
    assert templates_dir() == templates
    assert training_path() is None
    served = {d.name: d for d in deployments()}
    assert "process-replies" not in served
    assert served["dunning-sweep"].schedules[0].schedule.timezone == "America/Mexico_City"
    report = served["portfolio-report"]
    assert report.schedules[0].schedule.timezone == "America/Mexico_City"
    assert report.parameters["recipients"] == "cfo@acme.example, ceo@acme.example"
    assert DunningPolicy.from_settings().name == "from-dotenv"


def test_prefect_yaml_has_no_placeholder_and_the_sweep_takes_a_crm():
    from deployments.serve import declared

    text = (ROOT / "prefect.yaml").read_text()
    assert "acme.example" not in text
    specs = {spec["name"]: spec for spec in declared()}
    assert "crm" in specs["dunning-sweep"]["parameters"]
    assert specs["portfolio-report"]["parameters"]["recipients"] == ""


def test_the_demo_reads_its_settings_from_the_dotenv(tmp_path):
    (tmp_path / ".env").write_text(
        "DEMO_WEBHOOK_PORT=9787\nDEMO_DESK_PORT=9788\nDEMO_PREFECT_PORT=9200\n"
        "DEMO_SMTP_PORT=9025\nDEMO_VAR=demo-var\nDEMO_ONESHOT=1\n"
    )
    probe = (
        "import json, deployments.demo as d; print(json.dumps([d.WEBHOOK_PORT, d.DESK_PORT, "
        "d.PREFECT_PORT, d.SMTP_PORT, str(d.VAR), d.SETTINGS.demo_oneshot]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == [
        9787,
        9788,
        9200,
        9025,
        str(tmp_path / "demo-var"),
        True,
    ]


def test_a_dotenv_drives_a_sweep_and_the_sender_flags_reach_the_message(prefect_api, tmp_path):
    """`dunning sweep` in a folder with a .env and nothing exported: the ledger and the policy
    come from the .env; --from-name, --reply-to and --bcc shape the message."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from apps.mailsink import MailSink
    from tests.invoices import write_invoices

    # A ladder without overdue_7: an invoice 7 days late gets overdue_1 (the latest stage due).
    policy = yaml.safe_load((ROOT / "dunning" / "default_policy.yaml").read_text())
    policy["stages"] = [s for s in policy["stages"] if s["name"] != "overdue_7"]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    (tmp_path / ".env").write_text(
        "DUNNING_LEDGER_URL=sqlite:///dotenv-ledger.db\nDUNNING_POLICY=policy.yaml\n"
    )
    write_invoices(tmp_path / "inv.csv", [dict(invoice_number="ENV-1", due_date="2026-12-02")])
    with MailSink(tmp_path / "outbox", port=0) as sink:
        run = subprocess.run(
            [
                *(sys.executable, "-m", "apps.cli", "sweep", "--invoices", "inv.csv"),
                *("--now", "2026-12-09T10:00:00+01:00"),
                *("--smtp-host", sink.host, "--smtp-port", str(sink.port)),
                *("--from", "cobros@acme.example", "--from-name", "Acme Cobros"),
                *("--reply-to", "maria.garcia@acme.example", "--bcc", "archivo@acme.example"),
            ],
            cwd=tmp_path,
            env=clean_env(PREFECT_API_URL=prefect_api),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert json.loads(run.stdout.strip().splitlines()[-1])["sent"] == 1
        [message] = sink.messages()
    assert (tmp_path / "dotenv-ledger.db").is_file()
    assert message["X-Dunning-Key"] == "ENV-1:overdue_1:email"
    assert message["From"] == "Acme Cobros <cobros@acme.example>"
    assert message["Reply-To"] == "maria.garcia@acme.example"
    assert message["Bcc"] is None  # the archive copy travels in the envelope only
    envelope = {a.strip() for a in message["X-Envelope-To"].split(",")}
    assert envelope == {"pagos@cliente.example", "archivo@acme.example"}
    with get_client(sync_client=True) as client:
        [summary] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["dunning-sweep-summary"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert "**CRM:** the ledger (no external CRM):" in summary.data
    assert "unsaved" not in summary.data


def test_the_flows_fill_empty_parameters_from_the_dotenv(prefect_api, project):
    """Deployments made by `prefect deploy` leave recipients and crm empty: the flows take
    them from the settings of the folder they run in."""
    from datetime import date, datetime

    from apps.mailsink import MailSink
    from blocks import CsvInvoiceSource, LedgerDatabase
    from dunning.importers import read_invoice_file
    from dunning.ledger import Ledger
    from flows.portfolio import portfolio_report
    from flows.sweep import dunning_sweep
    from tests.invoices import write_invoices
    from tests.test_flows import channel_for

    (project / ".env").write_text(
        "DUNNING_REPORT_TO=cfo@acme.example, ceo@acme.example\nDUNNING_CRM=no-such-crm\n"
    )
    csv = write_invoices(project / "inv.csv", [dict(invoice_number="R-1", due_date="2026-12-02")])
    url = f"sqlite:///{project}/ledger.db"
    now = datetime.fromisoformat("2026-12-09T10:00:00+01:00")
    Ledger(url).sync_invoices(read_invoice_file(csv).invoices, now=now)
    with MailSink(project / "outbox", port=0) as sink:
        portfolio_report(
            ledger=LedgerDatabase(url=url), channel=channel_for(sink), as_of=date(2026, 12, 9)
        )
        [report] = sink.messages()
        with pytest.raises(ValueError, match="no-such-crm"):
            dunning_sweep(
                source=CsvInvoiceSource(path=str(csv)),
                channel=channel_for(sink),
                ledger=LedgerDatabase(url=url),
                now=now,
            )
    envelope = {a.strip() for a in report["X-Envelope-To"].split(",")}
    assert envelope == {"cfo@acme.example", "ceo@acme.example"}
