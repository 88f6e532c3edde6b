"""Loading the copied specification vectors (see vectors/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tray_app.core.rules.prio.prio3 import Prio3, prio3_count, prio3_histogram, prio3_sum

VECTORS = Path(__file__).parent / "vectors"
PRIO3_VECTORS = (
    "Prio3Count_0",
    "Prio3Count_1",
    "Prio3Sum_0",
    "Prio3Sum_1",
    "Prio3Histogram_0",
    "Prio3Histogram_1",
)


def load(name: str) -> Any:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


def vdaf_of(name: str, vector: dict[str, Any]) -> Prio3:
    """The Prio3 instance a vector file was made with (its parameters are in the file)."""
    shares = vector["shares"]
    if name.startswith("Prio3Count"):
        return prio3_count(shares)
    if name.startswith("Prio3Sum"):
        return prio3_sum(vector["bits"], shares)
    if name.startswith("Prio3Histogram"):
        return prio3_histogram(vector["length"], vector["chunk_length"], shares)
    raise AssertionError(name)
