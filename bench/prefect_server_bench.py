"""What one task run costs the Prefect server and the flow's process, by server settings.

    .venv/bin/python -m bench.prefect_server_bench [--task-runs 1500]

For each variant a fresh `prefect server start` (SQLite, its own PREFECT_HOME) and one flow
in a separate process that submits `--task-runs` trivial task runs on 8 threads, as the
sweep does with `send-reminder`. Measured: the flow's wall time and CPU, the server's CPU
(process tree, from /proc) from the flow's start until the API counts every task run as
Completed, and how long after the flow returned that was. Variants:

* `prefect`: Prefect's defaults (the baseline of the ratios);
* `dunning`: `deployments.server.SERVER_SETTINGS` (task-run recorder batches);
* `dunning + WARNING`: and the task runs logging warnings only, as the sweep's
  `send-reminder` runs do (`flows.sweep._task_runs_log_warnings_only`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.sweep_bench import ROOT, _free_port, _machine, _stop, _tree_cpu_s, _wait_http
from deployments.server import SERVER_SETTINGS

QUIET = {"PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING"}
VARIANTS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "prefect": ({}, {}),
    "dunning": (SERVER_SETTINGS, {}),
    "dunning + WARNING": (SERVER_SETTINGS, QUIET),
}

FLOW = """
import json, sys, time
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

@task(task_run_name="act-{i}")
def act(i: int) -> int:
    return i

@flow(task_runner=ThreadPoolTaskRunner(max_workers=8))
def many(n: int) -> int:
    return sum(f.result() for f in [act.submit(i) for i in range(n)])

t, c = time.perf_counter(), time.process_time()
many(int(sys.argv[1]))
print(json.dumps({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}))
"""


def run_variant(name: str, server_extra: dict, client_extra: dict, n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="prefect_server_bench_") as tmp:
        port = _free_port()
        env = os.environ | server_extra | {"PREFECT_HOME": f"{tmp}/server"}
        env.pop("PREFECT_API_URL", None)
        with open(f"{tmp}/server.log", "w") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start"]
                + ["--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
                start_new_session=True,
            )
        api = f"http://127.0.0.1:{port}/api"
        try:
            _wait_http(f"{api}/health", 180, server)
            time.sleep(3)  # let the services settle
            cpu0 = _tree_cpu_s(server.pid)
            client_env = os.environ | client_extra | {"PREFECT_API_URL": api}
            client_env["PREFECT_HOME"] = f"{tmp}/client"
            out = subprocess.run(
                [sys.executable, "-c", FLOW, str(n)],
                env=client_env,
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            flow = json.loads(out.stdout.strip().splitlines()[-1])
            returned = time.perf_counter()
            done = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
            recorded = 0
            while time.perf_counter() - returned < 600:
                recorded = httpx.post(f"{api}/task_runs/count", json=done, timeout=60).json()
                if recorded >= n:
                    break
                time.sleep(0.5)
            server_cpu = _tree_cpu_s(server.pid) - cpu0
            recorded_after = time.perf_counter() - returned
            dropped = Path(f"{tmp}/server.log").read_text().count("dropping message")
        finally:
            _stop(server)
    return {
        "variant": name,
        "task_runs": n,
        "recorded": recorded,
        "flow_rate": n / flow["wall_s"],
        "flow_cpu_ms": 1000 * flow["cpu_s"] / n,
        "server_cpu_ms": 1000 * server_cpu / n,
        "recorded_after_s": recorded_after,
        "dropped": dropped,
    }


def table(rows: list[dict]) -> str:
    base = rows[0]
    lines = [
        "| server settings | task runs/s (flow) | flow CPU ms/run | server CPU ms/run "
        "| server CPU vs prefect | all recorded +s after the flow | recorded | dropped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['flow_rate']:.0f} | {r['flow_cpu_ms']:.1f} "
            f"| {r['server_cpu_ms']:.1f} | {r['server_cpu_ms'] / base['server_cpu_ms']:.2f}x "
            f"| {r['recorded_after_s']:.0f} | {r['recorded']:,} | {r['dropped']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.prefect_server_bench")
    p.add_argument("--task-runs", type=int, default=1500)
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = p.parse_args(argv)
    print(f"machine: {_machine()}", flush=True)
    rows = []
    for name in args.variants:
        rows.append(run_variant(name, *VARIANTS[name], args.task_runs))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
