"""The house rules that code can check: the core has no Qt, shells have no SQL."""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys

import tray_app.core
from tests.conftest import ROOT

BLOCK_QT = """
import importlib.abc, sys
class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6" or name.startswith("PySide6."):
            raise ImportError("the core must not import PySide6")
        return None
sys.meta_path.insert(0, NoQt())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
assert not any(m.startswith("PySide6") for m in sys.modules)
print("ok", len(sys.argv) - 1)
"""


def test_core_imports_without_pyside6() -> None:
    modules = ["tray_app.core"] + [
        f"tray_app.core.{info.name}" for info in pkgutil.iter_modules(tray_app.core.__path__)
    ]
    assert len(modules) > 10
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_QT, *modules, "tray_app.cli"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {len(modules) + 1}"


def test_shells_hold_no_sql() -> None:
    sql = re.compile(r"\b(SELECT|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE TABLE)\b")
    shells = [ROOT / "tray_app" / "cli.py", ROOT / "tray_app" / "__main__.py"]
    for folder in ("ui", "ingest"):
        shells += sorted((ROOT / "tray_app" / folder).rglob("*.py"))
    offenders = [str(path) for path in shells if path.exists() and sql.search(path.read_text())]
    assert offenders == []


AT_REST = """
import sys, tempfile
from pathlib import Path
from tray_app.core import Broker, Locations
from tray_app.core.forwarder import Forwarder
import tray_app.ingest.instance, tray_app.ui.app
broker = Broker.open(Locations.under(Path(tempfile.mkdtemp())))
forwarder = Forwarder(broker)
assert forwarder.deliver_due() == []
forwarder.close()
heavy = [m for m in ("httpx", "h2", "truststore", "tray_app.ui.review", "tray_app.ui.settings",
                     "tray_app.ui.history") if m in sys.modules]
print("loaded:", heavy)
"""


def test_a_tray_at_rest_loads_no_http_client_and_no_windows() -> None:
    # Memory (issue 5's idle RSS): these load when something is sent or a window opens.
    result = subprocess.run([sys.executable, "-c", AT_REST], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"
