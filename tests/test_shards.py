"""Sharding a sweep by customer: every invoice in exactly one shard, the same one on every
machine; two workers running the two shards at once on PostgreSQL send what one worker
would, each message once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pandas as pd
import pytest

from apps.mailsink import MailSink
from dunning.shards import in_shard, shard_of
from tests.connectors.fake_rest import FakeRest
from tests.connectors.fakeapi import Request, Response
from tests.invoices import write_invoices
from tests.test_flows import NOW, ROOT, sweep_cmd

PORTFOLIO = pd.DataFrame(
    {
        "invoice_number": [f"S-{i}" for i in range(9000)],
        "customer_id": [f"C{i % 700}" if i % 50 else "" for i in range(9000)],
    }
)


def test_shards_cover_every_invoice_once_and_keep_customers_together():
    parts = [in_shard(PORTFOLIO, 3, k) for k in range(3)]
    numbers = pd.concat(p["invoice_number"] for p in parts)
    assert sorted(numbers) == sorted(PORTFOLIO["invoice_number"]) and numbers.is_unique
    assert min(len(p) for p in parts) > 2000  # roughly even
    known = PORTFOLIO["customer_id"] != ""
    shard = pd.Series(shard_of(PORTFOLIO, 3))[known]
    assert (shard.groupby(PORTFOLIO["customer_id"][known]).nunique() == 1).all()
    with pytest.raises(ValueError, match="between 0 and 2"):
        in_shard(PORTFOLIO, 3, 3)


def test_shard_of_is_the_same_in_another_process():
    """Not Python's per-process `hash`: another interpreter, another hash seed, same shards."""
    frame = pd.DataFrame({"invoice_number": ["a", "b", "c"], "customer_id": ["X", "Y", "Z"]})
    script = (
        "import json, pandas as pd; from dunning.shards import shard_of; "
        "df = pd.DataFrame({'invoice_number': ['a', 'b', 'c'], 'customer_id': ['X', 'Y', 'Z']});"
        "print(json.dumps([int(v) for v in shard_of(df, 7)]))"
    )
    env = os.environ | {"PYTHONHASHSEED": "123"}
    other = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert json.loads(other.stdout) == [int(v) for v in shard_of(frame, 7)]


