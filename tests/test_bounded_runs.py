"""A sweep makes at most `max_task_runs` task runs for its actions, and still shows every one.

The grouping rule (`dunning.batches`) alone, then the `dunning-sweep` flow on the Prefect test
harness with a real SMTP sink: per-invoice task runs up to the bound, batches of customers
named by their range above it, every outcome in the table artifacts, every email once.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from apps.mailsink import MailSink
from blocks import CsvInvoiceSource, LedgerDatabase
from dunning.action import ActionKey, Outcome, PlannedAction
from dunning.batches import BatchIncomplete, BatchProgress, act_on_batch, batch_actions
from dunning.smtp import NotSent
from dunning.summary import table_chunks
from flows.sweep import dunning_sweep
from tests.invoices import write_invoices
from tests.test_flows import NOW, channel_for, task_runs_of


def actions_of(customers: list[int]) -> list[PlannedAction]:
    """One action per entry, for customer `C<n>` (invoice `F-<i>`)."""
    return [
        PlannedAction(ActionKey(f"F-{i}", "overdue_7", "email"), f"C{c}", "overdue_7")
        for i, c in enumerate(customers)
    ]


# -- the grouping rule ----------------------------------------------------------------------


def test_up_to_the_bound_each_action_is_its_own_batch():
    actions = actions_of([1, 2, 1, 3])
    batches = batch_actions(actions, max_task_runs=4)
    assert [b.actions for b in batches] == [(a,) for a in (actions[0], actions[2], *actions[1::2])]
    assert sorted(p for b in batches for p in b.positions) == [0, 1, 2, 3]


def test_ten_thousand_actions_make_two_hundred_batches_named_by_range():
    batches = batch_actions(actions_of(list(range(10_000))), max_task_runs=200)
    assert len(batches) == 200
    assert batches[8].name == "send 401–450 of 10,000"
    assert batches[-1].name == "send 9,951–10,000 of 10,000"


def test_a_customer_is_never_split_and_the_bound_holds():
    # 300 actions of 97 customers, some with many invoices, interleaved as a plan lists them.
    customers = [i % 97 if i % 5 else 3 for i in range(300)]
    actions = actions_of(customers)
    for bound in (1, 2, 7, 20, 299):
        batches = batch_actions(actions, bound)
        assert 1 <= len(batches) <= bound
        seen = [p for b in batches for p in b.positions]
        assert sorted(seen) == list(range(300))  # every action once
        owner = {}
        for n, b in enumerate(batches):
            for a in b.actions:
                assert owner.setdefault(a.customer, n) == n, f"customer {a.customer} split"
        assert [b.first for b in batches] == [1, *(b.last + 1 for b in batches[:-1])]
    with pytest.raises(ValueError, match="max_task_runs must be at least 1"):
        batch_actions(actions, 0)


def test_a_retried_batch_tries_again_only_its_temporary_failures():
    actions = actions_of([1, 1, 2, 3])
    (batch,) = batch_actions(actions, 1)
    calls: Counter[str] = Counter()

    def act_one(action: PlannedAction) -> Outcome:
        calls[action.invoice] += 1
        if action.invoice == "F-1" and calls["F-1"] == 1:
            raise NotSent("421 try again later")
        if action.invoice == "F-2":
            raise NotSent("550 no such user", permanent=True)
        return Outcome(action.key, action.stage, "sent")

    progress = BatchProgress(len(actions))
    with pytest.raises(BatchIncomplete, match="1 of 4 actions"):
        act_on_batch(batch, act_one, progress, workers=2)
    outcomes = act_on_batch(batch, act_one, progress, workers=2)
    assert calls == {"F-0": 1, "F-1": 2, "F-2": 1, "F-3": 1}
    assert [o.status for o in outcomes] == ["sent", "sent", "failed", "sent"]
    assert "550" in outcomes[2].reason


def test_table_chunks_stay_under_the_byte_and_row_limits():
    rows = [{"invoice": f"F-{i}", "reason": "x" * (i % 50)} for i in range(1000)]
    chunks = table_chunks(rows, max_rows=300, max_bytes=8000)
    assert [r for c in chunks for r in c] == rows
    assert all(len(c) <= 300 for c in chunks)
    assert all(len(json.dumps(c).encode()) <= 8000 for c in chunks)
    with pytest.raises(ValueError, match="over 50"):
        table_chunks(rows[-1:], max_rows=10, max_bytes=50)


# -- the flow on the Prefect test harness ----------------------------------------------------


@pytest.fixture
def sink(tmp_path: Path):
    with MailSink(tmp_path / "outbox", port=0) as s:
        yield s


def portfolio(path: Path, n: int) -> Path:
    """`n` due invoices; customer `C<k>` has k % 4 + 1 of them, next to each other or not."""
    rows, customer = [], 0
    while len(rows) < n:
        for _ in range(customer % 4 + 1):
            rows.append(
                dict(
                    invoice_number=f"B-{len(rows):04d}",
                    customer_id=f"C{customer}",
                    email=f"ap{customer}@c{customer}.example",
                    due_date="2026-12-02",
                )
            )
        customer += 1
    return write_invoices(path, rows[:n])


def sweep(csv: Path, sink: MailSink, url: str, max_task_runs: int, **kw):
    return dunning_sweep(
        source=CsvInvoiceSource(path=str(csv)),
        channel=channel_for(sink),
        ledger=LedgerDatabase(url=url),
        now=NOW,
        max_task_runs=max_task_runs,
        return_state=True,
        **kw,
    )


def artifacts_of(run_id) -> list:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )


def events_of(api: str, run_id, since: datetime, expected: int, timeout: float = 30.0) -> int:
    """How many events the server holds about the flow run (it, or related to it)."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        answer = httpx.post(
            f"{api}/events/filter",
            json={
                "filter": {
                    "occurred": {"since": since.isoformat()},
                    "any_resource": {"id": [f"prefect.flow-run.{run_id}"]},
                },
                "limit": 1,
            },
        )
        answer.raise_for_status()
        count = answer.json()["total"]
        if count >= expected:
            return count
        time.sleep(0.5)
    return count


