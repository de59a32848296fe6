"""Fixtures of the fault tests: the failing SMTP server and the figures for bench/."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dunning.settings import settings
from tests.faults.smtpfaults import FaultSink


@pytest.fixture
def fault_sink(tmp_path: Path) -> Iterator[FaultSink]:
    with FaultSink(tmp_path / "outbox") as sink:
        yield sink


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """`figures(sent=300, duplicated=0, ...)`: appended as one JSON line to the file named by
    DUNNING_FAULTS_FIGURES (for bench/RELIABILITY.md); nothing when it is unset."""

    def record(**values: object) -> None:
        target = settings().faults_figures
        if target:
            with open(target, "a", encoding="utf-8") as f:
                f.write(json.dumps({"test": request.node.name, **values}, default=str) + "\n")

    return record
