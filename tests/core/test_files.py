"""The rules written once (issue 12): files written whole, numbers from the environment,
canonical JSON, the calendar, and the classes of invisible characters."""

from __future__ import annotations

import json
import os
import stat
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tray_app.core import InputError, port_from_env, timeout_from_env
from tray_app.core.platform import files
from tray_app.core.platform.files import ensure_private_dir, put_in_place, write_file_whole
from tray_app.core.platform.paths import number_from_env
from tray_app.core.rules.canonical_json import CANONICAL_ENCODER, canonical_bytes, canonical_json
from tray_app.core.rules.clock import period_start
from tray_app.core.rules.coarsening import coarsen_value
from tray_app.core.rules.preview_text import (
    HIDDEN,
    JOINERS,
    MANIFEST_UNSAFE,
    SECRET_CONTROL,
    has_control,
    plain_text,
    shown_value,
)
from tray_app.core.rules.windows import window_for

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- write_file_whole ---------------------------------------------------------------


@posix_only
@pytest.mark.parametrize("durable", [True, False])
def test_a_file_written_whole_is_private_and_leaves_nothing_else(tmp_path: Path, durable: bool) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    target = folder / "out.json"
    target.write_bytes(b"old")
    old = os.umask(0o000)
    try:
        assert write_file_whole(target, b"new", durable=durable) == target
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert _mode(folder) == 0o755  # the person's folder is not made private
    assert [p.name for p in folder.iterdir()] == ["out.json"]


@posix_only
def test_a_mode_is_kept_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_file_whole(tmp_path / "entry.desktop", b"[Desktop Entry]\n", durable=True, mode=0o644)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "entry.desktop") == 0o644


def test_a_missing_folder_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_file_whole(tmp_path / "no" / "such.json", b"{}", durable=False)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        write_file_whole(target, b"new", durable=True)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


@posix_only
def test_a_symbolic_link_at_the_temporary_name_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"keep")
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: "fixed")
    (tmp_path / ".f.fixed.tmp").symlink_to(elsewhere)
    with pytest.raises(FileExistsError):
        write_file_whole(tmp_path / "f", b"new", durable=False)
    assert elsewhere.read_bytes() == b"keep"


def test_durable_flushes_the_file_and_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    write_file_whole(tmp_path / "a", b"x", durable=False)
    assert synced == []
    write_file_whole(tmp_path / "b", b"x", durable=True)
    assert synced[0] is False and (synced[1:] == [True] or sys.platform == "win32")
    synced.clear()
    (tmp_path / ".c.partial").write_bytes(b"x")
    put_in_place(tmp_path / ".c.partial", tmp_path / "c", durable=True)
    assert (tmp_path / "c").read_bytes() == b"x"
    assert synced[0] is False and (synced[1:] == [True] or sys.platform == "win32")


@posix_only
def test_our_own_folders_are_made_private(tmp_path: Path) -> None:
    assert _mode(ensure_private_dir(tmp_path / "a" / "b")) == 0o700
    assert _mode(tmp_path / "a") == 0o700


# -- numbers from the environment ---------------------------------------------------


def test_numbers_from_the_environment() -> None:
    assert port_from_env({}) == 0
    assert port_from_env({"TELEMETRY_TRAY_PORT": " 8123 "}) == 8123
    assert timeout_from_env({}).read == 30.0
    assert timeout_from_env({"TELEMETRY_TRAY_SEND_TIMEOUT": "90"}).read == 90.0
    assert timeout_from_env({"TELEMETRY_TRAY_SEND_TIMEOUT": "90"}).connect == 10.0
    assert number_from_env("N", int, 7, 1, 9, what="x", environ={"N": ""}) == 7


@pytest.mark.parametrize("text", ["x", "-1", "65536", "1.5"])
def test_a_bad_port_is_refused_in_the_same_words(text: str) -> None:
    with pytest.raises(InputError) as caught:
        port_from_env({"TELEMETRY_TRAY_PORT": text})
    assert str(caught.value.args[0]) == (
        f"TELEMETRY_TRAY_PORT={text!r} is not a port number; use 1 to 65535, or 0 for any free port."
    )


@pytest.mark.parametrize("text", ["soon", "0", "0.05", "601", "nan", "inf"])
def test_a_bad_timeout_is_refused_in_the_same_words(text: str) -> None:
    with pytest.raises(InputError) as caught:
        timeout_from_env({"TELEMETRY_TRAY_SEND_TIMEOUT": text})
    said = f"TELEMETRY_TRAY_SEND_TIMEOUT={text!r} is not a number of seconds from 0.1 to 600."
    assert str(caught.value.args[0]) == said


# -- canonical JSON -----------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [{"b": 1, "a": [1.5, None, True, "é\u202e\u2028"]}, {"z": {"y": [], "x": {}}}, [0.1, -0.0, 10**30], "\x00"],
)
def test_canonical_json_is_the_one_spelling(obj: object) -> None:
    spelt = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(obj) == spelt == CANONICAL_ENCODER.encode(obj)
    assert canonical_bytes(obj) == spelt.encode("utf-8")


# -- the calendar -------------------------------------------------------------------


def test_windows_and_coarsening_start_periods_alike() -> None:
    moment = datetime(2026, 11, 26, 13, 5, 9, 123, tzinfo=UTC)  # a Thursday
    for cadence, period, length in (("hourly", "hour", 1 / 24), ("daily", "day", 1), ("weekly", "week", 7)):
        start, end = window_for(cadence, moment)  # type: ignore[arg-type]
        assert start == period_start(moment, period) and end - start == timedelta(days=length)
    assert window_for("weekly", moment)[0] == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start(moment, "month") == datetime(2026, 11, 1, tzinfo=UTC)
    assert coarsen_value("timestamp", "week", "2026-11-26T13:05:09+02:00") == "2026-11-23T00:00:00Z"


# -- invisible characters -----------------------------------------------------------


def test_the_classes_differ_as_documented() -> None:
    assert SECRET_CONTROL < MANIFEST_UNSAFE < HIDDEN and HIDDEN.difference(MANIFEST_UNSAFE) == {"Zs"}
    assert all(unicodedata.category(j) == "Cf" for j in JOINERS)
    assert plain_text("a\u200db\u00a0c") == "a\\u200db\\u00a0c"  # display escapes joiners and odd spaces
    assert has_control("a\x1bb") and not has_control("a\u200eb")


def test_a_value_in_a_message_is_escaped_and_cut_to_its_limit() -> None:
    assert shown_value("a\u202eb\n", 60) == "'a\\u202eb\\n'"  # no bidi or control goes into a message
    assert shown_value("x" * 100, 40) == "'" + "x" * 36 + "..." and len(shown_value("x" * 100, 60)) == 60
    assert shown_value(10**5000, 40) == "a int too large to show"
