"""App manifests: parse TOML or JSON, validate every key, compare versions.

A manifest is the app's promise of what it sends and why. Validation is strict on
purpose: an unknown key is refused rather than ignored, because a misspelt
``sensitivty`` would otherwise quietly make an identifying field look anonymous.
Every refusal names the key (``fields[2].type``) and says what to write instead.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from ..errors import ConflictError, ManifestError, TrayError
from .canonical_json import canonical_json
from .consent import AppStatus
from .noise import NOISE_TYPES, epsilon_problem
from .preview_text import JOINERS, MANIFEST_UNSAFE, shown_value
from .windows import CADENCES, Cadence

FieldType = Literal["string", "integer", "number", "boolean", "timestamp", "version", "enum"]
Sensitivity = Literal["anonymous", "device", "pseudonymous", "identifying"]

FIELD_TYPES: tuple[FieldType, ...] = (
    "string",
    "integer",
    "number",
    "boolean",
    "timestamp",
    "version",
    "enum",
)
SENSITIVITIES: tuple[Sensitivity, ...] = ("anonymous", "device", "pseudonymous", "identifying")
COARSEN_LEVELS: Mapping[str, tuple[str, ...]] = {
    "timestamp": ("hour", "day", "week", "month"),
    "version": ("major", "minor"),
    "integer": ("bucket",),
    "number": ("bucket",),
}
DEFAULT_MIN_COUNT = 5
MAX_MANIFEST_BYTES = 256 * 1024
MAX_FIELDS = 200
MAX_ENUM_VALUES = 500
MAX_SERVICE_NAMES = 100  # [otlp] service_names
MAX_SERVICE_NAME_LENGTH = 256
_SHOWN = 60  # the longest a value is quoted in an error (shown_value)

_TOP_KEYS = {
    "app_id", "name", "version", "vendor", "endpoint", "privacy_policy", "retention_days",
    "purpose", "cadence", "auth", "min_count", "fields", "format", "otlp", "dap",
}  # fmt: skip
_FIELD_KEYS = {
    "name", "type", "description", "required", "sensitivity", "values", "expires", "coarsen", "source", "noise",
}  # fmt: skip
_OTLP_KEYS = {"service_names"}
_DAP_KEYS = {"helper", "leader_operator", "helper_operator", "time_precision", "min_batch_size", "tasks"}
_DAP_TASK_KEYS = {"task_id", "field", "vdaf", "bits", "chunk_length"}
MAX_DAP_TIME_PRECISION = 366 * 24 * 3600  # a year: coarser would put every report of a year at one instant
MAX_DAP_BATCH_SIZE = 1_000_000_000
MAX_SUM_BITS = 64  # Prio3Sum's measurement fits an unsigned 64-bit integer (what libprio and Janus take)
# A format = "otlp" endpoint is a collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is.
_OTLP_SIGNAL_PATH = re.compile(r"/v1/(?:logs|metrics|traces)/?\Z")
MAX_KEY_PARTS = 16
# A key (or [table] header) at the start of a line with more than MAX_KEY_PARTS parts.
_LONG_DOTTED_KEY = re.compile(
    r"""^[ \t]*\[{0,2}[ \t]*(?:(?:[A-Za-z0-9_-]+|"[^"\n]*"|'[^'\n]*')[ \t]*\.[ \t]*)""" + f"{{{MAX_KEY_PARTS}}}",
    re.MULTILINE,
)
_APP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*)+$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
# Headers the forwarder sets itself; a manifest may not smuggle a secret into them.
_RESERVED_HEADERS = {
    "host", "content-length", "content-type", "content-encoding", "transfer-encoding",
    "connection", "idempotency-key", "user-agent", "te", "upgrade", "trailer",
}  # fmt: skip
# Text shown to a person: the characters refused, and why, are in preview_text.py.


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    description: str
    required: bool = False
    sensitivity: Sensitivity = "anonymous"
    values: tuple[str, ...] = ()
    expires: date | None = None
    coarsen: str | None = None
    # Where an OTLP log record or data point carries the field (otlp_wire.parse_source's
    # grammar); None is the default, ``attr:<name>``.
    source: str | None = None
    # The epsilon of the randomized response the vendor offers (boolean and enum fields
    # only, rules/noise.py): the most a scope may name for it. None: no noise is offered.
    noise: float | None = None

    @property
    def coarsen_levels(self) -> tuple[str, ...]:
        return COARSEN_LEVELS.get(self.type, ())

    @property
    def otlp_source(self) -> str:
        """The field's ``source``, or its default ``attr:<name>``."""
        return self.source or f"attr:{self.name}"

    def expired(self, today: date) -> bool:
        return self.expires is not None and today > self.expires

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "description": self.description,
            "required": self.required,
            "sensitivity": self.sensitivity,
        }
        if self.values:
            obj["values"] = list(self.values)
        if self.expires is not None:
            obj["expires"] = self.expires.isoformat()
        if self.coarsen is not None:
            obj["coarsen"] = self.coarsen
        if self.source is not None:
            obj["source"] = self.source
        if self.noise is not None:  # left out when absent: older manifests keep their stored text
            obj["noise"] = self.noise
        return obj


class AuthKind(StrEnum):
    """How a vendor wants its secret (the manifest's ``auth``)."""

    NONE = "none"  # no secret: the keyring is never touched
    BEARER = "bearer"  # the secret in ``Authorization: Bearer <secret>``
    HEADER = "header"  # the secret as the value of the header the manifest names (``header:<Name>``)


