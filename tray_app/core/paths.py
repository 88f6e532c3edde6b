"""Where Telemetry Tray keeps its files.

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

import platformdirs

from .errors import InputError, StoreError

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


def port_from_env(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(PORT_ENV, "").strip() or "0"
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise InputError(f"{PORT_ENV}={text!r} is not a port number; use 1 to 65535, or 0 for any free port.")
    return port


def resources_dir() -> Path:
    """The project's ``resources/`` folder (next to the package, or inside a bundle)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make sure only this user can enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    # Repair only what is ours: never chmod a folder another user owns.
    if stat.S_IMODE(info.st_mode) != 0o700 and info.st_uid == _uid():
        path.chmod(0o700)
    return path


def ensure_private_file(path: Path) -> Path:
    """Create ``path`` if missing with mode 0600, or repair its mode to 0600.

    Refuses a symbolic link: repairing the mode must never reach another file.
    """
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != 0o600 and info.st_uid == _uid() and hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return path


def _uid() -> int:
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else -1
