"""The sweep process is killed (SIGKILL) at random points, 20 times in a row, and restarted.

After a last clean run every due reminder was delivered once, or it is in doubt (marked
`sending` when the kill came between handing it to the server and recording the answer)
and `dunning ledger in-doubt` lists it: it is never resent silently. Nothing is lost.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from dunning.ledger import Action, Ledger
from dunning.ledger.models import utcnow
from dunning.mail import message_id
from dunning.smtp import SmtpPool, SmtpSettings
from tests.faults import core
from tests.faults.smtpfaults import FaultSink, duplicates
from tests.invoices import write_invoices

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
DUE = 200  # more than 20 kills after at most 8 messages each can use up


def _start(csv: Path, url: str, sink: FaultSink) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.faults.core", "--invoices", str(csv), "--ledger", url]
    cmd += ["--smtp-port", str(sink.port), "--workers", "4"]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )


def _wait_until_acting(proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until the child prints "acting <n>" (its first send is next) or exits; one that
    does neither in `timeout` fails the test with its error output instead of hanging."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            proc.kill()
            raise AssertionError(f"the sweep never started acting: {proc.communicate()[1][-2000:]}")
    proc.stdout.readline()  # "acting <n>", or "" if it finished first (counted as such)


def test_killed_twenty_times_then_each_due_reminder_once_or_reported(
    fault_sink: FaultSink, tmp_path, figures
):
    rng = random.Random(20261209)
    csv = write_invoices(
        tmp_path / "inv.csv",
        [
            dict(invoice_number=f"K-{i:03d}", email=f"k{i}@x{i}.example", due_date="2026-12-02")
            for i in range(DUE)
        ],
    )
    url = f"sqlite:///{tmp_path}/l.db"
    killed = finished = 0
    kill_points: list[str] = []
    while killed < KILLS and killed + finished < 2 * KILLS:
        proc = _start(csv, url, fault_sink)
        if rng.random() < 0.2:  # during start-up, the sync or the plan
            delay = rng.uniform(0.2, 1.2)
            where = "start"
        else:
            # While sending: after the k-th message this run gets accepted (k = 0: before
            # any), plus a jitter, so the kill lands between any two steps of an action
            # whatever the machine's speed.
            _wait_until_acting(proc)
            k = rng.randint(0, 8)
            target = fault_sink.handler.accepted + k
            deadline = time.monotonic() + 60
            while fault_sink.handler.accepted < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the sweep stopped sending"
                time.sleep(0.002)
            delay = rng.uniform(0.0, 0.05)
            where = f"message {k}"
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
            kill_points.append(f"{where}+{delay:.2f}s")
        else:
            finished += 1
        proc.communicate(timeout=60)

    ledger = Ledger(url)
    # The last run comes later than the claims' stale_claim_minutes (15): a claim that never
    # reached the mail server is retaken then. Age them as the clock would.
    table = Action.__table__
    with ledger.engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.state == "claimed")
            .values(updated_at=utcnow() - timedelta(minutes=16))
        )
    before = ledger.frame(Action)["state"].value_counts().to_dict()
    final = _start(csv, url, fault_sink)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err[-3000:]
    last = json.loads(out.strip().splitlines()[-1])["counts"]

    actions = ledger.frame(Action).set_index("key")
    copies = fault_sink.by_message_id()
    report = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ledger", "in-doubt", "--ledger", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    in_doubt = actions[actions["state"] == "sending"]
    sent = actions[actions["state"] == "sent"]
    # Killed between the claim and `sending`: certainly never handed to the server; a
    # later sweep retakes them once stale (test_a_stale_claim_left_by_a_killed_run_...).
    stuck = actions[actions["state"] == "claimed"]

    assert killed == KILLS, (killed, finished)
    assert len(actions) == DUE  # every due reminder is in the ledger: none lost
    assert set(actions["state"]) <= {"sent", "sending", "claimed"}, actions["state"].value_counts()
    stuck_ids = {message_id(k, "acme.example") for k in stuck.index}
    assert not stuck_ids & set(copies)  # a claimed action never reached the server
    assert duplicates(copies) == 0  # no message reached the server twice
    assert all(copies[mid] == 1 for mid in sent["message_id"])  # each sent one arrived once
    for key in in_doubt.index:  # each one in doubt is reported, not resent
        assert key in report.stdout
    assert len(copies) <= DUE
    figures(
        due=DUE,
        runs=killed + finished + 1,
        killed=killed,
        finished_before_kill=finished,
        kill_points=kill_points,
        states_before_last_run=before,
        last_run=last,
        sent=len(sent),
        in_doubt=len(in_doubt),
        in_doubt_arrived=int(sum(copies[m] for m in in_doubt["message_id"])),
        duplicated=duplicates(copies),
        stuck_claimed=len(stuck),
        lost=DUE - len(actions),
    )


def test_a_stale_claim_left_by_a_killed_run_is_sent_by_a_later_sweep(fault_sink, tmp_path):
    csv = write_invoices(
        tmp_path / "inv.csv",
        [dict(invoice_number="Q-1", email="q@q.example", due_date="2026-12-02")],
    )
    url = f"sqlite:///{tmp_path}/l.db"
    script = (
        "import os\n"
        "from dunning.ledger import Ledger\n"
        f"assert Ledger({url!r}).claim(key='Q-1:overdue_7:email', invoice_number='Q-1',\n"
        "    customer_id='C1', stage='overdue_7', channel='email').claimed\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ledger = Ledger(url)
    table = Action.__table__
    with ledger.engine.begin() as conn:  # the next day's sweep: the claim is long stale
        conn.execute(sa.update(table).values(updated_at=utcnow() - timedelta(days=1)))
    pool = SmtpPool(SmtpSettings(fault_sink.host, fault_sink.port, timeout=10), size=1)
    read, lookup = core.csv_source(str(csv))
    outcomes = core.sweep(read, lookup, ledger, pool)
    pool.close()
    assert core.counts(outcomes) == {"sent": 1}
    assert len(fault_sink.messages()) == 1
