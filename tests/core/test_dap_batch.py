"""What the person reviews for a ``format = "dap"`` batch (rules/dap_batch.py): each measurement as
it will be encoded, the tasks, both operators, the minimum batch size in words, a warning when an
operator is the vendor; the same object from the columns and the slow path, its digest what the
approval records; the sealed reports framed and read back."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.support.builders import allowed
from tray_app.core import Broker
from tray_app.core.errors import MalformedError, ManifestError
from tray_app.core.rules.columns import ReportColumns, encode_report
from tray_app.core.rules.dap_batch import FramedReport, frame_reports, seal_batch, unframe_reports
from tray_app.core.rules.manifest import manifest_from_obj
from tray_app.core.rules.payload import BatchFrame
from tray_app.core.rules.prio.dap_report import HpkeConfig
from tray_app.core.rules.scope import Scope
from tray_app.core.rules.vendor_body import reference_vendor_body, vendor_body

from .test_dap_manifest import T1, T2, T3, dap_obj

FRAME = BatchFrame("org.example.tiny", "b-1", 1, "2026-11-24T10:30:00Z", "2026-11-25T00:00:00Z")
RECORDS = [
    {"gpu": True, "exports": 300, "fmt": "gif", "note": "x"},
    {"gpu": False, "exports": -2, "note": "y"},
    {"exports": 7, "fmt": "png"},
]


def _manifest(**dap: Any) -> Any:
    return manifest_from_obj(dap_obj(**dap))


def _body(manifest: Any, scope: Scope, records: list[dict[str, Any]] = RECORDS) -> dict[str, Any]:
    columns = ReportColumns.decode(manifest, [encode_report(r) for r in records], noise_seed=b"s" * 32)
    payload = vendor_body(columns, FRAME, manifest, scope)
    reference = reference_vendor_body(FRAME, manifest, scope, records, noise_seed=b"s" * 32)
    assert payload == reference  # the columns' path and the obvious one give the same bytes
    return payload.obj()


def test_each_measurement_as_it_will_be_encoded() -> None:
    body = _body(_manifest(), Scope(("gpu", "exports", "fmt", "note")))
    assert body["measurements"] == [
        {"report": 0, "field": "gpu", "task_id": T1, "value": True, "measurement": 1},
        {"report": 0, "field": "exports", "task_id": T2, "value": 300, "measurement": 255,
         "note": "clamped from 300 to 255"},
        {"report": 0, "field": "fmt", "task_id": T3, "value": "gif", "measurement": 2, "bucket": "gif"},
        {"report": 1, "field": "gpu", "task_id": T1, "value": False, "measurement": 0},
        {"report": 1, "field": "exports", "task_id": T2, "value": -2, "measurement": 0,
         "note": "clamped from -2 to 0"},
        {"report": 2, "field": "exports", "task_id": T2, "value": 7, "measurement": 7},
        {"report": 2, "field": "fmt", "task_id": T3, "value": "png", "measurement": 0, "bucket": "png"},
    ]  # fmt: skip
    tasks = {t["field"]: t for t in body["tasks"]}
    assert tasks["exports"]["range"] == [0, 255] and tasks["exports"]["reports"] == 3
    assert tasks["fmt"]["buckets"] == ["png", "jpeg", "gif"] and tasks["fmt"]["chunk_length"] >= 1
    assert tasks["gpu"]["upload_url"] == f"https://leader.example.org/tasks/{T1}/reports"
    assert body["not_sent"] == ["note"]  # in the scope, but no task measures it
    assert body["leader"] == {"url": "https://leader.example.org/", "operator": "Example"}
    assert body["helper"] == {"url": "https://helper.example.net", "operator": "ISRG Divvi Up"}
    assert body["min_batch_size"] == 100
    assert "only ever revealed summed with at least 99 others" in body["promise"]
    assert body["report_time"] % 3600 == 0 and body["report_time_utc"] == "2026-11-24T10:00:00Z"


def test_an_operator_that_is_the_vendor_is_warned_about() -> None:
    assert _body(_manifest(leader_operator="Leader Org"), Scope(("gpu",)))["warnings"] == []
    body = _body(_manifest(leader_operator=" example "), Scope(("gpu",)))  # the vendor is "Example"
    assert len(body["warnings"]) == 1 and "the vendor itself" in body["warnings"][0]
    few = _body(_manifest(min_batch_size=2, leader_operator="Leader Org"), Scope(("exports",)))
    assert any("your own answers alone" in w for w in few["warnings"])


def test_excluded_fields_are_not_measured_and_coarsening_and_aggregate_mode_do_not_apply() -> None:
    m = _manifest()
    only_gpu = _body(m, Scope(("gpu",)))
    assert {x["field"] for x in only_gpu["measurements"]} == {"gpu"}
    assert [t["field"] for t in only_gpu["tasks"]] == ["gpu"]
    plain = _body(m, Scope(("exports",)))
    coarse = _body(m, Scope(("exports",), {"exports": "bucket"}, "aggregate"))
    assert coarse == plain  # the measurement is the value itself, clamped; sums only, already


def test_a_field_measured_by_dap_cannot_offer_noise() -> None:
    # A DAP report carries no epsilon: the vendor could not correct noisy totals.
    obj = dap_obj()
    obj["fields"][0]["noise"] = 0.1
    with pytest.raises(ManifestError) as caught:
        manifest_from_obj(obj)
    assert caught.value.key.startswith("dap.tasks[") and "offers noise" in caught.value.message


def test_the_approval_records_the_digest_of_what_was_shown(broker: Broker) -> None:
    allowed(broker, manifest_from_obj(dap_obj()))
    broker.ingest("org.example.tiny", RECORDS)
    (closed,) = broker.close_batches(force=True)
    shown = broker.view(closed.batch_id)
    assert shown.payload is not None
    done = broker.approve(closed.batch_id, expected_sha256=shown.payload.sha256)
    assert done.batch.payload_sha256 == shown.payload.sha256
    approved = [r for r in broker.history() if r.action == "approved"][-1]
    assert approved.detail["payload_sha256"] == shown.payload.sha256


def test_sealed_reports_frame_and_read_back_and_damage_is_refused() -> None:
    m = _manifest()
    body = _body(m, Scope(("gpu", "exports", "fmt")))
    config = HpkeConfig(1, 0x0020, 1, 1, secrets.token_bytes(32))
    configs = {t: (config, config) for t in (T1, T2, T3)}
    made = seal_batch(body, configs=configs, random_bytes=secrets.token_bytes)
    assert len(made) == len(body["measurements"])
    again = seal_batch(body, configs=configs, random_bytes=secrets.token_bytes)
    assert [r.body for r in made] != [r.body for r in again]  # fresh randomness every time
    framed = frame_reports(made)
    assert unframe_reports(framed) == made
    for bad in (framed[:-1], framed + b"\0", framed[:3]):
        with pytest.raises(MalformedError):
            unframe_reports(bad)
    assert frame_reports([]) == b"\0\0\0\0" and unframe_reports(b"\0\0\0\0") == []
    assert isinstance(made[0], FramedReport)
