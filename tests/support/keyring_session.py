"""Run a command with a real OS keyring: gnome-keyring in a private D-Bus session.

    .venv/bin/python tests/support/keyring_session.py make test
    .venv/bin/python tests/support/keyring_session.py .venv/bin/pytest tests/core/test_secrets.py

CI runs the tests this way (see .ci/run), and a developer can too, to run the tests
that need the real keyring without touching their own. The session bus is private
(``dbus-run-session``) and ends with the command; the keyring daemon keeps its login
collection in a throwaway directory, created and unlocked without a prompt, and goes
away with the bus. Needs the Debian packages ``dbus`` and ``gnome-keyring`` (and the
``secretstorage`` package, which ``keyring`` brings on Linux).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tray_app.core.platform.secrets import SecretStore

READY_SECONDS = 20.0
# The collection lives in a directory deleted afterwards: the password guards nothing.
PASSWORD = b"telemetry-tray-tests"


def real_keyring() -> SecretStore:
    """The OS keyring that detection finds, for a test that needs a real one; else the test
    is skipped (and in CI, where every test must run, the run fails: see tests/conftest.py)."""
    import pytest

    from tray_app.core.platform.secrets import SecretStore

    store = SecretStore()
    if not store.available():
        pytest.skip(
            "needs an OS keyring (CI runs the tests inside tests/support/keyring_session.py; locally: "
            ".venv/bin/python tests/support/keyring_session.py .venv/bin/pytest TESTS): " + store.status()
        )
    return store


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--inside":
        return _inside(Path(argv[1]), argv[2:])
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    missing = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if missing:
        print(
            f"keyring session: {', '.join(missing)} not found; install the Debian packages dbus and gnome-keyring",
            file=sys.stderr,
        )
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="telemetry-tray-keyring-"))
    try:
        inner = [sys.executable, str(Path(__file__).resolve()), "--inside", str(scratch), *argv]
        return subprocess.run(["dbus-run-session", "--", *inner], check=False).returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _inside(scratch: Path, command: list[str]) -> int:
    """In the private session: start and unlock the keyring, then run the command."""
    (scratch / "data").mkdir(mode=0o700)
    (scratch / "runtime").mkdir(mode=0o700)
    daemon_env = {**os.environ, "XDG_DATA_HOME": str(scratch / "data"), "XDG_RUNTIME_DIR": str(scratch / "runtime")}
    # --unlock reads the login password from stdin, creating the login collection
    # (the default one) if there is none; the daemon then forks into the background.
    started = subprocess.run(
        ["gnome-keyring-daemon", "--unlock", "--components=secrets"],
        input=PASSWORD,
        env=daemon_env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    if started.returncode != 0:
        print(f"keyring session: gnome-keyring-daemon failed ({started.returncode})", file=sys.stderr)
        return 1
    problem = _wait_until_ready()
    if problem:
        print(f"keyring session: the keyring is not usable: {problem}", file=sys.stderr)
        return 1
    print("keyring session: gnome-keyring is running and unlocked in a private D-Bus session", file=sys.stderr)
    return subprocess.run(command, check=False).returncode


def _wait_until_ready() -> str:
    """'' once the Secret Service answers with an unlocked default collection, else why not."""
    import secretstorage

    deadline = time.monotonic() + READY_SECONDS
    problem = "no answer"
    while time.monotonic() < deadline:
        try:
            with closing(secretstorage.dbus_init()) as bus:
                if not secretstorage.check_service_availability(bus):
                    problem = "the Secret Service is not on the bus"
                elif secretstorage.Collection(bus).is_locked():  # the "default" alias; no prompt
                    problem = "the default collection is locked"
                else:
                    return ""
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    return problem


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
