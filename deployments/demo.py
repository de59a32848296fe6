"""`make demo`: the whole daily loop on embedded defaults, on this machine.

Starts (or reuses) a Prefect server with its UI on 127.0.0.1:4200 and a local SMTP mail sink
that keeps every message under `var/outbox/`, registers the blocks and saves demo ones,
writes a sample portfolio it generates (`apps.sample`; no data outside the repository),
serves the deployments, runs one sweep and prints where to look. With `DEMO_ONESHOT=1` it
stops everything it started after that sweep and exits 0 if the sweep completed.

Every process it starts runs in its own process group, recorded in `var/demo/demo.pid`; Ctrl-C,
SIGTERM (a service manager) and SIGHUP (a closed terminal) stop those groups. A demo refuses
to start while processes of an earlier one still run (`python -m deployments.demo --stop`
stops them), and a port taken by another program stops it before it starts anything, with
one line naming the port and the `DEMO_*_PORT` variable that moves it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn
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
#: This demo's pid and its children's (each the leader of its own process group).
PIDFILE = VAR / "demo" / "demo.pid"
#: Seconds a child gets to exit after SIGTERM before its group gets SIGKILL.
STOP_GRACE_S = 3.0
#: Every process this demo started, oldest first.
CHILDREN: list[subprocess.Popen] = []
#: The children the others talk to (the Prefect server, the mail sink), stopped after them:
#: `serve` pauses its schedules on the way out, which waits for a server that is gone.
SERVICES: list[subprocess.Popen] = []
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


def _port_free(port: int) -> bool:
    """Whether a server could listen on `port` now (a closed socket in TIME_WAIT does not
    count, as for uvicorn, which also sets SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _port_taken(port: int, variable: str, what: str) -> NoReturn:
    sys.exit(
        f"[demo] port {port} is taken by another program: free it, or run the demo's {what} "
        f"on another port with {variable}=<port>"
    )


def check_ports() -> None:
    """Exit with one line before anything starts if another program holds a port the demo
    needs. A Prefect server or mail server already answering on its port is used instead."""
    if not _port_free(PREFECT_PORT) and not _healthy():
        _port_taken(PREFECT_PORT, "DEMO_PREFECT_PORT", "Prefect server")
    if not _port_free(WEBHOOK_PORT):
        _port_taken(WEBHOOK_PORT, "DEMO_WEBHOOK_PORT", "webhook receiver")
    if not _port_free(DESK_PORT):
        _port_taken(DESK_PORT, "DEMO_DESK_PORT", "collections desk")


def _write_pidfile() -> None:
    PIDFILE.parent.mkdir(parents=True, exist_ok=True)
    record = {"demo": os.getpid(), "children": [proc.pid for proc in CHILDREN]}
    PIDFILE.write_text(json.dumps(record) + "\n")


def _read_pidfile() -> tuple[int, list[int]] | None:
    """The pid of the demo recorded in `PIDFILE` and its children's, or None."""
    try:
        record = json.loads(PIDFILE.read_text())
        return int(record["demo"]), [int(pid) for pid in record["children"]]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        sys.exit(f"[demo] {PIDFILE} is not a demo pid file; delete it if no demo runs")


def _demo_alive(pid: int) -> bool:
    """Whether `pid` is a running demo (where /proc tells, not a process that reused the pid)."""
    if pid == os.getpid():
        return False
    if Path("/proc/self").exists():
        try:
            return b"deployments.demo" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _stop_groups(pgids: list[int]) -> None:
    """SIGTERM every process group (the newest first), SIGKILL what is left after
    `STOP_GRACE_S`: a child's own children go with it, as they share its group."""
    if not pgids:
        return
    for pgid in reversed(pgids):
        _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        for proc in CHILDREN:
            proc.poll()  # reap it: a zombie leader would keep its group alive
        if not any(_group_alive(pgid) for pgid in pgids):
            return
        time.sleep(0.1)
    for pgid in pgids:
        _signal_group(pgid, signal.SIGKILL)
    for proc in CHILDREN:
        if proc.pid in pgids:  # the other wave's children are still running
            proc.wait()


def _stop_command() -> str:
    moved = f"DEMO_VAR={VAR} " if SETTINGS.demo_var is not None else ""
    return f"{moved}{sys.executable} -m deployments.demo --stop"


def refuse_stale_demo() -> None:
    """Exit, saying how to stop them, if a demo or processes an earlier demo started still
    run: a new demo would wipe their ledger and talk to their servers."""
    earlier = _read_pidfile()
    if earlier is None:
        return
    demo_pid, pgids = earlier
    if _demo_alive(demo_pid):
        sys.exit(
            f"[demo] a demo is already running (pid {demo_pid}): stop it with Ctrl-C in its "
            f"terminal, `kill {demo_pid}` or `{_stop_command()}`"
        )
    alive = [pgid for pgid in pgids if _group_alive(pgid)]
    if alive:
        sys.exit(
            f"[demo] processes an earlier demo started still run (process groups "
            f"{', '.join(map(str, alive))}): stop them with `{_stop_command()}`"
        )


def stop_earlier_demo() -> int:
    """`--stop`: stop the demo recorded in the pid file and every process group it started."""
    earlier = _read_pidfile()
    if earlier is None:
        _say(f"no demo recorded in {PIDFILE}; nothing to stop")
        return 0
    demo_pid, pgids = earlier
    if _demo_alive(demo_pid):
        os.kill(demo_pid, signal.SIGTERM)  # it stops its own children
        deadline = time.monotonic() + 2 * STOP_GRACE_S
        while _demo_alive(demo_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    _stop_groups(pgids)  # what is left, e.g. when the demo itself was killed with SIGKILL
    PIDFILE.unlink(missing_ok=True)
    _say(f"stopped the demo (pid {demo_pid}) and the process groups it started")
    return 0


#: Whether a child is being started, and whether a stop signal came meanwhile.
_starting = False
_stop_requested = False


def _on_stop_signal(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM, SIGHUP: KeyboardInterrupt, which unwinds to `main`'s `finally` that
    stops every child; while a child is being started, once it is recorded (else it would
    outlive the demo)."""
    global _stop_requested
    if _starting:
        _stop_requested = True
        return
    raise KeyboardInterrupt


def _start(args: list[str], log: str, **env: str) -> subprocess.Popen:
    """Start a child in its own process group (a terminal's Ctrl-C reaches the demo only,
    which then stops the group) and record it in the pid file."""
    global _starting
    out = open(VAR / log, "ab")  # noqa: SIM115 - the child keeps it open
    _starting = True
    try:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env=os.environ | env,
        )
        CHILDREN.append(proc)
        _write_pidfile()
    finally:
        _starting = False
    if _stop_requested:
        raise KeyboardInterrupt
    return proc


def start_prefect_server() -> None:
    if _healthy():
        _say(f"reusing the Prefect server at {API_URL}")
        return
    if not _port_free(PREFECT_PORT):
        _port_taken(PREFECT_PORT, "DEMO_PREFECT_PORT", "Prefect server")
    _say(f"starting the Prefect server on {HOST}:{PREFECT_PORT} (log: {VAR}/prefect-server.log)")
    server = _start(
        [sys.executable, "-m", "prefect", "server", "start"]
        + ["--host", HOST, "--port", str(PREFECT_PORT)],
        "prefect-server.log",
        **SERVER_SETTINGS,
    )
    SERVICES.append(server)
    deadline = time.monotonic() + 120
    while not _healthy():
        if time.monotonic() > deadline or server.poll() is not None:
            sys.exit("the Prefect server did not start; see var/prefect-server.log")
        time.sleep(1)


def start_mail_sink() -> None:
    if _listening(SMTP_PORT):
        _say(f"something already listens on {HOST}:{SMTP_PORT}; using it as the mail server")
        return
    _say(f"starting the mail sink on {HOST}:{SMTP_PORT} -> var/outbox/")
    sink = _start(
        [sys.executable, "-m", "apps.mailsink", "--dir", str(VAR / "outbox")]
        + ["--host", HOST, "--port", str(SMTP_PORT)],
        "mailsink.log",
    )
    SERVICES.append(sink)
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


def start_webhook_receiver() -> None:
    """The receiver turning Stripe/ERP/WhatsApp webhooks into ledger rows and Prefect events."""
    if not _port_free(WEBHOOK_PORT):
        _port_taken(WEBHOOK_PORT, "DEMO_WEBHOOK_PORT", "webhook receiver")
    args = [sys.executable, "-m", "apps.cli", "webhooks", "serve", "--host", HOST]
    args += ["--port", str(WEBHOOK_PORT), "--ledger", f"sqlite:///{VAR / 'ledger.db'}"]
    receiver = _start(args, "webhooks.log", **DEMO_WEBHOOK_SECRETS)
    _wait_listening(WEBHOOK_PORT, receiver, "the webhook receiver", "webhooks.log")
    _say(f"webhook receiver on http://{HOST}:{WEBHOOK_PORT} (demo secrets; see docs/webhooks.md)")


def start_desk() -> None:
    """The collections desk over the demo ledger, with a demo manager login."""
    if not _port_free(DESK_PORT):
        _port_taken(DESK_PORT, "DEMO_DESK_PORT", "collections desk")
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
    desk = _start(serve, "desk.log")
    _wait_listening(DESK_PORT, desk, "the collections desk", "desk.log")
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


def main(argv: list[str] | None = None) -> int:
    """Run the demo (see the module docstring); `--stop` stops an earlier one."""
    parser = argparse.ArgumentParser(prog="python -m deployments.demo")
    parser.add_argument(
        "--stop", action="store_true", help="stop the demo recorded in var/demo/demo.pid"
    )
    if parser.parse_args(argv).stop:
        return stop_earlier_demo()
    oneshot = SETTINGS.demo_oneshot
    VAR.mkdir(exist_ok=True)
    refuse_stale_demo()
    check_ports()
    _write_pidfile()
    # Ctrl-C, a service manager (SIGTERM) and a closed terminal (SIGHUP) stop the demo.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_stop_signal)
    # A demo starts from a clean slate: fresh ledger and outbox.
    shutil.rmtree(VAR / "outbox", ignore_errors=True)
    for f in VAR.glob("ledger.db*"):
        f.unlink()
    try:
        start_prefect_server()
        start_mail_sink()
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
        wait_for_deployment("dunning-sweep/dunning-sweep", server)
        _say(
            "deployments served: dunning-sweep (cron 0 9 * * 1-5), dunning-invoice "
            "(on webhook events), process-replies, portfolio-report (Monday 08:00)"
        )
        start_webhook_receiver()
        start_desk()

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
        # A second signal must not interrupt the stopping.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        _stop_groups([proc.pid for proc in CHILDREN if proc not in SERVICES])
        _stop_groups([proc.pid for proc in SERVICES])
        PIDFILE.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
