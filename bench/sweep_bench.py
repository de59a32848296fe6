"""Sweep end to end: reminders/s of `dunning-sweep` on a real Prefect server and SMTP server.

    .venv/bin/python -m bench.sweep_bench [--invoices 100000 --due 10000]
        [--ledger sqlite|postgres] [--server-db sqlite|postgres]
        [--server-settings dunning|prefect]
        [--scenarios sweep sweep-2shards plain direct naive] [--workers 8] [--pool-size 4]

Set-up, all real and on this machine:

* a synthetic portfolio (`bench.synth`) of `--invoices` invoices, in which exactly `--due`
  email reminders are due at the planning moment (10:00 Europe/Madrid on the synthetic
  today): the other invoices inside the ladder's reach get a due date 30 days ahead, so the
  portfolio keeps its size and shape but only `--due` actions are planned;
* a `prefect server start` subprocess on a free port with its own PREFECT_HOME in a temp
  dir, on SQLite or on a fresh PostgreSQL database (`--server-db`), with our server
  settings (`deployments/server.py`) or Prefect's defaults (`--server-settings prefect`);
* an SMTP server on loopback (`bench.smtp_counter`, aiosmtpd that accepts and counts) in
  its own process; the raw ceiling is measured against that same server: one connection,
  one representative reminder-sized message after the other, as fast as it takes them;
* a fresh ledger per scenario: a SQLite file or a fresh PostgreSQL database (`--ledger`).

Scenarios, each in its own Python process (peak RSS = `ru_maxrss` of that process):

* `sweep`: `flows.sweep.dunning_sweep(...)` as users run it, one `send-reminder` task run
  per action. Seconds = from calling the flow until it returns; then the ledger must hold
  every action as `sent`, and the Prefect API is polled until it has recorded every
  `send-reminder` task run as Completed (`recorded_after`).
* `sweep-2shards`: the same sweep as two processes at once, shard 0 and shard 1 of 2 (what
  two workers running `dunning-sweep-sharded` do), on the same ledger; seconds of the
  slower one.
* `direct`: the same flow's fetch/sync/plan tasks, then the same `send_reminder` function
  (`.fn`: ledger claim, render, pooled SMTP, ledger records, CRM note) in a plain thread
  pool inside the flow, no task run per action: the cost of the per-action task runs is the
  difference with `sweep`.
* `naive`: prefect-email's `email_send_message` task once per message (a new SMTP connection
  each), submitted on a thread pool of the same size, after the same fetch/sync/plan; a
  short f-string message, nothing recorded in the ledger, so it does less than `sweep`.

* `plain`: `bench.plain_script`, the same reminders (listed by the preparation step) with
  no orchestration: pandas, an outbox table with a unique key in the same kind of database,
  one Jinja template, one SMTP connection, claim -> send -> mark sent per message.

After each `sweep` / `sweep-2shards` scenario, the Prefect events the server holds for its
flow run(s) (`POST /api/events/filter`, any resource or related resource
`prefect.flow-run.<id>`: the flow run's states and heartbeats, its task runs' states, its
artifacts created and updated), polled until the count is stable (the server writes events
asynchronously), beside the figure the summary artifact published (`EventTally`).

Targets (issue 15): the sweep >= 0.5x the plain script and >= 90 reminders/s on SQLite,
>= 0.4x the plain script on PostgreSQL, peak RSS < 1 GB, two shards >= 1.6x one process,
< 2,000 Prefect events for 10,000 reminders; the stock n8n workflow's 17.6/s is a constant
column.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
RAW_MESSAGES = 3000
TARGET_RATE = 90.0
#: The sweep's rate / the plain script's, per ledger (issue 15).
TARGET_PLAIN_SHARE = {"sqlite": 0.5, "postgres": 0.4}
TARGET_SHARDS = 1.6
#: The stock n8n workflow measured on this machine (reminders/s), a constant column.
N8N_RATE = 17.6
TARGET_RSS_MB = 1024.0
#: Prefect events one sweep may emit for `TARGET_EVENTS_FOR` reminders (issue 15).
TARGET_EVENTS, TARGET_EVENTS_FOR = 2000, 10_000
#: The events count is final once it has not moved for this long (the server's event
#: persister flushes in batches, about every few seconds).
EVENTS_STABLE_S = 6.0
PLAN_HOUR = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process so far, all threads."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (other users included)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants (for the servers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return total + sum(_tree_cpu_s(int(c)) for c in children)


def _hwm_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _now(today):  # noqa: ANN001, ANN202
    import zoneinfo
    from datetime import datetime

    return datetime(
        today.year, today.month, today.day, PLAN_HOUR, tzinfo=zoneinfo.ZoneInfo("Europe/Madrid")
    )


# -- preparing the portfolio (subprocess) ---------------------------------------------------


def run_prepare(n: int, due: int, path: str, seed: int) -> dict:
    """Write `n` synthetic invoices of which exactly `due` email reminders are due now."""
    from datetime import timedelta

    import numpy as np

    from bench.synth import DEFAULT_TODAY, synth_invoices, write_invoices_csv
    from dunning.importers import read_invoice_file
    from dunning.ledger.store import LedgerState
    from dunning.plan import deferred, due_now, plan
    from dunning.policy import default_policy

    today = DEFAULT_TODAY
    now = _now(today)
    policy = default_policy()
    frame = synth_invoices(n, seed=seed, today=today)
    write_invoices_csv(frame, path)
    planned = plan(read_invoice_file(path).invoices, policy, now, LedgerState())
    todo = due_now(planned, now)
    emails = todo[todo["channel"] == "email"]
    if len(emails) < due:
        raise SystemExit(f"only {len(emails)} email reminders due in {n} invoices; ask fewer")
    keep = set(emails["invoice"].iloc[np.random.default_rng(seed).permutation(len(emails))[:due]])
    acting = set(todo["invoice"]) | set(deferred(planned, now)["invoice"])
    push = frame["invoice_number"].isin(acting - keep).to_numpy()
    later = (today + timedelta(days=30)).isoformat()
    frame.loc[push, "due_date"] = later
    frame.loc[push, "issue_date"] = today.isoformat()
    write_invoices_csv(frame, path)
    check = due_now(plan(read_invoice_file(path).invoices, policy, now, LedgerState()), now)
    # The plain script (`bench.plain_script`) sends exactly these reminders.
    check.loc[check["channel"] == "email", ["invoice", "stage"]].to_csv(due_file(path), index=False)
    return {
        "invoices": n,
        "due": len(check),
        "email": int((check["channel"] == "email").sum()),
        "today": today.isoformat(),
        "now": now.isoformat(),
    }


def due_file(csv: str) -> str:
    """Where `run_prepare` lists the due email reminders (invoice, stage) of `csv`."""
    return str(Path(csv).with_suffix(".due.csv"))


# -- raw SMTP ceiling (subprocess) ----------------------------------------------------------


def sample_message(i: int):  # noqa: ANN201
    """A reminder-sized message (text + HTML alternative, ~3 KB), like the sweep sends."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Acme S.L. <cobros@acme.example>"
    msg["To"] = f"ap@c{i:06d}.example.com"
    msg["Subject"] = f"Recordatorio: factura INV-{i:08d} vencida"
    msg["Message-ID"] = f"<bench-{i}@acme.example>"
    body = (
        f"Estimado cliente,\n\nLa factura INV-{i:08d} por 1.234,56 EUR vencio el 1 de "
        "diciembre de 2026. Puede pagarla en https://pay.example.com/i/INV.\n\n" * 6
    )
    msg.set_content(body)
    msg.add_alternative("<html><body>" + body.replace("\n", "<br>\n") + "</body></html>", "html")
    return msg


