"""The large public data sets some tests check against, which the repository does not ship.

They are read from `DUNNING_DATA_DIR` (default `../shared/data` beside the repository). A
test that needs one and does not find it is skipped with a message naming where the data
comes from, so a fresh clone runs everything else.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: File name -> its public source (repository, path in it, commit).
SOURCES = {
    "ibm_accounts_receivable.csv": (
        "the IBM Watson Analytics sample 'Accounts Receivable', github.com/pthiagu2/DataMining "
        "WA_Fn-UseC_-Accounts-Receivable.csv @ c62bd3cd9e07218e15cf18ee6284c876cf082de8"
    ),
    "sap_ar_2017_2018.csv.gz": (
        "SAP FI customer line items from github.com/miguel617/"
        "Multi-Classification-predictor-on-Payments-Timeliness data/full_dataset.zip -> "
        "training_data.csv @ bf3448bb72555c865ff1b78fc7f8929a273f3c3f, the rows whose DATUM is "
        "before 2019-01-01, gzipped"
    ),
}


def data_dir() -> Path:
    """Where the real data sets are: `DUNNING_DATA_DIR`, else `../shared/data`."""
    return Path(os.environ.get("DUNNING_DATA_DIR", ROOT.parent / "shared" / "data"))


def real_data_path(name: str) -> Path:
    """The path of real data set `name`, or skip the calling test saying where to get it."""
    path = data_dir() / name
    if not path.is_file():
        pytest.skip(f"{name} not in {data_dir()} (set DUNNING_DATA_DIR); it is {SOURCES[name]}")
    return path
