"""Planning throughput: read + validate a synthetic invoice CSV, then plan it.

    .venv/bin/python -m bench.plan_bench [--sizes 10000 100000 1000000]

For each size a synthetic CSV (`bench.synth`) is written to a temporary directory and a fresh
Python subprocess times (a) `dunning.importers.read_invoice_file` and (b) `dunning.plan.plan`
with the default policy and an empty `LedgerState`, and reports its peak RSS
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`, so the peaks of different sizes do not mix).

Baseline, measured in the same run: a naive per-row Python loop doing the stage choice only
(due date + offset, roll forward over weekends and `holidays` public holidays, latest due
stage) on the 10k set; its rows/s is extrapolated to each size and the speed-up of the
vectorized planner over it is printed. The baseline does less than `plan` (no skip reasons,
send times, keys or output frame), so the ratio understates the planner's advantage. The
baseline's stage choice is checked against the planner's on the same rows.

Target: 1M invoices planned in under 10 s.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zoneinfo
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the parent process must not import pandas: see _peak_mb
    import pandas as pd

    from dunning.policy import Policy

TARGET_SIZE = 1_000_000
TARGET_SECONDS = 10.0
BASELINE_SIZE = 10_000
PLAN_HOUR = 10  # planning moment: 10:00 Europe/Madrid on the synthetic "today"


def _now(today: date) -> datetime:
    return datetime(
        today.year, today.month, today.day, PLAN_HOUR, tzinfo=zoneinfo.ZoneInfo("Europe/Madrid")
    )


def _peak_mb() -> float:
    """Peak RSS of this process so far. Linux reports ru_maxrss in KiB (macOS in bytes).

    On Linux the value survives exec: a child starts from the peak of the process it was
    forked from, so the parent of the workers must stay small (it imports no pandas and
    generates the files in subprocesses too).
    """
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _hwm_mb() -> float | None:
    """Peak RSS of this process image (Linux VmHWM, reset by exec), a cross-check."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


# -- in the subprocess ----------------------------------------------------------------------


def run_worker(csv_path: str, today: date, repeat: int) -> dict:
    """Time read + validate and plan of one file; runs in its own process."""
    from dunning.importers import read_invoice_file
    from dunning.ledger.store import LedgerState
    from dunning.plan import plan
    from dunning.policy import default_policy

    policy = default_policy()
    now = _now(today)
    base_mb = _peak_mb()

    t0 = time.perf_counter()
    result = read_invoice_file(csv_path)
    read_s = time.perf_counter() - t0
    read_peak_mb = _peak_mb()

    plan_times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        planned = plan(result.invoices, policy, now, LedgerState())
        plan_times.append(time.perf_counter() - t0)

    acting = planned["skip_reason"].isna()
    return {
        "rows": len(result.invoices),
        "quarantined": result.quarantined_rows,
        "read_s": read_s,
        "plan_s": min(plan_times),
        "plan_s_all": plan_times,
        "import_peak_mb": base_mb,
        "read_peak_mb": read_peak_mb,
        "peak_mb": _peak_mb(),
        "vmhwm_mb": _hwm_mb(),
        "stages": dict(Counter(planned.loc[acting, "stage"])),
        "skips": dict(Counter(planned.loc[~acting, "skip_reason"])),
        "tasks": int((planned["channel"] == "task").sum()),
    }


def naive_stages(invoices: pd.DataFrame, policy: Policy, now: datetime) -> list[str]:
    """The latest due stage of each invoice, one row at a time (the baseline)."""
    import holidays

    ladder = policy.ladder()
    calendars: dict[str, holidays.HolidayBase] = {}
    one_day = timedelta(days=1)
    stages = []
    for row in invoices.itertuples(index=False):
        country = row.country or policy.country
        tz = row.timezone or policy.timezone
        hols = calendars.get(country)
        if hols is None:
            hols = calendars[country] = holidays.country_holidays(country)
        today = now.astimezone(zoneinfo.ZoneInfo(tz)).date()
        due = row.due_date.date()
        latest = ""
        for s in ladder:
            d = due + timedelta(days=s.offset_days)
            while d.weekday() >= 5 or d in hols:
                d += one_day
            if d <= today:
                latest = s.name
        stages.append(latest)
    return stages


def run_baseline(csv_path: str, today: date) -> dict:
    """Time the naive loop on one file and check it agrees with the planner."""
    from dunning.importers import read_invoice_file
    from dunning.ledger.store import LedgerState
    from dunning.plan import plan
    from dunning.policy import default_policy

    policy = default_policy()
    now = _now(today)
    invoices = read_invoice_file(csv_path).invoices

    t0 = time.perf_counter()
    stages = naive_stages(invoices, policy, now)
    naive_s = time.perf_counter() - t0

    planned = plan(invoices, policy, now, LedgerState())
    checked = mismatched = 0
    for naive, stage, skip in zip(stages, planned["stage"], planned["skip_reason"], strict=True):
        if isinstance(skip, str) and skip != "not_due_yet":
            continue  # paid, disputed, ...: the planner reports no stage to compare
        checked += 1
        mismatched += naive != (stage if isinstance(stage, str) else "")
    return {
        "rows": len(invoices),
        "naive_s": naive_s,
        "naive_rows_per_s": len(invoices) / naive_s,
        "checked": checked,
        "mismatched": mismatched,
    }