def run_raw(port: int, count: int) -> dict:
    """One SMTP connection, `count` messages back to back; messages/s."""
    import smtplib
    from email import policy as email_policy

    payloads = [sample_message(i).as_bytes(policy=email_policy.SMTP) for i in range(count)]
    conn = smtplib.SMTP("127.0.0.1", port, timeout=30)
    conn.ehlo()
    t0 = time.perf_counter()
    for i, data in enumerate(payloads):
        conn.sendmail("cobros@acme.example", [f"ap@c{i:06d}.example.com"], data)
    seconds = time.perf_counter() - t0
    conn.quit()
    return {
        "messages": count,
        "seconds": seconds,
        "rate": count / seconds,
        "avg_bytes": sum(map(len, payloads)) / count,
    }


# -- scenarios (subprocess) -----------------------------------------------------------------


def _blocks(csv: str, port: int, ledger_url: str, pool_size: int):  # noqa: ANN202
    from prefect_email import EmailServerCredentials

    from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase

    creds = EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=port, smtp_type="INSECURE")
    channel = EmailChannel(
        credentials=creds,
        from_address="cobros@acme.example",
        from_name="Acme S.L.",
        reply_to="maria@acme.example",
        pool_size=pool_size,
    )
    return CsvInvoiceSource(path=csv), channel, LedgerDatabase(url=ledger_url), creds


