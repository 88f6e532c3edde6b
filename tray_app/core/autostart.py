"""Start at login: one small interface, one implementation per desktop platform.

:class:`Autostart` is what the shells use (the Settings window's *Start at login*).
:func:`autostart_for_platform` picks the implementation:

* Linux and the BSDs: :class:`XdgAutostart`, a Desktop Entry in the XDG autostart
  folder (``$XDG_CONFIG_HOME/autostart``, else ``~/.config/autostart``), which GNOME,
  KDE Plasma, Xfce, Cinnamon, MATE, LXQt and the systemd XDG autostart generator all
  read. We write and remove only our own file, ``telemetry-tray.desktop``.
* Everything else, for now: :class:`UnsupportedAutostart`, which says so. The macOS
  LaunchAgent (``~/Library/LaunchAgents/*.plist``) and the Windows ``Run`` registry
  key come with the packaging work, because both need to know where the installed
  program lives.

A system-wide entry (``/etc/xdg/autostart``, from a distribution package) is not
looked at yet either; that also belongs to packaging (a user file with ``Hidden=true``
overrides it).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from .errors import TrayError

__all__ = [
    "DESKTOP_FILE_NAME",
    "Autostart",
    "AutostartError",
    "UnsupportedAutostart",
    "XdgAutostart",
    "autostart_for_platform",
    "default_command",
    "desktop_entry",
    "exec_line",
]

DESKTOP_FILE_NAME: Final = "telemetry-tray.desktop"
PROGRAM: Final = "telemetry-tray"

# Characters that make the Desktop Entry spec require an argument to be quoted
# ("Reserved characters", section "The Exec key").
_RESERVED: Final = frozenset(" \t\n\"'\\><~|&;$*?#()`")
# Inside double quotes these must be preceded by a backslash.
_QUOTE_ESCAPED: Final = frozenset('"`$\\')


class AutostartError(TrayError):
    title = "Start at login"


@runtime_checkable
class Autostart(Protocol):
    """Whether Telemetry Tray starts when the person logs in. Calls may touch the disk."""

    def enable(self) -> None:
        """Start at login from now on. Raises :class:`AutostartError` when it cannot."""
        ...

    def disable(self) -> None:
        """Do not start at login any more (nothing to do when it did not)."""
        ...

    @property
    def enabled(self) -> bool:
        """Whether it starts at login now."""
        ...


def default_command() -> list[str]:
    """The command that starts the tray: ``telemetry-tray`` by its full path when it is
    on PATH now (a login session's PATH is often shorter than a terminal's), else by name."""
    return [shutil.which(PROGRAM) or PROGRAM]


class XdgAutostart:
    """Start at login through ``<config>/autostart/telemetry-tray.desktop``.

    ``config_dir`` is the XDG config home (default: ``$XDG_CONFIG_HOME`` when it is an
    absolute path, else ``~/.config``); ``command`` the program and its arguments
    (default: :func:`default_command`).
    """

    def __init__(self, config_dir: Path | None = None, command: list[str] | None = None) -> None:
        self._config_dir = config_dir if config_dir is not None else _xdg_config_home()
        self._command = list(command) if command is not None else default_command()
        if not self._command:
            raise AutostartError("The command to start at login is empty.")

    def __repr__(self) -> str:
        return f"XdgAutostart({str(self.path)!r})"

    @property
    def path(self) -> Path:
        """The desktop file this writes (and the only file it ever touches)."""
        return self._config_dir / "autostart" / DESKTOP_FILE_NAME

    @property
    def command(self) -> list[str]:
        return list(self._command)

    @property
    def enabled(self) -> bool:
        """Whether our desktop file is there and not switched off (``Hidden=true`` or
        ``X-GNOME-Autostart-enabled=false``, as a desktop's own settings may write)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except (OSError, UnicodeDecodeError) as exc:
            raise AutostartError(f"Could not read {self.path}: {_reason(exc)}") from exc
        keys = _entry_keys(text)
        return keys.get("Hidden") != "true" and keys.get("X-GNOME-Autostart-enabled") != "false"

    def enable(self) -> None:
        content = desktop_entry(self._command)
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.path, content.encode("utf-8"), 0o644)
        except OSError as exc:
            raise AutostartError(f"Could not write {self.path}: {_reason(exc)}") from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not remove {self.path}: {_reason(exc)}") from exc


class UnsupportedAutostart:
    """Start at login where it is not implemented yet (macOS and Windows, until packaging)."""

    def __init__(self, platform: str | None = None) -> None:
        self._platform = platform or sys.platform

    @property
    def enabled(self) -> bool:
        return False

    def enable(self) -> None:
        raise AutostartError(
            f"Starting at login is not supported on this system ({self._platform}) yet. "
            "Add Telemetry Tray to your login items by hand for now."
        )

    def disable(self) -> None:
        """Nothing was set up, so there is nothing to undo."""


def autostart_for_platform(platform: str | None = None) -> Autostart:
    """The start-at-login implementation for ``platform`` (default: this one)."""
    name = platform or sys.platform
    if name.startswith(("linux", "freebsd", "openbsd", "netbsd", "dragonfly")):
        return XdgAutostart()
    return UnsupportedAutostart(name)


# -- the desktop file ----------------------------------------------------------------


def desktop_entry(command: list[str]) -> str:
    """The text of our autostart Desktop Entry for ``command``."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.0",
        "Name=Telemetry Tray",
        "Comment=Holds your programs' telemetry until you approve it",
        f"Exec={exec_line(command)}",
        f"Icon={PROGRAM}",
        "Terminal=false",
        "NoDisplay=false",
        "X-GNOME-Autostart-enabled=true",
        "X-GNOME-Autostart-Delay=5",
        "X-KDE-autostart-after=panel",
    ]
    return "\n".join(lines) + "\n"


def exec_line(command: list[str]) -> str:
    """``command`` as the value of an ``Exec`` key (Desktop Entry spec 1.5, "The Exec key").

    An argument with a reserved character (or an empty one) is put in double quotes,
    with ``"`` `` ` `` ``$`` and ``\\`` escaped by a backslash; ``%`` is doubled (it
    starts a field code); then the value is escaped as any string value, which doubles
    every backslash. Control characters cannot be written and are refused.
    """
    if not command:
        raise AutostartError("The command to start at login is empty.")
    words = []
    for arg in command:
        if any(unicodedata.category(char) == "Cc" for char in arg):
            raise AutostartError("The command to start at login contains a control character; it cannot be written.")
        arg = arg.replace("%", "%%")
        if not arg or any(char in _RESERVED for char in arg):
            arg = '"' + "".join("\\" + char if char in _QUOTE_ESCAPED else char for char in arg) + '"'
        words.append(arg)
    return " ".join(words).replace("\\", "\\\\")


def _entry_keys(text: str) -> dict[str, str]:
    """The keys of the ``[Desktop Entry]`` group (values not unescaped; we need flags only)."""
    keys: dict[str, str] = {}
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif group == "Desktop Entry" and "=" in line:
            key, _, value = line.partition("=")
            keys[key.strip()] = value.strip()
    return keys


# -- files ---------------------------------------------------------------------------


def _xdg_config_home() -> Path:
    configured = os.environ.get("XDG_CONFIG_HOME", "")
    # The spec says a relative path is invalid and must be ignored.
    if configured and os.path.isabs(configured):
        return Path(configured)
    return Path.home() / ".config"


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` so that it is either the old file or the whole new one."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
