"""The payload: the exact bytes a vendor receives for a batch, and their SHA-256.

Rendering is a pure function of the batch, its manifest, the scope and the stored
reports, and the bytes are canonical JSON (DESIGN.md, "Payload sent to the vendor"),
so the preview, the approval digest and the bytes sent are one and the same.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .manifest import Manifest
from .reports import JSONScalar, Report
from .scope import Scope, coarsen_value

OTHER = "(other)"


def canonical_bytes(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Payload:
    body: bytes
    sha256: str

    @classmethod
    def of(cls, obj: object) -> Payload:
        body = canonical_bytes(obj)
        return cls(body, sha256_hex(body))

    @property
    def size(self) -> int:
        return len(self.body)

    def obj(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


@dataclass(frozen=True)
class BatchFrame:
    """Who a batch is from and what window it covers: the payload's envelope."""

    app_id: str
    batch_id: str
    manifest_version: int
    window_start: str
    window_end: str


def render(frame: BatchFrame, manifest: Manifest, scope: Scope, reports: Iterable[Report]) -> Payload:
    return Payload.of(payload_object(frame, manifest, scope, reports))


def payload_object(frame: BatchFrame, manifest: Manifest, scope: Scope, reports: Iterable[Report]) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "app_id": frame.app_id,
        "batch_id": frame.batch_id,
        "manifest_version": frame.manifest_version,
        "window": {"start": frame.window_start, "end": frame.window_end},
        "scope": scope.to_obj(),
    }
    scoped = _scoped_records(manifest, scope, reports)
    if scope.mode == "aggregate":
        obj["aggregates"] = aggregate(scope.fields, scoped, manifest.min_count)
    else:
        obj["reports"] = list(scoped)
    return obj


def _scoped_records(manifest: Manifest, scope: Scope, reports: Iterable[Report]) -> Iterable[Report]:
    fields = scope.fields
    coarse = {name: (_kind(manifest, name), level) for name, level in scope.coarsen.items()}
    for report in reports:
        out: Report = {}
        for name in fields:
            if name in report:
                value = report[name]
                if name in coarse:
                    kind, level = coarse[name]
                    value = coarsen_value(kind, level, value)
                out[name] = value
        yield out


def _kind(manifest: Manifest, name: str) -> str:
    spec = manifest.field(name)
    return spec.type if spec is not None else "string"


def aggregate(fields: Iterable[str], records: Iterable[Report], min_count: int) -> dict[str, dict[str, int]]:
    """Counts per field and value, with every count below ``min_count`` hidden.

    Rare values fold into ``"(other)"``; if ``"(other)"`` itself stays below
    ``min_count``, the least frequent shown values join it until it does. A field
    seen fewer than ``min_count`` times in all shows nothing at all. So every count
    shown is at least ``min_count`` and the counts of a field add up to the number of
    records that have it (or the field is empty).
    """
    counters: dict[str, Counter[str]] = {name: Counter() for name in fields}
    for record in records:
        for name, value in record.items():
            counters[name][value_key(value)] += 1
    return {name: fold(counter, min_count) for name, counter in counters.items()}


def value_key(value: JSONScalar) -> str:
    """A value as an aggregate key: strings as they are, others as their JSON text."""
    if type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value)


def fold(counts: Mapping[str, int], min_count: int) -> dict[str, int]:
    total = sum(counts.values())
    if total < min_count:
        return {}
    # A real value spelt "(other)" is folded too, so the bucket means one thing.
    kept = {value: n for value, n in counts.items() if n >= min_count and value != OTHER}
    other = total - sum(kept.values())
    if 0 < other < min_count:
        for value in sorted(kept, key=lambda v: (kept[v], v)):
            other += kept.pop(value)
            if other >= min_count:
                break
    if other:
        kept[OTHER] = other
    return kept
