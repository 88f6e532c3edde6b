"""Where Telemetry Tray keeps its files (how they are made private: ``files.py``).

platformdirs (the maintained successor of appdirs) gives the per-user folders;
``TELEMETRY_TRAY_HOME=DIR`` puts every file under DIR instead, so two instances with
different homes never share anything. Folders are created 0700 and repaired to it.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import platformdirs

from ..errors import InputError, StoreError
from .files import ensure_private_dir, uid

APP_NAME = "telemetry-tray"
HOME_ENV = "TELEMETRY_TRAY_HOME"
PORT_ENV = "TELEMETRY_TRAY_PORT"
DATABASE_NAME = "telemetry-tray.sqlite3"
ENDPOINT_NAME = "endpoint.json"


@dataclass(frozen=True)
class Locations:
    data: Path
    config: Path
    cache: Path
    runtime: Path
    home: Path | None = None

    @property
    def database(self) -> Path:
        return self.data / DATABASE_NAME

    @property
    def endpoint_file(self) -> Path:
        return self.runtime / ENDPOINT_NAME

    @property
    def spool(self) -> Path:
        return self.data / "spool"

    @classmethod
    def under(cls, home: Path) -> Locations:
        home = home.expanduser().absolute()
        return cls(data=home / "data", config=home / "config", cache=home / "cache", runtime=home, home=home)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Locations:
        env = os.environ if environ is None else environ
        home = env.get(HOME_ENV, "").strip()
        if home:
            return cls.under(Path(home))
        data = platformdirs.user_data_path(APP_NAME)
        # Without XDG_RUNTIME_DIR platformdirs falls back to a folder in /tmp, which
        # other users could create first; the private data folder is safer.
        if sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")) and not env.get("XDG_RUNTIME_DIR"):
            runtime = data
        else:
            runtime = platformdirs.user_runtime_path(APP_NAME)
        return cls(
            data=data,
            config=platformdirs.user_config_path(APP_NAME),
            cache=platformdirs.user_cache_path(APP_NAME),
            runtime=runtime,
        )

    def prepare(self) -> Locations:
        """Create our folders, private (0700): the home if one is set, and the data folder."""
        for folder in (self.home, self.data):
            if folder is not None:
                try:
                    ensure_private_dir(folder)
                except OSError as exc:
                    raise StoreError(
                        f"Cannot use the folder {folder}: {exc.strerror or exc}. "
                        f"Set {HOME_ENV} to a folder you can write to."
                    ) from None
        return self


def repair_permissions(locations: Locations) -> list[str]:
    """Make our files private again (group and other bits cleared), and say what was not.

    Run at start: a backup tool, an archive extracted with the wrong umask or a person's
    chmod can open our files to other users; that is repaired, and the caller warns.
    Only the folders we make are walked (data, config, cache, our runtime folder; of a
    ``TELEMETRY_TRAY_HOME`` only its own mode and ``endpoint.json``, since it may hold
    other things). Symbolic links are neither followed nor changed; a folder another user
    owns is reported, not entered; a file with other hard links is reported, not changed
    (it is also somewhere else). Returns one line per problem, for a warning.
    """
    if not hasattr(os, "getuid") or not hasattr(os, "fwalk"):
        return []  # Windows: per-user folders are protected by their ACLs, not mode bits
    found: list[str] = []
    if locations.home is not None and locations.home.is_dir():
        found.extend(_repair(None, locations.home, directory=True))
        if locations.runtime == locations.home and locations.endpoint_file.exists():
            found.extend(_repair(None, locations.endpoint_file, directory=False))
    roots = {locations.data, locations.config, locations.cache}
    if locations.runtime.name == APP_NAME:
        roots.add(locations.runtime)  # our own runtime folder (else it is the data folder or the home)
    for root in sorted(roots):
        if any(other in root.parents for other in roots) or root.is_symlink() or not root.is_dir():
            continue  # walked as part of another root, a link, or not there
        found.extend(_repair(None, root, directory=True))
        # fwalk works on open folders: a name swapped for a link meanwhile leads nowhere.
        for folder, dirs, files, folder_fd in os.fwalk(root, follow_symlinks=False):
            for name in list(dirs):
                problems = _repair(folder_fd, Path(folder) / name, directory=True)
                if any("another user" in line for line in problems):
                    dirs.remove(name)  # not ours: not entered
                found.extend(problems)
            for name in files:
                found.extend(_repair(folder_fd, Path(folder) / name, directory=False))
    return found


def _repair(folder_fd: int | None, path: Path, *, directory: bool) -> list[str]:
    # Opened without following a link (relative to the open folder it is in), then
    # checked and changed through the descriptor, never through the name again.
    name: str | Path = path.name if folder_fd is not None else path
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags, dir_fd=folder_fd)
    except PermissionError:
        try:  # not even readable by us: say so if others may read it
            mode = stat.S_IMODE(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
        except OSError:
            return []
        return [] if mode & 0o077 == 0 else [f"{path} is open to others ({mode:04o}) and could not be repaired"]
    except OSError:
        return []  # a link, or gone meanwhile
    try:
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077 == 0 or stat.S_ISDIR(info.st_mode) != directory:
            return []
        was, now = f"{mode:04o}", mode & 0o700
        if info.st_uid != uid():
            return [f"{path} belongs to another user (uid {info.st_uid}) and is open to others ({was}); not changed"]
        if not directory and info.st_nlink > 1:
            return [f"{path} is open to others ({was}) and has other hard links; not changed"]
        try:
            os.fchmod(fd, now)
        except OSError as exc:
            return [f"{path} is open to others ({was}) and could not be repaired: {exc.strerror or exc}"]
        return [f"{path} was open to others ({was}); now {now:04o}"]
    finally:
        os.close(fd)


N = TypeVar("N", int, float)


def number_from_env(
    name: str, kind: type[N], default: N, low: N, high: N, *, what: str, environ: Mapping[str, str] | None = None
) -> N:
    """The number the environment variable ``name`` sets, as ``kind`` (``int`` or
    ``float``), from ``low`` to ``high``; ``default`` when it is unset or blank.

    Anything else is refused before anything is touched, with the words
    ``NAME='text' is not <what>`` (``what`` says what a good value is).
    """
    env = os.environ if environ is None else environ
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        number = kind(text)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InputError(f"{name}={text!r} is not {what}")
    return number


def port_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``TELEMETRY_TRAY_PORT``: the endpoint's port, or 0 (the default) for any free one."""
    return number_from_env(
        PORT_ENV, int, 0, 0, 65535, what="a port number; use 1 to 65535, or 0 for any free port.", environ=environ
    )


def resources_dir() -> Path:
    """The project's ``resources/`` folder (next to the package, or inside a bundle)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"
