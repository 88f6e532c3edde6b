"""packaging/: the files each platform ships, checked by their own validators where one
exists (desktop-file-validate, appstreamcli) and against the program they describe.

The bundle itself is built and run by `make package` and tools/smoke_bundle.py (CI does
both after the tests); here are the files that must agree with the code: the app id,
the version, the start-at-login value, the keyring backends the bundle must carry.
"""

from __future__ import annotations

import ast
import importlib.util
import plistlib
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from datetime import date
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

import pytest

from tray_app import __version__
from tray_app.core.platform.autostart import (
    APP_ID,
    RUN_KEY,
    RUN_VALUE_NAME,
    WINDOWS_GUI_EXE,
    desktop_entry,
    run_command_line,
)
from tray_app.core.platform.paths import APP_NAME

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
LINUX = PACKAGING / "linux"
DESKTOP = LINUX / f"{APP_ID}.desktop"
AUTOSTART = LINUX / "autostart" / "telemetry-tray.desktop"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
SPEC = PACKAGING / "pyinstaller" / "telemetry-tray.spec"
INFO_PLIST = PACKAGING / "macos" / "Info.plist"
INNO = PACKAGING / "windows" / "telemetry-tray.iss"
HICOLOR_SIZES = [16, 22, 24, 32, 48, 64, 128, 256]


def pyproject_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


