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

from ..errors import ConflictError, ManifestError
from .canonical_json import canonical_json
from .consent import AppStatus
from .preview_text import JOINERS, MANIFEST_UNSAFE
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

_TOP_KEYS = {
    "app_id", "name", "version", "vendor", "endpoint", "privacy_policy", "retention_days",
    "purpose", "cadence", "auth", "min_count", "fields",
}  # fmt: skip
_FIELD_KEYS = {"name", "type", "description", "required", "sensitivity", "values", "expires", "coarsen"}
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

    @property
    def coarsen_levels(self) -> tuple[str, ...]:
        return COARSEN_LEVELS.get(self.type, ())

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
        return {
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
    return tuple(reasons)


def _meaning(spec: FieldSpec) -> tuple[object, ...]:
    # A field whose type, sensitivity or allowed values change is a new field to the
    # person: what they agreed to before does not cover it.
    return (spec.type, spec.sensitivity, spec.values)


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
        raise ManifestError("cadence", f"{_show(cadence)} is not one of {', '.join(CADENCES)}")
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
            f"{_show(name)} is not a field name; use letters, digits and _ (up to 64, not starting with a digit)",
        )
    where = f"fields[{index}] ({name})"
    ftype = spec.get("type")
    if ftype not in FIELD_TYPES:
        raise ManifestError(f"{where}.type", f"{_show(ftype)} is not one of {', '.join(FIELD_TYPES)}")
    sensitivity = _optional(spec, "sensitivity", "anonymous")
    if sensitivity not in SENSITIVITIES:
        raise ManifestError(f"{where}.sensitivity", f"{_show(sensitivity)} is not one of {', '.join(SENSITIVITIES)}")
    required = _optional(spec, "required", False)
    if not isinstance(required, bool):
        raise ManifestError(f"{where}.required", f"{_show(required)} is not true or false")
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
            raise ManifestError(f"{where}.coarsen", f"{_show(coarsen)} is not one of {', '.join(levels)}")
    return FieldSpec(
        name=name,
        type=ftype,
        description=_text(spec, "description", max_len=500, multiline=True, where=where),
        required=required,
        sensitivity=sensitivity,
        values=values,
        expires=_expires(where, spec.get("expires")),
        coarsen=coarsen,
    )


def _enum_values(where: str, values: object) -> tuple[str, ...]:
    key = f"{where}.values"
    if not isinstance(values, Sequence) or isinstance(values, str | bytes) or not values:
        raise ManifestError(key, "an enum field needs a non-empty list of allowed strings")
    if len(values) > MAX_ENUM_VALUES:
        raise ManifestError(key, f"{len(values)} values; at most {MAX_ENUM_VALUES} are allowed")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value or len(value) > 100 or _unsafe_char(value):
            raise ManifestError(key, f"{_show(value)} is not a plain string of 1 to 100 characters")
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
    raise ManifestError(f"{where}.expires", f"{_show(value)} is not a date; write it as YYYY-MM-DD")


def _endpoint(top: Mapping[str, object]) -> str:
    url = _url(top, "endpoint")
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname or ""):
        raise ManifestError("endpoint", f"'{url}' is plain http; use https (http is allowed only for 127.0.0.1)")
    if parts.username or parts.password:
        raise ManifestError("endpoint", "remove the user name or password from the URL; secrets go in the keyring")
    if parts.fragment:
        raise ManifestError("endpoint", "remove the '#' part from the URL")
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
            raise ManifestError("auth", f"{_show(name)} is not a valid HTTP header name")
        if name.lower() in _RESERVED_HEADERS or name.lower() == "authorization":
            raise ManifestError("auth", f"the header '{name}' is set by Telemetry Tray itself; pick another name")
        return Auth(AuthKind.HEADER, name)
    raise ManifestError("auth", f"{_show(auth)} is not one of none, bearer, header:<Name>")


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
        raise ManifestError(name, f"{_show(value)} is not text")
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
        raise ManifestError(key, f"{_show(value)} is not a whole number")
    if not low <= value <= high:
        raise ManifestError(key, f"{_show(value)} is out of range; use {low} to {high}")
    return value


def _show(value: object) -> str:
    # repr escapes controls, bidi and invisible characters, so the text is safe to show.
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int over 4300 digits, a structure too deep
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _key_name(key: object) -> str:
    """A key from the manifest as an error may name it: as it is when it is a plain
    name, else quoted and escaped (no controls or bidi in the message) and shortened."""
    if isinstance(key, str) and _FIELD_NAME.fullmatch(key):
        return key
    return _show(key)
