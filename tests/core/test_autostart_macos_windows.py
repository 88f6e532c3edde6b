"""Start at login on macOS and Windows: the LaunchAgent file and the Run key value they write.

The LaunchAgent is written to a temporary folder and read back as launchd would, with
plistlib. The Run key is reached through the ``RunKey`` interface: here a stand-in that
keeps values as the registry does (names compared without regard to case); on Windows
one more test writes and reads a real key of the current user.

What the agent and the Run value start for the running program is run here too (the Run
value's command line split as Windows does), and must answer as this installation, on
the home it was enabled from.
"""

from __future__ import annotations

import json
import os
import plistlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tray_app import __version__
from tray_app.core.platform.autostart import (
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
from tray_app.core.platform.paths import HOME_ENV

BUNDLED_MAC = "/Applications/Telemetry Tray.app/Contents/MacOS/telemetry-tray"
INSTALLED_WINDOWS = r"C:\Program Files\Telemetry Tray\telemetry-trayw.exe"
# A home folder name that needs quoting (Windows does not allow quotes or <> in names).
ODD_HOME = "tray home" if sys.platform == "win32" else 'tray home "q" & <odd> \\'


@pytest.fixture(autouse=True)
def no_home_of_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever home the test run itself has is not what these tests write.
    monkeypatch.delenv(HOME_ENV, raising=False)


def run_started(args: list[str], *extra: str, cwd: Path, variables: dict[str, str] | None = None) -> str:
    """``args`` run as launchd or Windows would at login: no TELEMETRY_TRAY_HOME or
    PYTHON* variables of this session (only ``variables``), from another folder; its output."""
    env = {key: value for key, value in os.environ.items() if key != HOME_ENV and not key.startswith("PYTHON")}
    env.update(variables or {})
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([*args, *extra], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def database_of(args: list[str], cwd: Path, variables: dict[str, str] | None = None) -> str:
    status = json.loads(run_started(args, "status", "--json", cwd=cwd, variables=variables))
    assert status["version"] == __version__
    return str(status["database"])


def an_absolute_program(path: str) -> None:
    assert os.path.isabs(path), path
    assert Path(path).is_file(), path


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


def test_launch_agent_starts_this_installation_on_this_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / ODD_HOME
    monkeypatch.setenv(HOME_ENV, str(home))
    autostart = LaunchAgentAutostart(tmp_path / "agents")
    autostart.enable()
    with autostart.path.open("rb") as handle:
        agent = plistlib.load(handle)
    assert agent["EnvironmentVariables"] == {HOME_ENV: str(home)}
    program = agent["ProgramArguments"]
    assert program == default_command("darwin")
    an_absolute_program(program[0])
    # launchd starts ProgramArguments as they are, with EnvironmentVariables added.
    database = database_of(program, tmp_path / "elsewhere", agent["EnvironmentVariables"])
    assert database == str(home / "data" / "telemetry-tray.sqlite3")


def test_launch_agent_without_a_home_sets_no_variable(tmp_path: Path) -> None:
    autostart = LaunchAgentAutostart(tmp_path)
    autostart.enable()
    with autostart.path.open("rb") as handle:
        agent = plistlib.load(handle)
    assert "EnvironmentVariables" not in agent
    an_absolute_program(agent["ProgramArguments"][0])
    version = run_started(agent["ProgramArguments"], "--version", cwd=tmp_path / "elsewhere")
    assert version.strip() == f"telemetry-tray {__version__}"


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
    # The installer's "start at login" task writes the same value (tests/shells/test_packaging.py
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


def windows_args(line: str) -> list[str]:
    """Split a command line as Windows does (CommandLineToArgvW): the program up to its
    closing quote, then the arguments by the C runtime's backslash and quote rules."""
    if line.startswith('"'):
        end = line.index('"', 1)
        args, i = [line[1:end]], end + 1
    else:
        end = len(line.split()[0])
        args, i = [line[:end]], end
    current: list[str] | None = None
    quoted = False
    while i < len(line):
        char = line[i]
        if char == "\\":
            j = i
            while j < len(line) and line[j] == "\\":
                j += 1
            count = j - i
            current = current if current is not None else []
            if j < len(line) and line[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    j += 1
            else:
                current.append("\\" * count)
            i = j
            continue
        if char == '"':
            current = current if current is not None else []
            quoted = not quoted
        elif char in " \t" and not quoted:
            if current is not None:
                args.append("".join(current))
            current = None
        else:
            current = (current if current is not None else []) + [char]
        i += 1
    if current is not None:
        args.append("".join(current))
    return args


def test_windows_args_reads_what_run_command_line_writes() -> None:
    command = [INSTALLED_WINDOWS, "--home", "D:\\tray data\\", 'say "hi"', "", "a\\\\b"]
    assert windows_args(run_command_line(command)) == command


def test_run_value_starts_this_installation(tmp_path: Path) -> None:
    key = RegistryValues()
    WindowsRunAutostart(key).enable()
    value = key.get(RUN_VALUE_NAME)
    assert value is not None
    args = windows_args(value)
    assert args == default_command("win32")
    an_absolute_program(args[0])
    assert run_started(args, "--version", cwd=tmp_path / "elsewhere").strip() == f"telemetry-tray {__version__}"


def test_run_value_carries_the_home_without_a_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Run value is a bare command line: the home goes in as an argument of the line
    # that sets it. A trailing backslash and quotes test the quoting.
    home = tmp_path / ODD_HOME
    monkeypatch.setenv(HOME_ENV, str(home))
    key = RegistryValues()
    autostart = WindowsRunAutostart(key)
    autostart.enable()
    value = key.get(RUN_VALUE_NAME)
    assert value is not None and value == autostart.command_line
    args = windows_args(value)
    an_absolute_program(args[0])
    assert args[1] == "-c" and args[-1] == str(home)
    assert database_of(args, tmp_path / "elsewhere") == str(home / "data" / "telemetry-tray.sqlite3")


def test_run_value_refuses_a_home_it_cannot_carry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    key = RegistryValues()
    with pytest.raises(AutostartError, match="cannot set TELEMETRY_TRAY_HOME") as caught:
        WindowsRunAutostart(key, [INSTALLED_WINDOWS]).enable()
    assert "Unset TELEMETRY_TRAY_HOME" in caught.value.message
    # A bundle has no interpreter to set it either.
    program = tmp_path / "telemetry-tray.exe"
    program.write_bytes(b"MZ")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(program))
    with pytest.raises(AutostartError, match="cannot set TELEMETRY_TRAY_HOME") as caught:
        WindowsRunAutostart(key).enable()
    assert str(tmp_path / "home") in caught.value.message and caught.value.title == "Start at login"
    assert key.as_written() == {}
    monkeypatch.delenv(HOME_ENV)  # the default home needs nothing carried
    WindowsRunAutostart(key).enable()
    assert key.as_written() == {RUN_VALUE_NAME: f'"{program}"'}


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