def _sent_in_ledger(url: str) -> int:
    import sqlalchemy as sa

    from dunning.ledger.store import get_engine

    with get_engine(url).connect() as conn:
        return conn.execute(sa.text("select count(*) from actions where state = 'sent'")).scalar()


def _count_completed(flow_run_id: str, like: str, *, completed: bool = True) -> int:
    """Task runs (Completed ones, or all) of the flow run whose name contains `like`, as the
    API counts."""
    import httpx

    runs: dict = {"name": {"like_": like}}
    if completed:
        runs["state"] = {"type": {"any_": ["COMPLETED"]}}
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "task_runs": runs}
    r = httpx.post(f"{os.environ['PREFECT_API_URL']}/task_runs/count", json=body, timeout=60)
    r.raise_for_status()
    return int(r.json())


def _phases(flow_run_id: str) -> dict:
    """Where the flow's time went, from the task runs the server recorded: the sum of each
    other task's run time, and the span of the per-action task runs (first start, last end)."""
    from datetime import datetime

    import httpx

    api = os.environ["PREFECT_API_URL"]
    runs: list[dict] = []
    while True:
        body = {
            "flow_runs": {"id": {"any_": [flow_run_id]}},
            "sort": "EXPECTED_START_TIME_ASC",
            "limit": 200,
            "offset": len(runs),
        }
        page = httpx.post(f"{api}/task_runs/filter", json=body, timeout=60).json()
        runs += page
        if len(page) < 200:
            break
    other: dict[str, float] = {}
    starts, ends, run_times = [], [], []
    for r in runs:
        if not r["start_time"] or not r["end_time"]:
            continue
        if r["name"].startswith(("INV-", "naive-send", "send ")):
            starts.append(datetime.fromisoformat(r["start_time"]))
            ends.append(datetime.fromisoformat(r["end_time"]))
            run_times.append(r["total_run_time"])
        else:
            task = r["name"].rsplit("-", 1)[0]
            other[task] = other.get(task, 0.0) + r["total_run_time"]
    out = {"other_tasks_s": {k: round(v, 2) for k, v in other.items()}}
    if starts:
        out["actions_span_s"] = (max(ends) - min(starts)).total_seconds()
        out["action_run_time_mean_ms"] = 1000 * sum(run_times) / len(run_times)
    return out


def _wait_recorded(flow_run_id: str, expected: int, like: str, timeout: float) -> dict:
    """Poll the API until `expected` task runs named like `like` are Completed."""
    t0 = time.perf_counter()
    seen = 0
    while time.perf_counter() - t0 < timeout:
        seen = _count_completed(flow_run_id, like)
        if seen >= expected:
            break
        time.sleep(1.0)
    return {"task_runs": seen, "recorded_after_s": time.perf_counter() - t0}


def _events_filter(flow_run_ids: list[str], since: datetime) -> dict:
    """Events about the flow runs: theirs, or any event naming one among its related
    resources (task runs' states and artifacts carry the flow run they ran in)."""
    return {
        "occurred": {"since": since.isoformat()},
        "any_resource": {"id": [f"prefect.flow-run.{i}" for i in flow_run_ids]},
    }


def _events_total(api: str, flow_run_ids: list[str], since: datetime) -> int:
    import httpx

    body = {"filter": _events_filter(flow_run_ids, since), "limit": 1}
    r = httpx.post(f"{api}/events/filter", json=body, timeout=60)
    r.raise_for_status()
    return int(r.json()["total"])


def _events_by_name(api: str, flow_run_ids: list[str], since: datetime) -> dict[str, int]:
    """Every event about the flow runs, paged through `next_page`, counted by event name."""
    from collections import Counter

    import httpx

    names: Counter[str] = Counter()
    r = httpx.post(
        f"{api}/events/filter",
        json={"filter": _events_filter(flow_run_ids, since)},
        timeout=60,
    )
    while True:
        r.raise_for_status()
        page = r.json()
        names.update(e["event"] for e in page["events"])
        if not page.get("next_page"):
            return dict(names.most_common())
        r = httpx.get(page["next_page"], timeout=60)


