"""Payment-risk scoring: the probability that an invoice will be paid late.

Pure (no Prefect); scikit-learn is imported only when a model is trained, loaded or used.

Example (what the planner does):
    >>> from dunning.risk import RiskModel, ledger_history
    >>> model = RiskModel.load("var/risk.joblib")
    >>> invoices["p_late"] = model.score_invoices(invoices, ledger_history(ledger_url))
"""

from __future__ import annotations

import pandas as pd

from dunning.risk.model import RiskModel, RiskModelError, sidecar_path
from dunning.risk.sources import (
    CATEGORICAL_COLUMNS,
    FORMATS,
    RISK_COLUMNS,
    RiskData,
    RiskSourceError,
    combine_history,
    empty_frame,
    from_invoices,
    read_ibm,
    read_ledger,
    read_sap,
    read_source,
)

__all__ = [
    "CATEGORICAL_COLUMNS",
    "FORMATS",
    "RISK_COLUMNS",
    "RiskData",
    "RiskModel",
    "RiskModelError",
    "RiskSourceError",
    "combine_history",
    "empty_frame",
    "from_invoices",
    "ledger_history",
    "read_ibm",
    "read_ledger",
    "read_sap",
    "read_source",
    "score_for_planning",
    "sidecar_path",
]


def ledger_history(url: str) -> pd.DataFrame:
    """Every invoice in the ledger as a risk frame: the `history` for `score_invoices`."""
    return read_ledger(url).frame


def score_for_planning(
    invoices: pd.DataFrame, model_path: str, ledger_url: str | None
) -> pd.Series:
    """`p_late` of each invoice with the policy's model, the ledger being the customers'
    history (no ledger: every customer scores as new). A model that cannot be used raises
    `RiskModelError` naming the file and what to do."""
    try:
        model = RiskModel.load(model_path)
    except OSError as exc:
        raise RiskModelError(f"the policy's risk_model {model_path} cannot be read: {exc}") from exc
    history = ledger_history(ledger_url) if ledger_url else None
    return model.score_invoices(invoices, history)
