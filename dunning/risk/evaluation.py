"""Time-split evaluation of the risk model against a plain baseline.

Train on invoices issued before the split day, evaluate on those issued on or after it.
Features of every invoice (train or evaluation) only see what was known the day it was
issued, so the evaluation rows learn from the customers' history up to their own issue
day, as they would in use. The baseline is each customer's past late share (the same
leak-free history: invoices settled before the issue day), or the training late rate for a
customer without any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dunning.risk.features import build_features, late_labels
from dunning.risk.model import RiskModel, RiskModelError, _latest_day, training_rows


@dataclass
class Scores:
    """AUC and Brier score of one predictor on the evaluation rows."""

    auc: float
    brier: float


@dataclass
class Evaluation:
    """What a time-split evaluation measured."""

    split: pd.Timestamp
    train_rows: int
    eval_rows: int
    train_span: tuple[str, str]
    eval_span: tuple[str, str]
    train_late_rate: float
    eval_late_rate: float
    model: Scores
    baseline: Scores
    calibration: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the model's metadata and JSON output."""
        return {
            "split": self.split.date().isoformat(),
            "train_rows": self.train_rows,
            "eval_rows": self.eval_rows,
            "train_span": list(self.train_span),
            "eval_span": list(self.eval_span),
            "train_late_rate": round(self.train_late_rate, 4),
            "eval_late_rate": round(self.eval_late_rate, 4),
            "auc": round(self.model.auc, 4),
            "brier": round(self.model.brier, 4),
            "baseline_auc": round(self.baseline.auc, 4),
            "baseline_brier": round(self.baseline.brier, 4),
        }


def default_split(frame: pd.DataFrame, share: float = 0.7) -> pd.Timestamp:
    """The first day of the month holding the `share` quantile of issue dates."""
    issue = frame.loc[frame["valid"].astype(bool), "issue_date"].dropna()
    if issue.empty:
        raise RiskModelError("no valid invoice to split")
    q = issue.quantile(share)
    return pd.Timestamp(q.year, q.month, 1)


def time_split_evaluation(
    frame: pd.DataFrame,
    split: pd.Timestamp,
    *,
    categorical: list[str] | None = None,
    seed: int = 0,
    bins: int = 10,
) -> Evaluation:
    """Train on invoices issued before `split`, measure on those issued on or after it.

    Example:
        >>> ev = time_split_evaluation(read_sap(path).frame, pd.Timestamp("2018-07-01"))
        >>> ev.model.auc, ev.model.brier, ev.baseline.auc
    """
    import time

    from sklearn.metrics import brier_score_loss, roc_auc_score

    as_of = _latest_day(frame)
    rows = training_rows(frame, as_of)
    train = rows[rows["issue_date"] < split]
    test = rows[rows["issue_date"] >= split]
    if train.empty or test.empty:
        raise RiskModelError(
            f"the split day {split.date()} leaves {len(train)} training and {len(test)} "
            "evaluation invoices; choose a day inside the history"
        )
    y_test = late_labels(test, as_of).to_numpy(dtype=int)
    if len(np.unique(y_test)) < 2:
        raise RiskModelError("the evaluation invoices are all late or all on time; no AUC")
    started = time.perf_counter()
    # Only invoices issued before the split are training rows; the history the features
    # read is the whole frame, which is safe because features never look past issue day.
    model = _fit_before(frame, split, as_of, categorical, seed)
    fitted = time.perf_counter()
    p = model.score_frame(test, frame).to_numpy()
    scored = time.perf_counter()
    y_train = late_labels(train, as_of).to_numpy(dtype=float)
    share = build_features(test, frame)["hist_late_share"].to_numpy()
    p_base = np.where(np.isnan(share), y_train.mean(), share)
    return Evaluation(
        split=split,
        train_rows=len(train),
        eval_rows=len(test),
        train_span=_span(train),
        eval_span=_span(test),
        train_late_rate=float(y_train.mean()),
        eval_late_rate=float(y_test.mean()),
        model=Scores(float(roc_auc_score(y_test, p)), float(brier_score_loss(y_test, p))),
        baseline=Scores(
            float(roc_auc_score(y_test, p_base)), float(brier_score_loss(y_test, p_base))
        ),
        calibration=calibration_table(y_test, p, bins=bins),
        seconds={"fit": fitted - started, "score": scored - fitted},
    )


def _fit_before(
    frame: pd.DataFrame,
    split: pd.Timestamp,
    as_of: pd.Timestamp,
    categorical: list[str] | None,
    seed: int,
) -> RiskModel:
    before = frame[frame["issue_date"] < split]
    return RiskModel.fit(before, categorical=categorical, history=frame, as_of=as_of, seed=seed)


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Predicted mean vs observed late rate in equal-width probability bins (empty dropped)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "p": p, "y": y})
    table = frame.groupby("bin").agg(
        predicted=("p", "mean"), observed=("y", "mean"), n=("y", "size")
    )
    table.insert(0, "range", [f"{edges[b]:.1f}-{edges[b + 1]:.1f}" for b in table.index])
    return table.reset_index(drop=True)


def _span(rows: pd.DataFrame) -> tuple[str, str]:
    return (
        rows["issue_date"].min().date().isoformat(),
        rows["issue_date"].max().date().isoformat(),
    )


def format_evaluation(ev: Evaluation, title: str = "") -> str:
    """The evaluation as plain text for the terminal."""
    lines = [title] if title else []
    lines += [
        f"time split at {ev.split.date()}: train {ev.train_rows} invoices issued "
        f"{ev.train_span[0]}..{ev.train_span[1]} (late {ev.train_late_rate:.1%}), "
        f"evaluate {ev.eval_rows} issued {ev.eval_span[0]}..{ev.eval_span[1]} "
        f"(late {ev.eval_late_rate:.1%})",
        f"{'':26}{'AUC':>8}{'Brier':>8}",
        f"{'model (calibrated)':26}{ev.model.auc:8.3f}{ev.model.brier:8.3f}",
        f"{'baseline: past late share':26}{ev.baseline.auc:8.3f}{ev.baseline.brier:8.3f}",
        "calibration (evaluation rows):",
        f"  {'p_late bin':>10}{'predicted':>11}{'observed':>10}{'invoices':>10}",
    ]
    for r in ev.calibration.itertuples():
        lines.append(f"  {r.range:>10}{r.predicted:11.3f}{r.observed:10.3f}{r.n:10d}")
    return "\n".join(lines)