def _published_events(api: str, flow_run_ids: list[str]) -> int | None:
    """The events the flow runs' summary artifacts published (`EventTally`), summed; None
    when a summary does not show them."""
    import re

    import httpx

    body = {
        "artifacts": {
            "flow_run_id": {"any_": flow_run_ids},
            "key": {"any_": ["dunning-sweep-summary"]},
        }
    }
    r = httpx.post(f"{api}/artifacts/filter", json=body, timeout=60)
    r.raise_for_status()
    # The figure as the summary shows it to users (`dunning.summary.to_markdown`).
    found = [re.search(r"\*\*Prefect:\*\*.*? ([\d,]+) events\.", a["data"] or "") for a in r.json()]
    if len(found) != len(flow_run_ids) or not all(found):
        return None
    return sum(int(m.group(1).replace(",", "")) for m in found if m)


def _wait_events(api: str, flow_run_ids: list[str], since: datetime, timeout: float) -> dict:
    """Poll the server until the count of events about the flow runs has not moved for
    `EVENTS_STABLE_S` (events are written asynchronously), then count them by name."""
    t0 = time.perf_counter()
    seen, stable_since = -1, t0
    while time.perf_counter() - t0 < timeout:
        count = _events_total(api, flow_run_ids, since)
        if count != seen:
            seen, stable_since = count, time.perf_counter()
        elif time.perf_counter() - stable_since >= EVENTS_STABLE_S:
            break
        time.sleep(1.0)
    by_name = _events_by_name(api, flow_run_ids, since)
    return {
        "events": seen,
        "events_paged": sum(by_name.values()),
        "events_by_name": by_name,
        "events_published": _published_events(api, flow_run_ids),
        "events_stable_after_s": stable_since - t0,
    }


def run_scenario(args: argparse.Namespace) -> dict:
    """Run one scenario against the running servers; print its measurements."""
    from datetime import date

    from prefect import flow
    from prefect.task_runners import ThreadPoolTaskRunner

    import flows.sweep as sweep_module
    from dunning.action import PlannedAction
    from dunning.plan import due_now, planned_actions
    from dunning.policy import default_policy
    from tasks.act import send_reminder
    from tasks.erp import fetch_open_invoices
    from tasks.ledger import sync_ledger
    from tasks.plan import plan_actions

    now = _now(date.fromisoformat(args.today))
    source, channel, ledger, creds = _blocks(args.csv, args.smtp_port, args.ledger_url, args.pool)
    runner = ThreadPoolTaskRunner(max_workers=args.workers)
    result: dict = {"scenario": args.scenario}

    def _prepare_actions() -> tuple[list[PlannedAction], dict]:
        policy = default_policy()
        t = time.perf_counter()
        loaded = fetch_open_invoices(source, None)
        invoices = loaded.invoices
        sync_ledger(ledger, invoices, policy, now)
        planned = plan_actions(invoices, policy, ledger, now, channel.window(policy.window))
        actions = planned_actions(due_now(planned, now))
        result["prepare_s"] = time.perf_counter() - t
        emails = dict(zip(invoices["invoice_number"], invoices["email"], strict=True))
        return actions, emails

    @flow(name="bench-direct", task_runner=runner)
    def bench_direct() -> dict:
        from concurrent.futures import ThreadPoolExecutor

        actions, _ = _prepare_actions()
        policy = default_policy()
        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            outcomes = list(
                pool.map(
                    lambda a: send_reminder.fn(a, source, policy, channel, ledger, now), actions
                )
            )
        result["send_s"] = time.perf_counter() - t
        return {"sent": sum(o.status == "sent" for o in outcomes), "tasks": len(actions)}

    @flow(name="bench-naive", task_runner=runner)
    def bench_naive() -> dict:
        from prefect_email import email_send_message

        actions, emails = _prepare_actions()
        t = time.perf_counter()
        futures = [
            email_send_message.with_options(name="naive-send").submit(
                subject=f"Reminder: invoice {a.invoice} ({a.stage})",
                msg=f"<p>Dear customer, invoice {a.invoice} is due. Please pay.</p>",
                email_server_credentials=creds,
                email_from="cobros@acme.example",
                email_to=emails[a.invoice],
            )
            for a in actions
        ]
        sent = 0
        for f in futures:
            try:
                f.result()
                sent += 1
            except Exception:  # counted as not sent; the table shows it
                pass
        result["send_s"] = time.perf_counter() - t
        return {"sent": sent, "tasks": len(actions)}

    t0, cpu0 = time.perf_counter(), _cpu_s()
    if args.scenario == "sweep":
        state = sweep_module.dunning_sweep.with_options(
            task_runner=ThreadPoolTaskRunner(max_workers=args.workers)
        )(
            source=source,
            channel=channel,
            ledger=ledger,
            now=now,
            shards=args.shards,
            shard=args.shard,
            return_state=True,
        )
    elif args.scenario == "direct":
        state = bench_direct(return_state=True)
    else:
        state = bench_naive(return_state=True)
    result["seconds"] = time.perf_counter() - t0
    result["cpu_s"] = _cpu_s() - cpu0
    counts = state.result()
    result["counts"] = {k: v for k, v in counts.items() if isinstance(v, int | float | str)}
    result["peak_mb"] = _peak_mb()
    result["vmhwm_mb"] = _hwm_mb()
    if args.scenario == "naive":
        result["sent"] = counts["sent"]
    else:
        result["sent"] = _sent_in_ledger(args.ledger_url)  # the whole ledger: all shards
    flow_run_id = str(state.state_details.flow_run_id)
    result["flow_run_ids"] = [flow_run_id]
    if args.scenario == "direct":
        result.update(task_runs=0, recorded_after_s=0.0)
    else:
        if args.scenario == "sweep":
            # Per-action (`INV-...`) or batch (`send 1-50 of ...`) task runs, bounded by
            # max_task_runs: wait until every task run of the flow run is Completed.
            like, expected = "", _count_completed(flow_run_id, "", completed=False)
        else:
            like, expected = "naive-send", counts["sent"]
        result.update(_wait_recorded(flow_run_id, expected, like, args.record_timeout))
        result.update(_phases(flow_run_id))
    return result


