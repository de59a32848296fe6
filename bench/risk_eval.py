"""Payment-risk model vs a plain baseline, on a time split of both real data sets.

    .venv/bin/python -m bench.risk_eval [--data-dir DIR] [--controls]

The data sets are read from `--data-dir`, else `DUNNING_DATA_DIR`, else `../shared/data`
(see `bench/realdata.py` for where to get them).

For each data set: train on invoices issued before the split day, evaluate on those issued
on or after it (SAP: 2018-07-01 as the issue asks; IBM: the default split of
`dunning risk train`, the month holding the 70th percentile of issue dates). Printed as a
markdown table: rows, spans, AUC and Brier of the calibrated model and of the baseline
(each customer's late share over invoices settled before the issue day; the training late
rate for a customer without history), then each model's calibration table and timings.

`--controls` adds a sanity check against leakage: the same pipeline trained on shuffled
training labels must score AUC ≈ 0.5 on the evaluation rows. `--rolling` adds SAP splits
on other days (2018-04-01, 2018-10-01), to show the result does not hang on one split.

Target (SAP): AUC ≥ 0.85 and Brier ≤ 0.16.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.realdata import data_dir, real_data_path
from dunning.risk import read_source
from dunning.risk.evaluation import (
    Evaluation,
    default_split,
    format_evaluation,
    time_split_evaluation,
)

SETS = (
    ("SAP line items", "sap", "sap_ar_2017_2018.csv.gz", "2018-07-01"),
    ("IBM sample", "ibm", "ibm_accounts_receivable.csv", None),
)


def shuffled_control(frame: pd.DataFrame, split: pd.Timestamp, seed: int = 1) -> float:
    """AUC on the evaluation rows of a model trained with the training outcomes shuffled."""
    rng = np.random.default_rng(seed)
    before = frame["issue_date"] < split
    fake = frame.copy()
    idx = fake.index[before]
    # Shuffle whole outcomes (due and payment dates travel together), among training rows.
    perm = rng.permutation(len(idx))
    delay = (fake.loc[idx, "paid_date"] - fake.loc[idx, "due_date"]).to_numpy()[perm]
    fake.loc[idx, "paid_date"] = fake.loc[idx, "due_date"] + delay
    return time_split_evaluation(fake, split).model.auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=data_dir(), help="where the real data sets are"
    )
    parser.add_argument("--controls", action="store_true", help="add the shuffled-label check")
    parser.add_argument("--rolling", action="store_true", help="add SAP splits on other days")
    args = parser.parse_args()

    results: list[tuple[str, Evaluation, float, float | None]] = []
    for title, fmt, name, split_day in SETS:
        started = time.perf_counter()
        data = read_source(real_data_path(name, args.data_dir), fmt)
        read_s = time.perf_counter() - started
        split = pd.Timestamp(split_day) if split_day else default_split(data.frame)
        ev = time_split_evaluation(data.frame, split, categorical=data.categorical)
        control = shuffled_control(data.frame, split) if args.controls else None
        results.append((title, ev, read_s, control))

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"python {platform.python_version()}"
    )
    print()
    print(
        "| data set | split | train rows (issued) | eval rows (issued) | eval late "
        "| model AUC | model Brier | baseline AUC | baseline Brier |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for title, ev, _, _ in results:
        print(
            f"| {title} | {ev.split.date()} "
            f"| {ev.train_rows:,} ({ev.train_span[0]}..{ev.train_span[1]}) "
            f"| {ev.eval_rows:,} ({ev.eval_span[0]}..{ev.eval_span[1]}) "
            f"| {ev.eval_late_rate:.1%} "
            f"| **{ev.model.auc:.3f}** | **{ev.model.brier:.3f}** "
            f"| {ev.baseline.auc:.3f} | {ev.baseline.brier:.3f} |"
        )
    print()
    print("| data set | read s | features + fit s | score s | shuffled-label control AUC |")
    print("|---|---|---|---|---|")
    for title, ev, read_s, control in results:
        shown = "-" if control is None else f"{control:.3f}"
        print(
            f"| {title} | {read_s:.1f} | {ev.seconds['fit']:.1f} | {ev.seconds['score']:.1f} "
            f"| {shown} |"
        )
    if args.rolling:
        sap = read_source(real_data_path(SETS[0][2], args.data_dir), "sap").frame
        print()
        print("| SAP split | train rows | eval rows | model AUC | model Brier | baseline AUC |")
        print("|---|---|---|---|---|---|")
        for day in ("2018-04-01", "2018-07-01", "2018-10-01"):
            ev = time_split_evaluation(sap, pd.Timestamp(day))
            print(
                f"| {day} | {ev.train_rows:,} | {ev.eval_rows:,} | {ev.model.auc:.3f} "
                f"| {ev.model.brier:.3f} | {ev.baseline.auc:.3f} |"
            )
    for title, ev, _, _ in results:
        print()
        print("```")
        print(format_evaluation(ev, title=title))
        print("```")


if __name__ == "__main__":
    main()
