"""The payload: the exact bytes a vendor receives for a batch, and their SHA-256.

Rendering is a pure function of the batch, its manifest, the scope and the stored
reports (and, for a scope with noise, the batch's secret seed: :mod:`.noise`), and the
bytes are canonical JSON (DESIGN.md, "Payload sent to the vendor"), so the preview, the
approval digest and the bytes sent are one and the same.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ScopeError
from .canonical_json import canonical_bytes
from .coarsening import coarsen_value
from .manifest import Manifest
from .noise import NoiseDraw, noise_domain
from .reports import JSONScalar, Report
from .scope import Scope

__all__ = [
    "OTHER", "BatchFrame", "Payload", "aggregate", "canonical_bytes", "envelope", "fold", "noise_draws",
    "payload_object", "reference_render", "scoped_records", "sha256_hex", "value_key",
]  # fmt: skip

OTHER = "(other)"


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

    def pretty_start(self, limit: int) -> tuple[str, bool]:
        """The first ``limit`` characters of the payload pretty-printed
        (``json.dumps(obj, indent=2, ensure_ascii=False)``), and whether there is more.

        Decodes no more of a long list of reports than those characters show: the pretty
        text of a list cut after some items starts exactly as that of the whole list,
        until the end of the last item kept, and is at least as long as their compact text.
        """
        size = 4 * limit + 4096
        while size < len(self.body):
            # Only a character cut in two at the end can be invalid here; it is dropped.
            start = _pretty_start(self.body[:size].decode("utf-8", "ignore"), limit)
            if start is not None:
                return start
            size *= 4
        start = _pretty_start(self.body.decode("utf-8"), limit, whole=True)
        assert start is not None
        return start


_DECODER = json.JSONDecoder()
_WHITESPACE = frozenset(" \t\n\r")  # JSON's; "" (the end) is not in it


def _skip(text: str, at: int) -> int:
    while text[at : at + 1] in _WHITESPACE:
        at += 1
    return at


def _pretty_start(text: str, limit: int, *, whole: bool = False) -> tuple[str, bool] | None:
    """:meth:`Payload.pretty_start` of ``text``; None if ``text`` is only the start of the
    payload and that start did not reach ``limit`` characters of a list."""
    decode = _DECODER.raw_decode
    partial: dict[str, Any] = {}
    cut = False
    try:
        at = _skip(text, 0)
        if text[at : at + 1] != "{":
            raise ValueError("a payload is a JSON object")
        at = _skip(text, at + 1)
        while not cut and text[at : at + 1] == '"':
            key, at = decode(text, at)
            at = _skip(text, _skip(text, at) + 1)  # past the colon
            if text[at : at + 1] == "[":
                items: list[Any] = []
                start = at = _skip(text, at + 1)
                while text[at : at + 1] != "]":
                    if at - start >= limit:
                        cut = True
                        break
                    item, at = decode(text, at)
                    items.append(item)
                    at = _skip(text, at)
                    if text[at : at + 1] == ",":
                        at = _skip(text, at + 1)
                else:
                    at += 1
                partial[key] = items
            else:
                partial[key], at = decode(text, at)
            at = _skip(text, at)
            if text[at : at + 1] == ",":
                at = _skip(text, at + 1)
    except ValueError:
        if whole:
            raise
        return None
    if not cut and not whole:
        return None  # the members after the list may be past the end of ``text``
    pretty = json.dumps(partial, indent=2, ensure_ascii=False)
    return pretty[:limit], cut or len(pretty) > limit


@dataclass(frozen=True)
class BatchFrame:
    """Who a batch is from and what window it covers: the payload's envelope."""

    app_id: str
    batch_id: str
    manifest_version: int
    window_start: str
    window_end: str


def reference_render(
    frame: BatchFrame, manifest: Manifest, scope: Scope, reports: Iterable[Report], *, noise_seed: bytes | None = None
) -> Payload:
    """The payload, the slow and obvious way (one dict per report, then ``json.dumps``):
    the reference that :meth:`~tray_app.core.rules.columns.ReportColumns.render`, which
    the broker uses, is tested against byte for byte. ``noise_seed`` is the batch's secret
    (needed only by a scope with noise)."""
    return Payload.of(payload_object(frame, manifest, scope, reports, noise_seed=noise_seed))


def envelope(frame: BatchFrame, scope: Scope) -> dict[str, Any]:
    """Everything in a payload but its reports or aggregates."""
    return {
        "app_id": frame.app_id,
        "batch_id": frame.batch_id,
        "manifest_version": frame.manifest_version,
        "window": {"start": frame.window_start, "end": frame.window_end},
        "scope": scope.to_obj(),
    }


def payload_object(
    frame: BatchFrame, manifest: Manifest, scope: Scope, reports: Iterable[Report], *, noise_seed: bytes | None = None
) -> dict[str, Any]:
    obj = envelope(frame, scope)
    scoped = scoped_records(manifest, scope, reports, noise_seed=noise_seed)
    if scope.mode == "aggregate":
        obj["aggregates"] = aggregate(scope.fields, scoped, manifest.min_count)
    else:
        obj["reports"] = list(scoped)
    return obj


def scoped_records(
    manifest: Manifest, scope: Scope, reports: Iterable[Report], *, noise_seed: bytes | None = None
) -> Iterable[Report]:
    """Each report as the scope sends it: its included fields, coarsened, then with noise
    (drawn from ``noise_seed``, the batch's secret), in scope order."""
    fields = scope.fields
    coarse = {name: (_kind(manifest, name), level) for name, level in scope.coarsen.items()}
    noisy = noise_draws(manifest, scope, noise_seed)
    for index, report in enumerate(reports):
        out: Report = {}
        for name in fields:
            if name in report:
                value = report[name]
                if name in coarse:
                    kind, level = coarse[name]
                    value = coarsen_value(kind, level, value)
                if name in noisy:
                    value = noisy[name].value(index, value)
                out[name] = value
        yield out


def noise_draws(manifest: Manifest, scope: Scope, noise_seed: bytes | None) -> dict[str, NoiseDraw]:
    """The draw of each field the scope adds noise to, from the batch's secret seed."""
    if not scope.noise:
        return {}
    if noise_seed is None:
        # Only a batch whose reports are gone has no seed, and it renders nothing any more.
        raise ScopeError("this batch keeps no secret to draw noise from, so it cannot be shown with noise")
    draws = {}
    for name, epsilon in scope.noise.items():
        spec = manifest.field(name)
        if spec is None or spec.noise is None:
            raise ScopeError(f"{manifest.name} offers no noise for '{name}'")
        draws[name] = NoiseDraw(noise_seed, name, epsilon, noise_domain(spec))
    return draws


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