# -- servers (parent) -----------------------------------------------------------------------


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _create_pg_db(prefix: str) -> tuple[str, str]:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgres@127.0.0.1:5432/{name}"


def _drop_pg_db(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tree_hwm_mb(pid: int) -> float:
    """Sum of the peak RSS of a process and its descendants (the server may fork)."""
    total = _hwm_mb(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(_tree_hwm_mb(int(c)) for c in children)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _subprocess(args: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, "-m", "bench.sweep_bench", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"benchmark subprocess failed: {' '.join(cmd)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _two_shards(common: list[str], env: dict) -> dict:
    """The sweep as two shard processes at once on this machine (as two workers would run
    `dunning-sweep-sharded`): seconds of the slower, the sum of their task runs and CPU."""
    from concurrent.futures import ThreadPoolExecutor

    args = [["--scenario", "sweep", "--shards", "2", "--shard", str(k), *common] for k in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda a: _subprocess(a, env=env), args))
    return {
        "scenario": "sweep-2shards",
        "seconds": max(p["seconds"] for p in parts),
        "sent": max(p["sent"] for p in parts),  # each counts the whole ledger when done
        "cpu_s": sum(p["cpu_s"] for p in parts),
        "peak_mb": max(p["peak_mb"] for p in parts),
        "task_runs": sum(p["task_runs"] for p in parts),
        "recorded_after_s": max(p["recorded_after_s"] for p in parts),
        "counts": {k: sum(p["counts"].get(k, 0) for p in parts) for k in ("sent", "failed")},
        "other_tasks_s": parts[0].get("other_tasks_s", {}),
        "flow_run_ids": [i for p in parts for i in p["flow_run_ids"]],
    }


def _plain(csv: str, smtp_port: int, ledger_url: str) -> dict:
    """The plain-script baseline (`bench.plain_script`) in its own process."""
    cmd = [sys.executable, "-m", "bench.plain_script", "--csv", csv, "--due", due_file(csv)]
    cmd += ["--ledger-url", ledger_url, "--smtp-port", str(smtp_port)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-5000:])
        raise SystemExit(f"benchmark subprocess failed: {' '.join(cmd)}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return r | {"task_runs": 0, "recorded_after_s": 0.0, "counts": {"sent": r["sent"]}}


def _machine() -> str:
    v = importlib.metadata.version
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, prefect {v('prefect')}, "
        f"prefect-email {v('prefect-email')}, aiosmtpd {v('aiosmtpd')}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.sweep_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--invoices", type=int, default=100_000)
    p.add_argument("--due", type=int, default=10_000)
    p.add_argument("--ledger", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--server-db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument(
        "--server-settings",
        choices=["dunning", "prefect"],
        default="dunning",
        help="the Prefect server's settings: ours (deployments/server.py) or Prefect's defaults",
    )
    p.add_argument(
        "--scenarios",
        nargs="+",
        choices=["sweep", "sweep-2shards", "plain", "direct", "naive"],
        default=["sweep", "sweep-2shards", "plain"],
    )
    p.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=8, help="SEND_WORKERS (threads sending)")
    p.add_argument("--pool-size", type=int, default=4, help="EmailChannel.pool_size")
    p.add_argument("--raw-messages", type=int, default=RAW_MESSAGES)
    p.add_argument(
        "--heartbeat",
        default="",
        help="PREFECT_FLOWS_HEARTBEAT_FREQUENCY for the flows (seconds; empty: Prefect's)",
    )
    p.add_argument(
        "--log-level", default="INFO", help="PREFECT_LOGGING_LEVEL of the flows (Prefect's: INFO)"
    )
    p.add_argument("--record-timeout", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    # internal: subprocess modes
    p.add_argument("--prepare", metavar="CSV", help=argparse.SUPPRESS)
    p.add_argument("--raw", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--csv", help=argparse.SUPPRESS)
    p.add_argument("--smtp-port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--ledger-url", help=argparse.SUPPRESS)
    p.add_argument("--today", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.pool = args.pool_size

    if args.prepare:
        print(json.dumps(run_prepare(args.invoices, args.due, args.prepare, args.seed)))
        return 0
    if args.raw:
        print(json.dumps(run_raw(args.raw, args.raw_messages)))
        return 0
    if args.scenario:
        print(json.dumps(run_scenario(args)))
        return 0
    return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    print(f"machine: {_machine()}", flush=True)
    dbs: list[str] = []
    procs: list[subprocess.Popen] = []
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="sweep_bench_") as tmp:
        try:
            csv = str(Path(tmp) / "invoices.csv")
            t = time.perf_counter()
            prep = _subprocess(
                ["--prepare", csv, "--invoices", str(args.invoices), "--due", str(args.due)]
                + ["--seed", str(args.seed)]
            )
            print(
                f"portfolio: {prep['invoices']:,} invoices, {prep['due']:,} actions due at "
                f"{prep['now']} ({prep['email']:,} by email); made in "
                f"{time.perf_counter() - t:.1f} s",
                flush=True,
            )

            smtp_port = _free_port()
            smtp = subprocess.Popen(
                [sys.executable, "-m", "bench.smtp_counter", "--port", str(smtp_port)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            procs.append(smtp)
            assert smtp.stdout is not None
            smtp.stdout.readline()

            api_port = _free_port()
            server_env = dict(os.environ)
            if args.server_settings == "dunning":
                from deployments.server import server_env as with_dunning_settings

                server_env = with_dunning_settings(server_env)
            server_env.update(
                PREFECT_HOME=str(Path(tmp) / "server_home"),
                PREFECT_SERVER_ANALYTICS_ENABLED="false",
            )
            server_env.pop("PREFECT_API_URL", None)
            if args.server_db == "postgres":
                name, where = _create_pg_db("sweep_bench_prefect")
                dbs.append(name)
                server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = (
                    f"postgresql+asyncpg://{where}"
                )
            server_log = open(Path(tmp) / "server.log", "w")  # noqa: SIM115
            t = time.perf_counter()
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "prefect"), "server", "start"]
                + ["--host", "127.0.0.1", "--port", str(api_port)],
                cwd=tmp,
                env=server_env,
                stdout=server_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            procs.append(server)
            api = f"http://127.0.0.1:{api_port}/api"
            _wait_http(f"{api}/health", 180, server)
            print(
                f"prefect server ({args.server_db}, {args.server_settings} settings) ready in "
                f"{time.perf_counter() - t:.1f} s",
                flush=True,
            )

            raw = _subprocess(["--raw", str(smtp_port), "--raw-messages", str(args.raw_messages)])
            print(
                f"raw SMTP ceiling: {raw['messages']:,} messages of ~{raw['avg_bytes']:,.0f} B "
                f"on one connection in {raw['seconds']:.2f} s = {raw['rate']:,.0f} msg/s",
                flush=True,
            )

            client_env = dict(os.environ)
            client_env.update(
                PREFECT_API_URL=api,
                PREFECT_HOME=str(Path(tmp) / "client_home"),
                PREFECT_LOGGING_LEVEL=args.log_level,
                PREFECT_SERVER_ANALYTICS_ENABLED="false",
            )
            if args.heartbeat:
                client_env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = args.heartbeat
            for i, scenario in enumerate(args.scenarios):
                if args.ledger == "postgres":
                    name, where = _create_pg_db("sweep_bench_ledger")
                    dbs.append(name)
                    ledger_url = f"postgresql+psycopg://{where}"
                else:
                    ledger_url = f"sqlite:///{tmp}/ledger_{i}.db"
                cpu0 = _tree_cpu_s(server.pid), _tree_cpu_s(smtp.pid)
                busy0 = _machine_busy()
                # A little before: the server stamps events with the client's clock.
                since = datetime.now(UTC) - timedelta(seconds=5)
                common = (
                    ["--csv", csv, "--smtp-port", str(smtp_port)]
                    + ["--ledger-url", ledger_url, "--today", prep["today"]]
                    + ["--workers", str(args.workers), "--pool-size", str(args.pool_size)]
                    + ["--record-timeout", str(args.record_timeout)]
                )
                if scenario == "sweep-2shards":
                    r = _two_shards(common, client_env)
                elif scenario == "plain":
                    r = _plain(csv, smtp_port, ledger_url)
                else:
                    r = _subprocess(["--scenario", scenario, *common], env=client_env)
                r["rate"] = r["sent"] / r["seconds"]
                if scenario.startswith("sweep"):
                    # After the processes exited: their event workers have sent everything.
                    r.update(_wait_events(api, r["flow_run_ids"], since, args.record_timeout))
                if "prepare_s" not in r:  # the sweep: its fetch/sync/plan task runs
                    other = r.get("other_tasks_s", {})
                    r["prepare_s"] = sum(
                        v for k, v in other.items() if k.startswith(("fetch", "sync", "plan"))
                    )
                r["server_cpu_s"] = _tree_cpu_s(server.pid) - cpu0[0]
                r["smtp_cpu_s"] = _tree_cpu_s(smtp.pid) - cpu0[1]
                busy1 = _machine_busy()
                r["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
                results.append(r)
                print(
                    f"{scenario}: {r['sent']:,} sent in {r['seconds']:.1f} s "
                    f"(fetch+sync+plan {r.get('prepare_s', float('nan')):.1f} s) = "
                    f"{r['rate']:.1f}/s; {r['task_runs']:,} task runs recorded "
                    f"{r['recorded_after_s']:.1f} s after the flow returned; "
                    f"peak RSS {r['peak_mb']:.0f} MB; counts {r['counts']}; CPU s: this process "
                    f"{r['cpu_s']:.1f}, Prefect server {r['server_cpu_s']:.1f}, SMTP server "
                    f"{r['smtp_cpu_s']:.1f} (incl. recording wait), machine busy "
                    f"{r['machine_busy']:.0%}; {_events_line(r)}; phases "
                    f"{ {k: r[k] for k in r if k.startswith(('actions_', 'action_', 'other_'))} }",
                    flush=True,
                )
            server_peak = _tree_hwm_mb(server.pid)
        finally:
            for proc in reversed(procs):
                _stop(proc)
            for name in dbs:
                _drop_pg_db(name)
        smtp_out = smtp.stdout.read().strip().splitlines()
        smtp_stats = json.loads(smtp_out[-1]) if smtp_out else {}

    expected = raw["messages"] + sum(r["sent"] for r in results)
    print(
        f"SMTP server accepted {smtp_stats.get('messages', 0):,} messages "
        f"(expected {expected:,}: raw + every scenario's sent); peak RSS "
        f"{smtp_stats.get('peak_kb', 0) / 1024:.0f} MB; Prefect server peak RSS "
        f"{server_peak:.0f} MB"
    )
    print()
    print(table(results, raw, args))
    print()
    print(verdict(results, raw, args.ledger))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"prep": prep, "raw": raw, "results": results, "smtp": smtp_stats}, indent=2)
        )
    return 0


def _events_line(r: dict) -> str:
    if "events" not in r:
        return "no Prefect events counted"
    published = r["events_published"]
    return (
        f"{r['events']:,} Prefect events held by the server (stable after "
        f"{r['events_stable_after_s']:.0f} s; {r['events_paged']:,} paged), "
        f"{'-' if published is None else f'{published:,}'} published by the summary: "
        f"{r['events_by_name']}"
    )


def _events_cell(r: dict) -> str:
    if "events" not in r:
        return "-"
    published = r["events_published"]
    return f"{r['events']:,} ({'-' if published is None else f'{published:,}'})"


def table(results: list[dict], raw: dict, args: argparse.Namespace) -> str:
    plain = next((r for r in results if r["scenario"] == "plain"), None)
    head = (
        "| scenario | ledger | server db | reminders | seconds | reminders/s "
        "| / plain script | / stock n8n (17.6/s) | / raw SMTP ceiling "
        "| task runs (+s to record) | events (summary's) | peak RSS MB |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in results:
        vs_plain = f"{r['rate'] / plain['rate']:.2f}x" if plain else "-"
        lines.append(
            f"| {r['scenario']} | {args.ledger} | {args.server_db} ({args.server_settings}) "
            f"| {r['sent']:,} | {r['seconds']:.1f} | {r['rate']:.1f} | {vs_plain} "
            f"| {r['rate'] / N8N_RATE:.1f}x | {r['rate'] / raw['rate']:.1%} "
            f"| {r['task_runs']:,} (+{r['recorded_after_s']:.0f} s) | {_events_cell(r)} "
            f"| {r['peak_mb']:.0f} |"
        )
    lines.append(
        f"| raw SMTP, 1 connection | - | - | {raw['messages']:,} | {raw['seconds']:.1f} "
        f"| {raw['rate']:.0f} | - | - | 100% | - | - | - |"
    )
    lines.append(
        f"| stock n8n workflow (constant, measured earlier) | - | - | - | - | {N8N_RATE} "
        "| - | 1.0x | - | - | - | - |"
    )
    return "\n".join(lines)


def verdict(results: list[dict], raw: dict, ledger: str = "sqlite") -> str:
    """The issue's targets: >= 0.5x the plain script and >= 90/s on SQLite (>= 0.4x on
    PostgreSQL), peak RSS < 1 GB, two shards >= 1.6x one process, < 2,000 Prefect events
    for 10,000 reminders (judged only on a sweep of that many: fewer prove nothing)."""
    by = {r["scenario"]: r for r in results}
    sweep, plain, two = by.get("sweep"), by.get("plain"), by.get("sweep-2shards")
    if sweep is None:
        return "targets: sweep not measured"
    share = TARGET_PLAIN_SHARE[ledger]
    checks = []
    if plain:
        checks.append(
            (
                f">= {share}x the plain script ({sweep['rate'] / plain['rate']:.2f}x)",
                sweep["rate"] >= share * plain["rate"],
            )
        )
    if ledger == "sqlite":
        checks.append(
            (
                f">= {TARGET_RATE:.0f} reminders/s ({sweep['rate']:.1f})",
                sweep["rate"] >= TARGET_RATE,
            )
        )
    peak = max(r["peak_mb"] for r in results if r["scenario"].startswith("sweep"))
    checks.append((f"peak RSS < {TARGET_RSS_MB:.0f} MB ({peak:.0f})", peak < TARGET_RSS_MB))
    if two:
        ratio = two["rate"] / sweep["rate"]
        checks.append(
            (f"two shards >= {TARGET_SHARDS}x one process ({ratio:.2f}x)", ratio >= TARGET_SHARDS)
        )
    if "events" in sweep:
        name = f"< {TARGET_EVENTS:,} Prefect events for {TARGET_EVENTS_FOR:,} reminders"
        seen = f"{sweep['events']:,} for {sweep['sent']:,}"
        if sweep["sent"] >= TARGET_EVENTS_FOR:
            checks.append((f"{name} ({seen})", sweep["events"] < TARGET_EVENTS))
        else:
            checks.append((f"{name} ({seen}: too few reminders to judge)", None))
    verdicts = "; ".join(f"{n}: {_verdict_word(ok)}" for n, ok in checks)
    return f"targets ({ledger} ledger): {verdicts}"


def _verdict_word(ok: bool | None) -> str:
    return "NOT JUDGED" if ok is None else "MET" if ok else "NOT MET"


if __name__ == "__main__":
    raise SystemExit(main())
