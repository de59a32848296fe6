"""The large public data sets some tests check against, which the repository does not ship.

They are read from `DUNNING_DATA_DIR` (default `../shared/data` beside the repository), as
the benches read them (`bench.realdata` holds the location and the sources). A test that
needs one and does not find it is skipped with a message naming where the data comes from,
so a fresh clone runs everything else.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.realdata import SOURCES, data_dir


def real_data_path(name: str) -> Path:
    """The path of real data set `name`, or skip the calling test saying where to get it."""
    path = data_dir() / name
    if not path.is_file():
        pytest.skip(f"{name} not in {data_dir()} (set DUNNING_DATA_DIR); it is {SOURCES[name]}")
    return path