@dataclass(frozen=True)
class Auth:
    """A manifest's ``auth``, parsed once (:func:`parse_auth`); ``str(auth)`` is its
    manifest spelling (``none``, ``bearer``, ``header:X-Api-Key``)."""

    kind: AuthKind
    header: str | None = None  # the header's name, with AuthKind.HEADER only

    def __str__(self) -> str:
        return f"header:{self.header}" if self.kind == AuthKind.HEADER else self.kind.value

    @property
    def needs_secret(self) -> bool:
        """Whether the vendor needs a secret from the keyring."""
        return self.kind != AuthKind.NONE


class WireFormat(StrEnum):
    """What the **vendor's** endpoint speaks (the manifest's ``format``): how an approved batch
    is encoded and where it is POSTed. It says nothing about what the app sends to the tray:
    an app sends OpenTelemetry in when its manifest has an ``[otlp]`` table, whatever its
    ``format``, so OTLP may come in and telemetry-tray JSON go out, or the reverse."""

    TELEMETRY_TRAY = "telemetry-tray"  # the default: the canonical JSON payload, POSTed to ``endpoint`` itself
    OTLP = "otlp"  # an OTLP/HTTP JSON request (canonical bytes) to ``<endpoint>/v1/logs`` or ``/v1/metrics``
    SENTRY = "sentry"  # a Sentry envelope of crash reports to the DSN in ``endpoint``: refused until supported
    DAP = "dap"  # DAP-09 reports (Prio3 shares), one per report and task, PUT to the leader aggregator (``[dap]``)


# The formats planned but not built yet, and the feature each waits for (said in the refusal).
_FORMATS_NOT_YET: Mapping[WireFormat, str] = {
    WireFormat.SENTRY: "forwarding crash reports to a Sentry DSN",
}

DapVdaf = Literal["count", "sum", "histogram"]
# The field type each VDAF measures (DESIGN.md, the [dap] table).
DAP_VDAF_TYPES: Mapping[str, FieldType] = {"count": "boolean", "sum": "integer", "histogram": "enum"}


@dataclass(frozen=True)
class DapTask:
    """One ``[[dap.tasks]]`` entry: the DAP task that measures one declared field."""

    task_id: str  # 32 bytes in URL-safe base64 without padding, as the manifest spells it
    field: str
    vdaf: DapVdaf
    bits: int | None = None  # sum: values are clamped to 0..2^bits-1
    chunk_length: int | None = None  # histogram: as the manifest gives it (None: optimal_chunk_length)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"task_id": self.task_id, "field": self.field, "vdaf": self.vdaf}
        if self.bits is not None:
            obj["bits"] = self.bits
        if self.chunk_length is not None:
            obj["chunk_length"] = self.chunk_length
        return obj


@dataclass(frozen=True)
class DapConfig:
    """A ``format = "dap"`` manifest's ``[dap]`` table; the leader is the manifest's ``endpoint``."""

    helper: str
    leader_operator: str
    helper_operator: str
    time_precision: int  # seconds; report times are rounded down to it
    min_batch_size: int
    tasks: tuple[DapTask, ...]

    def task_for(self, field_name: str) -> DapTask | None:
        for task in self.tasks:
            if task.field == field_name:
                return task
        return None

    def to_obj(self) -> dict[str, Any]:
        return {
            "helper": self.helper,
            "leader_operator": self.leader_operator,
            "helper_operator": self.helper_operator,
            "time_precision": self.time_precision,
            "min_batch_size": self.min_batch_size,
            "tasks": [task.to_obj() for task in self.tasks],
        }


_FORMAT_WORDS: Mapping[WireFormat, str] = {
    WireFormat.TELEMETRY_TRAY: "Telemetry Tray's own JSON",
    WireFormat.OTLP: "OpenTelemetry (OTLP)",
    WireFormat.SENTRY: "Sentry envelopes",
    WireFormat.DAP: "DAP reports",
}

# The field types each OTLP source can fill (otlp_wire.to_report gives a time as an ISO 8601
# timestamp, a severity as its name TRACE..FATAL, an event or metric name as a string, a
# point's value as a number). ``attr:``, ``resource:`` and ``body`` carry whatever the app
# put there, so any type may fit them.
_SOURCE_TYPES: Mapping[str, tuple[FieldType, ...]] = {
    "time": ("timestamp",),
    "severity": ("string", "enum"),
    "event_name": ("string", "enum"),
    "metric": ("string", "enum"),
    "value": ("integer", "number"),
}


