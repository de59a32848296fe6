"""`make demo`: the whole daily loop on embedded defaults, on this machine.

Starts (or reuses) a Prefect server with its UI on 127.0.0.1:4200 and a local SMTP mail sink
that keeps every message under `var/outbox/`, registers the blocks and saves demo ones,
writes a sample portfolio it generates (`apps.sample`; no data outside the repository),
serves the deployments, runs one sweep and prints where to look. With `DEMO_ONESHOT=1` it
stops everything it started after that sweep and exits 0 if the sweep completed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from deployments.server import SERVER_SETTINGS
from dunning.settings import SettingsError, settings

try:  # the DEMO_* settings: exported, or in the .env of the working directory
    SETTINGS = settings()
except SettingsError as exc:
    sys.exit(f"error: {exc}")
ROOT = Path(__file__).resolve().parent.parent
VAR = (SETTINGS.demo_var or ROOT / "var").resolve()
HOST = "127.0.0.1"
PREFECT_PORT = SETTINGS.demo_prefect_port
SMTP_PORT = SETTINGS.demo_smtp_port
WEBHOOK_PORT = SETTINGS.demo_webhook_port
DESK_PORT = SETTINGS.demo_desk_port
DEMO_DESK_USER = ("demo@acme.example", "demo-desk-pass")  # demo-only login
#: Demo-only secrets for the webhook receiver (real ones live in blocks or the environment).
DEMO_WEBHOOK_SECRETS = {
    "DUNNING_ERP_WEBHOOK_SECRET": "demo-erp-secret",
    "DUNNING_STRIPE_WEBHOOK_SECRET": "whsec_demo",
    "DUNNING_WHATSAPP_VERIFY_TOKEN": "demo-verify-token",
    "DUNNING_WHATSAPP_APP_SECRET": "demo-app-secret",
}
API_URL = f"http://{HOST}:{PREFECT_PORT}/api"
TIMEZONE = "Europe/Madrid"

os.environ["PREFECT_API_URL"] = API_URL
os.environ.setdefault("PREFECT_HOME", str(VAR / "prefect"))
# Our loggers (ledger, SMTP) reach the flow-run logs in the UI.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "dunning")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def _healthy() -> bool:
    try:
        return httpx.get(f"{API_URL}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start(args: list[str], log: str, **env: str) -> subprocess.Popen:
    out = open(VAR / log, "ab")  # noqa: SIM115 - the child keeps it open
    return subprocess.Popen(
        args,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
        env=os.environ | env,
    )


def start_prefect_server(started: list[subprocess.Popen]) -> None:
    if _healthy():
        _say(f"reusing the Prefect server at {API_URL}")
        return
    if _listening(PREFECT_PORT):
        sys.exit(
            f"port {PREFECT_PORT} is taken by something that is not a Prefect server; "
            "free it or set DEMO_PREFECT_PORT"
        )
    _say(f"starting the Prefect server on {HOST}:{PREFECT_PORT} (log: {VAR}/prefect-server.log)")
    started.append(
        _start(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                HOST,
                "--port",
                str(PREFECT_PORT),
            ],
            "prefect-server.log",
            **SERVER_SETTINGS,
        )
    )
    deadline = time.monotonic() + 120
    while not _healthy():
        if time.monotonic() > deadline or started[-1].poll() is not None:
            sys.exit("the Prefect server did not start; see var/prefect-server.log")
        time.sleep(1)


def start_mail_sink(started: list[subprocess.Popen]) -> None:
    if _listening(SMTP_PORT):
        _say(f"something already listens on {HOST}:{SMTP_PORT}; using it as the mail server")
        return
    _say(f"starting the mail sink on {HOST}:{SMTP_PORT} -> var/outbox/")
    started.append(
        _start(
            [
                sys.executable,
                "-m",
                "apps.mailsink",
                "--dir",
                str(VAR / "outbox"),
                "--host",
                HOST,
                "--port",
                str(SMTP_PORT),
            ],
            "mailsink.log",
        )
    )
    deadline = time.monotonic() + 20
    while not _listening(SMTP_PORT):
        if time.monotonic() > deadline:
            sys.exit("the mail sink did not start; see var/mailsink.log")
        time.sleep(0.2)


def demo_now() -> datetime:
    """10:00 in Madrid on the next Spanish business day (today if it is one)."""
    import numpy as np

    from dunning.calendar import business_calendar, roll_forward

    today = datetime.now(ZoneInfo(TIMEZONE)).date()
    cal = business_calendar("ES", today.year - 1, today.year + 1)
    day = roll_forward(np.array([np.datetime64(today)]), cal)[0].astype(date)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=ZoneInfo(TIMEZONE))


def save_blocks(invoices_csv: Path) -> None:
    from prefect_email import EmailServerCredentials

    from blocks import CsvInvoiceSource, DunningPolicy, EmailChannel, LedgerDatabase

    for block in (
        EmailServerCredentials,
        CsvInvoiceSource,
        DunningPolicy,
        EmailChannel,
        LedgerDatabase,
    ):
        block.register_type_and_schema()
    CsvInvoiceSource(path=str(invoices_csv)).save("default", overwrite=True)
    DunningPolicy.default().save("default", overwrite=True)
    LedgerDatabase(url=f"sqlite:///{VAR / 'ledger.db'}").save("default", overwrite=True)
    EmailChannel(
        credentials=EmailServerCredentials(
            smtp_server=HOST, smtp_port=SMTP_PORT, smtp_type="INSECURE"
        ),
        from_address="cobros@demo-empresa.example",
        from_name="Demo Empresa S.L. - Cobros",
        reply_to="maria.garcia@demo-empresa.example",
        bcc_archive="archivo-cobros@demo-empresa.example",
    ).save("default", overwrite=True)


def _wait_listening(port: int, proc: subprocess.Popen, what: str, log: str) -> None:
    deadline = time.monotonic() + 30
    while not _listening(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            sys.exit(f"{what} did not start; see var/{log}")
        time.sleep(0.2)


def start_webhook_receiver(started: list[subprocess.Popen]) -> None:
    """The receiver turning Stripe/ERP/WhatsApp webhooks into ledger rows and Prefect events."""
    if _listening(WEBHOOK_PORT):
        sys.exit(f"port {WEBHOOK_PORT} is taken; free it or set DEMO_WEBHOOK_PORT")
    args = [sys.executable, "-m", "apps.cli", "webhooks", "serve", "--host", HOST]
    args += ["--port", str(WEBHOOK_PORT), "--ledger", f"sqlite:///{VAR / 'ledger.db'}"]
    started.append(_start(args, "webhooks.log", **DEMO_WEBHOOK_SECRETS))
    _wait_listening(WEBHOOK_PORT, started[-1], "the webhook receiver", "webhooks.log")
    _say(f"webhook receiver on http://{HOST}:{WEBHOOK_PORT} (demo secrets; see docs/webhooks.md)")


def start_desk(started: list[subprocess.Popen]) -> None:
    """The collections desk over the demo ledger, with a demo manager login."""
    if _listening(DESK_PORT):
        sys.exit(f"port {DESK_PORT} is taken; free it or set DEMO_DESK_PORT")
    ledger = f"sqlite:///{VAR / 'ledger.db'}"
    cli = [sys.executable, "-m", "apps.cli", "desk"]
    subprocess.run(
        [*cli, "adduser", DEMO_DESK_USER[0], "--role", "manager", "--ledger", ledger],
        input=DEMO_DESK_USER[1] + "\n",
        text=True,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    serve = [*cli, "serve", "--host", HOST, "--port", str(DESK_PORT), "--ledger", ledger]
    serve += ["--prefect-ui-url", f"http://{HOST}:{PREFECT_PORT}"]
    started.append(_start(serve, "desk.log"))
    _wait_listening(DESK_PORT, started[-1], "the collections desk", "desk.log")
    _say(f"collections desk on http://{HOST}:{DESK_PORT} (login {DEMO_DESK_USER[0]})")


def wait_for_deployment(name: str, server: subprocess.Popen) -> None:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + 120
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(name)
                return
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit("the deployments were not served; see var/serve.log")
                time.sleep(1)


def main() -> int:
    oneshot = SETTINGS.demo_oneshot
    VAR.mkdir(exist_ok=True)
    # A demo starts from a clean slate: fresh ledger and outbox.
    shutil.rmtree(VAR / "outbox", ignore_errors=True)
    for f in VAR.glob("ledger.db*"):
        f.unlink()
    started: list[subprocess.Popen] = []
    try:
        start_prefect_server(started)
        start_mail_sink(started)
        now = demo_now()
        from apps.sample import write_demo_files

        csv = write_demo_files(VAR / "demo", now.date())
        _say(f"sample portfolio: {csv} (demo day {now.date()})")
        save_blocks(csv)
        _say("blocks registered and saved as 'default'")
        # No mailbox in the demo: process-replies handles what the webhook receiver stores.
        server = _start(
            [sys.executable, "-m", "deployments.serve"], "serve.log", DUNNING_REPLIES_MAILBOX=""
        )
        started.append(server)
        wait_for_deployment("dunning-sweep/dunning-sweep", server)
        _say(
            "deployments served: dunning-sweep (cron 0 9 * * 1-5), dunning-invoice "
            "(on webhook events), process-replies, portfolio-report (Monday 08:00)"
        )
        start_webhook_receiver(started)
        start_desk(started)

        from prefect.deployments import run_deployment

        _say(f"running one sweep for {now.isoformat()} ...")
        run = run_deployment(
            "dunning-sweep/dunning-sweep", parameters={"now": now.isoformat()}, timeout=900
        )
        ok = run.state is not None and run.state.is_completed()
        outbox = VAR / "outbox"
        sent = len(list(outbox.glob("*.eml"))) if outbox.is_dir() else 0
        _say(
            f"sweep {run.name}: {run.state.name if run.state else 'unknown'}; "
            f"{sent} messages in var/outbox/"
        )
        print(
            f"\n  Prefect UI        http://{HOST}:{PREFECT_PORT}  (Runs -> sweep -> Artifacts)\n"
            f"  Outbox (.eml)     {outbox}\n"
            f"  Ledger (SQLite)   {VAR / 'ledger.db'}\n"
            f"  Webhooks          http://{HOST}:{WEBHOOK_PORT}/webhooks/{{whatsapp,stripe,erp}}"
            "  (docs/webhooks.md)\n"
            f"  Collections desk  http://{HOST}:{DESK_PORT}  (login {DEMO_DESK_USER[0]} / "
            f"{DEMO_DESK_USER[1]}; docs/desk.md)\n"
            f"  Sample invoices   {csv}\n",
            flush=True,
        )
        if oneshot:
            return 0 if ok else 1
        _say("serving; Ctrl-C to stop")
        server.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main())
