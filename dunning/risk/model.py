"""The payment-risk model: gradient-boosted trees with time-ordered calibration, saved with
its feature list, scikit-learn version, training span and metrics.

scikit-learn is imported inside the functions that need it, so importing this module (as the
planner does) stays cheap.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dunning.risk.features import NUMERIC_FEATURES, build_features, late_labels
from dunning.risk.sources import CATEGORICAL_COLUMNS, empty_frame, from_invoices
from dunning.settings import settings

#: Bumped whenever features change meaning; a model saved under another number is refused.
RISK_SCHEMA_VERSION = 1
MODEL_KIND = "dunning-risk-model"
#: Most frequent levels kept per categorical feature; rarer ones share one code.
MAX_LEVELS = 200
#: Calibration rows per fold below which a sigmoid (2 parameters) replaces isotonic.
MIN_ISOTONIC_ROWS = 500
CALIBRATION_FOLDS = 3
MIN_TRAINING_ROWS = 20
#: Below this many training invoices the trees are kept small (fewer leaves, slower rate).
SMALL_HISTORY_ROWS = 10_000


class RiskModelError(Exception):
    """A model cannot be trained, loaded or used; the message says what to do."""


@dataclass
class RiskModel:
    """A trained payment-risk model: `p_late` for invoices, from what was known at issue.

    Example:
        >>> model = RiskModel.load("var/risk.joblib")
        >>> p_late = model.score_invoices(invoices, history=ledger_history(url))
    """

    estimator: Any
    categorical: list[str]
    levels: dict[str, list[str]]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """The model's inputs, in order."""
        return [*NUMERIC_FEATURES, *self.categorical]

    # -- training -----------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        categorical: list[str] | None = None,
        history: pd.DataFrame | None = None,
        as_of: pd.Timestamp | None = None,
        seed: int = 0,
    ) -> RiskModel:
        """Train on the labelled invoices of a risk frame.

        Calibrated by `CalibratedClassifierCV` over three folds that are contiguous blocks
        of time (rows sorted by issue date, not shuffled): each fold's probabilities are
        calibrated (isotonic; sigmoid on small histories) on a period its trees did not see.
        Small histories get smaller trees.

        Args:
            frame: risk frame (see `dunning.risk.sources`); rows that are valid, not
                duplicates and whose outcome is known on `as_of` are the training rows.
            categorical: categorical columns to use (default: those the frame has).
            history: where customers' past is read from (default: `frame`).
            as_of: the day outcomes are known up to (default: the day after the latest
                date in `frame`).
            seed: random seed of the trees' early-stopping split.
        """
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import StratifiedKFold

        if categorical is None:
            categorical = [c for c in CATEGORICAL_COLUMNS if c in frame.columns]
        as_of = as_of if as_of is not None else _latest_day(frame)
        rows = training_rows(frame, as_of)
        rows = rows.iloc[np.argsort(rows["issue_date"].to_numpy(), kind="stable")]
        y = late_labels(rows, as_of).to_numpy(dtype=int)
        late = int(y.sum())
        if len(rows) < MIN_TRAINING_ROWS or min(late, len(y) - late) < CALIBRATION_FOLDS:
            raise RiskModelError(
                f"only {len(rows)} invoices with a known outcome ({late} late): need at "
                f"least {MIN_TRAINING_ROWS}, with {CALIBRATION_FOLDS} or more both late and "
                "on time; give a longer history"
            )
        feats = build_features(rows, frame if history is None else history, categorical)
        levels = {
            c: [str(v) for v in feats[c].dropna().astype(str).value_counts().index[:MAX_LEVELS]]
            for c in categorical
        }
        model = cls(estimator=None, categorical=list(categorical), levels=levels)
        small = len(rows) < SMALL_HISTORY_ROWS
        trees = HistGradientBoostingClassifier(
            learning_rate=0.03 if small else 0.1,
            max_iter=400 if small else 250,
            max_leaf_nodes=8 if small else 31,
            min_samples_leaf=20 if small else 40,
            l2_regularization=1.0,
            categorical_features=[f in categorical for f in model.features],
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=seed,
        )
        fold_rows = len(rows) // CALIBRATION_FOLDS
        method = "isotonic" if fold_rows >= MIN_ISOTONIC_ROWS else "sigmoid"
        estimator = CalibratedClassifierCV(
            trees, method=method, cv=StratifiedKFold(n_splits=CALIBRATION_FOLDS)
        )
        with _threads():
            estimator.fit(model._matrix(feats), y)
        how = (
            f"{method}, CalibratedClassifierCV over {CALIBRATION_FOLDS} time-contiguous folds "
            f"of ~{fold_rows} invoices"
        )
        model.estimator = estimator
        model.metadata = _metadata(model, rows, y, as_of, how)
        return model

    # -- scoring ------------------------------------------------------------------------------
    def score_frame(self, targets: pd.DataFrame, history: pd.DataFrame | None) -> pd.Series:
        """p_late for each row of a risk frame (NaN for rows marked invalid), index-aligned."""
        missing = [c for c in self.categorical if c not in targets.columns]
        if missing:
            warnings.warn(
                f"the invoices have no {', '.join(missing)}: the model was trained with "
                "it and scores them as unknown",
                stacklevel=2,
            )
        valid = targets["valid"].astype(bool) if "valid" in targets else True
        valid = pd.Series(valid, index=targets.index)
        scored = targets[valid]
        if history is None:
            history = empty_frame()
        p = pd.Series(np.nan, index=targets.index, name="p_late")
        if len(scored):
            feats = build_features(scored, _as_risk_frame(history), self.categorical)
            with _threads():
                p[valid] = self.estimator.predict_proba(self._matrix(feats))[:, 1]
        return p

    def score_invoices(
        self, invoices: pd.DataFrame, history: pd.DataFrame | None = None
    ) -> pd.Series:
        """p_late for each invoice of the normalized invoice frame, aligned on its index.

        Args:
            invoices: the frame of `dunning.schema.INVOICE_COLUMNS` (customer_id,
                amount_total, issue_date and due_date are used; country and currency when
                the model was trained with them). Invoices without a customer, issue date or
                due date get NaN.
            history: the customers' past as a risk frame, e.g. `ledger_history(url)`;
                None scores every customer as new (no history features).

        Example:
            >>> model.score_invoices(invoices, ledger_history("sqlite:///var/ledger.db"))
        """
        return self.score_frame(from_invoices(invoices), history)

    def _matrix(self, feats: pd.DataFrame) -> np.ndarray:
        """Features as a float matrix; categoricals as codes of the training levels."""
        columns = [feats[f].to_numpy(dtype=float) for f in NUMERIC_FEATURES]
        for name in self.categorical:
            values = feats[name]
            present = values.notna().to_numpy()
            known = self.levels[name]
            codes = pd.Index(known).get_indexer(values.astype(str)).astype(float)
            # Seen-but-rare and never-seen levels share the last code; missing stays NaN.
            codes[(codes < 0) & present] = len(known)
            codes[~present] = np.nan
            columns.append(codes)
        return np.column_stack(columns) if columns else np.empty((len(feats), 0))

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model (joblib) and a JSON sidecar `<path>.json` with its metadata."""
        import joblib

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": MODEL_KIND,
            "metadata": self.metadata,
            "categorical": self.categorical,
            "levels": self.levels,
            "estimator": self.estimator,
        }
        joblib.dump(payload, path)
        sidecar = sidecar_path(path)
        sidecar.write_text(json.dumps(self.metadata, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> RiskModel:
        """Read a model written by `save`, refusing one this version cannot use.

        The file is a pickle: load only models you trained. Raises `RiskModelError` when
        the file is not a risk model, was saved by another scikit-learn version or with
        another feature list, or its sidecar disagrees with it.
        """
        import joblib
        import sklearn

        path = Path(path)
        if not path.is_file():
            raise RiskModelError(f"no model at {path}; train one with `dunning risk train`")
        try:
            payload = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same
            raise RiskModelError(f"{path} is not a readable risk model ({exc}); retrain") from exc
        if not isinstance(payload, dict) or payload.get("kind") != MODEL_KIND:
            raise RiskModelError(f"{path} is not a dunning risk model; retrain")
        meta = payload["metadata"]
        retrain = f"retrain it with `dunning risk train` (model: {path})"
        if meta.get("schema_version") != RISK_SCHEMA_VERSION:
            raise RiskModelError(
                f"the model uses feature schema {meta.get('schema_version')}, this version of "
                f"dunning computes schema {RISK_SCHEMA_VERSION}; {retrain}"
            )
        if meta.get("sklearn_version") != sklearn.__version__:
            raise RiskModelError(
                f"the model was saved with scikit-learn {meta.get('sklearn_version')}, "
                f"{sklearn.__version__} is installed; {retrain}"
            )
        model = cls(
            estimator=payload["estimator"],
            categorical=list(payload["categorical"]),
            levels=payload["levels"],
            metadata=meta,
        )
        unknown = [c for c in model.categorical if c not in CATEGORICAL_COLUMNS]
        if meta.get("features") != model.features or unknown:
            raise RiskModelError(
                f"the model's feature list {meta.get('features')} is not the one this version "
                f"of dunning computes ({model.features}); {retrain}"
            )
        sidecar = sidecar_path(path)
        if sidecar.is_file():
            side = json.loads(sidecar.read_text())
            if side.get("features") != meta.get("features") or side.get(
                "schema_version"
            ) != meta.get("schema_version"):
                raise RiskModelError(
                    f"{sidecar} lists features {side.get('features')} but the model in {path} "
                    f"was trained with {meta.get('features')}; the two files do not belong "
                    f"together: {retrain}"
                )
        return model


def _threads() -> Any:
    """Limit the trees' OpenMP threads (`DUNNING_RISK_THREADS`, default 1).

    On a small machine shared with other work, OpenMP threads that spin-wait for each other
    made a fit 4-5x slower than one thread (measured: 70 s vs 15 s for the SAP file).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=settings().risk_threads)


