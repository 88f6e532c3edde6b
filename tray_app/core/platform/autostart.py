"""Start at login: one small interface, one implementation per desktop platform.

:class:`Autostart` is what the shells use (the Settings window's *Start at login*).
:func:`autostart_for_platform` picks the implementation:

* Linux and the BSDs: :class:`XdgAutostart`, a Desktop Entry in the XDG autostart
  folder (``$XDG_CONFIG_HOME/autostart``, else ``~/.config/autostart``), which GNOME,
  KDE Plasma, Xfce, Cinnamon, MATE, LXQt and the systemd XDG autostart generator all
  read. We write and remove only our own file, ``telemetry-tray.desktop``.
* macOS: :class:`LaunchAgentAutostart`, a launchd LaunchAgent,
  ``~/Library/LaunchAgents/<APP_ID>.plist``, which launchd loads at the next login.
* Windows: :class:`WindowsRunAutostart`, one string value, ``Telemetry Tray``, under
  ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run`` (the value the installer's
  "start at login" task writes too, so the Settings switch shows the installer's choice).
  The registry is reached through :class:`RunKey`, so everything but the few
  ``winreg`` calls of :class:`WinregRunKey` can be tested anywhere.
* Anything else: :class:`UnsupportedAutostart`, which says so.

What starts at login is this installation, on this home: the program running now, by
its absolute path (a bundle's executable; else the ``telemetry-tray`` script beside the
running interpreter, else that interpreter with ``-m tray_app``; see
:func:`default_command`), and, when ``TELEMETRY_TRAY_HOME`` is set, that home
(:func:`default_home`): through ``env`` in the desktop file, ``EnvironmentVariables`` in
the LaunchAgent, and on Windows, whose ``Run`` values cannot set a variable, a
``python -c`` line that sets it (see :func:`windows_home_command`). When no working command
can be found, enabling refuses with an :class:`AutostartError` saying why and what to do,
rather than writing an entry that would start nothing, or the wrong home.

A system-wide entry (``/etc/xdg/autostart``, from a distribution package) is not
looked at; docs/packaging.md says why the packages do not install one.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable
from xml.parsers.expat import ExpatError

from ..errors import AutostartError
from ..rules.preview_text import has_control
from .files import write_file_whole
from .paths import HOME_ENV, Locations

__all__ = [
    "APP_ID",
    "DESKTOP_FILE_NAME",
    "RUN_KEY",
    "RUN_VALUE_NAME",
    "WINDOWS_GUI_EXE",
    "Autostart",
    "AutostartError",
    "LaunchAgentAutostart",
    "RunKey",
    "UnsupportedAutostart",
    "WindowsRunAutostart",
    "WinregRunKey",
    "XdgAutostart",
    "autostart_for_platform",
    "bundle_command",
    "default_command",
    "default_home",
    "desktop_entry",
    "exec_line",
    "launch_agent",
    "run_command_line",
    "source_command",
    "windows_home_command",
    "with_home",
]

# The application's reverse-DNS id: the Linux desktop file and AppStream component, the
# macOS bundle identifier and LaunchAgent label (packaging/ uses it; tests check that).
APP_ID: Final = "io.github.telemetry_tray.TelemetryTray"
DESKTOP_FILE_NAME: Final = "telemetry-tray.desktop"
PROGRAM: Final = "telemetry-tray"
# The windowed twin of telemetry-tray.exe in the Windows bundle: started at login and
# from the Start menu, it opens no console window.
WINDOWS_GUI_EXE: Final = "telemetry-trayw.exe"
RUN_KEY: Final = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE_NAME: Final = "Telemetry Tray"

# Characters that make the Desktop Entry spec require an argument to be quoted
# ("Reserved characters", section "The Exec key").
_RESERVED: Final = frozenset(" \t\n\"'\\><~|&;$*?#()`")
# Inside double quotes these must be preceded by a backslash.
_QUOTE_ESCAPED: Final = frozenset('"`$\\')

# The package this module belongs to: the copy of Telemetry Tray that is running.
_PACKAGE_DIR: Final = Path(__file__).resolve().parents[2]
# Python code that starts the tray on the home given as its first argument (the Windows
# Run key cannot set an environment variable); later arguments go to the command line.
_WITH_HOME: Final = (
    f"import os,sys;os.environ['{HOME_ENV}']=sys.argv.pop(1);from tray_app.cli import main;sys.exit(main())"
)


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


def default_command(platform: str | None = None) -> list[str]:
    """The command that starts this installation of Telemetry Tray, its program by
    absolute path: in a bundle (PyInstaller), its executable (see :func:`bundle_command`);
    else :func:`source_command` of the running interpreter. ``platform`` (default: this
    one) chooses the Windows rules. Raises :class:`AutostartError` when none would work."""
    name = platform or sys.platform
    executable = _running_executable()
    if getattr(sys, "frozen", False):
        if not executable.is_file():
            raise AutostartError(
                f"The running program, {executable}, is not a file; start at login cannot start it. "
                "Start Telemetry Tray from where it is installed, then switch start at login on again."
            )
        return bundle_command(executable, name)
    return source_command(executable, name)


def source_command(interpreter: Path, platform: str) -> list[str]:
    """The command that starts Telemetry Tray installed from source for ``interpreter``
    (a virtual environment's ``python``, say), its program by absolute path:

    * on Windows, ``pythonw.exe -m tray_app`` beside it when there is one (the console
      ``telemetry-tray.exe`` would open a console window at every login);
    * the ``telemetry-tray`` script beside it (``telemetry-tray.exe`` on Windows), which
      pip installs into the same ``bin`` (``Scripts``) folder;
    * else ``interpreter -m tray_app``, if that imports this very copy of the package
      from any folder (not only because it is run from a source checkout).

    Raises :class:`AutostartError` when none of these starts this installation.
    """
    windows = platform == "win32"
    if windows:
        windowed = interpreter.with_name("pythonw.exe")
        if windowed.is_file() and _imports_this_copy(interpreter):
            return [str(windowed), "-m", "tray_app"]
    script = interpreter.with_name(f"{PROGRAM}.exe" if windows else PROGRAM)
    if script.is_file() and (windows or os.access(script, os.X_OK)):
        return [str(script)]
    if _imports_this_copy(interpreter):
        return [str(interpreter), "-m", "tray_app"]
    raise _no_command(interpreter)


def default_home(environ: Mapping[str, str] | None = None) -> Path | None:
    """The home the tray started at login must use: ``TELEMETRY_TRAY_HOME`` of this process
    (``environ``), as an absolute path; None when it is not set (the per-user folders)."""
    return Locations.from_env(environ).home


def windows_home_command(home: Path, platform: str = "win32") -> list[str]:
    """The command that starts this installation on ``home`` on Windows, where a ``Run``
    value is a bare command line and cannot set ``TELEMETRY_TRAY_HOME``: the interpreter
    (``pythonw.exe`` beside it if there is one: no console window) running a line of
    Python that sets the variable from its first argument, then starts the tray.

    A bundle has no interpreter to run that line; it is refused with an
    :class:`AutostartError` (the bundled program takes no option for its home).
    """
    if getattr(sys, "frozen", False):
        raise AutostartError(
            f"Start at login cannot start this home ({home}, from {HOME_ENV}): a Windows Run entry "
            f"cannot set {HOME_ENV}, so Telemetry Tray would start on its default folders instead. "
            f"Unset {HOME_ENV} to start the default home at login, or start this home at login "
            "with your own shortcut or script that sets it."
        )
    interpreter = _running_executable()
    if not _imports_this_copy(interpreter):
        raise _no_command(interpreter)
    windowed = interpreter.with_name("pythonw.exe")
    program = windowed if platform == "win32" and windowed.is_file() else interpreter
    return [str(program), "-c", _WITH_HOME, str(home)]


def _running_executable() -> Path:
    executable = sys.executable
    if not executable:
        raise AutostartError(
            "Python does not say which program is running (sys.executable is empty), so start at login "
            "cannot tell what to start. Start Telemetry Tray with its telemetry-tray program, then "
            "switch start at login on again."
        )
    # Not resolved: a virtual environment's python is a link to the base interpreter,
    # and only the link runs with the environment's packages.
    return Path(os.path.abspath(executable))


def _imports_this_copy(interpreter: Path) -> bool:
    """Whether ``interpreter`` imports this copy of ``tray_app`` as a login session
    would: from an empty folder, without the ``PYTHON*`` variables of this session."""
    probe = "import sys, tray_app; sys.stdout.write(tray_app.__file__ or '')"
    environ = {key: value for key, value in os.environ.items() if not key.upper().startswith("PYTHON")}
    try:
        with tempfile.TemporaryDirectory(prefix="telemetry-tray-autostart-") as empty:
            result = subprocess.run(  # noqa: S603 - the running interpreter, no shell
                [str(interpreter), "-c", probe],
                cwd=empty,
                env=environ,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        return result.returncode == 0 and Path(result.stdout.strip()).resolve().parent == _PACKAGE_DIR
    except (OSError, ValueError, subprocess.SubprocessError):
        return False


def _no_command(interpreter: Path) -> AutostartError:
    return AutostartError(
        f"Start at login cannot find how to start this Telemetry Tray ({_PACKAGE_DIR}): there is no "
        f"{PROGRAM} program beside {interpreter}, and '{interpreter} -m tray_app' does not start this "
        "copy outside its folder. Install it (pip install . or pip install -e . in a virtual "
        f"environment), start it with the {PROGRAM} program that installs, then switch start at login on again."
    )


def bundle_command(executable: Path, platform: str) -> list[str]:
    """The command that starts the tray from a bundle whose running program is
    ``executable``: that one, except on Windows, where the windowed twin beside it is
    preferred (the console one would open a console window at every login)."""
    if platform == "win32":
        windowed = executable.with_name(WINDOWS_GUI_EXE)
        if windowed.is_file():
            return [str(windowed)]
    return [str(executable)]


class _LoginCommand:
    """What every way to start at login shares: the command it starts and the home it
    carries. The command is ``command`` if given, else :func:`default_command` (for
    ``platform``'s rules) worked out when it is needed, so that a broken installation
    is refused when the person switches start at login on, with the reason."""

    def __init__(self, command: list[str] | None, platform: str) -> None:
        if command is not None and not command:
            raise AutostartError("The command to start at login is empty.")
        self._given = list(command) if command is not None else None
        self._platform = platform

    @property
    def command(self) -> list[str]:
        """The program (and arguments) started at login. Raises :class:`AutostartError`
        when no working one can be found."""
        return list(self._given) if self._given is not None else default_command(self._platform)

    @property
    def home(self) -> Path | None:
        """The home the started program is given: this process's ``TELEMETRY_TRAY_HOME``
        (absolute), or None for the per-user folders (:func:`default_home`)."""
        return default_home()


class _FileAutostart(_LoginCommand):
    """What the file-backed ways to start at login share: one file of ours, written
    whole (atomically) to enable and removed to disable; nothing else is touched."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def path(self) -> Path:
        raise NotImplementedError

    def _content(self) -> bytes:
        raise NotImplementedError

    def enable(self) -> None:
        content = self._content()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Durable: a login entry half written after a power cut would silently stop
            # the tray from starting. Readable by all (0644), as login entries are.
            write_file_whole(self.path, content, durable=True, mode=0o644)
        except OSError as exc:
            raise AutostartError(f"Could not write {self.path}: {_reason(exc)}") from exc

    def disable(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise AutostartError(f"Could not remove {self.path}: {_reason(exc)}") from exc


class XdgAutostart(_FileAutostart):
    """Start at login through ``<config>/autostart/telemetry-tray.desktop``.

    ``config_dir`` is the XDG config home (default: ``$XDG_CONFIG_HOME`` when it is an
    absolute path, else ``~/.config``); ``command`` the program and its arguments
    (default: :func:`default_command`). A ``TELEMETRY_TRAY_HOME`` is passed with ``env``.
    """

    def __init__(self, config_dir: Path | None = None, command: list[str] | None = None) -> None:
        self._config_dir = config_dir if config_dir is not None else _xdg_config_home()
        super().__init__(command, "linux")

    @property
    def path(self) -> Path:
        """The desktop file this writes (and the only file it ever touches)."""
        return self._config_dir / "autostart" / DESKTOP_FILE_NAME

    def _content(self) -> bytes:
        return desktop_entry(self.command, home=self.home).encode("utf-8")

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


class LaunchAgentAutostart(_FileAutostart):
    """Start at login through a launchd LaunchAgent, ``<agents>/<APP_ID>.plist``.

    ``agents_dir`` defaults to ``~/Library/LaunchAgents``; ``command`` to
    :func:`default_command`; a ``TELEMETRY_TRAY_HOME`` goes in ``EnvironmentVariables``.
    launchd reads the folder at login, so enabling starts nothing now (the tray is
    already running). A switch-off in System Settings' Login Items is kept by macOS
    elsewhere and cannot be read here.
    """

    def __init__(self, agents_dir: Path | None = None, command: list[str] | None = None) -> None:
        self._agents_dir = agents_dir if agents_dir is not None else Path.home() / "Library" / "LaunchAgents"
        super().__init__(command, "darwin")

    @property
    def path(self) -> Path:
        """The property list this writes (and the only file it ever touches)."""
        return self._agents_dir / f"{APP_ID}.plist"

    def _content(self) -> bytes:
        agent = launch_agent(self.command, home=self.home)
        return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)

    @property
    def enabled(self) -> bool:
        """Whether our agent is there and not marked ``Disabled``."""
        try:
            with self.path.open("rb") as handle:
                agent = plistlib.load(handle)
        except FileNotFoundError:
            return False
        except (OSError, plistlib.InvalidFileException, ExpatError, ValueError) as exc:
            raise AutostartError(f"Could not read {self.path}: {_reason(exc)}") from exc
        return isinstance(agent, dict) and agent.get("Disabled") is not True


def launch_agent(command: list[str], *, home: Path | None = None) -> dict[str, Any]:
    """Our LaunchAgent for ``command`` (keys from launchd.plist(5)), started with
    ``TELEMETRY_TRAY_HOME=home`` when ``home`` is given."""
    if not command:
        raise AutostartError("The command to start at login is empty.")
    agent: dict[str, Any] = {
        "Label": APP_ID,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        # Started once per login and left alone after: quitting the tray means quit.
        "KeepAlive": False,
        # A GUI login only, not an ssh session; scheduled as an app the person uses.
        "LimitLoadToSessionType": "Aqua",
        "ProcessType": "Interactive",
    }
    if home is not None:
        agent["EnvironmentVariables"] = {HOME_ENV: str(home)}
    return agent


class RunKey(Protocol):
    """The string values of the current user's ``Run`` registry key, by name."""

    def get(self, name: str) -> str | None:
        """The value ``name``, or None when there is none (or it is not a string)."""
        ...

    def set(self, name: str, value: str) -> None:
        """Create or replace the value ``name`` (type ``REG_SZ``)."""
        ...

    def delete(self, name: str) -> None:
        """Remove the value ``name``; nothing to do when there is none."""
        ...


class WinregRunKey:
    """:class:`RunKey` in the Windows registry: ``HKEY_CURRENT_USER\\<subkey>``
    (``subkey`` defaults to :data:`RUN_KEY`). Windows only."""

    def __init__(self, subkey: str = RUN_KEY) -> None:
        self.subkey = subkey

    def __repr__(self) -> str:
        return f"WinregRunKey({self.subkey!r})"

    # Each call checks the platform itself (not the constructor): mypy then checks the
    # winreg calls as Windows code, and the class can be built anywhere.
    def get(self, name: str) -> str | None:
        if sys.platform == "win32":
            import winreg

            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.subkey) as key:
                    value, kind = winreg.QueryValueEx(key, name)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise AutostartError(f"Could not read HKCU\\{self.subkey}: {_reason(exc)}") from exc
            if kind in (winreg.REG_SZ, winreg.REG_EXPAND_SZ) and isinstance(value, str):
                return value
            return None
        raise _no_registry()

    def set(self, name: str, value: str) -> None:
        if sys.platform == "win32":
            import winreg

            try:
                with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, self.subkey, 0, winreg.KEY_SET_VALUE) as key:
                    winreg.SetValueEx(key, name, 0, winreg.REG_SZ, value)
            except OSError as exc:
                raise AutostartError(f"Could not write HKCU\\{self.subkey}: {_reason(exc)}") from exc
            return
        raise _no_registry()

    def delete(self, name: str) -> None:
        if sys.platform == "win32":
            import winreg

            try:
                with winreg.OpenKey(winreg.HKEY_CURRENT_USER, self.subkey, 0, winreg.KEY_SET_VALUE) as key:
                    winreg.DeleteValue(key, name)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise AutostartError(f"Could not change HKCU\\{self.subkey}: {_reason(exc)}") from exc
            return
        raise _no_registry()


