"""The curated crash schema: what of a Sentry event may become a crash report.

A Sentry event is nested and full of free text: local variables, absolute paths with the
user's name, the host name, breadcrumbs, source lines, the installed modules. A crash
report is a flat object of scalars (:data:`.reports.JSONScalar`) built from a fixed list
of fields (:data:`CRASH_FIELDS`, documented in docs/sentry.md); a ``format = "sentry"``
manifest declares the ones it wants, and the checking of :mod:`.reports` drops the rest.
:data:`NEVER_STORED` names what is never taken whatever a manifest declares: no field of
the schema reads it, and no tag of that name is taken.

The stack is one string (:data:`STACK_FORMAT`): a frame per line, oldest first and the
frame that raised last, as Sentry orders them; each line is ``app `` or ``lib `` (the
app's own frame, or not, or not known), then ``module:function:line``, the line number
empty when unknown or dropped. :func:`stack_without_lines` and :func:`app_frames_only`
are the coarsenings a review can apply to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import MalformedError
from .clock import from_iso, to_iso
from .reports import MAX_STRING, JSONScalar
from .sentry_envelope import normal_event_id


@dataclass(frozen=True)
class CrashField:
    name: str
    type: str  # a manifest field type, or "stack" (the string of STACK_FORMAT)
    sensitivity: str  # as a manifest has it; "identifying" starts excluded (scope.STARTS_EXCLUDED)
    source: str  # where in the event it comes from
    description: str


CRASH_FIELDS: tuple[CrashField, ...] = (
    CrashField("event_id", "string", "anonymous", "event_id", "the event's random id, so the vendor drops a resend"),
    CrashField("timestamp", "timestamp", "anonymous", "timestamp", "when it happened (UTC)"),
    CrashField("level", "enum", "anonymous", "level", "fatal, error, warning, info or debug"),
    CrashField("platform", "string", "anonymous", "platform", "the SDK's language: python, javascript, native..."),
    CrashField("release", "string", "anonymous", "release", "the app's release, as it set it (photoedit@3.1.4)"),
    CrashField("environment", "string", "anonymous", "environment", "production, staging..., as the app set it"),
    CrashField(
        "exception_type", "string", "anonymous", "exception.values[-1].type", "the class of what was raised: ValueError"
    ),
    CrashField(
        "exception_module", "string", "anonymous", "exception.values[-1].module", "the module that defines that class"
    ),
    CrashField(
        "exception_value",
        "string",
        "identifying",
        "exception.values[-1].value",
        "the exception's message: free text, often with names, paths or values in it",
    ),
    CrashField(
        "exception_handled",
        "boolean",
        "anonymous",
        "exception.values[-1].mechanism.handled",
        "false when the program crashed, true when it caught the exception and reported it",
    ),
    CrashField(
        "message", "string", "identifying", "logentry.formatted, message", "a reported message (free text), if any"
    ),
    CrashField(
        "stack",
        "stack",
        "anonymous",
        "exception.values[-1].stacktrace.frames[]",
        "where it happened: module, function and line of each frame, and whether it is the app's own",
    ),
    CrashField("os_name", "string", "device", "contexts.os.name", "the operating system: Windows, macOS, Linux..."),
    CrashField("os_version", "string", "device", "contexts.os.version", "its version"),
    CrashField("runtime_name", "string", "anonymous", "contexts.runtime.name", "the language runtime: CPython, node"),
    CrashField("runtime_version", "string", "anonymous", "contexts.runtime.version", "its version"),
)
TAG_PREFIX = "tag:"  # tag:<name>, each tag the app set, its value a string
LEVELS: tuple[str, ...] = ("fatal", "error", "warning", "info", "debug")

# What is never taken, whatever a manifest declares (paths in the event, [] for each element).
NEVER_STORED: tuple[str, ...] = (
    "exception.values[].stacktrace.frames[].vars",  # local variables: tokens, passwords, documents
    "exception.values[].stacktrace.frames[].abs_path",  # absolute paths hold the user's name
    "exception.values[].stacktrace.frames[].filename",  # beyond its base name, when there is no module
    "exception.values[].stacktrace.frames[].pre_context",  # source lines: strings and keys in code
    "exception.values[].stacktrace.frames[].context_line",
    "exception.values[].stacktrace.frames[].post_context",
    "server_name",  # the host name
    "user",  # id, e-mail, user name, IP address
    "request",  # URL, headers, cookies, body
    "contexts.device",  # device name (the host name on phones), model ids, memory
    "contexts.os.kernel_version",  # uname -a: holds the host name
    "contexts.os.build",
    "contexts.app.device_app_hash",
    "contexts.culture",
    "debug_meta",  # image paths and load addresses
    "modules",  # every installed package
    "sdk.packages",
    "threads",  # other threads' stacks and their variables
    "tag:server_name",
    "tag:user",
    "tag:user.id",
    "tag:user.email",
    "tag:user.username",
    "tag:user.ip",
    "tag:ip",
    "tag:ip_address",
    "tag:url",
    "tag:host",
    "tag:hostname",
    "tag:device",
    "tag:device.id",
)
# Not in this first schema at all (so dropped, and named as dropped): breadcrumbs and extra
# are free text an app fills as it likes; a later part may offer them excluded by default.
NOT_IN_SCHEMA: tuple[str, ...] = ("breadcrumbs", "extra", "fingerprint", "transaction", "culprit", "_meta")

STACK_FORMAT = "one frame per line, oldest first: 'app ' or 'lib ', then module:function:line"
MAX_FRAMES = 50  # the frames nearest the crash are kept
MAX_NAME = 200  # a module or function name, a tag value, a release (Sentry's tag limit)
MAX_FREE_TEXT = 1024  # exception_value, message
MAX_TAGS = 50
_APP, _LIB = "app ", "lib "
_TAG_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEVER_TAGS = frozenset(name[len(TAG_PREFIX) :] for name in NEVER_STORED if name.startswith(TAG_PREFIX))
_FIELDS = {spec.name for spec in CRASH_FIELDS}
# The event's keys this schema reads something from; every other key is dropped and named.
_READ = frozenset(
    {"event_id", "timestamp", "level", "platform", "release", "environment", "exception", "logentry", "message"}
    | {"contexts", "tags"}
)


def is_crash_field(name: str) -> bool:
    """Whether a manifest of ``format = "sentry"`` may declare ``name``."""
    if name in _FIELDS:
        return True
    if name.startswith(TAG_PREFIX):
        tag = name[len(TAG_PREFIX) :]
        return bool(_TAG_NAME.match(tag)) and tag.lower() not in _NEVER_TAGS
    return False


def crash_fields(event: Mapping[str, Any]) -> tuple[dict[str, JSONScalar], list[str]]:
    """The curated values of ``event`` (a Sentry event object) and the names of what was in it
    and is not taken (sorted; names only, never a value). Nothing of :data:`NEVER_STORED` is
    ever read into the values."""
    values: dict[str, JSONScalar] = {}
    dropped: set[str] = set()
    dropped.update(_shown_name(key) for key in event if key not in _READ)
    if "event_id" in event:
        try:
            values["event_id"] = normal_event_id(event["event_id"])
        except MalformedError:
            dropped.add("event_id")
    _take_timestamp(event.get("timestamp"), values, dropped)
    level = event.get("level")
    if isinstance(level, str) and level.lower() in LEVELS:
        values["level"] = level.lower()
    elif level is not None:
        dropped.add("level")
    for name in ("platform", "release", "environment"):
        _take_name(event.get(name), name, values, dropped)
    _take_exception(event.get("exception"), values, dropped)
    _take_message(event, values, dropped)
    _take_contexts(event.get("contexts"), values, dropped)
    _take_tags(event.get("tags"), values, dropped)
    return values, sorted(dropped)


# -- the stack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    module: str
    function: str
    line: int | None
    in_app: bool

    def text(self) -> str:
        return f"{_APP if self.in_app else _LIB}{self.module}:{self.function}:{'' if self.line is None else self.line}"


def stack_frames(stack: str) -> list[Frame]:
    """The frames of a stack string (:data:`STACK_FORMAT`)."""
    frames = []
    for line in stack.split("\n") if stack else []:
        mark, rest = line[:4], line[4:]
        module, _, rest = rest.partition(":")
        function, _, number = rest.rpartition(":")
        frames.append(Frame(module, function, int(number) if number.isdigit() else None, mark == _APP))
    return frames


def stack_text(frames: Sequence[Frame]) -> str:
    return "\n".join(frame.text() for frame in frames)


def stack_without_lines(stack: str) -> str:
    """The stack with every line number dropped (``app m:f:``): frames that differ only by line
    read the same, and code lines tell nothing of the build."""
    return stack_text([Frame(f.module, f.function, None, f.in_app) for f in stack_frames(stack)])


def app_frames_only(stack: str) -> str:
    """The stack with only the app's own frames (``in_app``): what the libraries did is cut."""
    return stack_text([frame for frame in stack_frames(stack) if frame.in_app])