@dataclass(frozen=True)
class Manifest:
    app_id: str
    name: str
    version: int
    vendor: str
    endpoint: str
    privacy_policy: str
    retention_days: int
    purpose: str
    cadence: Cadence
    auth: Auth
    fields: tuple[FieldSpec, ...]
    min_count: int = DEFAULT_MIN_COUNT
    format: WireFormat = WireFormat.TELEMETRY_TRAY  # what the vendor's endpoint speaks
    # The OTLP resource ``service.name`` values the app's token may send under (``[otlp]``);
    # empty: the app sends no OTLP. Independent of ``format``.
    otlp_service_names: tuple[str, ...] = ()
    # The ``[dap]`` table: present exactly when ``format`` is ``dap``.
    dap: DapConfig | None = None

    def field(self, name: str) -> FieldSpec | None:
        for spec in self.fields:
            if spec.name == name:
                return spec
        return None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)

    @property
    def endpoint_host(self) -> str:
        return urlsplit(self.endpoint).hostname or ""

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "app_id": self.app_id,
            "name": self.name,
            "version": self.version,
            "vendor": self.vendor,
            "endpoint": self.endpoint,
            "privacy_policy": self.privacy_policy,
            "retention_days": self.retention_days,
            "purpose": self.purpose,
            "cadence": self.cadence,
            "auth": str(self.auth),
            "min_count": self.min_count,
            "fields": [spec.to_obj() for spec in self.fields],
        }
        # Defaults are left out, so a manifest without the newer keys keeps the stored text
        # (and the hash) it had before they existed.
        if self.format != WireFormat.TELEMETRY_TRAY:
            obj["format"] = self.format.value
        if self.otlp_service_names:
            obj["otlp"] = {"service_names": list(self.otlp_service_names)}
        if self.dap is not None:
            obj["dap"] = self.dap.to_obj()
        return obj

    def to_json(self) -> str:
        return canonical_json(self.to_obj())


@dataclass(frozen=True)
class ManifestChange:
    """What a new manifest version changes, as a person needs to know it."""

    old_version: int
    new_version: int
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    endpoint_changed: bool
    reconsent: tuple[str, ...] = ()

    @property
    def excluded_until_reviewed(self) -> tuple[str, ...]:
        return tuple(sorted((*self.added, *self.changed)))


def diff_manifests(old: Manifest, new: Manifest) -> ManifestChange:
    old_fields = {spec.name: spec for spec in old.fields}
    new_fields = {spec.name: spec for spec in new.fields}
    changed = [
        name for name, spec in new_fields.items() if name in old_fields and _meaning(old_fields[name]) != _meaning(spec)
    ]
    return ManifestChange(
        old_version=old.version,
        new_version=new.version,
        added=tuple(sorted(set(new_fields) - set(old_fields))),
        removed=tuple(sorted(set(old_fields) - set(new_fields))),
        changed=tuple(sorted(changed)),
        endpoint_changed=old.endpoint != new.endpoint,
        reconsent=_reconsent_reasons(old, new),
    )


@dataclass(frozen=True)
class Upgrade:
    """What registering a newer manifest version does: its change, and the app's status after."""

    change: ManifestChange
    status: AppStatus


def upgrade(old: Manifest, new: Manifest, status: AppStatus) -> Upgrade | None:
    """The version rule, for ``new`` sent for an app registered with ``old`` whose status is ``status``.

    The same version with the same content is nothing new (None). The same version with
    other content, or an older version, is refused (:class:`ConflictError`): a version
    names one content. A newer version is taken; if it changes what the person
    consented to (where the data goes, who gets it, why, how long it is kept) an allowed
    app awaits their consent again; a blocked or waiting app stays as it is.
    """
    if new.version < old.version:
        raise ConflictError(f"manifest version {new.version} is older than the registered version {old.version}")
    if new.version == old.version:
        if new.to_json() != old.to_json():
            raise ConflictError(
                f"manifest version {new.version} is already registered with different content; "
                "raise 'version' to change it"
            )
        return None
    change = diff_manifests(old, new)
    again = change.reconsent and status == AppStatus.ALLOWED
    return Upgrade(change, AppStatus.AWAITING_CONSENT if again else status)


def _reconsent_reasons(old: Manifest, new: Manifest) -> tuple[str, ...]:
    """What in a new version undoes the person's consent to the app as a whole: where the
    data goes, who gets it, why, and (longer) how long they keep it."""
    reasons = []
    if old.endpoint != new.endpoint:
        reasons.append(f"it now sends to {new.endpoint_host or new.endpoint}")
    if old.vendor != new.vendor:
        reasons.append(f"the vendor is now {new.vendor}")
    if old.purpose != new.purpose:
        reasons.append("its stated purpose changed")
    if new.retention_days > old.retention_days:
        reasons.append(f"the vendor now keeps data {new.retention_days} days, not {old.retention_days}")
    if old.format != new.format:
        reasons.append(f"its vendor now receives {_FORMAT_WORDS[new.format]}, not {_FORMAT_WORDS[old.format]}")
    if old.otlp_service_names != new.otlp_service_names:
        reasons.append(_service_names_reason(new.otlp_service_names))
    if old.dap != new.dap and old.format == new.format == WireFormat.DAP:
        reasons.append(_dap_reason(old.dap, new.dap))
    return tuple(reasons)


def _dap_reason(old: DapConfig | None, new: DapConfig | None) -> str:
    """What changed in the ``[dap]`` table, in words: who holds the two halves, where the
    helper is, which fields are measured and how, what is revealed."""
    if old is None or new is None:
        return "its split aggregation changed"
    if (old.leader_operator, old.helper_operator) != (new.leader_operator, new.helper_operator):
        return f"the two halves are now held by {new.leader_operator} and {new.helper_operator}"
    if old.helper != new.helper:
        return f"the helper aggregator is now {urlsplit(new.helper).hostname or new.helper}"
    if old.min_batch_size != new.min_batch_size:
        return f"answers are now revealed summed over at least {new.min_batch_size} reports, not {old.min_batch_size}"
    if old.time_precision != new.time_precision:
        return f"report times are now rounded to {new.time_precision} seconds, not {old.time_precision}"
    return "its split aggregation tasks changed (which fields are measured, or how)"


