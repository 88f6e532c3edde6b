"""A ``format = "dap"`` batch: the measurements the person reviews, and the reports made from them.

Principle 2 for split aggregation (DESIGN.md): the person sees the measurements; the encrypted
bytes are made from exactly those, and they are what goes. So the object the review shows (the
``payload`` of ``show --json``, canonical JSON, its digest what approval records) holds
everything the reports are made from: per report and task the field, the value, the
measurement as it will be encoded (0/1, the clamped integer, the bucket index and name), the
tasks with their VDAF parameters, the leader and the helper with who runs each, the time
precision and the report time, and the minimum batch size in words. :func:`seal_batch` makes
the reports from that object alone (never from the reports again: they are deleted at
approval), with the randomness and the HPKE configurations given as parameters, so this module
stays pure.

What a DAP scope does (docs/dap.md, "What the review shows"):

* only fields that have a task are sent; the others in the scope are left out and named;
* coarsening and aggregate mode do not apply: a DAP report carries one measurement exactly
  (Prio3Sum sums the values the person saw, clamped; coarsening them would bias every total),
  and the aggregators already reveal only sums over at least ``min_batch_size`` reports, which
  is stronger than aggregate mode's counts;
* noise (randomized response) does apply to boolean and enum fields whose manifest offers it: the
  noisy value is the measurement. It protects the person even if the two operators collude, and
  the vendor can correct the histogram with the epsilon stated in the payload's ``scope``.

The stored reports are one blob in a simple framing (:func:`frame_reports`): a 4-byte count,
then per report its 32-byte task id and its ``application/dap-report`` bytes with a 4-byte
length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import MalformedError
from .clock import from_iso, to_iso
from .manifest import DapConfig, DapTask, Manifest
from .payload import BatchFrame, Payload
from .prio import (
    DAP_09_VDAF_08,
    HpkeConfig,
    Prio3,
    ReportRandomness,
    clamp_to_bits,
    decode_task_id,
    make_report,
    optimal_chunk_length,
    prio3_count,
    prio3_histogram,
    prio3_sum,
    randomness_size,
    upload_url,
)
from .scope import Scope

__all__ = [
    "DapMeasurement",
    "FramedReport",
    "dap_payload",
    "dap_scope",
    "frame_reports",
    "measurements",
    "promise_words",
    "seal_batch",
    "unframe_reports",
    "vdaf_of",
]

_MAX_REPORT = 2**32 - 1


@dataclass(frozen=True)
class DapMeasurement:
    """One report's value of one task's field, as it will be encoded."""

    report: int  # the report's index in the batch
    task: DapTask
    value: Any  # as the scope sends it (with its noise, if any)
    measurement: int
    bucket: str | None = None  # histogram: the bucket's name
    clamped_from: int | None = None  # sum: the value before clamping, when it was clamped

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "report": self.report,
            "field": self.task.field,
            "task_id": self.task.task_id,
            "value": self.value,
            "measurement": self.measurement,
        }
        if self.bucket is not None:
            obj["bucket"] = self.bucket
        if self.clamped_from is not None:
            obj["note"] = f"clamped from {self.clamped_from} to {self.measurement}"
        return obj


def dap_scope(manifest: Manifest, scope: Scope) -> Scope:
    """What of ``scope`` a DAP batch sends: its fields that have a task, their noise; no
    coarsening, records mode (the module's docstring says why)."""
    assert manifest.dap is not None
    fields = tuple(name for name in scope.fields if manifest.dap.task_for(name) is not None)
    noise = {name: eps for name, eps in scope.noise.items() if name in fields}
    return Scope(fields, {}, "records", noise)


def vdaf_of(task: Mapping[str, Any] | DapTask, buckets: int | None = None) -> Prio3:
    """The Prio3 of a task (a :class:`DapTask` with its field's number of values, or a task
    object of the payload)."""
    if isinstance(task, DapTask):
        vdaf, bits, chunk = task.vdaf, task.bits, task.chunk_length
        length = buckets
    else:
        vdaf, bits, chunk, length = task["vdaf"], task.get("bits"), task.get("chunk_length"), task.get("length")
    if vdaf == "count":
        return prio3_count()
    if vdaf == "sum":
        assert isinstance(bits, int)
        return prio3_sum(bits)
    assert isinstance(length, int)
    return prio3_histogram(length, chunk)


def measurements(manifest: Manifest, records: Sequence[Mapping[str, Any]]) -> list[DapMeasurement]:
    """Per report, then per task in the manifest's order: the measurement of each field the
    record carries (a report without the field, or with null, makes no report for that task)."""
    assert manifest.dap is not None
    out: list[DapMeasurement] = []
    for index, record in enumerate(records):
        for task in manifest.dap.tasks:
            if task.field not in record or record[task.field] is None:
                continue
            value = record[task.field]
            spec = manifest.field(task.field)
            assert spec is not None
            if task.vdaf == "count":
                if isinstance(value, bool):
                    out.append(DapMeasurement(index, task, value, int(value)))
            elif task.vdaf == "sum":
                if isinstance(value, int) and not isinstance(value, bool):
                    assert task.bits is not None
                    clamped, was = clamp_to_bits(value, task.bits)
                    out.append(DapMeasurement(index, task, value, clamped, clamped_from=value if was else None))
            elif isinstance(value, str) and value in spec.values:
                out.append(DapMeasurement(index, task, value, spec.values.index(value), bucket=value))
    return out


def promise_words(min_batch_size: int) -> str:
    return (
        f"Your answer is only ever revealed summed with at least {min_batch_size - 1} others: the two "
        f"aggregators release a total only over {min_batch_size} reports or more."
    )


def _same(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _warnings(manifest: Manifest, dap: DapConfig, counts: Mapping[str, int]) -> list[str]:
    out = []
    for role, operator in (("leader", dap.leader_operator), ("helper", dap.helper_operator)):
        if _same(operator, manifest.vendor):
            out.append(
                f"The {role} aggregator is run by {operator}, the vendor itself: it holds one of the two "
                "halves. Your answers stay hidden only as long as the other operator does not share its half "
                "with the vendor."
            )
    for task in dap.tasks:
        n = counts.get(task.task_id, 0)
        if n >= dap.min_batch_size:
            out.append(
                f"This batch alone holds {n} answers for '{task.field}', at least the minimum batch size: a "
                "total over your own answers alone could be revealed."
            )
    return out


def dap_payload(frame: BatchFrame, manifest: Manifest, scope: Scope, records: Sequence[Mapping[str, Any]]) -> Payload:
    """The review's object for a DAP batch (canonical JSON): what the reports will say and who
    gets them. ``records`` are the batch's reports as :func:`dap_scope`'s scope sends them."""
    dap = manifest.dap
    assert dap is not None
    sent = dap_scope(manifest, scope)
    found = [m for m in measurements(manifest, records) if m.task.field in sent.fields]
    counts: dict[str, int] = {}
    for m in found:
        counts[m.task.task_id] = counts.get(m.task.task_id, 0) + 1
    tasks = []
    for task in dap.tasks:
        if task.field not in sent.fields:
            continue
        spec = manifest.field(task.field)
        assert spec is not None
        obj: dict[str, Any] = {
            "task_id": task.task_id,
            "field": task.field,
            "vdaf": task.vdaf,
            "upload_url": upload_url(manifest.endpoint, decode_task_id(task.task_id)),
            "reports": counts.get(task.task_id, 0),
        }
        if task.vdaf == "sum":
            assert task.bits is not None
            obj["bits"] = task.bits
            obj["range"] = [0, 2**task.bits - 1]
        if task.vdaf == "histogram":
            obj["length"] = len(spec.values)
            obj["chunk_length"] = task.chunk_length or optimal_chunk_length(len(spec.values))
            obj["buckets"] = list(spec.values)
        tasks.append(obj)
    start = int(from_iso(frame.window_start).timestamp())
    report_time = start - start % dap.time_precision
    not_sent = [name for name in scope.fields if name not in sent.fields]
    body: dict[str, Any] = {
        "format": "dap",
        "profile": DAP_09_VDAF_08.name,
        "app_id": frame.app_id,
        "batch_id": frame.batch_id,
        "manifest_version": frame.manifest_version,
        "window": {"start": frame.window_start, "end": frame.window_end},
        "scope": {"fields": list(sent.fields), "noise": dict(sent.noise)},
        "leader": {"url": manifest.endpoint, "operator": dap.leader_operator},
        "helper": {"url": dap.helper, "operator": dap.helper_operator},
        "min_batch_size": dap.min_batch_size,
        "promise": promise_words(dap.min_batch_size),
        "warnings": _warnings(manifest, dap, counts),
        "time_precision": dap.time_precision,
        "report_time": report_time,
        "report_time_utc": to_iso(datetime.fromtimestamp(report_time, UTC)),
        "tasks": tasks,
        "measurements": [m.to_obj() for m in found],
    }
    if not_sent:
        body["not_sent"] = not_sent  # in the scope, but no task measures them: never sent
    return Payload.of(body)


# ----------------------------------------------------------------------------------------
# Sealing and framing


@dataclass(frozen=True)
class FramedReport:
    task_id: bytes
    body: bytes  # the application/dap-report bytes


def frame_reports(reports: Iterable[FramedReport]) -> bytes:
    """``u32 count``, then per report ``task_id[32] ‖ u32 length ‖ report``."""
    items = list(reports)
    out = [len(items).to_bytes(4, "big")]
    for item in items:
        if len(item.task_id) != 32 or len(item.body) > _MAX_REPORT:
            raise ValueError("a framed report has a 32-byte task id and at most 2^32-1 bytes")
        out += [item.task_id, len(item.body).to_bytes(4, "big"), item.body]
    return b"".join(out)


def unframe_reports(data: bytes) -> list[FramedReport]:
    """The reports of :func:`frame_reports` (MalformedError when the bytes are not that)."""
    if len(data) < 4:
        raise MalformedError("The stored DAP reports are damaged (too short).")
    count, at, out = int.from_bytes(data[:4], "big"), 4, []
    for _ in range(count):
        if at + 36 > len(data):
            raise MalformedError("The stored DAP reports are damaged (they end early).")
        task_id, size = data[at : at + 32], int.from_bytes(data[at + 32 : at + 36], "big")
        at += 36
        if at + size > len(data):
            raise MalformedError("The stored DAP reports are damaged (they end early).")
        out.append(FramedReport(task_id, data[at : at + size]))
        at += size
    if at != len(data):
        raise MalformedError("The stored DAP reports are damaged (bytes after the last one).")
    return out


def seal_batch(
    approved: Mapping[str, Any],
    *,
    configs: Mapping[str, tuple[HpkeConfig, HpkeConfig]],
    random_bytes: Callable[[int], bytes],
    start: int = 0,
) -> list[FramedReport]:
    """The DAP-09 reports of an approved DAP payload object (:func:`dap_payload`), from its
    ``start``-th measurement on: each measurement sharded with its task's VDAF at the
    payload's report time, sealed to its task's two configurations (``configs``: the
    leader's and the helper's by task id), with ``random_bytes(n)`` (the caller's
    ``secrets.token_bytes``) as every report's randomness."""
    tasks = {task["task_id"]: task for task in approved["tasks"]}
    vdafs: dict[str, Prio3] = {tid: vdaf_of(task) for tid, task in tasks.items()}
    out = []
    for m in approved["measurements"][start:]:
        task_id = decode_task_id(m["task_id"])
        vdaf = vdafs[m["task_id"]]
        report = make_report(
            task_id=task_id,
            vdaf=vdaf,
            measurement=int(m["measurement"]),
            time=int(approved["report_time"]),
            time_precision=int(approved["time_precision"]),
            leader_config=configs[m["task_id"]][0],
            helper_config=configs[m["task_id"]][1],
            randomness=ReportRandomness.from_bytes(vdaf, random_bytes(randomness_size(vdaf))),
        )
        out.append(FramedReport(task_id, report.encoded))
    return out
