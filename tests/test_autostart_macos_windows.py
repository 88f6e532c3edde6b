"""Start at login on macOS and Windows: the LaunchAgent file and the Run key value they write.

The LaunchAgent is written to a temporary folder and read back as launchd would, with
plistlib. The Run key is reached through the ``RunKey`` interface: here a stand-in that
keeps values as the registry does (names compared without regard to case); on Windows
one more test writes and reads a real key of the current user.
"""

from __future__ import annotations

import plistlib
import stat
import sys
from pathlib import Path

import pytest

from tray_app.core.autostart import (
    APP_ID,
    RUN_VALUE_NAME,
    WINDOWS_GUI_EXE,
    Autostart,
    AutostartError,
    LaunchAgentAutostart,
    WindowsRunAutostart,
    WinregRunKey,
    bundle_command,
    default_command,
    run_command_line,
)

BUNDLED_MAC = "/Applications/Telemetry Tray.app/Contents/MacOS/telemetry-tray"
INSTALLED_WINDOWS = r"C:\Program Files\Telemetry Tray\telemetry-trayw.exe"


# -- macOS: the LaunchAgent ----------------------------------------------------------


def test_enable_writes_our_launch_agent(tmp_path: Path) -> None:
    agents = tmp_path / "Library" / "LaunchAgents"
    autostart = LaunchAgentAutostart(agents, [BUNDLED_MAC])
    assert isinstance(autostart, Autostart)
    assert not autostart.enabled
    autostart.enable()
    path = agents / f"{APP_ID}.plist"
    assert autostart.path == path
    assert autostart.enabled
    data = path.read_bytes()
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist')
    with path.open("rb") as handle:
        agent = plistlib.load(handle)
    assert agent == {
        "Label": APP_ID,
        "ProgramArguments": [BUNDLED_MAC],
        "RunAtLoad": True,
        "KeepAlive": False,
        "LimitLoadToSessionType": "Aqua",
        "ProcessType": "Interactive",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in agents.iterdir()) == [f"{APP_ID}.plist"]
    autostart.enable()
    assert path.read_bytes() == data


def test_launch_agent_keeps_each_argument_whole(tmp_path: Path) -> None:
    command = ["/Users/ann/My Apps/telemetry-tray", "--flag", 'a "quoted" & <odd> arg', "100%"]
    autostart = LaunchAgentAutostart(tmp_path, command)
    autostart.enable()
    with autostart.path.open("rb") as handle:
        assert plistlib.load(handle)["ProgramArguments"] == command


def test_launch_agent_disable_removes_only_ours(tmp_path: Path) -> None:
    other = tmp_path / "com.example.other.plist"
    other.write_bytes(plistlib.dumps({"Label": "com.example.other", "ProgramArguments": ["/bin/true"]}))
    autostart = LaunchAgentAutostart(tmp_path, [BUNDLED_MAC])
    autostart.enable()
    autostart.disable()
    assert not autostart.enabled
    assert [p.name for p in tmp_path.iterdir()] == [other.name]
    autostart.disable()
    assert other.exists()


def test_launch_agent_marked_disabled_reads_as_disabled(tmp_path: Path) -> None:
    autostart = LaunchAgentAutostart(tmp_path, [BUNDLED_MAC])
    autostart.enable()
    with autostart.path.open("rb") as handle:
        agent = plistlib.load(handle)
    autostart.path.write_bytes(plistlib.dumps({**agent, "Disabled": True}))
    assert not autostart.enabled


def test_unreadable_launch_agent_is_an_error_with_a_title(tmp_path: Path) -> None:
    autostart = LaunchAgentAutostart(tmp_path, [BUNDLED_MAC])
    autostart.path.write_bytes(b"<plist><dict><key>Label</key>")  # cut short
    with pytest.raises(AutostartError, match="Could not read") as caught:
        assert autostart.enabled
    assert caught.value.title == "Start at login"


def test_launch_agent_refuses_an_empty_command(tmp_path: Path) -> None:
    with pytest.raises(AutostartError, match="empty"):
        LaunchAgentAutostart(tmp_path, [])


# -- Windows: the Run key ------------------------------------------------------------