@pytest.mark.postgres
def test_two_shard_workers_send_what_one_worker_sends_each_once(prefect_api, tmp_path, pg_url):
    rows = [
        dict(
            invoice_number=f"W-{i}",
            customer_id=f"K{i % 13}",
            email=f"ap{i % 13}@k.example",
            due_date="2026-12-02",
        )
        for i in range(40)
    ]
    csv = write_invoices(tmp_path / "inv.csv", rows)
    env = os.environ | {"PREFECT_API_URL": prefect_api}

    with MailSink(tmp_path / "one", port=0) as sink:
        single = subprocess.run(
            sweep_cmd(csv, sink, f"sqlite:///{tmp_path}/one.db"),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert single.returncode == 0, single.stderr[-3000:]
        one_worker = sorted(m["X-Dunning-Key"] for m in sink.messages())

    with MailSink(tmp_path / "two", port=0) as sink:
        procs = [
            subprocess.Popen(
                sweep_cmd(csv, sink, pg_url, "--shards", "2", "--shard", str(k)),
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(2)
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        for p, (_out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-3000:]
        per_shard = [json.loads(out.strip().splitlines()[-1])["sent"] for out, _ in outs]
        two_workers = sorted(m["X-Dunning-Key"] for m in sink.messages())

    assert len(one_worker) == 40
    assert two_workers == one_worker  # same messages, each once
    assert all(n > 0 for n in per_shard) and sum(per_shard) == 40


@pytest.mark.postgres
def test_two_process_workers_share_a_sharded_sweep(prefect_api, tmp_path, pg_url):
    """The production path: `prefect deploy` from prefect.yaml to a process work pool, two
    `prefect worker` processes, and `dunning-sweep-sharded` running both shards at once."""
    import asyncio
    import uuid

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from blocks import LedgerDatabase
    from flows.sweep import dunning_sweep_sharded
    from tests.test_flows import channel_for

    tag = uuid.uuid4().hex[:8]
    pool = f"dunning-test-{tag}"
    env = os.environ | {"PREFECT_API_URL": prefect_api, "DUNNING_HOME": str(ROOT)}
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    for name in ("dunning-sweep", "dunning-sweep-sharded"):
        deployed = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefect",
                "--no-prompt",
                "deploy",
                "--name",
                name,
                "--pool",
                pool,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    with MailSink(tmp_path / "outbox", port=0) as sink, BothShardsReading() as erp:
        for i in range(30):
            customer = {"id": f"K{i % 11}", "name": f"K{i % 11}", "email": f"ap{i % 11}@k.example"}
            erp.add(number=f"P-{i}", customer=customer)
        rest_source_for(erp).save(f"src-{tag}")
        channel_for(sink).save(f"mail-{tag}")
        LedgerDatabase(url=pg_url).save(f"ledger-{tag}")
        worker_env = env | {"PREFECT_WORKER_QUERY_SECONDS": "1"}
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "worker",
                    "start",
                    "--pool",
                    pool,
                    "--limit",
                    "1",
                    "--name",
                    f"worker-{k}-{tag}",
                ],
                env=worker_env,
                cwd=tmp_path,
                stdout=(tmp_path / f"worker{k}.log").open("w"),  # kept for a failed run
                stderr=subprocess.STDOUT,
            )
            for k in range(2)
        ]
        try:
            _wait_for_workers(pool, 2)
            result = asyncio.run(
                dunning_sweep_sharded(
                    shards=2,
                    parameters={
                        "source": f"src-{tag}",
                        "channel": f"mail-{tag}",
                        "ledger": f"ledger-{tag}",
                        "now": NOW.isoformat(),
                    },
                )
            )
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait(timeout=60)
        keys = sorted(m["X-Dunning-Key"] for m in sink.messages())

    assert erp.met, "the two shards never read the ERP at the same time (one worker ran both?)"
    assert [r["state"] for r in result.values()] == ["Completed", "Completed"]
    assert len(keys) == 30 and len(set(keys)) == 30  # every reminder once, none missed
    # Each shard was taken by a different worker (the workers say so in their events).
    names = {r["flow_run"] for r in result.values()}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=list(names)))
        )
    shard_runs = {f"prefect.flow-run.{r.id}" for r in runs}
    answer = httpx.post(
        f"{prefect_api}/events/filter",
        json={"filter": {"event": {"name": ["prefect.worker.submitted-flow-run"]}}, "limit": 50},
    )
    taken_by = {
        related["prefect.resource.id"]: event["resource"]["prefect.resource.name"]
        for event in answer.json()["events"]
        for related in event["related"]
        if related["prefect.resource.id"] in shard_runs
    }
    assert len(taken_by) == 2 and len(set(taken_by.values())) == 2, taken_by


class BothShardsReading(FakeRest):
    """An ERP whose invoice list answers only once two readers are asking at the same time.

    Each worker takes one flow run at a time (`--limit 1`), so a shard held here keeps its
    worker busy: the other shard can only run on the other worker. Without the gate a fast
    shard can finish before the second worker polls, and one worker takes both in turn.
    """

    def __init__(self) -> None:
        super().__init__(style="page")
        self.gate = threading.Barrier(2, timeout=120)
        self.met = False

    def _dispatch(self, req: Request) -> Response:  # outside the fake's lock, so both can wait
        first_page = req.path == "/api/invoices" and req.arg("page", "1") == "1"
        if first_page and not req.arg("updated_since") and not self.met:
            try:
                self.gate.wait()
                self.met = True
            except threading.BrokenBarrierError:
                return Response(503, {"message": "the other shard never came"})
        return super()._dispatch(req)


def rest_source_for(api: FakeRest):
    """The REST source block for the fake ERP, one page per read."""
    from blocks import RestInvoiceSource
    from tests.connectors.test_rest import MAPPING, STATUS

    return RestInvoiceSource(
        url=f"{api.url}/api/invoices",
        auth_header="X-Api-Key",
        auth_value=api.api_key,
        records_path="data",
        page_size=100,
        field_mapping=MAPPING,
        status_mapping=STATUS,
        amounts_in_minor_units=True,
        requests_per_second=0,
    )


def _wait_for_workers(pool: str, count: int, timeout: float = 60) -> None:
    """Until `count` workers of the pool have checked in with the server."""
    import time

    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while len(client.read_workers_for_work_pool(pool)) < count:
            assert time.monotonic() < deadline, f"{count} workers did not start for {pool}"
            time.sleep(0.5)