def test_up_to_the_bound_one_task_run_per_invoice(prefect_api, sink, tmp_path):
    csv = portfolio(tmp_path / "inv.csv", 12)
    state = sweep(csv, sink, f"sqlite:///{tmp_path}/l.db", max_task_runs=12)
    assert state.result()["sent"] == 12
    names = {f"B-{i:04d}-overdue_7" for i in range(12)}
    runs = task_runs_of(
        state.state_details.flow_run_id,
        until=lambda runs: names <= {t.name for t in runs},
    )
    assert names <= {t.name for t in runs}
    assert not any(t.name.startswith("send ") for t in runs)


def test_above_the_bound_batches_by_range_list_every_outcome_and_send_once(
    prefect_api, sink, tmp_path, monkeypatch
):
    monkeypatch.setattr("tasks.report.MAX_TABLE_ROWS", 120)  # three table artifacts
    csv = portfolio(tmp_path / "inv.csv", 300)
    url = f"sqlite:///{tmp_path}/l.db"
    started = datetime.now().astimezone()
    state = sweep(csv, sink, url, max_task_runs=20)
    counts = state.result()
    run_id = state.state_details.flow_run_id
    assert counts["sent"] == 300, counts

    # At most 20 send task runs, named by their range, covering 1..300 without a gap.
    def sends(runs):
        return [t for t in runs if t.name.startswith("send ")]

    runs = task_runs_of(
        run_id,
        until=lambda runs: sum(len(range(*_span(t.name))) for t in sends(runs)) == 300,
    )
    spans = sorted(_span(t.name) for t in sends(runs))
    assert 1 < len(spans) <= 20
    assert spans[0][0] == 1 and spans[-1][1] == 301
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert not any(re.fullmatch(r"B-\d+-overdue_7", t.name) for t in runs)

    # Every outcome is in the table artifacts; the progress artifact reached 100 %.
    artifacts = artifacts_of(run_id)
    tables = [a for a in artifacts if a.type == "table"]
    rows = [row for a in tables for row in _rows(a.data)]
    assert len(tables) == 3 and len(rows) == 300
    assert {r["invoice"] for r in rows} == {f"B-{i:04d}" for i in range(300)}
    assert {r["status"] for r in rows} == {"sent"}
    progress = next(a for a in artifacts if a.type == "progress")
    assert float(progress.data) == 100.0

    # Every email arrived once; the summary publishes the events the sweep emitted: what
    # the server holds about the run (task runs' and its own states, artifacts).
    keys = Counter(m["X-Dunning-Key"] for m in sink.messages())
    assert len(keys) == 300 and set(keys.values()) == {1}
    summary = next(a for a in artifacts if a.key == "dunning-sweep-summary")
    published = re.search(
        r"\*\*Prefect:\*\* (\d+) task runs for 300 actions, ([\d,]+) events", summary.data
    )
    assert published, summary.data
    task_runs, events = int(published[1]), int(published[2].replace(",", ""))
    assert task_runs == len(spans)
    assert events < 200  # 300 reminders; one task run per reminder would be ~900
    held = events_of(prefect_api, run_id, started, expected=events)
    assert held == events, (held, events)

    again = sweep(csv, sink, url, max_task_runs=20).result()
    assert again["sent"] == 0 and again["skipped"] == {"already_sent": 300}
    assert len(sink.messages()) == 300


def test_a_temporary_failure_retries_only_the_batch_and_sends_once(prefect_api, tmp_path):
    csv = portfolio(tmp_path / "inv.csv", 30)
    with MailSink(tmp_path / "outbox", port=0, fail_first=2) as sink:
        state = sweep(csv, sink, f"sqlite:///{tmp_path}/l.db", max_task_runs=5)
        counts = state.result()
        keys = Counter(m["X-Dunning-Key"] for m in sink.messages())
    assert counts["sent"] == 30 and counts["failed"] == 0, counts
    assert len(keys) == 30 and set(keys.values()) == {1}
    runs = task_runs_of(
        state.state_details.flow_run_id,
        until=lambda runs: any(t.name.startswith("send ") and t.run_count > 1 for t in runs),
    )
    retried = [t for t in runs if t.name.startswith("send ") and t.run_count > 1]
    assert 1 <= len(retried) <= 2  # the batches that met the failures, not the others


