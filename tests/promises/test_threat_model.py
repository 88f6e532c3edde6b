"""docs/threat-model.md names, for each defence, the test that shows it: those tests exist."""

from __future__ import annotations

import re

from tests.support.builders import ROOT

REFERENCE = re.compile(r"`(test_[a-z0-9_]+\.py)(?:::(test_[a-z0-9_]+))?`|`::(test_[a-z0-9_]+)`")


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "docs" / "threat-model.md").read_text(encoding="utf-8")
    named, missing, current = 0, [], ""
    for match in REFERENCE.finditer(text):
        current = match.group(1) or current
        name = match.group(2) or match.group(3)
        # Test files have names unique across tests/ (its folders are by subject).
        found = sorted((ROOT / "tests").rglob(current))
        named += 1
        if len(found) != 1:
            missing.append(current)
        elif name and not re.search(rf"^\s*def {name}\(", found[0].read_text(encoding="utf-8"), re.MULTILINE):
            missing.append(f"{current}::{name}")
    assert named > 40
    assert missing == []
