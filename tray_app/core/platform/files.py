"""Files and folders only this user can read, and files written whole.

``ensure_private_dir`` and ``ensure_private_file`` make (or repair) our own folders and
files private; :func:`write_file_whole` puts a file in place in one step, so a reader
or a crash sees the old file or the whole new one, never part of one. Where things are
is ``paths.py``; this module knows nothing of our layout.

How durable each write is, and why (``durable=True``: the file is flushed to the disk,
renamed, then its folder flushed, so the rename survives a power cut too):

- the spool (``storage/spool.py``): durable. A spooled file holds reports that exist
  nowhere else (the app has let go of them).
- the backup before a migration (``storage/store.py``): durable. The migration that
  follows is made durable by SQLite; the copy of the old database must be as well.
- start at login (``autostart.py``): durable. Rarely written, and a half-written login
  entry would silently stop the tray from starting.
- an exported history (``Broker.export_history``): durable. The person asked for this
  file and may take it away at once; it costs one flush, once.
- ``endpoint.json`` (``endpoint_file.py``): not durable. It describes the running
  process, which a power cut ends anyway; a missing or old file reads as "not running".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

PRIVATE_FILE: int = 0o600
PRIVATE_DIR: int = 0o700

# Temporary files are made new (never an existing one), never through a link, and kept
# out of child processes; bytes go to the disk as they are (no newline translation).
_NEW_FILE = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def write_file_whole(path: Path, data: bytes, *, durable: bool, mode: int = PRIVATE_FILE) -> Path:
    """Write ``data`` to ``path`` in one step: to a new temporary file in the same folder
    (mode ``mode``, 0600 unless said otherwise, whatever the umask), then renamed over
    ``path``. With ``durable``, the file is flushed to the disk before the rename and the
    folder after it (see the module's notes for who needs which).

    The folder must exist: it is neither created nor has its mode changed (an export
    goes to a folder the person chose, which is theirs as it is). A failure leaves no
    temporary file behind, and ``path`` as it was.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, _NEW_FILE, mode)
    try:
        try:
            if hasattr(os, "fchmod"):  # not on Windows before Python 3.13; nor needed there
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        put_in_place(temp, path, durable=durable, synced=True)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def put_in_place(temp: Path, path: Path, *, durable: bool, synced: bool = False) -> None:
    """Rename the whole file ``temp`` over ``path`` (same folder). With ``durable``,
    ``temp`` is first flushed to the disk (unless ``synced`` says it is already) and the
    folder after the rename, so that the rename is on the disk too."""
    if durable and not synced:
        # Opened for writing: Windows flushes only a file open for writing.
        fd = os.open(temp, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(temp, path)
    if durable:
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to the disk; best effort: Windows
    cannot open a folder, and some file systems refuse to flush one."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make sure only this user can enter it."""
    # mkdir(parents=True) would give the folders it adds on the way the umask's mode
    # (often 0755); each folder we create is made 0700 (ones that exist are not ours to change).
    missing: list[Path] = []
    folder = path
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    info = path.stat()
    # Repair only what is ours: never chmod a folder another user owns.
    if stat.S_IMODE(info.st_mode) != PRIVATE_DIR and info.st_uid == uid():
        path.chmod(PRIVATE_DIR)
    return path


def ensure_private_file(path: Path) -> Path:
    """Create ``path`` if missing with mode 0600, or repair its mode to 0600; its folder
    is made private too (:func:`ensure_private_dir`), so use it for our own files only.

    Refuses a symbolic link: repairing the mode must never reach another file.
    """
    ensure_private_dir(path.parent)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), PRIVATE_FILE)
    try:
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) != PRIVATE_FILE and info.st_uid == uid() and hasattr(os, "fchmod"):
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def uid() -> int:
    """This process's user id; -1 where there are none (Windows)."""
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else -1