STACK_COARSENINGS: Mapping[str, Callable[[str], str]] = {
    "no_lines": stack_without_lines,
    "app_only": app_frames_only,
}


# -- taking each part ------------------------------------------------------------------------


def _take_timestamp(value: object, values: dict[str, JSONScalar], dropped: set[str]) -> None:
    if value is None:
        return
    moment: datetime | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            # Sentry reads a timestamp without a zone as UTC.
            zoned = value if re.search(r"(Z|[+-]\d{2}:?\d{2})\Z", value) else value + "Z"
            moment = from_iso(zoned)
    except (ValueError, OverflowError, OSError):
        moment = None
    if moment is None:
        dropped.add("timestamp")
    else:
        values["timestamp"] = to_iso(moment)


def _take_name(value: object, name: str, values: dict[str, JSONScalar], dropped: set[str]) -> None:
    text = _one_line(value, MAX_NAME)
    if text:
        values[name] = text
    elif value is not None:
        dropped.add(name)


def _take_exception(value: object, values: dict[str, JSONScalar], dropped: set[str]) -> None:
    if value is None:
        return
    exceptions = value.get("values") if isinstance(value, Mapping) else value
    if not isinstance(exceptions, list) or not exceptions or not isinstance(exceptions[-1], Mapping):
        dropped.add("exception")
        return
    if len(exceptions) > 1:
        dropped.add("exception.values[:-1]")  # the chained causes: a later part may take them
    last: Mapping[str, Any] = exceptions[-1]
    for key in last:
        if key not in ("type", "module", "value", "mechanism", "stacktrace"):
            dropped.add(f"exception.values[].{_shown_name(key)}")
    for key, name in (("type", "exception_type"), ("module", "exception_module")):
        _take_name(last.get(key), name, values, dropped)
    text = _free_text(last.get("value"))
    if text:
        values["exception_value"] = text
    mechanism = last.get("mechanism")
    if isinstance(mechanism, Mapping):
        if isinstance(mechanism.get("handled"), bool):
            values["exception_handled"] = mechanism["handled"]
        if set(mechanism) - {"handled"}:
            dropped.add("exception.values[].mechanism")
    stacktrace = last.get("stacktrace")
    if stacktrace is not None:
        stack = _stack(stacktrace, dropped)
        if stack:
            values["stack"] = stack


