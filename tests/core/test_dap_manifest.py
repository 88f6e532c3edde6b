"""The ``[dap]`` table of a ``format = "dap"`` manifest: every bad key refused with a message
naming it, a changed table needs consent again, and manifests without it keep their stored text."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.builders import MANIFESTS, manifest_obj, tiny
from tray_app.core.errors import ManifestError
from tray_app.core.rules.consent import AppStatus
from tray_app.core.rules.manifest import WireFormat, load_manifest, manifest_from_obj, upgrade

T1 = "wNSl53pRdQSUuUKB3QCwiw1nqjNIcOVMCXvIrzzP0rQ"
T2 = "wp24uEBMFdgCTwN7JAgW47jOkeCA0uvidU3mLJbVNDU"
T3 = "pUv8QHijd6ZgMwAdi469o7A4WE-X0QpqrtNy0MdbKBw"
FIELDS = [
    {"name": "gpu", "type": "boolean", "description": "GPU on"},
    {"name": "exports", "type": "integer", "description": "exports"},
    {"name": "fmt", "type": "enum", "values": ["png", "jpeg", "gif"], "description": "format"},
    {"name": "note", "type": "string", "description": "free text"},
]


def dap_obj(**dap: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "helper": "https://helper.example.net",
        "leader_operator": "Example",
        "helper_operator": "ISRG Divvi Up",
        "time_precision": 3600,
        "min_batch_size": 100,
        "tasks": [
            {"task_id": T1, "field": "gpu", "vdaf": "count"},
            {"task_id": T2, "field": "exports", "vdaf": "sum", "bits": 8},
            {"task_id": T3, "field": "fmt", "vdaf": "histogram"},
        ],
    }
    table.update(dap)
    return manifest_obj(format="dap", endpoint="https://leader.example.org/", fields=FIELDS, dap=table)


def test_a_valid_table_is_taken_and_kept_as_written() -> None:
    m = manifest_from_obj(dap_obj())
    assert m.format == WireFormat.DAP and m.dap is not None
    assert [(t.field, t.vdaf, t.bits, t.chunk_length) for t in m.dap.tasks] == [
        ("gpu", "count", None, None), ("exports", "sum", 8, None), ("fmt", "histogram", None, None),
    ]  # fmt: skip
    assert manifest_from_obj(m.to_obj()) == m
    assert m.to_obj()["dap"]["tasks"][2] == {"task_id": T3, "field": "fmt", "vdaf": "histogram"}


def test_the_example_manifest_is_valid() -> None:
    m = load_manifest(MANIFESTS / "photoedit-dap.toml")
    assert m.dap is not None and {t.vdaf for t in m.dap.tasks} == {"count", "sum", "histogram"}


def test_manifests_without_the_table_keep_their_stored_text() -> None:
    assert "dap" not in tiny().to_obj()
    assert '"dap"' not in tiny().to_json()


def _task(i: int, **changes: Any) -> dict[str, Any]:
    tasks = copy.deepcopy(dap_obj()["dap"]["tasks"])
    tasks[i].update(changes)
    return {"tasks": tasks}


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"helper": "http://helper.example.net"}, "dap.helper", "plain http"),
    ({"helper": "ftp://helper.example.net"}, "dap.helper", "not an http(s) URL"),
    ({"helper": "https://leader.example.org/other"}, "dap.helper", "leader's own server"),
    ({"helper": "https://helper.example.net/?x=1"}, "dap.helper", "base URL"),
    ({"helper_operator": " example "}, "dap.helper_operator", "two different organisations"),
    ({"leader_operator": ""}, "dap.leader_operator", "empty"),
    ({"time_precision": 0}, "dap.time_precision", "out of range"),
    ({"time_precision": "1h"}, "dap.time_precision", "not a whole number"),
    ({"min_batch_size": 1}, "dap.min_batch_size", "out of range"),
    ({"tasks": []}, "dap.tasks", "one task per measured field"),
    ({"colour": "red"}, "dap.colour", "unknown key"),
    (_task(0, task_id="short"), "dap.tasks[0].task_id", "32 bytes"),
    (_task(1, task_id=T1), "dap.tasks[1].task_id", "another task"),
    (_task(0, field="nope"), "dap.tasks[0].field", "not a declared field"),
    (_task(1, field="gpu", vdaf="count"), "dap.tasks[1].field", "another task"),
    (_task(0, vdaf="sum"), "dap.tasks[0].vdaf", "is boolean"),
    (_task(0, vdaf="mean"), "dap.tasks[0].vdaf", "not one of count, sum, histogram"),
    (_task(1, bits=None), "dap.tasks[1].bits", "is null"),
    (_task(1, bits=0), "dap.tasks[1].bits", "1 to 64"),
    (_task(1, bits=65), "dap.tasks[1].bits", "1 to 64"),
    (_task(0, bits=8), "dap.tasks[0].bits", "only a sum"),
    (_task(2, chunk_length=4), "dap.tasks[2].chunk_length", "1 to 3"),
    (_task(1, chunk_length=2), "dap.tasks[1].chunk_length", "only a histogram"),
    (_task(0, field="note", vdaf="count"), "dap.tasks[0].vdaf", "only boolean, integer and enum"),
]


@pytest.mark.parametrize(("dap", "key", "words"), BAD, ids=[f"{k}:{w}" for _, k, w in BAD])
def test_each_bad_key_is_refused_naming_it(dap: dict[str, Any], key: str, words: str) -> None:
    obj = dap_obj(**dap)
    obj["dap"] = {k: v for k, v in obj["dap"].items() if v is not None}
    if key == "dap.tasks[1].bits" and words == "is null":
        del obj["dap"]["tasks"][1]["bits"]
        words = "is missing"
    with pytest.raises(ManifestError) as caught:
        manifest_from_obj(obj)
    assert caught.value.key == key, caught.value
    assert words in caught.value.problem, caught.value.problem


def test_the_table_and_the_format_go_together() -> None:
    obj = dap_obj()
    del obj["dap"]
    with pytest.raises(ManifestError, match=r"'dap'.*is missing"):
        manifest_from_obj(obj)
    with pytest.raises(ManifestError, match='only a format = "dap" manifest'):
        manifest_from_obj(manifest_obj(dap=dap_obj()["dap"]))
    with pytest.raises(ManifestError) as caught:
        manifest_from_obj({**dap_obj(), "endpoint": "http://leader.example.org/"})
    assert caught.value.key == "endpoint"
    with pytest.raises(ManifestError) as caught:
        manifest_from_obj({**dap_obj(), "auth": "bearer"})
    assert caught.value.key == "auth"


def test_loopback_aggregators_may_use_plain_http() -> None:
    m = manifest_from_obj({**dap_obj(helper="http://127.0.0.1:9001"), "endpoint": "http://127.0.0.1:9000"})
    assert m.dap is not None and m.dap.helper == "http://127.0.0.1:9001"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"helper_operator": "Other Org"}, "now held by Example and Other Org"),
        ({"helper": "https://helper2.example.net"}, "helper aggregator is now helper2.example.net"),
        ({"min_batch_size": 10}, "at least 10 reports, not 100"),
        ({"time_precision": 60}, "rounded to 60 seconds"),
        (_task(1, bits=16), "tasks changed"),
    ],
)
def test_a_changed_table_needs_consent_again(change: dict[str, Any], words: str) -> None:
    old = manifest_from_obj(dap_obj())
    new = manifest_from_obj({**dap_obj(**change), "version": 2})
    done = upgrade(old, new, AppStatus.ALLOWED)
    assert done is not None and done.status == AppStatus.AWAITING_CONSENT
    assert any(words in reason for reason in done.change.reconsent), done.change.reconsent
    same = manifest_from_obj({**dap_obj(), "version": 2})
    kept = upgrade(old, same, AppStatus.ALLOWED)
    assert kept is not None and kept.status == AppStatus.ALLOWED