# -- in the parent --------------------------------------------------------------------------


def _subprocess(args: list[str]) -> dict:
    cmd = [sys.executable, "-m", "bench.plan_bench", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"benchmark subprocess failed: {' '.join(cmd)}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _machine() -> str:
    v = importlib.metadata.version  # no import of pandas here: see _peak_mb
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, pandas {v('pandas')}, numpy {v('numpy')}, "
        f"pyarrow {v('pyarrow')}, holidays {v('holidays')}"
    )


def run_generate(n: int, path: str, seed: int, today: date | None) -> dict:
    """Write the synthetic CSV of one size; runs in its own process."""
    from bench.synth import DEFAULT_TODAY, synth_csv

    today = today or DEFAULT_TODAY
    t0 = time.perf_counter()
    synth_csv(n, path, seed=seed, today=today)
    return {"seconds": time.perf_counter() - t0, "today": today.isoformat()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.plan_bench", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        help="synthetic planning day (default: bench.synth.DEFAULT_TODAY)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="plan this many times per size and report the fastest (default 1: cold)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--generate", nargs=2, metavar=("N", "CSV"), help=argparse.SUPPRESS)
    p.add_argument("--worker", metavar="CSV", help=argparse.SUPPRESS)
    p.add_argument("--baseline", metavar="CSV", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.generate:
        n, path = args.generate
        print(json.dumps(run_generate(int(n), path, args.seed, args.today)))
        return 0
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.today, args.repeat)))
        return 0
    if args.baseline:
        print(json.dumps(run_baseline(args.baseline, args.today)))
        return 0

    sizes = sorted(set(args.sizes))
    print(f"machine: {_machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="plan_bench_") as tmp:
        files = {}
        today = args.today
        for n in sorted(set(sizes) | {BASELINE_SIZE}):
            path = Path(tmp) / f"invoices_{n}.csv"
            gen = _subprocess(
                ["--generate", str(n), str(path), "--seed", str(args.seed)]
                + (["--today", today.isoformat()] if today else [])
            )
            today = date.fromisoformat(gen["today"])
            files[n] = path
            print(
                f"generated {n:,} invoices in {gen['seconds']:.1f} s "
                f"({path.stat().st_size / 2**20:.0f} MB CSV)",
                flush=True,
            )
        print(
            f"date: {date.today().isoformat()}; planning at {_now(today).isoformat()}; "
            f"seed {args.seed}; default policy, empty ledger",
            flush=True,
        )
        sub = ["--today", today.isoformat()]

        base = _subprocess(["--baseline", str(files[BASELINE_SIZE]), *sub])
        print(
            f"baseline: naive per-row loop, {base['rows']:,} invoices in {base['naive_s']:.2f} s "
            f"= {base['naive_rows_per_s']:,.0f} invoices/s; agrees with the planner on "
            f"{base['checked'] - base['mismatched']:,}/{base['checked']:,} comparable rows",
            flush=True,
        )

        for n in sizes:
            r = _subprocess(["--worker", str(files[n]), "--repeat", str(args.repeat), *sub])
            r["size"] = n
            r["csv_mb"] = files[n].stat().st_size / 2**20
            r["plan_rows_per_s"] = r["rows"] / r["plan_s"]
            r["naive_est_s"] = r["rows"] / base["naive_rows_per_s"]
            r["speedup"] = r["plan_rows_per_s"] / base["naive_rows_per_s"]
            results.append(r)
            print(
                f"size {n:,}: read {r['read_s']:.2f} s, plan {r['plan_s']:.2f} s; RSS "
                f"{r['import_peak_mb']:.0f} MB after imports, peak {r['read_peak_mb']:.0f} MB "
                f"reading, {r['peak_mb']:.0f} MB overall; planned "
                f"{sum(r['stages'].values()):,} {dict(sorted(r['stages'].items()))}, "
                f"skipped {dict(sorted(r['skips'].items()))}",
                flush=True,
            )

    print()
    print(table(results))
    print()
    print(verdict(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"baseline": base, "results": results}, indent=2))
    return 0


def table(results: list[dict]) -> str:
    head = (
        "| invoices | read+validate s | plan s | invoices/s planned | peak RSS MB "
        "| naive loop est. s | speed-up vs naive |"
    )
    lines = [head, "|---:" * (head.count("|") - 1) + "|"]
    for r in results:
        lines.append(
            f"| {r['size']:,} | {r['read_s']:.2f} | {r['plan_s']:.2f} "
            f"| {r['plan_rows_per_s']:,.0f} | {r['peak_mb']:,.0f} "
            f"| {r['naive_est_s']:,.1f} | {r['speedup']:,.0f}x |"
        )
    return "\n".join(lines)


def verdict(results: list[dict]) -> str:
    target = f"target ({TARGET_SIZE:,} invoices planned in < {TARGET_SECONDS:.0f} s)"
    at_target = [r for r in results if r["size"] == TARGET_SIZE]
    if not at_target:
        return f"{target}: not measured"
    s = at_target[0]["plan_s"]
    return f"{target}: {'MET' if s < TARGET_SECONDS else 'NOT MET'} ({s:.2f} s)"


if __name__ == "__main__":
    raise SystemExit(main())