def _stack(stacktrace: object, dropped: set[str]) -> str:
    frames = stacktrace.get("frames") if isinstance(stacktrace, Mapping) else None
    if not isinstance(frames, list):
        dropped.add("exception.values[].stacktrace")
        return ""
    if isinstance(stacktrace, Mapping) and set(stacktrace) - {"frames"}:
        dropped.add("exception.values[].stacktrace")  # registers, frames_omitted...
    taken: list[Frame] = []
    for raw in frames[-MAX_FRAMES:]:
        if not isinstance(raw, Mapping):
            dropped.add("exception.values[].stacktrace.frames[]")
            continue
        for key in raw:
            if key not in ("module", "function", "lineno", "in_app"):
                dropped.add(f"exception.values[].stacktrace.frames[].{_shown_name(key)}")
        module = _one_line(raw.get("module"), MAX_NAME).replace(":", ".")
        if not module:
            module = _base_name(raw.get("filename"))
        function = _one_line(raw.get("function"), MAX_NAME) or "?"
        line = raw.get("lineno")
        number = line if isinstance(line, int) and not isinstance(line, bool) and 0 <= line < 2**31 else None
        taken.append(Frame(module or "?", function, number, raw.get("in_app") is True))
    if len(frames) > MAX_FRAMES:
        dropped.add(f"exception.values[].stacktrace.frames[:-{MAX_FRAMES}]")
    text = stack_text(taken)
    while len(text) > MAX_STRING and taken:  # long names: keep the frames nearest the crash
        taken = taken[1:]
        text = stack_text(taken)
        dropped.add("exception.values[].stacktrace.frames[older]")
    return text


def _take_message(event: Mapping[str, Any], values: dict[str, JSONScalar], dropped: set[str]) -> None:
    entry = event.get("logentry")
    text = ""
    if isinstance(entry, Mapping):
        text = _free_text(entry.get("formatted")) or _free_text(entry.get("message"))
        if set(entry) - {"formatted", "message"}:
            dropped.add("logentry.params")
    message = event.get("message")
    if not text:
        text = _free_text(message.get("formatted") if isinstance(message, Mapping) else message)
    if text:
        values["message"] = text
    elif entry is not None or message is not None:
        dropped.add("message")


def _take_contexts(contexts: object, values: dict[str, JSONScalar], dropped: set[str]) -> None:
    if contexts is None:
        return
    if not isinstance(contexts, Mapping):
        dropped.add("contexts")
        return
    for key, context in contexts.items():
        prefix = {"os": "os", "runtime": "runtime"}.get(key) if isinstance(key, str) else None
        if prefix is None or not isinstance(context, Mapping):
            dropped.add(f"contexts.{_shown_name(key)}")
            continue
        for part in context:
            if part not in ("name", "version", "type"):
                dropped.add(f"contexts.{key}.{_shown_name(part)}")
        for part in ("name", "version"):
            _take_name(context.get(part), f"{prefix}_{part}", values, dropped)