def _no_registry() -> AutostartError:
    return AutostartError(f"The Windows registry is only there on Windows, not on this system ({sys.platform}).")


class WindowsRunAutostart(_LoginCommand):
    """Start at login through the value :data:`RUN_VALUE_NAME` of the current user's
    ``Run`` key, holding :func:`run_command_line` of ``command`` (default:
    :func:`default_command`). ``run_key`` defaults to :class:`WinregRunKey`.

    A ``Run`` value cannot set an environment variable, so a ``TELEMETRY_TRAY_HOME`` is
    passed by :func:`windows_home_command` instead of ``command``; a given ``command``
    or a bundle cannot carry it, and enabling is refused.
    """

    def __init__(self, run_key: RunKey | None = None, command: list[str] | None = None) -> None:
        self._run_key: RunKey = run_key if run_key is not None else WinregRunKey()
        super().__init__(command, "win32")

    def __repr__(self) -> str:
        return f"WindowsRunAutostart({self._run_key!r})"

    @property
    def command_line(self) -> str:
        """The command line enabling writes. Raises :class:`AutostartError` when no
        working one can be found."""
        home = self.home
        if home is None:
            return run_command_line(self.command)
        if self._given is not None:
            raise AutostartError(
                f"Start at login cannot pass this home ({home}, from {HOME_ENV}) to {self._given[0]}: "
                f"a Windows Run entry cannot set {HOME_ENV}. Unset {HOME_ENV} to start the default home at login."
            )
        return run_command_line(windows_home_command(home, self._platform))

    @property
    def enabled(self) -> bool:
        """Whether our value is there (a switch-off in Task Manager's Startup tab is kept
        elsewhere, under ``StartupApproved``, and not read here)."""
        return bool(self._run_key.get(RUN_VALUE_NAME))

    def enable(self) -> None:
        self._run_key.set(RUN_VALUE_NAME, self.command_line)

    def disable(self) -> None:
        self._run_key.delete(RUN_VALUE_NAME)