def _service_names_reason(names: tuple[str, ...]) -> str:
    if not names:
        return "it no longer sends OpenTelemetry data"
    shown = ", ".join(shown_value(name, _SHOWN) for name in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"it now sends OpenTelemetry data as the service{'s' if len(names) > 1 else ''} {shown}{more}"


def _meaning(spec: FieldSpec) -> tuple[object, ...]:
    # A field whose type, sensitivity, allowed values or OTLP source change is a new field
    # to the person: what they agreed to before does not cover it. A changed ``noise`` offer
    # is not: the values mean what they did, and a saved scope's noise is fitted to the new
    # offer (scope.fit_scope: lowered to it, or the field left out when it is withdrawn).
    return (spec.type, spec.sensitivity, spec.values, spec.otlp_source)


# -- parsing -------------------------------------------------------------------------


def load_manifest(path: Path) -> Manifest:
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise ManifestError("", f"the file is {size} bytes; a manifest may be at most {MAX_MANIFEST_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError("", f"cannot read {path}: {exc.strerror or exc}") from None
    fmt: Literal["toml", "json"] | None = None
    if path.suffix.lower() == ".toml":
        fmt = "toml"
    elif path.suffix.lower() == ".json":
        fmt = "json"
    return parse_manifest(data, fmt)


def parse_manifest(data: bytes | str, fmt: Literal["toml", "json"] | None = None) -> Manifest:
    """Parse manifest text; ``fmt=None`` takes JSON if it starts with ``{``, else TOML."""
    if isinstance(data, bytes):
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError("", f"it is {len(data)} bytes; a manifest may be at most {MAX_MANIFEST_BYTES}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError("", "it is not UTF-8 text; save it as UTF-8") from None
    else:
        text = data
    # Editors on Windows often start UTF-8 files with a byte order mark; RFC 8259 lets a
    # JSON reader ignore it, and it means nothing in TOML either.
    text = text.removeprefix("\ufeff")
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "toml"
    if fmt == "json":
        try:
            obj = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                "", f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
            ) from None
        except (ValueError, RecursionError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ManifestError("", f"it is not valid JSON ({detail})") from None
    else:
        if _LONG_DOTTED_KEY.search(text):
            # tomllib takes time quadratic in a dotted key's parts: minutes for one
            # that fills the size limit. A manifest's keys are never more than two deep.
            raise ManifestError("", f"it is not valid TOML (a key of more than {MAX_KEY_PARTS} dotted parts)")
        try:
            obj = tomllib.loads(text)
        except (ValueError, RecursionError) as exc:  # TOMLDecodeError is a ValueError
            detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise ManifestError("", f"it is not valid TOML ({detail})") from None
    return manifest_from_obj(obj)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # TOML refuses a repeated key; JSON would silently keep the last one, which could
    # turn "identifying" into "anonymous" behind a reviewer's back.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ManifestError(_key_name(key), "is given twice in one object; give it once")
        obj[key] = value
    return obj


def manifest_from_obj(obj: object) -> Manifest:
    """Validate a decoded manifest (a mapping) and build a :class:`Manifest`."""
    if not isinstance(obj, Mapping):
        raise ManifestError("", "it must be a table (TOML) or an object (JSON) of keys")
    top = cast(Mapping[str, object], obj)
    _no_unknown_keys("", top, _TOP_KEYS)
    app_id = _text(top, "app_id", max_len=128)
    if not _APP_ID.match(app_id):
        raise ManifestError("app_id", f"'{app_id}' is not a reverse-DNS name; write it like 'org.example.photoedit'")
    cadence = _optional(top, "cadence", "daily")
    if cadence not in CADENCES:
        raise ManifestError("cadence", f"{shown_value(cadence, _SHOWN)} is not one of {', '.join(CADENCES)}")
    fields_obj = top.get("fields")
    if not isinstance(fields_obj, Sequence) or isinstance(fields_obj, str | bytes) or not fields_obj:
        raise ManifestError("fields", "declare at least one field as a list of tables ([[fields]] in TOML)")
    if len(fields_obj) > MAX_FIELDS:
        raise ManifestError("fields", f"{len(fields_obj)} fields declared; at most {MAX_FIELDS} are allowed")
    fields = tuple(_field(i, spec) for i, spec in enumerate(fields_obj))
    seen: set[str] = set()
    for i, spec in enumerate(fields):
        if spec.name in seen:
            raise ManifestError(f"fields[{i}].name", f"'{spec.name}' is declared twice; give each field one entry")
        seen.add(spec.name)
    _distinct_sources(fields)
    wire = _format(top)
    dap = _dap(top, wire, fields)
    return Manifest(
        app_id=app_id,
        name=_text(top, "name", max_len=100),
        version=_int(top, "version", low=1, high=2**31 - 1),
        vendor=_text(top, "vendor", max_len=100),
        endpoint=_endpoint(top),
        privacy_policy=_url(top, "privacy_policy"),
        retention_days=_int(top, "retention_days", low=1, high=36500),
        purpose=_text(top, "purpose", max_len=1000, multiline=True),
        cadence=cadence,
        auth=_auth(top),
        fields=fields,
        min_count=_int(top, "min_count", low=2, high=1_000_000, default=DEFAULT_MIN_COUNT),
        format=wire,
        otlp_service_names=_otlp_service_names(top),
        dap=dap,
    )


def _field(index: int, obj: object) -> FieldSpec:
    where = f"fields[{index}]"
    if not isinstance(obj, Mapping):
        raise ManifestError(where, "each field must be a table with name, type and description")
    spec = cast(Mapping[str, object], obj)
    _no_unknown_keys(where, spec, _FIELD_KEYS)
    name = spec.get("name")
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        raise ManifestError(
            f"{where}.name",
            f"{shown_value(name, _SHOWN)} is not a field name;"
            " use letters, digits and _ (up to 64, not starting with a digit)",
        )
    where = f"fields[{index}] ({name})"
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        raise ManifestError(f"{where}.type", f"{shown_value(ftype, _SHOWN)} is not one of {', '.join(FIELD_TYPES)}")
    sensitivity = _optional(spec, "sensitivity", "anonymous")
    if sensitivity not in SENSITIVITIES:
        shown = shown_value(sensitivity, _SHOWN)
        raise ManifestError(f"{where}.sensitivity", f"{shown} is not one of {', '.join(SENSITIVITIES)}")
    required = _optional(spec, "required", False)
    if not isinstance(required, bool):
        raise ManifestError(f"{where}.required", f"{shown_value(required, _SHOWN)} is not true or false")
    values: tuple[str, ...] = ()
    if ftype == "enum":
        values = _enum_values(where, spec.get("values"))
    elif "values" in spec:
        raise ManifestError(f"{where}.values", "only fields of type 'enum' take a list of values")
    coarsen = spec.get("coarsen")
    if coarsen is not None:
        levels = COARSEN_LEVELS.get(str(ftype), ())
        if not levels:
            raise ManifestError(f"{where}.coarsen", f"a {ftype} field cannot be coarsened; remove the key")
        if coarsen not in levels:
            raise ManifestError(f"{where}.coarsen", f"{shown_value(coarsen, _SHOWN)} is not one of {', '.join(levels)}")
    return FieldSpec(
        name=name,
        type=ftype,
        description=_text(spec, "description", max_len=500, multiline=True, where=where),
        required=required,
        sensitivity=sensitivity,
        values=values,
        expires=_expires(where, spec.get("expires")),
        coarsen=coarsen,
        source=_source(where, name, ftype, values, spec.get("source")),
        noise=_noise(where, ftype, values, spec.get("noise")),
    )


def _noise(where: str, ftype: FieldType, values: tuple[str, ...], value: object) -> float | None:
    """A field's ``noise`` offer: an epsilon (rules/noise.py's bounds) on a boolean or an
    enum of two values or more, stored as a float (``noise = 1`` is ``1.0``)."""
    if value is None:
        return None
    key = f"{where}.noise"
    if ftype not in NOISE_TYPES:
        raise ManifestError(
            key, f"a {ftype} field cannot take noise (only boolean and enum fields can); remove the key"
        )
    if ftype == "enum" and len(values) < 2:
        raise ManifestError(key, "an enum of one value cannot take noise: every answer is that value; remove the key")
    problem = epsilon_problem(value)
    if problem is not None:
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} {problem}")
    return float(cast(float, value))


# What each source with a fixed type gives, as a refusal says it.
_SOURCE_GIVES = {
    "time": "the record's time as an ISO 8601 timestamp",
    "severity": "the severity's name (TRACE, DEBUG, INFO, WARN, ERROR or FATAL)",
    "event_name": "the log record's event name as text",
    "metric": "the metric's name as text",
    "value": "the data point's value as a number",
}


def _source(where: str, name: str, ftype: FieldType, values: tuple[str, ...], value: object) -> str | None:
    """A field's ``source``: the grammar of otlp_wire.parse_source, and a type that the
    source's value can have. None for the default, ``attr:<name>``, even spelt out."""
    if value is None:
        return None
    key = f"{where}.source"
    if not isinstance(value, str):
        shown = shown_value(value, _SHOWN)
        raise ManifestError(key, f"{shown} is not text; write where an OTLP record carries it, like 'attr:app.feature'")
    bad = _hidden_char(value)
    if bad:
        raise ManifestError(key, f"contains the invisible or control character U+{ord(bad):04X}; remove it")
    if value != value.strip():
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} starts or ends with a space; remove it")
    # Imported here: otlp_wire imports modules (payload, reports) that import this one.
    from .otlp_wire import SEVERITIES, parse_source

    try:
        kind, _ = parse_source(value)
    except ValueError as exc:
        raise ManifestError(key, str(exc)) from None
    fits = _SOURCE_TYPES.get(kind)
    if fits is not None and ftype not in fits:
        types = " or ".join(f"'{name}'" for name in fits)
        raise ManifestError(key, f"a '{kind}' source gives {_SOURCE_GIVES[kind]}; make the field's type {types}")
    if kind == "severity" and ftype == "enum":
        never = [v for v in values if v not in SEVERITIES]
        if never:
            raise ManifestError(
                f"{where}.values",
                f"{shown_value(never[0], _SHOWN)} can never come from a 'severity' source; "
                f"its values are {', '.join(SEVERITIES)} (WARN, not WARNING)",
            )
    # The default spelt out is the default: the same content, the same stored text.
    return None if value == f"attr:{name}" else value


def _distinct_sources(fields: Sequence[FieldSpec]) -> None:
    """No two fields take the same place of an OTLP record (a field without a ``source``
    takes ``attr:<its name>``): one value would be sent twice under two names, and a
    ``format = "otlp"`` vendor would get two values for one place."""
    taken: dict[str, str] = {}
    for i, spec in enumerate(fields):
        other = taken.setdefault(spec.otlp_source, spec.name)
        if other != spec.name:
            key = f"fields[{i}] ({spec.name}).source" if spec.source else f"fields[{i}] ({spec.name}).name"
            raise ManifestError(
                key, f"'{spec.otlp_source}' is already the source of the field '{other}'; give each field its own"
            )


def _format(top: Mapping[str, object]) -> WireFormat:
    value = _optional(top, "format", WireFormat.TELEMETRY_TRAY.value)
    supported = [fmt.value for fmt in WireFormat if fmt not in _FORMATS_NOT_YET]
    try:
        wire = WireFormat(value) if isinstance(value, str) else None
    except ValueError:
        wire = None
    if wire is None:
        raise ManifestError("format", f"{shown_value(value, _SHOWN)} is not one of {', '.join(supported)}")
    if wire in _FORMATS_NOT_YET:
        raise ManifestError(
            "format",
            f"'{wire.value}' is not supported yet ({_FORMATS_NOT_YET[wire]} is not built); "
            f"use {' or '.join(supported)}",
        )
    return wire


def _dap(top: Mapping[str, object], wire: WireFormat, fields: Sequence[FieldSpec]) -> DapConfig | None:
    """The ``[dap]`` table of a ``format = "dap"`` manifest (and of no other), every key checked."""
    table = top.get("dap")
    if wire != WireFormat.DAP:
        if table is not None:
            raise ManifestError(
                "dap", 'only a format = "dap" manifest takes a [dap] table; add the format or remove it'
            )
        return None
    if table is None:
        raise ManifestError(
            "dap", 'is missing; a format = "dap" manifest needs a [dap] table with the helper and tasks'
        )
    if not isinstance(table, Mapping):
        raise ManifestError("dap", "must be a table ([dap] in TOML, an object in JSON)")
    dap = cast(Mapping[str, object], table)
    _no_unknown_keys("dap", dap, _DAP_KEYS)
    if _optional(top, "auth", AuthKind.NONE.value) != AuthKind.NONE.value:
        raise ManifestError(
            "auth", 'a DAP leader takes reports without credentials; write auth = "none" or leave it out'
        )
    leader = _endpoint(top)
    _dap_base_url("endpoint", leader)
    try:
        helper = _url(dap, "helper")
    except ManifestError as exc:
        raise ManifestError("dap.helper", exc.problem) from None
    helper_parts = urlsplit(helper)
    key = "dap.helper"
    if helper_parts.scheme == "http" and not is_loopback_host(helper_parts.hostname or ""):
        raise ManifestError(key, f"'{helper}' is plain http; use https (http is allowed only for 127.0.0.1)")
    if helper_parts.username or helper_parts.password:
        raise ManifestError(key, "remove the user name or password from the URL")
    _dap_base_url(key, helper)
    if _origin(helper) == _origin(leader):
        raise ManifestError(key, f"'{helper}' is the leader's own server (endpoint); the helper must be another one")
    operators = [_text(dap, name, max_len=100, where="dap") for name in ("leader_operator", "helper_operator")]
    if _same_name(*operators):
        raise ManifestError(
            "dap.helper_operator",
            f"'{operators[1]}' also runs the leader; split aggregation needs two different organisations",
        )
    time_precision = _dap_int(dap, "time_precision", 1, MAX_DAP_TIME_PRECISION, "seconds, like 3600 for an hour")
    min_batch_size = _dap_int(dap, "min_batch_size", 2, MAX_DAP_BATCH_SIZE, "reports, like 100")
    return DapConfig(
        helper=helper,
        leader_operator=operators[0],
        helper_operator=operators[1],
        time_precision=time_precision,
        min_batch_size=min_batch_size,
        tasks=_dap_tasks(dap.get("tasks"), fields),
    )


def _dap_base_url(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ManifestError(key, f"'{url}' has a '?' or '#' part; give the aggregator's base URL (DAP adds its paths)")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


def _dap_int(dap: Mapping[str, object], name: str, low: int, high: int, unit: str) -> int:
    key = f"dap.{name}"
    value = dap.get(name)
    if value is None:
        raise ManifestError(key, f"is missing; give it in {unit}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} is not a whole number of {unit}")
    if not low <= value <= high:
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} is out of range; use {low} to {high}")
    return value


def _dap_tasks(tasks: object, fields: Sequence[FieldSpec]) -> tuple[DapTask, ...]:
    if not isinstance(tasks, Sequence) or isinstance(tasks, str | bytes) or not tasks:
        raise ManifestError("dap.tasks", "declare one task per measured field ([[dap.tasks]] in TOML)")
    if len(tasks) > MAX_FIELDS:
        raise ManifestError("dap.tasks", f"{len(tasks)} tasks; at most {MAX_FIELDS} are allowed")
    from .prio import decode_task_id  # the prio package loads no cryptography on import

    declared = {spec.name: spec for spec in fields}
    out: list[DapTask] = []
    for i, obj in enumerate(tasks):
        where = f"dap.tasks[{i}]"
        if not isinstance(obj, Mapping):
            raise ManifestError(where, "each task must be a table with task_id, field and vdaf")
        task = cast(Mapping[str, object], obj)
        _no_unknown_keys(where, task, _DAP_TASK_KEYS)
        task_id = task.get("task_id")
        if not isinstance(task_id, str):
            raise ManifestError(f"{where}.task_id", "is missing; give the task's id as the DAP service shows it")
        try:
            decode_task_id(task_id)
        except TrayError as exc:
            raise ManifestError(f"{where}.task_id", f"{shown_value(task_id, _SHOWN)}: {exc.message}") from None
        if any(other.task_id == task_id for other in out):
            raise ManifestError(f"{where}.task_id", "is the id of another task too; each task has its own id")
        name = task.get("field")
        spec = declared.get(name) if isinstance(name, str) else None
        if spec is None:
            raise ManifestError(f"{where}.field", f"{shown_value(name, _SHOWN)} is not a declared field")
        if any(other.field == spec.name for other in out):
            raise ManifestError(f"{where}.field", f"'{spec.name}' is measured by another task; one task per field")
        if spec.noise is not None:
            # A DAP report carries no epsilon, so the vendor could not correct noisy totals.
            raise ManifestError(
                f"{where}.field",
                f"'{spec.name}' offers noise, which DAP reports cannot state (the vendor could not correct "
                "its totals); remove its noise offer: split aggregation already hides each answer",
            )
        vdaf = task.get("vdaf")
        if vdaf not in DAP_VDAF_TYPES:
            raise ManifestError(f"{where}.vdaf", f"{shown_value(vdaf, _SHOWN)} is not one of count, sum, histogram")
        wanted = DAP_VDAF_TYPES[str(vdaf)]
        if spec.type != wanted:
            fits = (
                next(v for v, t in DAP_VDAF_TYPES.items() if t == spec.type)
                if spec.type in DAP_VDAF_TYPES.values()
                else None
            )
            hint = f'use vdaf = "{fits}"' if fits else "only boolean, integer and enum fields can be measured"
            raise ManifestError(
                f"{where}.vdaf", f"'{vdaf}' measures a {wanted} field, and '{spec.name}' is {spec.type}; {hint}"
            )
        bits = task.get("bits")
        if vdaf == "sum":
            if bits is None:
                raise ManifestError(
                    f"{where}.bits",
                    f"is missing; a sum needs bits (values are clamped to 0..2^bits-1), 1 to {MAX_SUM_BITS}",
                )
            if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_SUM_BITS:
                raise ManifestError(
                    f"{where}.bits", f"{shown_value(bits, _SHOWN)} is not a whole number from 1 to {MAX_SUM_BITS}"
                )
        elif bits is not None:
            raise ManifestError(f"{where}.bits", "only a sum takes bits; remove the key")
        chunk = task.get("chunk_length")
        if chunk is not None:
            if vdaf != "histogram":
                raise ManifestError(f"{where}.chunk_length", "only a histogram takes chunk_length; remove the key")
            if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= len(spec.values):
                raise ManifestError(
                    f"{where}.chunk_length",
                    f"{shown_value(chunk, _SHOWN)} is not a whole number from 1 to {len(spec.values)} (its values)",
                )
        out.append(DapTask(task_id, spec.name, cast(DapVdaf, vdaf), bits, chunk))
    return tuple(out)


def _otlp_service_names(top: Mapping[str, object]) -> tuple[str, ...]:
    """``[otlp] service_names``: the resource ``service.name`` values the app's token may
    send OTLP under, matched exactly. No table: the app sends no OTLP."""
    table = top.get("otlp")
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise ManifestError("otlp", 'must be a table ([otlp] in TOML, an object in JSON) with service_names = ["..."]')
    _no_unknown_keys("otlp", cast(Mapping[str, object], table), _OTLP_KEYS)
    key = "otlp.service_names"
    names = table.get("service_names")
    example = 'like ["photoedit"]'
    if names is None:
        raise ManifestError(key, f"is missing; list the service.name values its OpenTelemetry SDK sends, {example}")
    if not isinstance(names, Sequence) or isinstance(names, str | bytes) or not names:
        raise ManifestError(key, f"list one or more service.name values, {example}")
    if len(names) > MAX_SERVICE_NAMES:
        raise ManifestError(key, f"{len(names)} names; at most {MAX_SERVICE_NAMES} are allowed")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or len(name) > MAX_SERVICE_NAME_LENGTH:
            shown = shown_value(name, _SHOWN)
            raise ManifestError(key, f"{shown} is not a string of 1 to {MAX_SERVICE_NAME_LENGTH} characters")
        bad = _hidden_char(name)
        if bad:
            raise ManifestError(key, f"contains the invisible or control character U+{ord(bad):04X}; remove it")
        if name != name.strip():
            raise ManifestError(
                key, f"{shown_value(name, _SHOWN)} starts or ends with a space; service.name is matched exactly"
            )
        if name in out:
            raise ManifestError(key, f"{shown_value(name, _SHOWN)} is listed twice")
        out.append(name)
    return tuple(out)


def _hidden_char(value: str) -> str | None:
    """The first character of an exact-match name (a service name, an attribute key) that
    does not show as itself: the manifest's unsafe characters, joiners included."""
    for ch in value:
        if unicodedata.category(ch) in MANIFEST_UNSAFE:
            return ch
    return None


def _enum_values(where: str, values: object) -> tuple[str, ...]:
    key = f"{where}.values"
    if not isinstance(values, Sequence) or isinstance(values, str | bytes) or not values:
        raise ManifestError(key, "an enum field needs a non-empty list of allowed strings")
    if len(values) > MAX_ENUM_VALUES:
        raise ManifestError(key, f"{len(values)} values; at most {MAX_ENUM_VALUES} are allowed")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value or len(value) > 100 or _unsafe_char(value):
            raise ManifestError(key, f"{shown_value(value, _SHOWN)} is not a plain string of 1 to 100 characters")
        if value in out:
            raise ManifestError(key, f"'{value}' is listed twice")
        out.append(value)
    return tuple(out)


def _expires(where: str, value: object) -> date | None:
    if value is None:
        return None
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ManifestError(f"{where}.expires", f"{shown_value(value, _SHOWN)} is not a date; write it as YYYY-MM-DD")


def _endpoint(top: Mapping[str, object]) -> str:
    url = _url(top, "endpoint")
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise ManifestError("endpoint", f"'{url}' is plain http; use https (http is allowed only for 127.0.0.1)")
    if parts.username or parts.password:
        raise ManifestError("endpoint", "remove the user name or password from the URL; secrets go in the keyring")
    if parts.fragment:
        raise ManifestError("endpoint", "remove the '#' part from the URL")
    if top.get("format") == WireFormat.OTLP and _OTLP_SIGNAL_PATH.search(parts.path):
        raise ManifestError(
            "endpoint",
            f"'{url}' ends with an OTLP signal path; with format = \"otlp\" give the collector's base URL "
            "(/v1/logs and /v1/metrics are added to it)",
        )
    return url


def _url(top: Mapping[str, object], key: str) -> str:
    url = _text(top, key, max_len=2048)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ManifestError(key, f"'{url}' is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ManifestError(
            key, f"'{url}' is not an https:// URL" if key == "endpoint" else f"'{url}' is not an http(s) URL"
        )
    if any(ch.isspace() for ch in url):
        raise ManifestError(key, f"'{url}' contains spaces; percent-encode them")
    return url


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _auth(top: Mapping[str, object]) -> Auth:
    return parse_auth(_optional(top, "auth", AuthKind.NONE.value))


def parse_auth(auth: object) -> Auth:
    """The one grammar of a manifest's ``auth``: ``none``, ``bearer`` or ``header:<Name>``
    (a valid HTTP header name that Telemetry Tray does not set itself)."""
    if isinstance(auth, str) and auth in (AuthKind.NONE, AuthKind.BEARER):
        return Auth(AuthKind(auth))
    if isinstance(auth, str) and auth.startswith("header:"):
        name = auth[len("header:") :]
        if not _HEADER_NAME.fullmatch(name):
            raise ManifestError("auth", f"{shown_value(name, _SHOWN)} is not a valid HTTP header name")
        if name.lower() in _RESERVED_HEADERS or name.lower() == "authorization":
            raise ManifestError("auth", f"the header '{name}' is set by Telemetry Tray itself; pick another name")
        return Auth(AuthKind.HEADER, name)
    raise ManifestError("auth", f"{shown_value(auth, _SHOWN)} is not one of none, bearer, header:<Name>")


def _no_unknown_keys(where: str, obj: Mapping[str, object], allowed: set[str]) -> None:
    unknown = sorted(_key_name(key) for key in obj if key not in allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ManifestError(key, f"unknown key; allowed keys are {', '.join(sorted(allowed))}")
    for key, value in obj.items():
        if value is None:
            raise ManifestError(f"{where}.{key}" if where else key, "is null; leave the key out to use its default")


def _optional(obj: Mapping[str, object], key: str, default: object) -> object:
    value = obj.get(key, default)
    return default if value is None else value


def _text(obj: Mapping[str, object], key: str, *, max_len: int, multiline: bool = False, where: str = "") -> str:
    name = f"{where}.{key}" if where else key
    value = obj.get(key)
    if value is None:
        raise ManifestError(name, "is missing; it is required")
    if not isinstance(value, str):
        raise ManifestError(name, f"{shown_value(value, _SHOWN)} is not text")
    value = value.strip()
    if not value:
        raise ManifestError(name, "is empty; write what it is")
    if len(value) > max_len:
        raise ManifestError(name, f"is {len(value)} characters long; at most {max_len} are allowed")
    bad = _unsafe_char(value, allow_newline=multiline)
    if bad:
        raise ManifestError(name, f"contains the invisible or control character U+{ord(bad):04X}; remove it")
    return value


def _unsafe_char(value: str, allow_newline: bool = False) -> str | None:
    for ch in value:
        if ch == "\n" and allow_newline:
            continue
        if unicodedata.category(ch) in MANIFEST_UNSAFE and ch not in JOINERS:
            return ch
    return None


def _int(obj: Mapping[str, object], key: str, *, low: int, high: int, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None:
        raise ManifestError(key, "is missing; it is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} is not a whole number")
    if not low <= value <= high:
        raise ManifestError(key, f"{shown_value(value, _SHOWN)} is out of range; use {low} to {high}")
    return value


def _key_name(key: object) -> str:
    """A key from the manifest as an error may name it: as it is when it is a plain
    name, else quoted and escaped (no controls or bidi in the message) and shortened."""
    if isinstance(key, str) and _FIELD_NAME.fullmatch(key):
        return key
    return shown_value(key, _SHOWN)