def _take_tags(tags: object, values: dict[str, JSONScalar], dropped: set[str]) -> None:
    if tags is None:
        return
    pairs: list[tuple[object, object]]
    if isinstance(tags, Mapping):
        pairs = list(tags.items())
    elif isinstance(tags, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in tags):
        pairs = [(pair[0], pair[1]) for pair in tags]
    else:
        dropped.add("tags")
        return
    taken = 0
    for name, value in pairs:
        if not isinstance(name, str) or not _TAG_NAME.match(name) or taken == MAX_TAGS:
            dropped.add("tags[]")
            continue
        if name.lower() in _NEVER_TAGS:
            dropped.add(f"{TAG_PREFIX}{name}")
            continue
        text = _one_line(value if not isinstance(value, bool) else str(value).lower(), MAX_NAME)
        if text:
            values[f"{TAG_PREFIX}{name}"] = text
            taken += 1
        else:
            dropped.add(f"{TAG_PREFIX}{name}")


# -- text --------------------------------------------------------------------------------------


def _one_line(value: object, limit: int) -> str:
    """A name as one line of text: numbers spelt, controls and line breaks made spaces, cut."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return ""
    text = _CONTROL.sub(" ", _valid(value)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _free_text(value: object) -> str:
    """Free text as sent (line breaks kept), surrogates made valid, cut to MAX_FREE_TEXT."""
    if not isinstance(value, str):
        return ""
    text = _valid(value).strip()
    return text if len(text) <= MAX_FREE_TEXT else text[: MAX_FREE_TEXT - 1] + "…"


def _valid(text: str) -> str:
    if text.isascii():
        return text
    # An unpaired surrogate (JSON allows "\ud800") cannot be stored or sent as UTF-8.
    return "".join("\ufffd" if unicodedata.category(char) == "Cs" else char for char in text)


def _base_name(value: object) -> str:
    """A file name at most: the last part of a path, any separator."""
    text = _one_line(value, 4 * MAX_NAME)
    base = re.split(r"[\\/]", text)[-1]
    return base[:MAX_NAME].replace(":", ".")


def _shown_name(key: object) -> str:
    text = _one_line(key, 64) if isinstance(key, str) else "?"
    return text or "?"


# -- sessions (release health) ------------------------------------------------------------------

SESSION_STATUSES: tuple[str, ...] = ("exited", "errored", "crashed", "abnormal")
# What a session never gives, whatever is declared: who (did: the distinct id, often the user),
# where (ip_address, user_agent) and which (sid), and when to the second (started, timestamp).
SESSION_NEVER_STORED: tuple[str, ...] = ("did", "sid", "attrs.ip_address", "attrs.user_agent", "started", "timestamp")


def session_counts(payload: Mapping[str, Any], item_type: str) -> tuple[list[dict[str, JSONScalar]], list[str]]:
    """The aggregate rows of a ``session`` or ``sessions`` item: ``{release, environment,
    status, count}``, one per status seen, and the names of what was dropped. A ``session``
    update counts only once it has ended (a status other than ``ok``; ``exited`` with errors is
    ``errored``, as Sentry's release health has it): an open session sends many updates."""
    dropped: set[str] = {_shown_name(key) for key in payload if key not in ("attrs", "aggregates", "status", "errors")}
    attrs = payload.get("attrs")
    base: dict[str, JSONScalar] = {}
    if isinstance(attrs, Mapping):
        for name in ("release", "environment"):
            text = _one_line(attrs.get(name), MAX_NAME)
            if text:
                base[name] = text
        dropped.update(f"attrs.{_shown_name(key)}" for key in attrs if key not in ("release", "environment"))
    counts: dict[str, int] = {}
    if item_type == "session":
        status = payload.get("status")
        errors = payload.get("errors")
        if status == "exited" and isinstance(errors, int) and not isinstance(errors, bool) and errors > 0:
            status = "errored"
        if isinstance(status, str) and status in SESSION_STATUSES:
            counts[status] = 1
        elif status != "ok":
            dropped.add("status")
    else:
        aggregates = payload.get("aggregates")
        for group in aggregates if isinstance(aggregates, list) else []:
            if not isinstance(group, Mapping):
                continue
            dropped.update(_shown_name(key) for key in group if key not in SESSION_STATUSES)
            for status in SESSION_STATUSES:
                count = group.get(status)
                if isinstance(count, int) and not isinstance(count, bool) and 0 < count < 2**31:
                    counts[status] = counts.get(status, 0) + count
    rows: list[dict[str, JSONScalar]] = [{**base, "status": status, "count": n} for status, n in counts.items()]
    return rows, sorted(dropped)
