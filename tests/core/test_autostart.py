"""Start at login: the XDG autostart desktop file, on a temporary config folder; the choice per platform.

The entry written for the running program is run as a desktop would run it (its Exec
line parsed as the Desktop Entry spec says, a short PATH, none of this session's
TELEMETRY_TRAY_HOME or PYTHON* variables, another folder) and must answer as this
installation, on the home it was enabled from.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tray_app import __version__
from tray_app.core.errors import TrayError
from tray_app.core.platform.autostart import (
    APP_ID,
    DESKTOP_FILE_NAME,
    Autostart,
    AutostartError,
    LaunchAgentAutostart,
    UnsupportedAutostart,
    WindowsRunAutostart,
    XdgAutostart,
    autostart_for_platform,
    default_command,
    exec_line,
)
from tray_app.core.platform.paths import HOME_ENV

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="needs env, sh or symbolic links")
# A login session's PATH, without this virtual environment's bin folder.
SESSION_PATH = "/usr/bin:/bin"
# A home that needs every kind of quoting in an Exec line.
ODD_HOME = 'tray home $HOME "q" 50% `tick` back\\slash it\'s'


@pytest.fixture(autouse=True)
def no_home_of_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever home the test run itself has is not what these tests write.
    monkeypatch.delenv(HOME_ENV, raising=False)


def entry(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line)


def exec_args(value: str) -> list[str]:
    """Decode an Exec value as the spec says: string unescaping, then quoting, then %%."""
    unescaped, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            unescaped.append({"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            unescaped.append(value[i])
            i += 1
    text = "".join(unescaped)
    args: list[str] = []
    current: list[str] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            current = current if current is not None else []
            i += 1
            while text[i] != '"':
                if text[i] == "\\":
                    i += 1
                current.append(text[i])
                i += 1
        elif char == " ":
            if current is not None:
                args.append("".join(current))
            current = None
        else:
            current = (current if current is not None else []) + [char]
        i += 1
    if current is not None:
        args.append("".join(current))
    return [arg.replace("%%", "%") for arg in args]


def session_run(args: list[str], *extra: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``args`` (an Exec line parsed) run as a desktop session would run it."""
    env = {key: value for key, value in os.environ.items() if key != HOME_ENV and not key.startswith("PYTHON")}
    env["PATH"] = SESSION_PATH
    program = args[0] if os.path.isabs(args[0]) else shutil.which(args[0], path=SESSION_PATH)
    assert program is not None, f"{args[0]} is not on {SESSION_PATH}"
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [program, *args[1:], *extra], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def status_of(args: list[str], cwd: Path) -> dict[str, object]:
    result = session_run(args, "status", "--json", cwd=cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return dict(json.loads(result.stdout))


def an_absolute_program(path: str) -> None:
    assert os.path.isabs(path), path
    assert Path(path).is_file(), path
    assert os.access(path, os.X_OK), path


@POSIX
def test_the_entry_starts_this_installation_on_this_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / ODD_HOME
    monkeypatch.setenv(HOME_ENV, str(home))
    autostart = XdgAutostart(tmp_path / "config")
    autostart.enable()
    args = exec_args(entry(autostart.path)["Exec"])
    assert args[:2] == ["env", f"{HOME_ENV}={home}"]
    an_absolute_program(args[2])
    assert args[2:] == default_command()
    elsewhere = tmp_path / "elsewhere"
    version = session_run(args, "--version", cwd=elsewhere)
    assert (version.returncode, version.stdout.strip()) == (0, f"telemetry-tray {__version__}"), version.stderr
    status = status_of(args, elsewhere)
    assert status["version"] == __version__
    assert status["database"] == str(home / "data" / "telemetry-tray.sqlite3")
    assert (home / "data" / "telemetry-tray.sqlite3").is_file()


@POSIX
def test_a_relative_home_is_carried_as_an_absolute_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(HOME_ENV, "portable")
    autostart = XdgAutostart(tmp_path / "config")
    autostart.enable()
    args = exec_args(entry(autostart.path)["Exec"])
    assert args[1] == f"{HOME_ENV}={tmp_path / 'portable'}"
    assert status_of(args, tmp_path / "elsewhere")["database"] == str(
        tmp_path / "portable" / "data" / "telemetry-tray.sqlite3"
    )


@POSIX
def test_without_a_home_the_entry_starts_this_installation_alone(tmp_path: Path) -> None:
    autostart = XdgAutostart(tmp_path / "config")
    autostart.enable()
    args = exec_args(entry(autostart.path)["Exec"])
    assert len(args) == 1 and "env" not in args
    an_absolute_program(args[0])
    version = session_run(args, "--version", cwd=tmp_path / "elsewhere")
    assert (version.returncode, version.stdout.strip()) == (0, f"telemetry-tray {__version__}"), version.stderr


@POSIX
def test_a_bundle_is_started_by_its_own_path_with_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in for the PyInstaller program, in a folder with a space: it says what it got.
    bundle = tmp_path / "Telemetry Tray" / "telemetry-tray"
    bundle.parent.mkdir()
    bundle.write_text('#!/bin/sh\nprintf \'%s\\n\' "$TELEMETRY_TRAY_HOME" "$@"\n')
    bundle.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle))
    home = tmp_path / ODD_HOME
    monkeypatch.setenv(HOME_ENV, str(home))
    autostart = XdgAutostart(tmp_path / "config")
    autostart.enable()
    args = exec_args(entry(autostart.path)["Exec"])
    assert args == ["env", f"{HOME_ENV}={home}", str(bundle)]
    result = session_run(args, "--flag", cwd=tmp_path / "elsewhere")
    assert result.stdout.splitlines() == [str(home), "--flag"], result.stderr