def desktop_keys(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


def test_the_version_is_one() -> None:
    assert pyproject_version() == __version__


# -- Linux ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DESKTOP, AUTOSTART], ids=["menu", "autostart"])
def test_desktop_files_validate(path: Path) -> None:
    validator = tool("desktop-file-validate", "desktop-file-utils")
    result = subprocess.run([validator, str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # not even a hint


def test_menu_entry_starts_the_tray_with_our_icon() -> None:
    keys = desktop_keys(DESKTOP)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "Telemetry Tray"
    assert keys["Exec"] == "telemetry-tray"  # no verb: the tray
    assert keys["Icon"] == "telemetry-tray"
    assert keys["Terminal"] == "false"
    assert "X-GNOME-Autostart-enabled" not in keys  # that belongs to the autostart copy
    for size in HICOLOR_SIZES:
        assert (ROOT / "resources" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "telemetry-tray.png").is_file()


def test_autostart_copy_is_what_the_settings_switch_writes() -> None:
    # One entry, two ways to install it: a distribution may ship this file in
    # /etc/xdg/autostart; the Settings switch writes the same text for one person.
    assert AUTOSTART.read_text(encoding="utf-8") == desktop_entry(["telemetry-tray"])
    keys = desktop_keys(AUTOSTART)
    assert keys["X-GNOME-Autostart-enabled"] == "true"
    assert keys["X-GNOME-Autostart-Delay"] == "5"


def test_metainfo_validates() -> None:
    validator = tool("appstreamcli", "appstream")
    result = subprocess.run(
        [validator, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metainfo_names_our_app_and_its_newest_release_is_this_version() -> None:
    component = ET.parse(METAINFO).getroot()
    assert component.get("type") == "desktop-application"
    assert component.findtext("id") == APP_ID
    assert component.findtext("launchable[@type='desktop-id']") == DESKTOP.name
    assert component.findtext("provides/binary") == "telemetry-tray"
    releases = component.findall("releases/release")
    assert releases, "no <release> entries"
    newest = releases[0]
    assert newest.get("version") == pyproject_version(), (
        f"pyproject.toml says {pyproject_version()}: add a <release> for it at the top of {METAINFO.name}"
    )
    dates = [date.fromisoformat(release.get("date", "")) for release in releases]
    assert dates == sorted(dates, reverse=True), "releases must be newest first"


def test_metainfo_screenshots_are_the_ones_in_docs() -> None:
    component = ET.parse(METAINFO).getroot()
    screenshots = component.findall("screenshots/screenshot")
    assert [shot.get("type") for shot in screenshots].count("default") == 1
    for shot in screenshots:
        assert shot.findtext("caption")
        url = shot.findtext("image") or ""
        assert url.startswith("https://raw.githubusercontent.com/"), url
        assert url.split("/main/", 1)[1].startswith("docs/screenshots/"), url
        assert (ROOT / url.split("/main/", 1)[1]).is_file(), f"{url} names no file in the repository"


def test_staged_tree_holds_every_icon_and_validates(tmp_path: Path) -> None:
    sys.path.insert(0, str(LINUX))
    try:
        import stage
    finally:
        sys.path.remove(str(LINUX))
    bundle = tmp_path / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "telemetry-tray").write_text("#!/bin/sh\n")
    tree = stage.stage(bundle, tmp_path / "tree")
    share = tree / "share"
    assert (share / "applications" / DESKTOP.name).read_bytes() == DESKTOP.read_bytes()
    assert (share / "metainfo" / METAINFO.name).read_bytes() == METAINFO.read_bytes()
    for size in HICOLOR_SIZES:
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "telemetry-tray.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "telemetry-tray.svg").is_file()
    assert (tree / "bin" / "telemetry-tray").resolve() == (tree / "lib" / "telemetry-tray" / "telemetry-tray")
    assert not (share / "applications" / AUTOSTART.name).exists()
    validator = tool("appstreamcli", "appstream")
    result = subprocess.run(
        [validator, "validate-tree", "--no-net", str(tree)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the PyInstaller spec ------------------------------------------------------------


def spec_constants() -> dict[str, object]:
    """The spec's literal top-level assignments (it runs only inside PyInstaller)."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"))
    constants: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def test_spec_bundles_every_keyring_backend() -> None:
    constants = spec_constants()
    backends = constants["KEYRING_BACKENDS"]
    assert isinstance(backends, list)
    declared = {point.value.split(":")[0] for point in entry_points(group="keyring.backends")}
    keyrings_own = {name for name in declared if name.startswith("keyring.backends.")}
    assert keyrings_own >= {"keyring.backends.SecretService", "keyring.backends.macOS", "keyring.backends.Windows"}
    assert keyrings_own <= set(backends)
    dependencies = constants["BACKEND_DEPENDENCIES"]
    assert isinstance(dependencies, dict)
    assert "secretstorage" in dependencies["linux"]
    assert "win32ctypes.core" in dependencies["win32"]
    text = SPEC.read_text(encoding="utf-8")
    # keyring finds the backends through its metadata's entry points: it must be in the bundle.
    assert 'copy_metadata("keyring")' in text
    assert "hiddenimports=hiddenimports" in text


def test_spec_carries_resources_and_never_drops_svg_support() -> None:
    constants = spec_constants()
    text = SPEC.read_text(encoding="utf-8")
    assert '"resources/icons"' in text
    assert '"resources/manifests"' in text
    unused = constants["UNUSED_QT_PLUGINS"]
    kept = constants["KEPT_QT_PLUGINS"]
    assert isinstance(unused, list)
    assert isinstance(kept, list)
    assert "imageformats/libqsvg" in kept
    for needed in ("platforms/libqxcb", "platforms/libqwayland", "platforms/libqoffscreen", "iconengines/"):
        assert not any(needed.startswith(prefix) for prefix in unused), needed


def _lazy_imports(package: Path, roots: tuple[str, ...]) -> dict[str, str]:
    """Modules under ``roots`` that ``package`` imports inside a function (module → file:line)."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    # "from a.b import c" may name the module a.b.c: count both
                    names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
                for name in names:
                    if name.startswith(roots):
                        found.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_spec_collects_the_protobuf_modules_the_otlp_receiver_imports_lazily() -> None:
    constants = spec_constants()
    packages = constants["PROTOBUF_PACKAGES"]
    unused = constants["UNUSED_PROTOBUF"]
    assert isinstance(packages, list)
    assert isinstance(unused, tuple)
    lazy = _lazy_imports(ROOT / "tray_app", ("google.", "opentelemetry."))
    assert "opentelemetry.proto.collector.logs.v1.logs_service_pb2" in lazy  # the check sees them
    assert "google.protobuf.message" in lazy
    for module, where in lazy.items():
        covered = any(module == package or module.startswith(package + ".") for package in packages)
        assert covered, f"{where} imports {module} at run time: add its package to PROTOBUF_PACKAGES in {SPEC.name}"
        assert not any(part in module for part in unused), f"{where} imports {module}, which UNUSED_PROTOBUF leaves out"
    # protobuf's C extension: without it protobuf falls back to pure Python without a word.
    assert constants["PROTOBUF_EXTENSION"] == "google._upb._message"
    assert "google._upb" in packages
    text = SPEC.read_text(encoding="utf-8")
    assert "hiddenimports += _protobuf_modules()" in text
    assert text.index("hiddenimports += _protobuf_modules()") < text.index("a = Analysis(")


def test_spec_keeps_the_opentelemetry_sdk_out_of_the_bundle() -> None:
    # pyinstaller-hooks-contrib's hook for `opentelemetry` would collect every opentelemetry_*
    # entry point of the build environment (the SDK and exporters the tests use); ours adds none.
    text = SPEC.read_text(encoding="utf-8")
    assert 'HOOKS = str(Path(SPECPATH) / "hooks")' in text
    assert "hookspath=[HOOKS]" in text
    hook: dict[str, object] = {}
    exec((SPEC.parent / "hooks" / "hook-opentelemetry.py").read_text(encoding="utf-8"), hook)
    assert hook["hiddenimports"] == [] and hook["datas"] == []
    for excluded in ("opentelemetry.sdk", "opentelemetry.exporter"):
        assert f'"{excluded}"' in text


def _smoke_bundle() -> ModuleType:
    path = ROOT / "tools" / "smoke_bundle.py"
    spec = importlib.util.spec_from_file_location("smoke_bundle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_smoke_tests_hand_made_protobuf_is_what_the_stock_otlp_classes_read() -> None:
    # tools/smoke_bundle.py is standard library only, so it spells its OTLP requests by hand.
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    smoke = _smoke_bundle()
    logs = ExportLogsServiceRequest.FromString(smoke.otlp_logs_body())
    services = [r.resource.attributes[0].value.string_value for r in logs.resource_logs]
    assert services == [smoke.OTLP_SERVICE, smoke.OTLP_FOREIGN]
    record = logs.resource_logs[0].scope_logs[0].log_records[0]
    assert (record.event_name, record.severity_number, record.time_unix_nano) == (
        "note.created",
        9,
        smoke.OTLP_TIME_NANOS,
    )
    metrics = ExportMetricsServiceRequest.FromString(smoke.otlp_metrics_body())
    assert [r.resource.attributes[0].value.string_value for r in metrics.resource_metrics] == services
    metric = metrics.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.name == "inkwell.sync.attempts"
    assert (metric.sum.aggregation_temporality, metric.sum.is_monotonic) == (1, True)  # DELTA
    assert metric.sum.data_points[0].as_int == 3
    # The manifest the smoke test registers takes these records from this service only.
    otel_notes = tomllib.loads((ROOT / "resources" / "manifests" / "otel-notes.toml").read_text(encoding="utf-8"))
    assert otel_notes["otlp"]["service_names"] == [smoke.OTLP_SERVICE]
    assert smoke.OTLP_FOREIGN not in otel_notes["otlp"]["service_names"]
    for response in (ExportLogsServiceResponse(), ExportMetricsServiceResponse()):
        assert smoke.partial_success(response.SerializeToString()) == (0, "")
    answer = ExportLogsServiceResponse()
    answer.partial_success.rejected_log_records = 300
    answer.partial_success.error_message = "service.name 'smoke-other' refused …"
    assert smoke.partial_success(answer.SerializeToString()) == (300, "service.name 'smoke-other' refused …")


def test_spec_builds_the_app_bundle_and_the_windowed_program() -> None:
    text = SPEC.read_text(encoding="utf-8")
    assert 'info["CFBundleShortVersionString"] = VERSION' in text
    assert "bundle_identifier=APP_ID" in text
    assert 'name="Telemetry Tray.app"' in text
    assert "name=WINDOWS_GUI_EXE.removesuffix" in text
    assert "console=False" in text


# -- macOS ---------------------------------------------------------------------------


def test_info_plist() -> None:
    with INFO_PLIST.open("rb") as handle:
        info = plistlib.load(handle)
    assert info["LSUIElement"] is True  # no Dock icon
    assert info["CFBundleIdentifier"] == APP_ID
    assert info["CFBundleExecutable"] == "telemetry-tray"
    assert info["CFBundlePackageType"] == "APPL"
    assert tuple(int(part) for part in info["LSMinimumSystemVersion"].split(".")) >= (13, 0)
    # The version comes from pyproject.toml when the spec builds the bundle, so it cannot go stale here.
    assert "CFBundleShortVersionString" not in info
    assert "CFBundleVersion" not in info


# -- Windows -------------------------------------------------------------------------


def inno_defines() -> dict[str, str]:
    text = INNO.read_text(encoding="utf-8")
    return dict(re.findall(r'^#define (\w+) "(.*)"$', text, flags=re.MULTILINE))


def inno_entries(section: str) -> list[dict[str, str]]:
    """The entries of an Inno Setup section, as {parameter: value}, #defines expanded."""
    defines = inno_defines()
    text = INNO.read_text(encoding="utf-8")
    body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    entries = []
    for line in body.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        entry = {}
        for part in re.findall(r'(\w+): ("(?:[^"]|"")*"|[^;]*)', line):
            name, value = part
            value = value.strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1].replace('""', '"')
            entry[name] = re.sub(r"\{#(\w+)\}", lambda m: defines[m.group(1)], value)
        entries.append(entry)
    return entries


def test_inno_start_at_login_is_the_value_the_program_reads() -> None:
    defines = inno_defines()
    assert defines["GuiExe"] == WINDOWS_GUI_EXE
    (run,) = inno_entries("Registry")
    assert run["Root"] == "HKCU"
    assert run["Subkey"] == RUN_KEY
    assert run["ValueType"] == "string"
    assert run["ValueName"] == RUN_VALUE_NAME
    assert run["ValueData"] == run_command_line([r"{app}" + "\\" + WINDOWS_GUI_EXE])
    assert run["Tasks"] == "startatlogin"
    assert "uninsdeletevalue" in run["Flags"]
    (task,) = inno_entries("Tasks")
    assert task["Name"] == "startatlogin"
    assert "unchecked" not in task.get("Flags", "")
    text = INNO.read_text(encoding="utf-8")
    # A per-user install: HKCU is the installing person's, as for the Settings switch.
    assert "PrivilegesRequired=lowest" in text
    assert "RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}')" in text


def test_inno_start_menu_entry_starts_the_windowed_program() -> None:
    icons = inno_entries("Icons")
    assert {"Name": r"{group}\Telemetry Tray", "Filename": r"{app}" + "\\" + WINDOWS_GUI_EXE}.items() <= icons[
        0
    ].items()
    assert any(icon["Filename"] == "{uninstallexe}" for icon in icons)
    (files,) = inno_entries("Files")
    assert files["Source"] == r"..\..\dist\telemetry-tray\*"
    assert "recursesubdirs" in files["Flags"]


def test_inno_uninstall_asks_before_removing_the_data() -> None:
    text = INNO.read_text(encoding="utf-8")
    assert inno_defines()["DataDir"] == "{localappdata}\\" + APP_NAME
    code = text.split("[Code]", 1)[1]
    ask = code.index("MsgBox(")
    delete = code.index("DelTree(DataDir")
    assert ask < delete
    assert "= IDYES then" in code[ask:delete]  # deleted only on a yes
    assert "MB_DEFBUTTON2" in code[ask:delete]  # and No is the default
    assert "not UninstallSilent()" in code  # a silent uninstall keeps the data
    assert re.search(r"^AppId=\{\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$", text, re.MULTILINE)