def sidecar_path(path: str | Path) -> Path:
    """Where the JSON metadata of the model at `path` lives: `<path>.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def training_rows(frame: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Valid, non-duplicate invoices whose outcome (late or not) is known on `as_of`."""
    keep = frame["valid"].astype(bool) & ~frame["duplicate"].astype(bool)
    keep &= late_labels(frame, as_of).notna()
    return frame[keep]


def _latest_day(frame: pd.DataFrame) -> pd.Timestamp:
    days = pd.concat([frame["issue_date"], frame["paid_date"]]).dropna()
    return (days.max() + pd.Timedelta(days=1)) if len(days) else pd.Timestamp.now()


def _as_risk_frame(history: pd.DataFrame) -> pd.DataFrame:
    """Accept a normalized invoice frame as history too (it has no payment dates)."""
    if "paid_date" in history.columns:
        return history
    return from_invoices(history)


def _metadata(
    model: RiskModel, rows: pd.DataFrame, y: np.ndarray, as_of: pd.Timestamp, how: str
) -> dict[str, Any]:
    import sklearn

    return {
        "kind": MODEL_KIND,
        "schema_version": RISK_SCHEMA_VERSION,
        "sklearn_version": sklearn.__version__,
        "features": model.features,
        "categorical": model.categorical,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": {
            "rows": len(rows),
            "late_rate": round(float(y.mean()), 4),
            "issue_date_from": rows["issue_date"].min().date().isoformat(),
            "issue_date_to": rows["issue_date"].max().date().isoformat(),
            "outcomes_known_as_of": pd.Timestamp(as_of).date().isoformat(),
            "calibration": how,
        },
    }