@POSIX
def test_a_source_checkout_that_is_not_installed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The base interpreter, with this checkout on PYTHONPATH: it runs here, but a login
    # session has neither that PYTHONPATH nor a telemetry-tray program beside it.
    base = tmp_path / "bin" / "python"
    base.parent.mkdir()
    base.symlink_to(Path(sys.executable).resolve())
    monkeypatch.setattr(sys, "executable", str(base))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    autostart = XdgAutostart(tmp_path / "config")
    assert not autostart.enabled
    with pytest.raises(AutostartError, match="cannot find how to start this Telemetry Tray") as caught:
        autostart.enable()
    assert "pip install" in caught.value.message and str(base) in caught.value.message
    assert caught.value.title == "Start at login"
    assert not autostart.path.exists()


def test_no_running_program_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "")
    autostart = XdgAutostart(tmp_path / "config")
    with pytest.raises(AutostartError, match=r"sys\.executable is empty"):
        autostart.enable()
    assert not autostart.path.exists()


def test_a_program_path_env_would_misread_is_refused_with_a_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    autostart = XdgAutostart(tmp_path / "config", ["/opt/a=b/telemetry-tray"])
    with pytest.raises(AutostartError, match="'='"):
        autostart.enable()
    assert not autostart.path.exists()
    monkeypatch.delenv(HOME_ENV)
    autostart.enable()  # without a home there is no env, and nothing to misread
    assert exec_args(entry(autostart.path)["Exec"]) == ["/opt/a=b/telemetry-tray"]


def test_enable_writes_our_desktop_file(tmp_path: Path) -> None:
    autostart = XdgAutostart(tmp_path, ["telemetry-tray"])
    assert isinstance(autostart, Autostart)
    before = autostart.enabled
    assert not before
    autostart.enable()
    path = tmp_path / "autostart" / DESKTOP_FILE_NAME
    assert autostart.path == path
    assert autostart.enabled
    keys = entry(path)
    assert keys["Type"] == "Application"
    assert keys["Name"] == "Telemetry Tray"
    assert keys["Exec"] == "telemetry-tray"
    assert keys["Icon"] == "telemetry-tray"
    assert keys["Comment"]
    assert keys["NoDisplay"] == "false"
    assert keys["X-GNOME-Autostart-enabled"] == "true"
    assert keys["X-GNOME-Autostart-Delay"] == "5"
    assert keys["X-KDE-autostart-after"] == "panel"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    # Atomic write: no temporary file is left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == [DESKTOP_FILE_NAME]
    autostart.enable()  # again: same file, still fine
    assert autostart.enabled