def test_batches_in_threads_take_the_channels_rate_limit(prefect_api, tmp_path):
    # Two batches for eight task-runner threads: each batch sends in four threads of its
    # own, and each of those takes its slot of the channel's Prefect rate limit.
    csv = portfolio(tmp_path / "inv.csv", 12)
    with MailSink(tmp_path / "outbox", port=0) as sink:
        counts = dunning_sweep(
            source=CsvInvoiceSource(path=str(csv)),
            channel=channel_for(sink, messages_per_second=20),
            ledger=LedgerDatabase(url=f"sqlite:///{tmp_path}/l.db"),
            now=NOW,
            max_task_runs=2,
        )
        keys = Counter(m["X-Dunning-Key"] for m in sink.messages())
    assert counts["sent"] == 12 and counts["failed"] == 0, counts
    assert len(keys) == 12 and set(keys.values()) == {1}


def _span(name: str) -> tuple[int, int]:
    """`send 41–60 of 300` -> (41, 61); `send 7 of 300` -> (7, 8)."""
    found = re.fullmatch(r"send ([\d,]+)(?:–([\d,]+))? of [\d,]+", name)
    assert found, name
    first = int(found[1].replace(",", ""))
    last = int((found[2] or found[1]).replace(",", ""))
    return first, last + 1


def _rows(data) -> list[dict]:
    return json.loads(data) if isinstance(data, str) else data


# -- killed in the middle of a batch ---------------------------------------------------------

KILLS = 10
KILL_DUE = 200  # 10 kills after at most 12 messages each leave work for the last run

SWEEP_SCRIPT = """
import json, sys
from datetime import datetime
from prefect_email import EmailServerCredentials
from blocks import CsvInvoiceSource, EmailChannel, LedgerDatabase
from flows.sweep import dunning_sweep

csv, url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
channel = EmailChannel(
    credentials=EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=port,
                                       smtp_type="INSECURE"),
    from_address="cobros@acme.example", from_name="Acme S.L.",
)
counts = dunning_sweep(
    source=CsvInvoiceSource(path=csv), channel=channel, ledger=LedgerDatabase(url=url),
    now=datetime.fromisoformat("2026-12-09T10:00:00+01:00"), max_task_runs=5,
)
print(json.dumps(counts), flush=True)
"""


def test_killed_mid_batch_ten_times_nothing_lost_nothing_twice_in_doubt_reported(
    prefect_api, tmp_path
):
    import os
    import random
    import signal
    import subprocess
    import sys
    from datetime import timedelta

    import sqlalchemy as sa

    from dunning.ledger import Action, Ledger
    from dunning.ledger.models import utcnow
    from tests.faults.smtpfaults import FaultSink, duplicates

    root = Path(__file__).resolve().parent.parent
    rng = random.Random(20261203)
    csv = portfolio(tmp_path / "inv.csv", KILL_DUE)
    url = f"sqlite:///{tmp_path}/l.db"
    env = {**os.environ, "PREFECT_API_URL": str(prefect_api)}
    with FaultSink(tmp_path / "outbox") as sink:

        def start() -> subprocess.Popen[str]:
            cmd = [sys.executable, "-c", SWEEP_SCRIPT, str(csv), url, str(sink.port)]
            return subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )

        killed = 0
        while killed < KILLS:
            proc = start()
            # Batches of ~40 customers' actions: after 1 to 12 more accepted messages this
            # run is inside a batch (some sent, some not yet), plus a jitter.
            target = sink.handler.accepted + rng.randint(1, 12)
            deadline = time.monotonic() + 120
            while sink.handler.accepted < target and proc.poll() is None:
                assert time.monotonic() < deadline, "the sweep stopped sending"
                time.sleep(0.01)  # finer polling only takes CPU from the child it waits on
            time.sleep(rng.uniform(0.0, 0.03))
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            killed += 1

        ledger = Ledger(url)
        table = Action.__table__
        with ledger.engine.begin() as conn:  # the next run is later than stale_claim_minutes
            conn.execute(
                sa.update(table)
                .where(table.c.state == "claimed")
                .values(updated_at=utcnow() - timedelta(minutes=16))
            )
        final = start()
        out, err = final.communicate(timeout=300)
        assert final.returncode == 0, err[-3000:]
        copies = sink.by_message_id()

    actions = ledger.frame(Action).set_index("key")
    in_doubt = actions[actions["state"] == "sending"]
    sent = actions[actions["state"] == "sent"]
    report = subprocess.run(
        [sys.executable, "-m", "apps.cli", "ledger", "in-doubt", "--ledger", url],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert len(actions) == KILL_DUE  # none lost
    assert set(actions["state"]) <= {"sent", "sending"}, actions["state"].value_counts()
    assert duplicates(copies) == 0  # none reached the server twice
    assert all(copies[mid] == 1 for mid in sent["message_id"])
    assert len(sent) + len(in_doubt) == KILL_DUE
    for key in in_doubt.index:  # each one in doubt is reported, not resent
        assert key in report.stdout
