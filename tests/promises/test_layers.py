"""The house rules that code can check: the core has no Qt, shells have no SQL."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import tray_app.core
from tests.support.builders import ROOT

# A shell may import ``tray_app.core`` itself; any name below it that is not one of the
# face's exports is a module, and shells may not reach into those.
_FACE_NAMES = frozenset(tray_app.core.__all__)

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


def _modules(package: str) -> list[str]:
    """Every module of ``package``, subpackages included (walked recursively, so a module
    moved into a new folder is still covered)."""
    root = ROOT / Path(*package.split("."))
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imports(path: Path) -> list[str]:
    """The absolute names of the modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            names.append(target)
            # "from . import x": x may itself be a module
            names += [f"{target}.{alias.name}" for alias in node.names]
    return names


def test_core_imports_without_pyside6() -> None:
    modules = _modules("tray_app.core")
    assert {"tray_app.core.rules.scope", "tray_app.core.storage.store", "tray_app.core.platform.secrets"} <= set(
        modules
    )
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_QT, *modules, "tray_app.cli"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {len(modules) + 1}"


def test_shells_import_only_the_face_of_the_core() -> None:
    shells = [ROOT / "tray_app" / "cli.py", *sorted((ROOT / "tray_app" / "ui").rglob("*.py"))]
    shells += sorted((ROOT / "tray_app" / "ingest").rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in shells
        for name in _imports(path)
        if name.startswith("tray_app.core.") and name.split(".")[2] not in _FACE_NAMES
    ]
    assert offenders == []


def test_rules_are_pure() -> None:
    """rules/ imports nothing from storage/ or platform/, and no I/O, threads or SQL."""
    impure = ("tray_app.core.storage", "tray_app.core.platform", "sqlite3", "socket", "threading", "subprocess")
    impure += ("urllib.request", "http", "httpx", "keyring", "os")
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "tray_app" / "core" / "rules").rglob("*.py"))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in impure)
    ]
    assert offenders == []


def test_no_two_modules_share_a_file_name() -> None:
    names = [path.name for path in (ROOT / "tray_app").rglob("*.py") if path.name not in ("__init__.py", "__main__.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


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
import tray_app.ingest.instance, tray_app.ui.application
broker = Broker.open(Locations.under(Path(tempfile.mkdtemp())))
forwarder = Forwarder(broker.deliveries)
assert forwarder.deliver_due() == []
forwarder.close()
heavy = [m for m in ("httpx", "h2", "truststore", "tray_app.ui.review_window", "tray_app.ui.settings_window",
                     "tray_app.ui.history_window") if m in sys.modules]
print("loaded:", heavy)
"""


def test_a_tray_at_rest_loads_no_http_client_and_no_windows() -> None:
    # Memory (issue 5's idle RSS): these load when something is sent or a window opens.
    result = subprocess.run([sys.executable, "-c", AT_REST], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"