@pytest.mark.parametrize("home", [None, ODD_HOME], ids=["no-home", "odd-home"])
def test_desktop_file_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str | None) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    if home is not None:
        monkeypatch.setenv(HOME_ENV, str(tmp_path / home))
    autostart = XdgAutostart(tmp_path, ["/opt/My Apps/telemetry-tray", "--home", '/tmp/a b$c\\d"e%f`g', ""])
    autostart.enable()
    result = subprocess.run([validator, str(autostart.path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_disable_removes_only_our_file(tmp_path: Path) -> None:
    folder = tmp_path / "autostart"
    folder.mkdir()
    other = folder / "other-app.desktop"
    other.write_text("[Desktop Entry]\nType=Application\nName=Other\nExec=other\n")
    autostart = XdgAutostart(tmp_path, ["telemetry-tray"])
    autostart.enable()
    autostart.disable()
    assert not autostart.enabled
    assert not autostart.path.exists()
    assert [p.name for p in folder.iterdir()] == ["other-app.desktop"]
    assert other.read_text().startswith("[Desktop Entry]")
    autostart.disable()  # nothing there: nothing to do
    assert other.exists()


def test_exec_quotes_a_path_with_spaces(tmp_path: Path) -> None:
    command = ["/home/ann/My Programs/telemetry-tray", "--home", "/home/ann/tray data"]
    autostart = XdgAutostart(tmp_path, command)
    autostart.enable()
    value = entry(autostart.path)["Exec"]
    assert value == '"/home/ann/My Programs/telemetry-tray" --home "/home/ann/tray data"'
    assert exec_args(value) == command


@pytest.mark.parametrize(
    "arg",
    ["plain", "a b", "dollar$", "back\\slash", 'quote"d', "tick`", "100%", "", "it's", "semi;colon", "x=y", "~"],
)
def test_exec_round_trips(arg: str) -> None:
    assert exec_args(exec_line(["prog", arg])) == ["prog", arg]


def test_exec_escapes_as_the_spec_shows() -> None:
    # The spec: a literal backslash in a quoted argument is four backslashes in the file,
    # a literal dollar sign is "\\$", and % is doubled.
    assert exec_line(["a\\b"]) == '"a\\\\\\\\b"'
    assert exec_line(["$x"]) == '"\\\\$x"'
    assert exec_line(["50%"]) == "50%%"


def test_control_characters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(AutostartError, match="control character"):
        XdgAutostart(tmp_path, ["prog", "two\nlines"]).enable()
    assert not (tmp_path / "autostart" / DESKTOP_FILE_NAME).exists()


def test_switched_off_by_the_desktop_reads_as_disabled(tmp_path: Path) -> None:
    autostart = XdgAutostart(tmp_path, ["telemetry-tray"])
    autostart.enable()
    text = autostart.path.read_text().replace("X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-enabled=false")
    autostart.path.write_text(text)
    assert not autostart.enabled
    autostart.path.write_text(autostart.path.read_text() + "Hidden=true\n")
    assert not autostart.enabled


def test_config_home_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert XdgAutostart(command=["x"]).path == tmp_path / "cfg" / "autostart" / DESKTOP_FILE_NAME
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/cfg")  # invalid per the spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert XdgAutostart(command=["x"]).path == tmp_path / "home" / ".config" / "autostart" / DESKTOP_FILE_NAME


def test_platforms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert isinstance(autostart_for_platform("linux"), XdgAutostart)
    assert isinstance(autostart_for_platform("freebsd14"), XdgAutostart)
    mac = autostart_for_platform("darwin")
    assert isinstance(mac, LaunchAgentAutostart)
    assert mac.path == tmp_path / "Library" / "LaunchAgents" / f"{APP_ID}.plist"
    assert isinstance(autostart_for_platform("win32"), WindowsRunAutostart)
    unsupported = autostart_for_platform("sunos5")
    assert isinstance(unsupported, UnsupportedAutostart)
    assert not unsupported.enabled
    unsupported.disable()
    with pytest.raises(TrayError, match="not supported") as caught:
        unsupported.enable()
    assert caught.value.title == "Start at login"
