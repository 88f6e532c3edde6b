"""Our files stay private: checked at every start, repaired with a warning, links left alone."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import ROOT, allowed, tiny
from tray_app.core import Broker, Locations
from tray_app.core.broker import hash_token
from tray_app.core.platform.paths import repair_permissions
from tray_app.core.storage.spool import Spool
from tray_app.ingest.instance import Instance


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _used_home(tmp_path: Path) -> Locations:
    """A home with a database, a spooled request and an endpoint file, as after some use."""
    locations = Locations.under(tmp_path / "home")
    broker = Broker.open(locations)
    manifest = tiny()
    token = allowed(broker, manifest)
    broker.ingest(manifest.app_id, [{"event": "a"}])
    broker.close()
    Spool(locations.spool).write(manifest.app_id, hash_token(token), [{"event": "b"}])
    locations.endpoint_file.write_text("{}")
    os.chmod(locations.endpoint_file, 0o600)
    return locations


def _everything(locations: Locations) -> list[Path]:
    assert locations.home is not None
    return [locations.home, *sorted(locations.home.rglob("*"))]


def test_a_used_home_is_private_throughout(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    paths = _everything(locations)
    assert len(paths) > 6
    for path in paths:
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert repair_permissions(locations) == []


def test_opened_files_and_folders_are_repaired_and_named(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    opened = [locations.database, locations.spool, locations.endpoint_file, locations.data]
    for path in opened:
        os.chmod(path, 0o777 if path.is_dir() else 0o644)
    problems = repair_permissions(locations)
    for path in opened:
        assert any(line.startswith(f"{path} was open to others") for line in problems), (path, problems)
        assert _mode(path) == (0o700 if path.is_dir() else 0o600)
    assert len(problems) == len(opened)
    assert repair_permissions(locations) == []  # repaired for good


def test_links_are_neither_followed_nor_changed(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    outside = tmp_path / "someone-elses-notes.txt"
    outside.write_text("not ours")
    os.chmod(outside, 0o644)
    (locations.data / "link-to-notes").symlink_to(outside)
    outside_dir = tmp_path / "shared"
    outside_dir.mkdir(mode=0o755)
    os.chmod(outside_dir, 0o755)
    (locations.data / "link-to-shared").symlink_to(outside_dir, target_is_directory=True)
    assert repair_permissions(locations) == []
    assert _mode(outside) == 0o644 and _mode(outside_dir) == 0o755


if hasattr(os, "geteuid") and os.geteuid() == 0:  # only root can make a file another user owns

    def test_another_users_file_is_reported_not_changed(tmp_path: Path) -> None:
        locations = _used_home(tmp_path)
        foreign = locations.data / "foreign.txt"
        foreign.write_text("x")
        os.chmod(foreign, 0o644)
        os.chown(foreign, 4242, 4242)
        problems = repair_permissions(locations)
        assert problems == [f"{foreign} belongs to another user (uid 4242) and is open to others (0644); not changed"]
        assert _mode(foreign) == 0o644


def test_the_cli_warns_and_repairs(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    os.chmod(locations.database, 0o644)
    env = {**os.environ, "TELEMETRY_TRAY_HOME": str(locations.home)}
    result = subprocess.run(
        [sys.executable, "-m", "tray_app", "pending"], capture_output=True, text=True, env=env, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"warning: {locations.database} was open to others (0644); now 0600" in result.stderr
    assert _mode(locations.database) == 0o600


def test_the_instance_warns_and_repairs_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    locations = _used_home(tmp_path)
    os.chmod(locations.spool, 0o755)
    instance = Instance(locations, port=0)
    with caplog.at_level(logging.WARNING):
        instance.start()
    try:
        assert f"file permissions: {locations.spool} was open to others (0755); now 0700" in caplog.text
        assert _mode(locations.spool) == 0o700
    finally:
        instance.stop()


def test_other_things_in_the_home_folder_are_left_alone(tmp_path: Path) -> None:
    # TELEMETRY_TRAY_HOME may name a folder that holds other things: only ours is walked.
    locations = _used_home(tmp_path)
    assert locations.home is not None
    tool = locations.home / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, 0o755)
    os.chmod(tool.parent, 0o755)
    assert repair_permissions(locations) == []
    assert _mode(tool) == 0o755 and _mode(tool.parent) == 0o755


def test_a_file_with_other_hard_links_is_reported_not_changed(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x")
    os.chmod(outside, 0o644)
    os.link(outside, locations.data / "linked.txt")
    problems = repair_permissions(locations)
    assert problems == [
        f"{locations.data / 'linked.txt'} is open to others (0644) and has other hard links; not changed"
    ]
    assert _mode(outside) == 0o644


def test_an_executable_bit_is_kept_for_its_owner(tmp_path: Path) -> None:
    locations = _used_home(tmp_path)
    script = locations.data / "hook.sh"
    script.write_text("#!/bin/sh\n")
    os.chmod(script, 0o755)
    assert repair_permissions(locations) == [f"{script} was open to others (0755); now 0700"]