def run_command_line(command: list[str]) -> str:
    """``command`` as a Windows command line for the ``Run`` key: the program always in
    double quotes (an unquoted path with spaces is ambiguous, and the installer writes it
    quoted too), the arguments quoted as the C runtime parses them."""
    if not command:
        raise AutostartError("The command to start at login is empty.")
    if any(has_control(arg) for arg in command):
        raise AutostartError("The command to start at login contains a control character; it cannot be written.")
    program, arguments = command[0], command[1:]
    if '"' in program:
        raise AutostartError(f"The program path {program!r} contains a double quote; it cannot be written.")
    line = f'"{program}"'
    if arguments:
        line += " " + subprocess.list2cmdline(arguments)
    return line


class UnsupportedAutostart:
    """Start at login on a system none of the others serves."""

    def __init__(self, platform: str | None = None) -> None:
        self._platform = platform or sys.platform

    @property
    def enabled(self) -> bool:
        return False

    def enable(self) -> None:
        raise AutostartError(
            f"Starting at login is not supported on this system ({self._platform}). "
            "Add Telemetry Tray to the programs your desktop starts at login by hand."
        )

    def disable(self) -> None:
        """Nothing was set up, so there is nothing to undo."""


def autostart_for_platform(platform: str | None = None) -> Autostart:
    """The start-at-login implementation for ``platform`` (default: this one)."""
    name = platform or sys.platform
    if name.startswith(("linux", "freebsd", "openbsd", "netbsd", "dragonfly")):
        return XdgAutostart()
    if name == "darwin":
        return LaunchAgentAutostart()
    if name == "win32":
        return WindowsRunAutostart()
    return UnsupportedAutostart(name)


# -- the desktop file ----------------------------------------------------------------


def desktop_entry(command: list[str], *, home: Path | None = None) -> str:
    """The text of our autostart Desktop Entry for ``command``, started with
    ``TELEMETRY_TRAY_HOME=home`` (through ``env``) when ``home`` is given."""
    if home is not None:
        command = with_home(command, home)
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


def with_home(command: list[str], home: Path) -> list[str]:
    """``command`` started by ``env`` with ``TELEMETRY_TRAY_HOME=home``: the Desktop Entry
    spec has no key for the environment (Snap and Flatpak write ``Exec=env ...`` too)."""
    if not command:
        raise AutostartError("The command to start at login is empty.")
    if "=" in command[0]:
        raise AutostartError(
            f"Start at login cannot pass {HOME_ENV} to {command[0]}: env would take a program path "
            "with '=' in it for another variable. Install Telemetry Tray in a folder without '=' in its path."
        )
    return ["env", f"{HOME_ENV}={home}", *command]


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
        if has_control(arg):
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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
