"""The public data sets the benches measure on, which the repository does not ship.

Read from `DUNNING_DATA_DIR` (default `../shared/data` beside the repository); a bench that
needs one and does not find it stops and says where the data comes from.
"""

from __future__ import annotations

from pathlib import Path

from dunning.settings import settings

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
    """Where the real data sets are: the `DUNNING_DATA_DIR` setting, else `../shared/data`."""
    return settings().data_dir or ROOT.parent / "shared" / "data"


def real_data_path(name: str, directory: str | Path | None = None) -> Path:
    """The path of data set `name` in `directory` (default `data_dir()`); exits if absent."""
    path = Path(directory or data_dir()) / name
    if not path.is_file():
        raise SystemExit(
            f"{name} not found in {path.parent} (set DUNNING_DATA_DIR or --data-dir); "
            f"it is {SOURCES[name]}"
        )
    return path
