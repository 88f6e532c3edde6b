"""Start at login: the XDG autostart desktop file, on a temporary config folder; the choice per platform."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tray_app.core.autostart import (
    APP_ID,
    DESKTOP_FILE_NAME,
    Autostart,
    AutostartError,
    LaunchAgentAutostart,
    UnsupportedAutostart,
    WindowsRunAutostart,
    XdgAutostart,
    autostart_for_platform,
    exec_line,
)
from tray_app.core.errors import TrayError


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


def test_desktop_file_validates(tmp_path: Path) -> None:
    validator = shutil.which("desktop-file-validate")
    if validator is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
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