class RegistryValues:
    """A stand-in for one registry key: string values whose names, as in the registry,
    are compared without regard to case but keep the case they were created with."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, str]] = {}  # casefolded name -> (name, value)

    def get(self, name: str) -> str | None:
        found = self.values.get(name.casefold())
        return found[1] if found else None

    def set(self, name: str, value: str) -> None:
        kept = self.values.get(name.casefold(), (name, ""))[0]
        self.values[name.casefold()] = (kept, value)

    def delete(self, name: str) -> None:
        self.values.pop(name.casefold(), None)

    def as_written(self) -> dict[str, str]:
        return dict(self.values.values())


def test_enable_writes_our_run_value() -> None:
    key = RegistryValues()
    key.set("OneDrive", r'"C:\Users\ann\AppData\Local\Microsoft\OneDrive\OneDrive.exe" /background')
    autostart = WindowsRunAutostart(key, [INSTALLED_WINDOWS])
    assert isinstance(autostart, Autostart)
    assert not autostart.enabled
    autostart.enable()
    assert autostart.enabled
    assert key.as_written() == {
        "OneDrive": r'"C:\Users\ann\AppData\Local\Microsoft\OneDrive\OneDrive.exe" /background',
        "Telemetry Tray": r'"C:\Program Files\Telemetry Tray\telemetry-trayw.exe"',
    }
    autostart.disable()
    assert not autostart.enabled
    assert list(key.as_written()) == ["OneDrive"]
    autostart.disable()  # nothing there: nothing to do


def test_run_value_written_by_the_installer_reads_as_enabled() -> None:
    # The installer's "start at login" task writes the same value (tests/test_packaging.py
    # checks the script); the Settings switch must show it, and switch it off.
    key = RegistryValues()
    key.set("telemetry tray", r'"C:\Program Files\Telemetry Tray\telemetry-trayw.exe"')
    autostart = WindowsRunAutostart(key, [INSTALLED_WINDOWS])
    assert autostart.enabled
    autostart.disable()
    assert key.as_written() == {}


def test_run_command_line_quotes_as_windows_parses() -> None:
    assert RUN_VALUE_NAME == "Telemetry Tray"
    assert run_command_line([r"C:\Tools\telemetry-trayw.exe"]) == r'"C:\Tools\telemetry-trayw.exe"'
    assert run_command_line([INSTALLED_WINDOWS, "--home", r"D:\tray data", 'say "hi"']) == (
        r'"C:\Program Files\Telemetry Tray\telemetry-trayw.exe" --home "D:\tray data" "say \"hi\""'
    )


@pytest.mark.parametrize("command", [[], ['C:\\odd"name.exe'], [INSTALLED_WINDOWS, "two\nlines"]])
def test_run_command_line_refuses_what_cannot_be_written(command: list[str]) -> None:
    with pytest.raises(AutostartError):
        run_command_line(command)
    key = RegistryValues()
    if command:
        with pytest.raises(AutostartError):
            WindowsRunAutostart(key, command).enable()
    assert key.as_written() == {}


if sys.platform == "win32":  # only Windows has a registry; elsewhere this test does not exist

    def test_winreg_run_key_in_the_real_registry() -> None:
        import winreg

        subkey = r"Software\TelemetryTrayTests\Run"
        autostart = WindowsRunAutostart(WinregRunKey(subkey), [INSTALLED_WINDOWS])
        try:
            assert not autostart.enabled
            autostart.enable()
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, subkey) as key:
                assert winreg.QueryValueEx(key, RUN_VALUE_NAME) == (
                    r'"C:\Program Files\Telemetry Tray\telemetry-trayw.exe"',
                    winreg.REG_SZ,
                )
            assert autostart.enabled
            autostart.disable()
            assert not autostart.enabled
            autostart.disable()
        finally:
            winreg.DeleteKey(winreg.HKEY_CURRENT_USER, subkey)
            winreg.DeleteKey(winreg.HKEY_CURRENT_USER, r"Software\TelemetryTrayTests")

else:

    def test_winreg_run_key_says_it_needs_windows() -> None:
        autostart = WindowsRunAutostart(WinregRunKey(), [INSTALLED_WINDOWS])
        with pytest.raises(AutostartError, match="only there on Windows"):
            autostart.enable()
        with pytest.raises(AutostartError, match="only there on Windows"):
            assert autostart.enabled


# -- the command of a bundle ---------------------------------------------------------


def test_bundle_command_prefers_the_windowed_program_on_windows(tmp_path: Path) -> None:
    console = tmp_path / "telemetry-tray.exe"
    console.write_bytes(b"MZ")
    assert bundle_command(console, "win32") == [str(console)]  # no twin: the program itself
    (tmp_path / WINDOWS_GUI_EXE).write_bytes(b"MZ")
    assert bundle_command(console, "win32") == [str(tmp_path / WINDOWS_GUI_EXE)]
    assert bundle_command(Path(BUNDLED_MAC), "darwin") == [BUNDLED_MAC]


def test_default_command_in_a_bundle_is_the_running_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "telemetry-tray"
    program.write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(program))
    assert default_command() == [str(program)]
    assert LaunchAgentAutostart(tmp_path).command == [str(program)]
